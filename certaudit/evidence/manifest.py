"""Evidence integrity: a sha256sum manifest of a run directory, optionally signed with Ed25519.

An audit run writes `reports/<UTC timestamp>-<job>/` (report.html, junit.xml, evidence.json), and
an auditor must be able to trust it a year later. `MANIFEST.sha256` lists the SHA-256 of every file
in the directory in `sha256sum` format, so `sha256sum -c MANIFEST.sha256` checks it without
certaudit. A manifest alone only detects accidents: whoever can edit a report can rewrite the
manifest too. `MANIFEST.sig` is an Ed25519 signature over the manifest's exact bytes; it proves the
directory unchanged only when checked against a public key the auditor holds separately, so
`verify` treats a signature it was given no key for as a problem, never as a pass.

The directory is untrusted input: a manifest line that names a path outside the directory is a
problem and is never opened, symbolic links are never followed, and no message ever quotes a key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519

from certaudit.errors import PathError

__all__ = [
    "MANIFEST",
    "MAX_MANIFEST_BYTES",
    "SIGNATURE",
    "ManifestError",
    "Verification",
    "check_signing_key",
    "keygen",
    "verify",
    "write_manifest",
]

MANIFEST = "MANIFEST.sha256"
SIGNATURE = "MANIFEST.sig"

_KEY_FILE_LIMIT = 64 * 1024
# A manifest line is about 100 bytes: this is hundreds of thousands of files, more than any run writes.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # an Ed25519 PEM is ~120 bytes; anything this large is not a key
_CHUNK = 1024 * 1024
_LINE_RE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")
_SIGNATURE_RE = re.compile(
    r"certaudit-signature: 1\nalgorithm: ed25519\nkey-sha256: ([0-9a-f]{64})\nsignature: ([A-Za-z0-9+/]{86}==)\n"
)
_ED25519_SIGNATURE_BYTES = 64


class ManifestError(PathError):
    """A manifest, signature or key could not be written or used; the message names the path and the cause."""


@dataclass(frozen=True)
class Verification:
    """What `verify` found. `ok` only with no problems; `files` is how many files the manifest lists;
    `signed` whether MANIFEST.sig is present; `signature_checked` whether it verified against the
    public key given."""

    ok: bool
    problems: tuple[str, ...]
    files: int
    signed: bool
    signature_checked: bool


# --- small helpers ----------------------------------------------------------------------------


def _shown(rel: str) -> str:
    """A relative path fit for a one-line message: control characters and undecodable bytes escaped."""
    return rel if rel.isprintable() else rel.encode("unicode_escape", "backslashreplace").decode("ascii")


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _fingerprint(key: ed25519.Ed25519PublicKey) -> str:
    """key-sha256: SHA-256 of the raw 32-byte public key, lowercase hex."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _kind(key: object) -> str:
    kinds: list[tuple[type, str]] = [
        (rsa.RSAPrivateKey, "an RSA"),
        (rsa.RSAPublicKey, "an RSA"),
        (ec.EllipticCurvePrivateKey, "an EC"),
        (ec.EllipticCurvePublicKey, "an EC"),
        (ed448.Ed448PrivateKey, "an Ed448"),
        (ed448.Ed448PublicKey, "an Ed448"),
        (dsa.DSAPrivateKey, "a DSA"),
        (dsa.DSAPublicKey, "a DSA"),
        (x25519.X25519PrivateKey, "an X25519"),
        (x25519.X25519PublicKey, "an X25519"),
        (x448.X448PrivateKey, "an X448"),
        (x448.X448PublicKey, "an X448"),
    ]
    for cls, name in kinds:
        if isinstance(key, cls):
            return name
    return f"a {type(key).__name__}"


def _fsync_dir(directory: Path) -> None:
    """Make a rename or create durable: the directory entry lives in the directory."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Readers see the old file or the new one, never half of it, even if the run is killed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _read_limited(fd: int, limit: int) -> bytes | None:
    """At most `limit` bytes; None when the file is larger."""
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


# --- walking the run directory ----------------------------------------------------------------

_REGULAR = "regular file"


def _scan(run_dir: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Every non-directory entry under run_dir by relative POSIX path, with its kind ("regular
    file", "symbolic link", "special file"), and the subdirectories that could not be listed.
    Symbolic links, to directories too, are entries: never followed."""
    found: dict[str, str] = {}
    errors: list[tuple[str, str]] = []

    def walk(directory: str, prefix: str) -> None:
        try:
            with os.scandir(directory) as entries:
                children = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            errors.append((prefix.rstrip("/") or ".", _reason(exc)))
            return
        for entry in children:
            rel = prefix + entry.name
            try:
                if entry.is_symlink():
                    found[rel] = "symbolic link"
                elif entry.is_dir(follow_symlinks=False):
                    walk(entry.path, rel + "/")
                elif entry.is_file(follow_symlinks=False):
                    found[rel] = _REGULAR
                else:
                    found[rel] = "special file"
            except OSError as exc:
                errors.append((rel, _reason(exc)))

    walk(str(run_dir), "")
    return found, errors


def _open_regular(root: Path, rel: str) -> int:
    """Open root/rel for reading without following a symbolic link in any component, and only if
    it is a regular file (OSError otherwise): what was listed is what is read, nothing outside."""
    parts = rel.split("/")
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(0, "not a regular file")
    return fd


def _sha256_of(root: Path, rel: str) -> str:
    fd = _open_regular(root, rel)
    digest = hashlib.sha256()
    try:
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def _is_own(rel: str) -> bool:
    return rel in (MANIFEST, SIGNATURE)


def _require_directory(run_dir: Path) -> None:
    if not run_dir.is_dir():
        cause = "does not exist" if not run_dir.exists() and not run_dir.is_symlink() else "is not a directory"
        raise ManifestError(str(run_dir), f"{cause}: expected an audit run directory")


# --- keys -------------------------------------------------------------------------------------


def _read_key_file(path: Path, *, private: bool) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ManifestError(str(path), f"cannot be read: {_reason(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(str(path), "is not a regular file, so it cannot be a key")
        if private and st.st_mode & 0o077:
            # Checked before a byte is read: a key others can read may already be someone else's.
            raise ManifestError(
                str(path),
                f"mode {stat.S_IMODE(st.st_mode):04o} gives group or others access to the private key; "
                "refusing to sign with it (chmod 600 it, or make a new one with certaudit keygen)",
            )
        data = _read_limited(fd, _KEY_FILE_LIMIT)
    except OSError as exc:
        raise ManifestError(str(path), f"cannot be read: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if data is None:
        raise ManifestError(str(path), f"larger than {_KEY_FILE_LIMIT} bytes: not a key")
    return data


def _load_signing_key(path: Path) -> ed25519.Ed25519PrivateKey:
    data = _read_key_file(path, private=True)
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data:
        raise ManifestError(str(path), "the private key is encrypted; certaudit signs with an unencrypted PKCS8 Ed25519 key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ManifestError(
            str(path), "the private key is encrypted; certaudit signs with an unencrypted PKCS8 Ed25519 key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        # The library's own text is not used: a message must never risk quoting key material.
        raise ManifestError(str(path), "not a PEM private key (expected PKCS8 Ed25519, -----BEGIN PRIVATE KEY-----)") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ManifestError(str(path), f"{_kind(key)} private key, not Ed25519")
    return key


def check_signing_key(path: Path) -> None:
    """Raise ManifestError if the key cannot sign (missing, readable by others, not Ed25519): checked
    when a run starts, not after the whole audit has run."""
    _load_signing_key(path)


def _load_public_key(path: Path) -> ed25519.Ed25519PublicKey:
    data = _read_key_file(path, private=False)
    if b"PRIVATE KEY" in data:
        raise ManifestError(str(path), "holds a private key, not a public key: give the .pub.pem file (and keep this one secret)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ManifestError(str(path), "not a PEM public key (expected -----BEGIN PUBLIC KEY-----)") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ManifestError(str(path), f"{_kind(key)} public key, not Ed25519")
    return key


def _signature_document(key: ed25519.Ed25519PrivateKey, manifest: bytes) -> bytes:
    signature = base64.b64encode(key.sign(manifest)).decode("ascii")
    fingerprint = _fingerprint(key.public_key())
    text = f"certaudit-signature: 1\nalgorithm: ed25519\nkey-sha256: {fingerprint}\nsignature: {signature}\n"
    return text.encode("ascii")


def _parse_signature(data: bytes) -> tuple[str, bytes] | None:
    """(key-sha256, signature bytes) of a MANIFEST.sig, or None unless it is exactly what
    `_signature_document` writes (canonical base64 too, so no byte of it can change unnoticed)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    match = _SIGNATURE_RE.fullmatch(text)
    if match is None:
        return None
    try:
        signature = base64.b64decode(match.group(2), validate=True)
    except binascii.Error:
        return None
    if len(signature) != _ED25519_SIGNATURE_BYTES or base64.b64encode(signature).decode("ascii") != match.group(2):
        return None
    return match.group(1), signature


# --- writing ----------------------------------------------------------------------------------


def _hashable(run_dir: Path) -> list[str]:
    found, errors = _scan(run_dir)
    if errors:
        rel, cause = errors[0]
        raise ManifestError(str(run_dir / _shown(rel)), f"cannot be listed: {cause}")
    paths: list[str] = []
    for rel, kind in found.items():
        if _is_own(rel):
            continue
        if kind != _REGULAR:
            raise ManifestError(
                str(run_dir / rel), f"is a {kind}: a run directory holds regular files only, refusing to record it"
            )
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            raise ManifestError(str(run_dir / _shown(rel)), "the name is not UTF-8, refusing to record it") from None
        if any(c in rel for c in "\\\n\r"):
            raise ManifestError(
                str(run_dir / _shown(rel)), "the name holds a backslash or line break, which sha256sum would escape"
            )
        paths.append(rel)
    return sorted(paths)


def write_manifest(run_dir: Path, signing_key: Path | None = None) -> list[str]:
    """Write run_dir/MANIFEST.sha256 (and MANIFEST.sig when signing_key is given); return the
    relative paths hashed, sorted.

    The key is loaded before anything is written, so a bad key leaves the directory as it was. A
    symbolic link or special file in the directory raises: it is not evidence, and following it
    would record something outside the run. Without a key, a MANIFEST.sig left from an earlier
    signing is removed, since it no longer matches.
    """
    _require_directory(run_dir)
    key = _load_signing_key(signing_key) if signing_key is not None else None
    paths = _hashable(run_dir)
    lines: list[str] = []
    for rel in paths:
        try:
            lines.append(f"{_sha256_of(run_dir, rel)}  {rel}\n")
        except OSError as exc:
            raise ManifestError(str(run_dir / rel), f"cannot be read: {_reason(exc)}") from None
    manifest = "".join(lines).encode("utf-8")
    try:
        _write_atomic(run_dir / MANIFEST, manifest)
        if key is not None:
            _write_atomic(run_dir / SIGNATURE, _signature_document(key, manifest))
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(run_dir / SIGNATURE)
    except OSError as exc:
        raise ManifestError(str(run_dir), f"cannot write {MANIFEST} or {SIGNATURE}: {_reason(exc)}") from None
    return paths


# --- verifying --------------------------------------------------------------------------------


def _parse_manifest(data: bytes) -> tuple[list[tuple[str, str]], list[str]]:
    """The (sha256, relative path) entries of a manifest, and the problems of its lines. A path
    that is absolute or climbs out with `..` is a problem, never an entry, so it is never opened."""
    entries: list[tuple[str, str]] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = ""
        match = _LINE_RE.fullmatch(line)
        if match is None or "\x00" in line:
            problems.append(f"{MANIFEST}: line {number} is malformed")
            continue
        digest, rel = match.group(1).lower(), match.group(2)
        parts = rel.split("/")
        if rel.startswith("/") or ".." in parts:
            problems.append(f"{MANIFEST}: line {number} names a path outside the directory: {_shown(rel)}")
            continue
        if any(part in ("", ".") for part in parts):
            problems.append(f"{MANIFEST}: line {number} is malformed")
            continue
        if _is_own(rel):
            problems.append(f"{MANIFEST}: line {number} lists {rel}, which the manifest cannot cover")
            continue
        if rel in first_line:
            problems.append(f"{MANIFEST}: line {number} lists {_shown(rel)} again (first on line {first_line[rel]})")
            continue
        first_line[rel] = number
        entries.append((digest, rel))
    return entries, problems


def _read_own(run_dir: Path, name: str) -> bytes | str:
    """The bytes of MANIFEST.sha256 or MANIFEST.sig, or the problem that stops reading them."""
    try:
        fd = _open_regular(run_dir, name)
    except FileNotFoundError:
        return f"{name}: missing"
    except OSError as exc:
        cause = "a symbolic link, not a regular file" if exc.errno == errno.ELOOP else _reason(exc)
        return f"{name}: cannot be read ({cause})"
    try:
        data = _read_limited(fd, MAX_MANIFEST_BYTES)
        return data if data is not None else f"{name}: larger than {MAX_MANIFEST_BYTES} bytes"
    except OSError as exc:
        return f"{name}: cannot be read ({_reason(exc)})"
    finally:
        os.close(fd)


def _signature_problems(
    run_dir: Path, manifest: bytes, public_key: ed25519.Ed25519PublicKey | None
) -> tuple[bool, list[str], bool, bool]:
    """(signed, problems, signature checked, manifest proven altered)."""
    document = _read_own(run_dir, SIGNATURE)
    if document == f"{SIGNATURE}: missing":
        if public_key is None:
            return False, [], False, False
        return False, [f"{SIGNATURE}: missing, but a public key was given: this run is not signed"], False, False
    if isinstance(document, str):
        return True, [document], False, False
    if public_key is None:
        # A signature checked against a key shipped beside it proves nothing: the key must come from elsewhere.
        return True, [f"{SIGNATURE}: present, but no public key was given to check it (--public-key)"], False, False
    parsed = _parse_signature(document)
    if parsed is None:
        return True, [f"{SIGNATURE}: malformed"], False, False
    signer, signature = parsed
    expected = _fingerprint(public_key)
    if signer != expected:
        return True, [f"{SIGNATURE}: signed by key {signer[:12]}…, not by the given public key {expected[:12]}…"], False, False
    try:
        public_key.verify(signature, manifest)
    except InvalidSignature:
        return True, [f"{SIGNATURE}: the signature does not match {MANIFEST}"], False, True
    return True, [], True, False


def _file_problems(run_dir: Path, entries: Iterable[tuple[str, str]]) -> list[str]:
    found, errors = _scan(run_dir)
    problems = [f"unreadable: {_shown(rel)} ({cause})" for rel, cause in errors]
    listed: set[str] = set()
    for expected, rel in entries:
        listed.add(rel)
        kind = found.get(rel)
        if kind is None:
            problems.append(f"missing: {_shown(rel)}")
            continue
        if kind != _REGULAR:
            problems.append(f"changed: {_shown(rel)} (now a {kind}, not a regular file)")
            continue
        try:
            actual = _sha256_of(run_dir, rel)
        except OSError as exc:
            problems.append(f"unreadable: {_shown(rel)} ({_reason(exc)})")
            continue
        if actual != expected:
            problems.append(f"changed: {_shown(rel)} (sha256 {expected[:12]}… ≠ {actual[:12]}…)")
    for rel, kind in found.items():
        if rel in listed or _is_own(rel):
            continue
        what = "" if kind == _REGULAR else f"a {kind}, "
        problems.append(f"unlisted: {_shown(rel)} ({what}not in {MANIFEST})")
    return problems


def verify(run_dir: Path, public_key: Path | None = None) -> Verification:
    """Check run_dir against its MANIFEST.sha256 and, with public_key, its MANIFEST.sig.

    Raises ManifestError only when the question cannot be asked (run_dir is not a directory, the
    public key is unusable); everything wrong with the directory is a problem in the result. When
    the signature proves the manifest altered, files are not compared with it: an untrusted
    manifest says nothing about them, and comparing would blame files nobody touched.
    """
    _require_directory(run_dir)
    key = _load_public_key(public_key) if public_key is not None else None
    manifest = _read_own(run_dir, MANIFEST)
    if isinstance(manifest, str):
        signed = (run_dir / SIGNATURE).exists() or (run_dir / SIGNATURE).is_symlink()
        return Verification(ok=False, problems=(manifest,), files=0, signed=signed, signature_checked=False)
    entries, problems = _parse_manifest(manifest)
    signed, signature_problems, checked, altered = _signature_problems(run_dir, manifest, key)
    problems += signature_problems
    if not altered:
        problems += _file_problems(run_dir, entries)
    return Verification(ok=not problems, problems=tuple(problems), files=len(entries), signed=signed, signature_checked=checked)


# --- keys for signing -------------------------------------------------------------------------


def _create_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Create path with `mode` from its first instant (O_EXCL: never over an existing file or link)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except FileExistsError:
        raise ManifestError(str(path), "already exists; refusing to overwrite a key (move it away first)") from None
    except OSError as exc:
        raise ManifestError(str(path), f"cannot be created: {_reason(exc)}") from None
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; make it exactly `mode`
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise ManifestError(str(path), f"cannot be written: {_reason(exc)}") from None
    os.close(fd)


def keygen(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair and return its key-sha256 fingerprint.

    The private key (PKCS8 PEM, unencrypted) is created mode 0600 and never exists with wider
    permissions; the public key (SubjectPublicKeyInfo PEM) is 0644, to be handed to auditors.
    Neither file is ever overwritten: replacing a signing key would orphan every run it signed.
    """
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise ManifestError(str(path), "already exists; refusing to overwrite a key (move it away first)")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _create_exclusive(private_path, private_pem, 0o600)
    try:
        _create_exclusive(public_path, public_pem, 0o644)
    except ManifestError:
        # Half a pair is worse than none: the private key was created here, so it goes too.
        os.unlink(private_path)
        raise
    with contextlib.suppress(OSError):
        for directory in {private_path.parent, public_path.parent}:
            _fsync_dir(directory)
    return _fingerprint(key.public_key())
