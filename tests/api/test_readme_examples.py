"""The README's REST examples, run with curl in the order written against a real server
(SQLite, then PostgreSQL): create, read, update with If-Match, FHIRPath Patch, conditional
JSON Patch, delete, and `$validate`, each answering a success status."""

from __future__ import annotations

import re
import shlex
import subprocess
from urllib.parse import urlsplit

import pytest

from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
GROUPS = ("# validate a resource", "# create, read, update with optimistic locking, delete")


def readme_commands(heading: str) -> list[list[str]]:
    """The curl commands under ``heading`` in the README's Examples block, as argv lists."""
    text = README.read_text()
    block = text[text.index("## Examples") :]
    block = block[block.index("```sh") + 5 : block.index("```", block.index("```sh") + 5)]
    group = block[block.index(heading) + len(heading) :]
    group = group[: group.index("\n\n")] if "\n\n" in group else group
    commands, pending = [], ""
    for line in group.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            argv = shlex.split(pending)
        except ValueError:  # a quoted body spans lines
            continue
        pending = ""
        if argv and argv[0] == "curl":
            commands.append(argv[: argv.index("|")] if "|" in argv else argv)
    return commands


def _run(argv: list[str], origin: str, ids: dict[str, str]) -> tuple[int, str]:
    args = []
    for arg in argv:
        arg = arg.replace("http://127.0.0.1:8000", origin)
        for placeholder, value in ids.items():
            arg = arg.replace(placeholder, value)
        args.append(arg)
    done = subprocess.run(
        [*args, "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=60, check=True
    )
    output, _, status = done.stdout.rpartition("\n")
    return int(status), output


@pytest.mark.parametrize("heading", GROUPS)
def test_readme_examples_run_in_order(live_server: str, heading: str) -> None:
    parts = urlsplit(live_server)
    origin = f"{parts.scheme}://{parts.netloc}"
    commands = readme_commands(heading)
    assert commands, heading
    ids: dict[str, str] = {}
    for argv in commands:
        status, output = _run(argv, origin, ids)
        assert status < 400, (shlex.join(argv), status, output)
        created = re.search(r"(?im)^location: \S*/Patient/([^/\s]+)", output)
        if created and "<id>" not in ids:
            ids["<id>"] = created.group(1)
    if heading.startswith("# create"):
        assert "<id>" in ids
        assert len(commands) == 6
