"""certaudit.evidence.manifest: a run directory's evidence, hashed and signed, and every way it can be tampered with."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from certaudit.evidence.manifest import MANIFEST, SIGNATURE, ManifestError, Verification, keygen, verify, write_manifest

EVIDENCE_FILES = {
    "report.html": b"<!DOCTYPE html><html><body><h1>certaudit</h1><p>7 passed</p></body></html>\n",
    "junit.xml": b'<?xml version="1.0"?><testsuites><testsuite name="certaudit" tests="7"/></testsuites>\n',
    "evidence.json": b'{"results": [{"control": "KEY-01", "host": "web-1", "outcome": "pass"}]}\n',
}


@dataclasses.dataclass(frozen=True)
class Keys:
    private: Path
    public: Path
    fingerprint: str


def make_keys(directory: Path, name: str = "signing-key") -> Keys:
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    return Keys(private, public, keygen(private, public))


def make_run(parent: Path) -> Path:
    run_dir = parent / "20240131T120000Z-audit"
    run_dir.mkdir(parents=True)
    for name, data in EVIDENCE_FILES.items():
        (run_dir / name).write_bytes(data)
    return run_dir


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pem_body(path: Path) -> str:
    """The base64 body of a PEM file, joined: what must never appear in a message."""
    return "".join(line for line in path.read_text().splitlines() if not line.startswith("-----"))


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def signature_byte(path: Path) -> int:
    """An offset inside MANIFEST.sig's base64 signature whose bit-0 flip is still base64 (and not the
    padding-bearing last character), so the changed file is well formed and only the signature is wrong."""
    text = path.read_text()
    start = text.index("\nsignature: ") + len("\nsignature: ")
    return next(i for i in range(start, start + 85) if chr(ord(text[i]) ^ 0x01) in B64)


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path / "keys")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "reports")


@pytest.fixture
def signed(run_dir: Path, keys: Keys) -> Path:
    write_manifest(run_dir, keys.private)
    return run_dir


# --- writing ----------------------------------------------------------------------------------


def test_manifest_lists_every_file_in_sha256sum_format(run_dir: Path) -> None:
    assert write_manifest(run_dir) == ["evidence.json", "junit.xml", "report.html"]
    expected = "".join(f"{sha256(EVIDENCE_FILES[name])}  {name}\n" for name in sorted(EVIDENCE_FILES))
    assert (run_dir / MANIFEST).read_text() == expected
    assert not (run_dir / SIGNATURE).exists()
    assert stat.S_IMODE((run_dir / MANIFEST).stat().st_mode) == 0o644
    # Written through a temporary file in the same directory, which does not stay behind.
    assert sorted(p.name for p in run_dir.iterdir()) == [MANIFEST, "evidence.json", "junit.xml", "report.html"]


def test_subdirectories_are_hashed_with_relative_posix_paths(run_dir: Path) -> None:
    (run_dir / "assets" / "css").mkdir(parents=True)
    (run_dir / "assets" / "css" / "style.css").write_text("body {}\n")
    (run_dir / "assets" / MANIFEST).write_text("not the top-level manifest\n")
    assert write_manifest(run_dir) == [
        "assets/MANIFEST.sha256",
        "assets/css/style.css",
        "evidence.json",
        "junit.xml",
        "report.html",
    ]
    css = sha256(b"body {}\n")
    assert f"{css}  assets/css/style.css\n" in (run_dir / MANIFEST).read_text()
    assert verify(run_dir) == Verification(ok=True, problems=(), files=5, signed=False, signature_checked=False)


def test_sha256sum_checks_the_manifest_without_certaudit(signed: Path) -> None:
    (signed / "sub").mkdir()
    (signed / "sub" / "file with spaces.txt").write_text("x")
    write_manifest(signed)
    sha256sum = shutil.which("sha256sum")
    assert sha256sum is not None, "coreutils' sha256sum is needed for this test"
    done = subprocess.run([sha256sum, "--strict", "-c", MANIFEST], cwd=signed, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "evidence.json: OK",
        "junit.xml: OK",
        "report.html: OK",
        "sub/file with spaces.txt: OK",
    ]
    # And it is not vacuous: sha256sum fails once a file changes.
    flip(signed / "junit.xml", 3)
    done = subprocess.run([sha256sum, "-c", MANIFEST], cwd=signed, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "junit.xml: FAILED" in done.stdout


def test_signature_document_is_small_text_over_the_exact_manifest_bytes(signed: Path, keys: Keys) -> None:
    lines = (signed / SIGNATURE).read_text().splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == ["certaudit-signature", "algorithm", "key-sha256", "signature"]
    fields = dict(line.split(": ", 1) for line in lines)
    assert fields["certaudit-signature"] == "1" and fields["algorithm"] == "ed25519"
    public = serialization.load_pem_public_key(keys.public.read_bytes())
    assert isinstance(public, ed25519.Ed25519PublicKey)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert fields["key-sha256"] == sha256(raw) == keys.fingerprint
    public.verify(base64.b64decode(fields["signature"]), (signed / MANIFEST).read_bytes())  # raises if not


def test_symbolic_links_are_refused(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("not evidence")
    (run_dir / "link.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(ManifestError, match=r"link\.txt: is a symbolic link: .*refusing") as excinfo:
        write_manifest(run_dir)
    assert excinfo.value.path == str(run_dir / "link.txt")
    assert not (run_dir / MANIFEST).exists()


def test_a_symbolic_link_to_a_directory_is_refused_not_followed(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x").write_text("x")
    (run_dir / "more").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ManifestError, match=r"more: is a symbolic link"):
        write_manifest(run_dir)


def test_special_files_are_refused(run_dir: Path) -> None:
    os.mkfifo(run_dir / "pipe")
    with pytest.raises(ManifestError, match=r"pipe: is a special file"):
        write_manifest(run_dir)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"missing-run: does not exist"):
        write_manifest(tmp_path / "missing-run")
    (tmp_path / "file").write_text("")
    with pytest.raises(ManifestError, match=r"file: is not a directory"):
        verify(tmp_path / "file")


def test_signing_again_without_a_key_removes_the_stale_signature(signed: Path) -> None:
    (signed / "late.txt").write_text("added after signing")
    write_manifest(signed)
    assert not (signed / SIGNATURE).exists()
    assert verify(signed) == Verification(ok=True, problems=(), files=4, signed=False, signature_checked=False)


# --- signing keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o601, 0o644])
def test_a_signing_key_others_can_access_is_refused_before_anything_is_written(run_dir: Path, keys: Keys, mode: int) -> None:
    write_manifest(run_dir)
    before = (run_dir / MANIFEST).read_bytes()
    (run_dir / "new.txt").write_text("new")
    keys.private.chmod(mode)
    with pytest.raises(ManifestError, match=rf"mode 0{mode:o} gives group or others access") as excinfo:
        write_manifest(run_dir, keys.private)
    assert excinfo.value.path == str(keys.private)
    assert str(keys.private) in str(excinfo.value)
    assert pem_body(keys.private) not in str(excinfo.value)
    assert (run_dir / MANIFEST).read_bytes() == before
    assert not (run_dir / SIGNATURE).exists()


def _ec_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _encrypted_ed25519_pem() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"secret")
    )


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (_ec_key_pem(), "an EC private key, not Ed25519"),
        (_encrypted_ed25519_pem(), "the private key is encrypted"),
        (b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJunk\n-----END PRIVATE KEY-----\n", "not a PEM private key"),
        (b"", "not a PEM private key"),
    ],
    ids=["ec", "encrypted", "truncated", "empty"],
)
def test_unusable_signing_keys_name_path_and_cause(run_dir: Path, tmp_path: Path, content: bytes, cause: str) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ManifestError) as excinfo:
        write_manifest(run_dir, path)
    assert str(excinfo.value).startswith(f"{path}: {cause}")
    body = pem_body(path)
    assert not body or body not in str(excinfo.value)
    assert not (run_dir / MANIFEST).exists()


def test_an_unreadable_signing_key(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"nope\.pem: cannot be read: No such file or directory"):
        write_manifest(run_dir, tmp_path / "nope.pem")
    (tmp_path / "dir.pem").mkdir(mode=0o700)
    with pytest.raises(ManifestError, match=r"dir\.pem: is not a regular file"):
        write_manifest(run_dir, tmp_path / "dir.pem")


# --- keygen -----------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_0600_and_a_public_key_0644(keys: Keys) -> None:
    assert stat.S_IMODE(keys.private.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.public.stat().st_mode) == 0o644
    assert keys.private.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")
    assert keys.public.read_text().startswith("-----BEGIN PUBLIC KEY-----\n")
    private = serialization.load_pem_private_key(keys.private.read_bytes(), password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert keys.fingerprint == sha256(raw)


def test_keygen_creates_the_private_key_0600_from_its_first_instant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        calls.append((os.fspath(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    old_umask = os.umask(0)  # a umask cannot be what keeps the key private
    try:
        keygen(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    finally:
        os.umask(old_umask)
    [(_, flags, mode)] = [c for c in calls if c[0] == str(tmp_path / "k.pem")]
    assert flags & os.O_CREAT and flags & os.O_EXCL and flags & os.O_WRONLY
    assert mode == 0o600
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600


@pytest.mark.parametrize("existing", ["private", "public"])
def test_keygen_never_overwrites(keys: Keys, existing: str) -> None:
    before = (keys.private.read_bytes(), keys.public.read_bytes())
    other = keys.private.with_name("other.pem") if existing == "public" else keys.private
    other_public = keys.public if existing == "public" else keys.public.with_name("other.pub.pem")
    with pytest.raises(ManifestError, match=r"already exists; refusing to overwrite") as excinfo:
        keygen(other, other_public)
    assert excinfo.value.path == str(keys.private if existing == "private" else keys.public)
    assert (keys.private.read_bytes(), keys.public.read_bytes()) == before
    assert not keys.private.with_name("other.pem").exists() and not keys.public.with_name("other.pub.pem").exists()


def test_keygen_refuses_a_symbolic_link_in_place_of_the_key(tmp_path: Path) -> None:
    (tmp_path / "k.pem").symlink_to(tmp_path / "dangling")
    with pytest.raises(ManifestError, match=r"k\.pem: already exists"):
        keygen(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    assert not (tmp_path / "dangling").exists()


# --- verifying --------------------------------------------------------------------------------


def test_a_freshly_signed_directory_verifies(signed: Path, keys: Keys) -> None:
    assert verify(signed, keys.public) == Verification(ok=True, problems=(), files=3, signed=True, signature_checked=True)


def test_an_unsigned_directory_verifies_by_its_manifest(run_dir: Path) -> None:
    write_manifest(run_dir)
    assert verify(run_dir) == Verification(ok=True, problems=(), files=3, signed=False, signature_checked=False)


def test_verification_is_frozen(signed: Path, keys: Keys) -> None:
    result = verify(signed, keys.public)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.ok = False  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(EVIDENCE_FILES))
def test_one_changed_byte_in_an_evidence_file_names_that_file(signed: Path, keys: Keys, name: str) -> None:
    original = EVIDENCE_FILES[name]
    flip(signed / name, len(original) // 2)
    changed = (signed / name).read_bytes()
    assert verify(signed, keys.public) == Verification(
        ok=False,
        problems=(f"changed: {name} (sha256 {sha256(original)[:12]}… ≠ {sha256(changed)[:12]}…)",),
        files=3,
        signed=True,
        signature_checked=True,
    )


def test_one_changed_byte_in_the_manifest_names_the_manifest(signed: Path, keys: Keys) -> None:
    size = (signed / MANIFEST).stat().st_size
    flip(signed / MANIFEST, size // 2)
    result = verify(signed, keys.public)
    # The signature proves the manifest altered, so no evidence file is blamed.
    assert not result.ok and not result.signature_checked
    assert result.problems == (f"{SIGNATURE}: the signature does not match {MANIFEST}",)


def test_one_changed_byte_in_the_signature_names_the_signature(signed: Path, keys: Keys) -> None:
    flip(signed / SIGNATURE, signature_byte(signed / SIGNATURE))
    result = verify(signed, keys.public)
    assert not result.ok and result.signed and not result.signature_checked
    assert result.problems == (f"{SIGNATURE}: the signature does not match {MANIFEST}",)


@pytest.mark.parametrize("name", [MANIFEST, SIGNATURE])
def test_every_single_byte_change_of_manifest_or_signature_is_caught(signed: Path, keys: Keys, name: str) -> None:
    path = signed / name
    original = path.read_bytes()
    for offset in range(len(original)):
        for mask in (0x01, 0x02, 0x20):
            data = bytearray(original)
            data[offset] ^= mask
            path.write_bytes(bytes(data))
            result = verify(signed, keys.public)
            assert not result.ok, (offset, mask)
            assert result.problems and all(p.startswith(("MANIFEST.sha256:", "MANIFEST.sig:")) for p in result.problems), (
                offset,
                mask,
                result.problems,
            )
            assert not any(evidence in p for p in result.problems for evidence in EVIDENCE_FILES), result.problems
    path.write_bytes(original)
    assert verify(signed, keys.public).ok


def test_non_canonical_base64_in_the_signature_is_malformed(signed: Path, keys: Keys) -> None:
    text = (signed / SIGNATURE).read_text()
    signature = text.rsplit("signature: ", 1)[1].strip()
    last = signature[-3]  # the character before "==" carries 2 bits of padding that must be zero
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sloppy = alphabet[alphabet.index(last) | 0x01]
    assert sloppy != last
    forged = signature[:-3] + sloppy + "=="
    assert base64.b64decode(forged) == base64.b64decode(signature)  # same signature bytes, other file bytes
    (signed / SIGNATURE).write_text(text.replace(signature, forged))
    assert verify(signed, keys.public).problems == (f"{SIGNATURE}: malformed",)


@pytest.mark.parametrize("name", sorted(EVIDENCE_FILES))
def test_a_deleted_file_is_missing(signed: Path, keys: Keys, name: str) -> None:
    (signed / name).unlink()
    result = verify(signed, keys.public)
    assert result == Verification(ok=False, problems=(f"missing: {name}",), files=3, signed=True, signature_checked=True)


def test_an_added_file_is_unlisted(signed: Path, keys: Keys) -> None:
    (signed / "extra.txt").write_text("added later")
    (signed / "sub").mkdir()
    (signed / "sub" / "more.txt").write_text("and more")
    assert verify(signed, keys.public).problems == (
        f"unlisted: extra.txt (not in {MANIFEST})",
        f"unlisted: sub/more.txt (not in {MANIFEST})",
    )


def test_links_are_reported_never_followed(signed: Path, keys: Keys, tmp_path: Path) -> None:
    (tmp_path / "outside.html").write_bytes(EVIDENCE_FILES["report.html"])
    (signed / "report.html").unlink()
    (signed / "report.html").symlink_to(tmp_path / "outside.html")  # same content, but not in the run
    (signed / "link").symlink_to(tmp_path)
    assert verify(signed, keys.public).problems == (
        "changed: report.html (now a symbolic link, not a regular file)",
        f"unlisted: link (a symbolic link, not in {MANIFEST})",
    )


def test_wrong_public_key_names_both_fingerprints(signed: Path, keys: Keys, tmp_path: Path) -> None:
    other = make_keys(tmp_path / "other-keys")
    assert other.fingerprint != keys.fingerprint
    assert verify(signed, other.public) == Verification(
        ok=False,
        problems=(f"{SIGNATURE}: signed by key {keys.fingerprint[:12]}…, not by the given public key {other.fingerprint[:12]}…",),
        files=3,
        signed=True,
        signature_checked=False,
    )


def test_a_signature_by_another_key_claiming_the_right_fingerprint_does_not_match(
    signed: Path, keys: Keys, tmp_path: Path
) -> None:
    other = make_keys(tmp_path / "other-keys")
    (signed / "report.html").write_text("forged")
    write_manifest(signed, other.private)
    (signed / SIGNATURE).write_text((signed / SIGNATURE).read_text().replace(other.fingerprint, keys.fingerprint))
    assert verify(signed, keys.public).problems == (f"{SIGNATURE}: the signature does not match {MANIFEST}",)


def test_without_a_manifest_nothing_is_verified(run_dir: Path, keys: Keys) -> None:
    expected = Verification(ok=False, problems=(f"{MANIFEST}: missing",), files=0, signed=False, signature_checked=False)
    assert verify(run_dir) == expected
    assert verify(run_dir, keys.public) == expected


def test_a_signed_directory_without_a_public_key_is_not_verified(signed: Path) -> None:
    assert verify(signed) == Verification(
        ok=False,
        problems=(f"{SIGNATURE}: present, but no public key was given to check it (--public-key)",),
        files=3,
        signed=True,
        signature_checked=False,
    )


def test_a_public_key_for_an_unsigned_directory_is_a_problem(run_dir: Path, keys: Keys) -> None:
    # Otherwise deleting MANIFEST.sig and rewriting the manifest would pass as verified.
    write_manifest(run_dir)
    assert verify(run_dir, keys.public).problems == (f"{SIGNATURE}: missing, but a public key was given: this run is not signed",)


def test_a_malformed_signature(signed: Path, keys: Keys) -> None:
    (signed / SIGNATURE).write_text("certaudit-signature: 1\nalgorithm: rsa\n")
    assert verify(signed, keys.public).problems == (f"{SIGNATURE}: malformed",)


@pytest.mark.parametrize(
    "line",
    [
        "garbage",
        "",
        f"{'0' * 63}  short-hash.txt",
        f"{'0' * 64} no-two-spaces.txt",
        f"{'0' * 64}  ./dot.txt",
        f"{'0' * 64}  a//b.txt",
        f"{'0' * 64}  dir/",
    ],
)
def test_a_malformed_manifest_line_is_named_by_number(run_dir: Path, line: str) -> None:
    write_manifest(run_dir)
    with (run_dir / MANIFEST).open("a") as manifest:
        manifest.write(line + "\n")
    assert verify(run_dir).problems == (f"{MANIFEST}: line 4 is malformed",)


def test_a_manifest_that_lists_a_file_twice(run_dir: Path) -> None:
    write_manifest(run_dir)
    first = (run_dir / MANIFEST).read_text().splitlines()[0]
    with (run_dir / MANIFEST).open("a") as manifest:
        manifest.write(first + "\n")
    assert verify(run_dir).problems == (f"{MANIFEST}: line 4 lists evidence.json again (first on line 1)",)


@pytest.mark.parametrize("escape", ["../secret.txt", "../../secret.txt", "sub/../../secret.txt", "/etc/passwd", "../etc/passwd"])
def test_a_path_outside_the_directory_is_reported_and_never_read(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, escape: str
) -> None:
    secret = b"root:x:0:0:root:/root:/bin/bash\n"
    (tmp_path / "secret.txt").write_bytes(secret)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(secret)
    write_manifest(run_dir)
    # The hash is right for the outside file: reading it would make the line look fine.
    with (run_dir / MANIFEST).open("a") as manifest:
        manifest.write(f"{sha256(secret)}  {escape}\n")
    opened: list[str] = []
    real_open = os.open

    def spy(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    result = verify(run_dir)
    assert result.problems == (f"{MANIFEST}: line 4 names a path outside the directory: {escape}",)
    assert not result.ok and result.files == 3
    assert not any("secret" in p or "passwd" in p or ".." in p for p in opened), opened


def test_a_manifest_that_claims_to_cover_itself(run_dir: Path) -> None:
    write_manifest(run_dir)
    with (run_dir / MANIFEST).open("a") as manifest:
        manifest.write(f"{'0' * 64}  {SIGNATURE}\n")
    assert verify(run_dir).problems == (f"{MANIFEST}: line 4 lists {SIGNATURE}, which the manifest cannot cover",)


def test_odd_file_names_stay_on_one_line(signed: Path, keys: Keys) -> None:
    (signed / "evil\nname").write_text("x")
    [problem] = verify(signed, keys.public).problems
    assert problem == f"unlisted: evil\\nname (not in {MANIFEST})"
    with pytest.raises(ManifestError, match=r"line break"):
        write_manifest(signed)


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (None, "holds a private key, not a public key"),
        (b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
        (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            "an EC public key, not Ed25519",
        ),
    ],
    ids=["private-key", "garbage", "ec"],
)
def test_unusable_public_keys_raise(signed: Path, keys: Keys, tmp_path: Path, content: bytes | None, cause: str) -> None:
    path = keys.private if content is None else tmp_path / "pub.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ManifestError) as excinfo:
        verify(signed, path)
    assert str(excinfo.value).startswith(f"{path}: {cause}")
    assert pem_body(keys.private) not in str(excinfo.value)
