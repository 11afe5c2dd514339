"""What the probe makes the audited host spend: one openssl run per distinct key, no import it does not need.

Each saving must leave the probe's answer exactly as it was: the tests compare with the plain
per-path derivation (public_key) and with the standard library's own answer.
"""

from __future__ import annotations

import importlib
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROBE = Path(__file__).resolve().parents[2] / "certaudit" / "gather" / "remote_probe.py"
# The probe is untyped (it runs on the host's python3.6+): imported as a plain module, not type-checked.
remote_probe: Any = importlib.import_module("certaudit.gather.remote_probe")
OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")


@pytest.fixture
def openssl_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """openssl, counted: each run appends a line to the returned file."""
    counter = tmp_path / "openssl-runs"
    counter.write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "openssl"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {counter}\nexec {OPENSSL} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return counter


def new_key(path: Path) -> Path:
    subprocess.run([str(OPENSSL), "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)],
                   check=True, capture_output=True)  # fmt: skip
    return path


def runs(counter: Path) -> int:
    return len(counter.read_text().splitlines())


def test_a_copy_of_a_key_costs_no_second_openssl_run(tmp_path: Path, openssl_runs: Path) -> None:
    live = new_key(tmp_path / "privkey.pem")
    copy = tmp_path / "key.pem"
    copy.write_bytes(live.read_bytes())
    answers = remote_probe.public_keys([str(copy), str(live)])
    assert runs(openssl_runs) == 1
    expected = {str(p): remote_probe.public_key(str(p)) for p in (copy, live)}
    assert answers == expected
    assert answers[str(copy)]["public_pem"].startswith("-----BEGIN PUBLIC KEY-----")


def test_different_keys_each_get_their_own_run(tmp_path: Path, openssl_runs: Path) -> None:
    first, second = new_key(tmp_path / "a.pem"), new_key(tmp_path / "b.pem")
    answers = remote_probe.public_keys([str(first), str(second)])
    assert runs(openssl_runs) == 2
    assert answers[str(first)]["public_pem"] != answers[str(second)]["public_pem"]
    assert answers == {str(p): remote_probe.public_key(str(p)) for p in (first, second)}


@pytest.mark.parametrize("second", ["missing", "directory", "not-a-key"])
def test_what_cannot_be_compared_is_derived_as_before(tmp_path: Path, openssl_runs: Path, second: str) -> None:
    key = new_key(tmp_path / "key.pem")
    other = tmp_path / second
    if second == "directory":
        other.mkdir()
    elif second == "not-a-key":
        other.write_text("hello\n")
    answers = remote_probe.public_keys([str(key), str(other)])
    assert answers == {str(p): remote_probe.public_key(str(p)) for p in (key, other)}
    assert "public_pem" not in answers[str(other)] and answers[str(other)]["error"]["reason"]


def test_a_failed_derivation_is_not_lent_to_a_copy(tmp_path: Path, openssl_runs: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    copy = tmp_path / "copy.pem"
    copy.write_bytes(bad.read_bytes())
    answers = remote_probe.public_keys([str(bad), str(copy)])
    assert runs(openssl_runs) == 2  # each error names what openssl said about that file
    assert answers == {str(p): remote_probe.public_key(str(p)) for p in (bad, copy)}


def test_the_probe_starts_without_the_modules_it_does_not_need() -> None:
    """socket (for the host name) and ssl cost every host their import; glob is needed by every
    probe since it finds certbot's site directories (which certbot the scheduler runs)."""
    script = (
        "import sys\nsrc = open(sys.argv[1]).read()\nexec(compile(src, 'probe', 'exec'), {'__name__': 'probe'})\n"
        "print(' '.join(sorted(m for m in ('socket', 'ssl') if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script, str(PROBE)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_the_host_name_is_the_one_socket_gives() -> None:
    assert remote_probe.gather.__module__ == "certaudit.gather.remote_probe"
    import os

    assert os.uname().nodename == socket.gethostname()
