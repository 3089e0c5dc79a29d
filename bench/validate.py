"""Validation throughput: resources/s with and without invariants and profiles.

    .venv/bin/python bench/validate.py [--repeat 5]

Inputs: the largest patient Bundle of the Synthea 300-patient set (../shared/data,
extracted to a temporary folder) and the IVC leiomyosarcoma case Bundle (mapped from
examples/, its resources declare mCODE profiles). Each configuration validates the JSON
text (parse, structure, bindings, references, and what the row names; the last row adds
meta.profile and the implied vital signs profiles) --repeat times after one warm-up; the
median run is reported, by the wall clock and by the process's CPU time (steadier on a
machine other jobs share: it leaves out the time the process waited for a CPU). Rewrites
its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tarfile
import tempfile
import time
from datetime import date
from pathlib import Path

from report import machine, write_section

from fhir_service.fhir.package_cache import load_definitions
from fhir_service.settings import Settings
from fhir_service.validation.engine import has_errors, validator_for
from fhir_service.validation.options import Options
from mappings.bundle import build_bundle
from mappings.case.loader import load_case

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "synthea-r4-300-patients.tar.xz"
CASE = ROOT / "examples" / "ivc-leiomyosarcoma" / "case.yaml"
START, END = "<!-- validate:start -->", "<!-- validate:end -->"
TARGET = 1000


def largest_patient_bundle(folder: Path) -> Path:
    with tarfile.open(ARCHIVE, "r:xz") as archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(".json")]
        patients = [m for m in members if "hospital" not in m.name and "practitioner" not in m.name]
        biggest = max(patients, key=lambda m: m.size)
        archive.extract(biggest, folder, filter="data")
    return folder / biggest.name


def case_bundle(folder: Path) -> Path:
    bundle = build_bundle(load_case(CASE), date(2022, 3, 1), "transaction")
    path = folder / "ivc-case-bundle.json"
    path.write_text(json.dumps(bundle, indent=2), encoding="utf-8")
    return path


def measure(text: str, options: Options, repeat: int) -> tuple[float, float, int, bool]:
    """Median wall-clock and CPU seconds of ``repeat`` runs, the issue count, any error."""
    validator = validator_for(load_definitions(Settings().package_cache))
    issues = validator.validate_text(text, options)  # warm-up: compiles models and FHIRPath
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        issues = validator.validate_text(text, options)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), statistics.median(cpu), len(issues), has_errors(issues)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        try:
            inputs.append(("IVC case Bundle (mCODE)", case_bundle(Path(tmp))))
        except Exception as exc:  # the benchmark goes on with the other input
            print(f"case Bundle not mapped, left out: {type(exc).__name__}: {exc}")
        if ARCHIVE.is_file():
            inputs.append(("largest Synthea patient Bundle", largest_patient_bundle(Path(tmp))))
        configs = [
            (
                "structure only",
                Options(invariants=False, declared_profiles=False, vital_signs=False),
            ),
            ("+ invariants", Options(invariants=True, declared_profiles=False, vital_signs=False)),
            ("+ invariants + profiles", Options(invariants=True)),
        ]
        for label, path in inputs:
            text = path.read_text(encoding="utf-8")
            count = 1 + len(json.loads(text).get("entry", []))
            for name, options in configs:
                seconds, cpu, issues, errors = measure(text, options, args.repeat)
                rate, cpu_rate = count / seconds, count / cpu
                rows.append(
                    (label, count, len(text) // 1024, name, seconds, rate, cpu_rate, issues)
                )
                print(
                    f"{label:32} {name:24} {count:5} resources {seconds:6.3f} s "
                    f"{count / seconds:8.0f} resources/s, {count / cpu:8.0f} per CPU second "
                    f"({issues} issues, errors={errors})"
                )
    write_results(rows, args.repeat)


def write_results(
    rows: list[tuple[str, int, int, str, float, float, float, int]], repeat: int
) -> None:
    load = os.getloadavg()[0]
    lines = [
        "## Validation throughput (`bench/validate.py`)",
        "",
        f"Run {date.today().isoformat()} on {machine()}, {platform.system()}; load average at "
        f"the end {load:.1f} (other processes share the machine, so these are lower bounds). "
        f"Median of {repeat} runs after a warm-up; the clock covers validate_text (JSON "
        "parse, structure, bindings, references, and what the row adds; profiles are "
        "meta.profile and the implied vital signs profiles). "
        f"Target: >= {TARGET:,} resources/s with invariants on.",
        "",
        "| input | resources | KiB | checks | seconds | resources/s | per CPU second | issues |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for label, count, kib, name, seconds, rate, cpu_rate, issues in rows:
        lines.append(
            f"| {label} | {count} | {kib} | {name} | {seconds:.3f} | {rate:,.0f} | "
            f"{cpu_rate:,.0f} | {issues} |"
        )
    write_section(START, END, lines)


if __name__ == "__main__":
    main()
