"""The README's examples run as written, and `make audit` works on a plain machine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
VENV_BIN = Path(sys.executable).parent


def console_examples() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for every `$ ` line of the README's ```console blocks."""
    examples = []
    for block in re.findall(r"```console\n(.*?)```", README, re.DOTALL):
        command: str | None = None
        expected: list[str] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command:
                    examples.append((command, expected))
                command, expected = line[2:], []
            elif line.strip():
                expected.append(line)
        if command:
            examples.append((command, expected))
    return examples


EXAMPLES = console_examples()


def test_readme_has_examples() -> None:
    assert EXAMPLES, "the README's console examples are what this module runs"


@pytest.mark.parametrize(("command", "expected"), EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_readme_console_example(command: str, expected: list[str]) -> None:
    # `.venv/bin/` is where `make` installs certaudit; the tests may run from another environment.
    runnable = command.replace(".venv/bin/", f"{VENV_BIN}/")
    done = subprocess.run(["bash", "-c", runnable], cwd=REPO, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    for line in expected:
        assert line in output, f"{command!r} did not print {line!r}:\n{output[-3000:]}"
    assert "Traceback" not in output


def test_make_audit_on_a_plain_machine(tmp_path: Path) -> None:
    """This machine has no certbot and no stemedb: findings that say what is missing, no traceback."""
    done = subprocess.run(
        ["make", "audit", f"REPORTS={tmp_path}", f"BIN={VENV_BIN}"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]  # make's status for a recipe that exited 1 (findings)
    assert "Traceback" not in output
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.endswith("-audit")
    assert {p.name for p in run_dir.iterdir()} >= {"report.html", "junit.xml", "evidence.json"}
    evidence = json.loads((run_dir / "evidence.json").read_text())
    by_control = {r["control"]: r for r in evidence["results"] if r["host"] == "localhost"}
    assert by_control["REN-03"]["outcome"] == "fail"
    assert "/etc/letsencrypt/renewal/stemedb.example.com.conf does not exist" in by_control["REN-03"]["message"]
    assert by_control["KEY-01"]["outcome"] == "fail"
    assert "/etc/stemedb/tls/key.pem does not exist" in by_control["KEY-01"]["message"]
    assert "no deploy hook" in by_control["REN-02"]["message"]
    assert "nothing listens on localhost:18180" in by_control["LIVE-01"]["message"]
    assert by_control["REN-01"]["outcome"] == "fail"
