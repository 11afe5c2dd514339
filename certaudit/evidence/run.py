"""One audit run as evidence: its metadata, its evidence.json, and its directory.

A run with `--report-dir` writes into `DIR/<UTC timestamp>-<job>.partial/` and, once every file is
complete and the manifest (and signature) written, renames it to `DIR/<UTC timestamp>-<job>/`. An
interrupted run leaves only a `.partial` directory, which has no manifest and never verifies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import json
import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from certaudit import __version__
from certaudit.errors import PathError
from certaudit.evidence.snapshot import minimal_snapshot
from certaudit.jobs.fleet import fleet_section
from certaudit.readers import shown_text
from certaudit.record import SPOOL_BUFFER
from certaudit.redact import untrusted

if TYPE_CHECKING:
    from certaudit.audit import Audit
    from certaudit.host.facts import HostFacts

EVIDENCE_SCHEMA_VERSION = 1
EVIDENCE_SCHEMA_ID = "https://certaudit.invalid/schema/evidence-v1.json"
VERSIONS_OF = ("pytest", "pytest-testinfra", "cryptography", "pytest-html", "ansible-core", "paramiko")
CI_VARIABLES = ("CI_JOB_URL", "GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "BUILD_URL", "CI_JOB_ID")
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # certaudit/, above evidence/


def _versions() -> dict[str, str]:
    found = {}
    for name in VERSIONS_OF:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def certaudit_commit() -> str | None:
    """The git commit certaudit runs from (with -dirty when its checkout has changes), if it runs from git."""
    repo = PACKAGE_ROOT.parent
    if not (repo / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def inventory_sha256(path: str | None) -> str | None:
    """SHA-256 of the inventory file; of every file below it (path and bytes, sorted) for a directory."""
    if not path or not os.path.exists(path):
        return None
    digest = hashlib.sha256()
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for file in files:
        if root.is_dir():
            digest.update(str(file.relative_to(root)).encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def ci_job() -> str | None:
    if os.environ.get("CI_JOB_URL"):
        return os.environ["CI_JOB_URL"]
    if os.environ.get("GITHUB_RUN_ID"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{os.environ.get('GITHUB_REPOSITORY', '?')}/actions/runs/{os.environ['GITHUB_RUN_ID']}"
    return os.environ.get("BUILD_URL") or os.environ.get("CI_JOB_ID") or None


def run_metadata(audit: Audit) -> dict[str, Any]:
    inventory = audit.inventory_if_loaded()
    waivers = audit.waivers()
    metadata: dict[str, Any] = {
        "run_id": audit.run_id,
        "job": audit.config.getoption("job"),
        "started": audit.started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "operator": f"{getpass.getuser()}@{socket.gethostname()}",
        "ci_job": ci_job(),
        "certaudit_version": __version__,
        "certaudit_commit": certaudit_commit(),
        "inventory": inventory.path if inventory else None,
        "inventory_sha256": inventory_sha256(inventory.path) if inventory else None,
        "waivers_file": waivers.path,
        "hosts_expected": [t.name for t in inventory] if inventory else [],
        "hosts_reached": sorted(audit.reached),
        "policies": {t.name: t.policy.as_dict() for t in inventory} if inventory else {},
        "versions": _versions(),
    }
    if audit.shard is not None:  # hosts_expected is then this shard's part of the inventory
        metadata["shard"] = audit.shard.as_dict(audit.inventory_hosts)
    return metadata


def untrusted_row(row: dict[str, Any]) -> dict[str, Any]:
    """A what-if row's reasons quote the host's files (a renewal conf's value): redacted and bounded."""
    return {**row, "reasons": [untrusted(reason) for reason in row["reasons"]], "window_rule": untrusted(row["window_rule"])}


def evidence_head(audit: Audit, exitstatus: int) -> dict[str, Any]:
    """Everything of evidence.json but its results and snapshots (which are streamed: see
    EvidenceWriter): the run's metadata, the unreachable hosts, the waivers, the fleet summaries and
    the lifetime what-if."""
    waivers = audit.waivers()
    document: dict[str, Any] = {
        "$schema": EVIDENCE_SCHEMA_ID,
        "schema_version": EVIDENCE_SCHEMA_VERSION,
        "run": {**run_metadata(audit), "exit_status": int(exitstatus)},
        "unreachable": {host: untrusted(why) for host, why in sorted(audit.probe_errors.items())},
        "waivers": {
            "file": waivers.path,
            "file_problem": waivers.file_problem or None,
            "entries": [w.as_dict() for w in waivers.entries],
            "unused": [w.index for w in waivers.unused()],
        },
    }
    inventory = audit.inventory_if_loaded()
    fleet = None
    if inventory is not None:
        fleet = fleet_section(
            list(inventory), inventory.every_host, audit.summaries, audit.probe_errors, audit.prober.connect_timeout
        )
    if fleet is not None:  # the run's hosts of fleet domains, summarised: what `certaudit merge` judges FLT-* on
        document["fleet"] = fleet.as_json()
    if audit.lifetimes:  # optional: only a run that asked (or the quarterly job) carries the what-if
        rows = [untrusted_row(row.as_dict()) for row in audit.what_if_rows()]
        document["lifetime_what_if"] = {"lifetimes_days": list(audit.lifetimes), "rows": rows}
    return document


def evidence_document(audit: Audit, exitstatus: int, snapshots: SnapshotLog | None = None) -> dict[str, Any]:
    """The whole document in memory (for tests and small runs; a run writes it with write_evidence)."""
    snapshots = _with_every_host(snapshots, audit)
    return {
        **evidence_head(audit, exitstatus),
        "results": [json.loads(line) for line in audit.records.lines()],
        "snapshots": {name: json.loads(snapshots.text_of(name)) for name in snapshots.hosts()},
    }


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, flush it to disk, then rename: the file is whole or absent."""
    write_streamed(path, [data])


def write_streamed(path: Path, parts: Iterable[bytes]) -> None:
    """Write `parts` one after another to a temporary sibling, flush it to disk, then rename: the file
    is whole or absent. A failure on the way (a full disk, an interrupt) removes the temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            for part in parts:
                out.write(part)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# evidence.json is written piece by piece. Its head (run, inventory, policies, fleet, ...) is laid
# out as json.dumps(head, indent=1, sort_keys=True) would, a value at depth d dumped alone with each
# line break indented by d more spaces (JSON text holds no raw line break inside a string). Each
# result and each host's snapshot is one line of compact JSON (sort_keys, json.dumps' separators):
# `grep` finds a result by its line, and the standard library writes it in C, where its indented
# layout takes the pure-Python encoder (at 1,000 hosts, 17,000 records and 1,000 snapshots).
def dumped_at(value: Any, depth: int) -> bytes:
    """`value` as json.dumps(document, indent=1, sort_keys=True) writes it at `depth` in a document."""
    return json.dumps(value, indent=1, sort_keys=True).replace("\n", "\n" + " " * depth).encode()


_dumped = dumped_at


def dumped_line(value: Any) -> bytes:
    """`value` as one line of evidence.json's results or snapshots: compact JSON, keys sorted."""
    return json.dumps(value, sort_keys=True).encode()


def evidence_parts(head: dict[str, Any], results: Iterable[bytes], snapshots: Iterable[tuple[str, bytes]]) -> Iterator[bytes]:
    """evidence.json's bytes, in pieces: `head` (evidence_head), every result (its dumped_line, as
    RecordLog and the merge's spool keep it), every snapshot (host, its dumped_line) in host order."""
    streamed: dict[str, Iterator[bytes]] = {
        "results": _members(b"[", b"]", (b"  " + r for r in results)),
        "snapshots": _members(b"{", b"}", (b"  " + _dumped(host, 2) + b": " + text for host, text in snapshots)),
    }
    keys = sorted([*head, *streamed])
    yield b"{\n"
    for index, key in enumerate(keys):
        yield b" " + _dumped(key, 1) + b": "
        if key in streamed:
            yield from streamed[key]
        else:
            yield _dumped(head[key], 1)
        yield b",\n" if index < len(keys) - 1 else b"\n"
    yield b"}"


def _members(opening: bytes, closing: bytes, members: Iterable[bytes]) -> Iterator[bytes]:
    """A list's or an object's members at depth 1, as json.dumps(indent=1) writes them ("[]" when none)."""
    first = True
    for member in members:
        yield (opening + b"\n" if first else b",\n") + member
        first = False
    yield opening + closing if first else b"\n " + closing


class SnapshotLog:
    """Each reached host's minimal snapshot (certaudit/evidence/snapshot.py), written to an anonymous
    temporary file when the host's facts arrive, as evidence.json will hold it: the run keeps only
    where each one is, and evidence.json is assembled from the file at the end.

    `add` is called from the probe's threads as each host's facts are gathered (the snapshot's
    digests, certificates and redaction are then off the run's own thread) and may be called again
    from the run's thread for the same host: the first call makes the host's snapshot."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._file: IO[bytes] | None = None
        self._at: dict[str, tuple[int, int]] = {}
        self._making: set[str] = set()
        self._size = 0
        self._lock = threading.Lock()

    def add(self, host: str, facts: HostFacts) -> None:
        with self._lock:
            if host in self._at or host in self._making:
                return
            self._making.add(host)
        try:
            # Facts and digests, never whole files: see certaudit/evidence/snapshot.py.
            text = dumped_line(minimal_snapshot(facts.raw))
            with self._lock:
                if self._file is None:
                    self._file = self._open()
                self._file.write(text)
                self._at[host] = (self._size, len(text))
                self._size += len(text)
        finally:
            with self._lock:
                self._making.discard(host)

    def _open(self) -> IO[bytes]:
        return tempfile.TemporaryFile(
            dir=self.directory, prefix=".certaudit-snapshots-", buffering=SPOOL_BUFFER
        )  # lives as long as the run

    def hosts(self) -> list[str]:
        return sorted(self._at)

    def text_of(self, host: str) -> bytes:
        assert self._file is not None
        self._file.flush()
        offset, length = self._at[host]
        data = os.pread(self._file.fileno(), length, offset)
        if len(data) != length:
            raise OSError(f"the run's snapshot log ended early for {host}")
        return data

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for host in self.hosts():
            yield host, self.text_of(host)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._at.clear()
        self._size = 0


def _with_every_host(snapshots: SnapshotLog | None, audit: Audit) -> SnapshotLog:
    """The log, holding every reached host (one the log has not seen yet, and whose facts are
    still held, is added now; the run's log was told of each as it was gathered)."""
    snapshots = snapshots if snapshots is not None else SnapshotLog()
    for host, facts in audit.facts.items():
        snapshots.add(host, facts)
    return snapshots


def write_evidence(path: Path, audit: Audit, exitstatus: int, snapshots: SnapshotLog | None = None) -> None:
    """evidence.json, streamed from the run's record and snapshot logs (`snapshots`: the log the run
    filled as hosts were reached): the run's memory never holds the document, and the file is whole
    or absent (write_streamed)."""
    snapshots = _with_every_host(snapshots, audit)
    write_streamed(path, evidence_parts(evidence_head(audit, exitstatus), audit.records.lines(), snapshots))


def check_reports_dir(reports: Path) -> None:
    """Refuse, with the reason, a --report-dir that exists but is not a writable directory."""
    shown = shown_text(str(reports), 300)
    for at in (reports, *reports.parents):  # the nearest part that exists decides
        if at.is_symlink() and not at.exists():
            raise PathError(shown, f"{'' if at == reports else shown_text(str(at), 300) + ' '}is a dangling symbolic link")
        if not at.exists():
            continue
        if not at.is_dir():
            raise PathError(shown, f"{'' if at == reports else shown_text(str(at), 300) + ' '}is not a directory")
        if not os.access(at, os.W_OK | os.X_OK):
            raise PathError(shown, f"{'' if at == reports else shown_text(str(at), 300) + ' '}is not writable")
        return


def check_evidence_path(path: Path) -> None:
    """Refuse an --evidence path the run could not write its evidence.json to, before it starts."""
    if path.is_dir():
        raise PathError(shown_text(str(path), 300), "is a directory; --evidence names the file to write")
    check_reports_dir(path.parent)


@dataclass(frozen=True)
class RunDirectory:
    final: Path

    @classmethod
    def create(cls, reports: Path, job: str, started: dt.datetime) -> RunDirectory:
        """The run's `.partial` directory under `reports`, made now: before any host is touched, a
        report directory that cannot hold it (a file, unwritable, a dangling link) is a PathError."""
        check_reports_dir(reports)
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        run = cls(reports / f"{stamp}-{job}")
        suffix = 1
        while run.final.exists() or run.partial.exists():  # two runs in one second stay apart
            suffix += 1
            run = cls(reports / f"{stamp}-{job}-{suffix}")
        try:
            run.partial.mkdir(parents=True)
        except OSError as exc:
            raise PathError(shown_text(str(reports), 300), f"cannot hold the run directory: {exc.strerror or exc}") from None
        return run

    @property
    def partial(self) -> Path:
        return self.final.with_name(self.final.name + ".partial")

    def finish(self, signing_key: Path | None) -> Path:
        """Seal the run: manifest (and signature), then the rename that makes it a complete run."""
        from certaudit.evidence.manifest import write_manifest

        write_manifest(self.partial, signing_key)
        os.replace(self.partial, self.final)
        return self.final
