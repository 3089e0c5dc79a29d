"""What every benchmark shares: a description of the machine and its section of RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    """CPU count and model, Python version."""
    cpu = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if match:
            cpu = match.group(1).strip()
    return f"{os.cpu_count()} CPUs (nproc), {cpu}, Python {platform.python_version()}"


def cpu_check() -> float:
    """Milliseconds a fixed pure-Python loop takes (best of three): the machine's speed at
    the moment, for comparing results of different days (this machine's speed drifts
    by a factor of up to two within minutes)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return best * 1000


def write_section(start: str, end: str, lines: list[str]) -> None:
    """Replace the text between the ``start`` and ``end`` markers of RESULTS.md (or append)."""
    section = "\n".join([start, *lines, end])
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)
