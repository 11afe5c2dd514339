"""The `certaudit` command, run both in-process (`main([...])`) and as the installed console script."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from certaudit.cli import main
from certaudit.evidence.manifest import MANIFEST, SIGNATURE, write_manifest

SCRIPT = Path(sys.executable).parent / "certaudit"
EVIDENCE_FILES = {
    "report.html": b"<!DOCTYPE html><html><body>7 passed</body></html>\n",
    "junit.xml": b'<?xml version="1.0"?><testsuites tests="7"/>\n',
    "evidence.json": b'{"results": []}\n',
}


@dataclasses.dataclass(frozen=True)
class Done:
    rc: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


Cli = Callable[..., Done]


@pytest.fixture(params=["main", "script"])
def cli(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """Runs `certaudit ARGS...` with HOME at tmp_path/home, in-process or as the installed script."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))

    def in_process(*args: str | Path) -> Done:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Done(rc, captured.out, captured.err)

    def as_script(*args: str | Path) -> Done:
        assert SCRIPT.is_file(), f"{SCRIPT} is missing: pip install -e . installs the certaudit script"
        done = subprocess.run(
            [str(SCRIPT), *map(str, args)],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            check=False,
            env={**os.environ, "HOME": str(home)},
            cwd=tmp_path,
        )
        return Done(done.returncode, done.stdout, done.stderr)

    return in_process if request.param == "main" else as_script


def make_run(parent: Path) -> Path:
    run_dir = parent / "20240131T120000Z-audit"
    run_dir.mkdir(parents=True)
    for name, data in EVIDENCE_FILES.items():
        (run_dir / name).write_bytes(data)
    return run_dir


def fingerprint(public_pem: Path) -> str:
    key = serialization.load_pem_public_key(public_pem.read_bytes())
    return hashlib.sha256(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).hexdigest()


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def signature_byte(path: Path) -> int:
    """An offset inside MANIFEST.sig's base64 signature whose bit-0 flip is still base64 (and not the
    padding-bearing last character), so the changed file is well formed and only the signature is wrong."""
    text = path.read_text()
    start = text.index("\nsignature: ") + len("\nsignature: ")
    return next(i for i in range(start, start + 85) if chr(ord(text[i]) ^ 0x01) in B64)


def pem_body(path: Path) -> str:
    return "".join(line for line in path.read_text().splitlines() if not line.startswith("-----"))


def assert_clean_error(done: Done, *fragments: str) -> None:
    """Exit 2 with one line on stderr naming what went wrong, and no traceback."""
    assert done.rc == 4, done
    assert "Traceback" not in done.err + done.out
    assert len(done.err.splitlines()) == 1, done.err
    for fragment in fragments:
        assert fragment in done.err, (fragment, done.err)


@pytest.fixture
def keys(cli: Cli, tmp_path: Path) -> tuple[Path, Path]:
    done = cli("keygen", "--out-dir", tmp_path / "keys")
    assert done.rc == 0, done
    return tmp_path / "keys" / "signing-key.pem", tmp_path / "keys" / "signing-key.pub.pem"


@pytest.fixture
def signed(cli: Cli, tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    run_dir = make_run(tmp_path / "reports")
    done = cli("sign", run_dir, "--signing-key", keys[0])
    assert done == Done(0, f"signed: {run_dir} (3 files; wrote {MANIFEST} and {SIGNATURE})\n", ""), done
    return run_dir


# --- keygen -----------------------------------------------------------------------------------


def test_keygen_writes_the_pair_and_prints_paths_and_fingerprint(cli: Cli, tmp_path: Path) -> None:
    out_dir = tmp_path / "fresh" / "keys"
    done = cli("keygen", "--out-dir", out_dir, "--name", "ci")
    private, public = out_dir / "ci.pem", out_dir / "ci.pub.pem"
    assert done.rc == 0 and done.err == ""
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert stat.S_IMODE(out_dir.stat().st_mode) == 0o700
    [first, second, third] = done.lines
    assert first.startswith(f"private key: {private} ")
    assert second.startswith(f"public key:  {public} ")
    assert third == f"key-sha256:  {fingerprint(public)}"
    assert pem_body(private) not in done.out + done.err


def test_keygen_defaults_to_the_config_directory(cli: Cli, tmp_path: Path) -> None:
    done = cli("keygen")
    assert done.rc == 0, done
    key_dir = tmp_path / "home" / ".config" / "certaudit"
    assert sorted(p.name for p in key_dir.iterdir()) == ["signing-key.pem", "signing-key.pub.pem"]
    assert stat.S_IMODE((key_dir / "signing-key.pem").stat().st_mode) == 0o600


def test_keygen_refuses_to_overwrite(cli: Cli, keys: tuple[Path, Path], tmp_path: Path) -> None:
    before = keys[0].read_bytes()
    done = cli("keygen", "--out-dir", tmp_path / "keys")
    assert_clean_error(done, str(keys[0]), "already exists")
    assert done.out == ""
    assert keys[0].read_bytes() == before


# --- sign and verify --------------------------------------------------------------------------


def test_a_signed_run_verifies_with_its_public_key(cli: Cli, signed: Path, keys: tuple[Path, Path]) -> None:
    assert cli("verify", signed, "--public-key", keys[1]) == Done(0, f"verified: {signed} (3 files, signature checked)\n", "")


def test_an_unsigned_manifest_verifies_as_not_signed(cli: Cli, tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "reports")
    write_manifest(run_dir)
    assert cli("verify", run_dir) == Done(0, f"verified: {run_dir} (3 files, not signed)\n", "")


def test_a_signed_run_without_a_public_key_is_not_verified(cli: Cli, signed: Path) -> None:
    assert cli("verify", signed) == Done(
        1,
        f"{SIGNATURE}: present, but no public key was given to check it (--public-key)\nNOT VERIFIED: {signed} (1 problem)\n",
        "",
    )


def test_tampering_is_named_file_by_file(cli: Cli, signed: Path, keys: tuple[Path, Path]) -> None:
    old = hashlib.sha256(EVIDENCE_FILES["report.html"]).hexdigest()
    (signed / "report.html").write_bytes(EVIDENCE_FILES["report.html"].replace(b"7 passed", b"8 passed"))
    new = hashlib.sha256((signed / "report.html").read_bytes()).hexdigest()
    (signed / "junit.xml").unlink()
    (signed / "extra.txt").write_text("x")
    assert cli("verify", signed, "--public-key", keys[1]) == Done(
        1,
        "missing: junit.xml\n"
        f"changed: report.html (sha256 {old[:12]}… ≠ {new[:12]}…)\n"
        f"unlisted: extra.txt (not in {MANIFEST})\n"
        f"NOT VERIFIED: {signed} (3 problems)\n",
        "",
    )


@pytest.mark.parametrize("name", [*sorted(EVIDENCE_FILES), MANIFEST, SIGNATURE])
def test_one_changed_byte_of_each_file_fails_and_names_it(cli: Cli, signed: Path, keys: tuple[Path, Path], name: str) -> None:
    path = signed / name
    data = bytearray(path.read_bytes())
    data[signature_byte(path) if name == SIGNATURE else len(data) * 2 // 3] ^= 0x01
    path.write_bytes(bytes(data))
    done = cli("verify", signed, "--public-key", keys[1])
    assert done.rc == 1 and done.err == ""
    *problems, last = done.lines
    assert last == f"NOT VERIFIED: {signed} (1 problem)"
    assert len(problems) == 1
    [problem] = problems
    if name in EVIDENCE_FILES:
        assert problem.startswith(f"changed: {name} (sha256 ")
    else:
        # The signature covers the manifest: either file changing shows as the pair not matching.
        assert problem == f"{SIGNATURE}: the signature does not match {MANIFEST}"
    others = [n for n in EVIDENCE_FILES if n != name]
    assert not any(other in problem for other in others)


def test_wrong_public_key(cli: Cli, signed: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    assert cli("keygen", "--out-dir", tmp_path / "other").rc == 0
    other = tmp_path / "other" / "signing-key.pub.pem"
    signer, given = fingerprint(keys[1]), fingerprint(other)
    assert signer != given
    assert cli("verify", signed, "--public-key", other) == Done(
        1,
        f"{SIGNATURE}: signed by key {signer[:12]}…, not by the given public key {given[:12]}…\n"
        f"NOT VERIFIED: {signed} (1 problem)\n",
        "",
    )


def test_no_manifest_is_not_verified(cli: Cli, tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "reports")
    assert cli("verify", run_dir) == Done(1, f"{MANIFEST}: missing\nNOT VERIFIED: {run_dir} (1 problem)\n", "")


def test_verify_usage_errors(cli: Cli, tmp_path: Path) -> None:
    assert_clean_error(cli("verify", tmp_path / "nope"), f"certaudit: {tmp_path / 'nope'}: does not exist")
    (tmp_path / "file").write_text("")
    assert_clean_error(cli("verify", tmp_path / "file"), f"certaudit: {tmp_path / 'file'}: is not a directory")
    run_dir = make_run(tmp_path / "reports")
    assert_clean_error(cli("verify", run_dir, "--public-key", tmp_path / "missing.pub.pem"), "missing.pub.pem: cannot be read")


def test_argparse_usage_errors_exit_2(cli: Cli) -> None:
    for args in [(), ("frobnicate",), ("verify",), ("sign", "somewhere")]:
        done = cli(*args)
        assert done.rc == 4, (args, done)
        assert "usage: certaudit" in done.err and "Traceback" not in done.err


def test_help_lists_the_commands(cli: Cli) -> None:
    done = cli("--help")
    assert done.rc == 0
    assert done.out.startswith("usage: certaudit [-h] [--version] COMMAND ...")
    for command in ("verify", "keygen", "sign"):
        assert f"    {command}  " in done.out


def test_sign_refuses_a_group_readable_key(cli: Cli, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    run_dir = make_run(tmp_path / "reports")
    keys[0].chmod(0o640)
    done = cli("sign", run_dir, "--signing-key", keys[0])
    assert_clean_error(done, f"certaudit: {keys[0]}: mode 0640 gives group or others access")
    assert not (run_dir / MANIFEST).exists() and not (run_dir / SIGNATURE).exists()


def test_sign_refuses_a_symbolic_link_in_the_run(cli: Cli, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    run_dir = make_run(tmp_path / "reports")
    (run_dir / "passwd").symlink_to("/etc/passwd")
    assert_clean_error(cli("sign", run_dir, "--signing-key", keys[0]), f"{run_dir / 'passwd'}: is a symbolic link")


def test_no_output_ever_contains_the_private_key(cli: Cli, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    body = pem_body(private)
    assert len(body) > 40
    run_dir = make_run(tmp_path / "reports")
    lines = private.read_text().splitlines()
    broken = tmp_path / "broken.pem"
    broken.write_text("\n".join([lines[0], lines[1][:-6] + "!!!!!!", lines[2]]) + "\n")
    broken.chmod(0o600)
    # The key where a run file, a public key, a manifest or a signature should be.
    leaky = make_run(tmp_path / "leaky")
    (leaky / "key.pem").write_bytes(private.read_bytes())
    (leaky / MANIFEST).write_text(private.read_text())
    (leaky / SIGNATURE).write_text(private.read_text())
    outputs = [
        cli("verify", run_dir, "--public-key", private),
        cli("sign", run_dir, "--signing-key", public),
        cli("sign", run_dir, "--signing-key", broken),
        cli("verify", leaky, "--public-key", public),
        cli("verify", leaky),
    ]
    private.chmod(0o644)
    outputs.append(cli("sign", run_dir, "--signing-key", private))
    assert [d.rc for d in outputs] == [4, 4, 4, 1, 1, 4]
    for done in outputs:
        text = done.out + done.err
        assert body not in text and body[:32] not in text and body[-32:] not in text, text
        for line in lines[1:-1]:
            assert line not in text
