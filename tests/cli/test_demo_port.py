"""`make demo` takes a port, and a busy port is one clear error before any banner."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

CLI = Path(sys.executable).with_name("fhir-service")
CASE = REPO_ROOT / "examples" / "ivc-leiomyosarcoma" / "case.yaml"


def test_a_busy_port_is_one_clear_error_before_the_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(CLI), "demo", "--port", str(port), "--case", str(CASE)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in errors[0]
    assert "PORT=8001 make demo" in errors[0]
    assert "FHIR R4 API at" not in done.stdout
    assert "loaded" not in done.stdout
    assert "Traceback" not in done.stderr


def test_make_demo_passes_the_port() -> None:
    done = subprocess.run(
        ["make", "-n", "demo", "PORT=8123"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "fhir-service demo --port 8123" in done.stdout
