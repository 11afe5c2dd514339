"""One audit run as evidence: its metadata, its evidence.json, and its directory.

A run with `--report-dir` writes into `DIR/<UTC timestamp>-<job>.partial/` and, once every file is
complete and the manifest (and signature) written, renames it to `DIR/<UTC timestamp>-<job>/`. An
interrupted run leaves only a `.partial` directory, which has no manifest and never verifies.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import socket
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certaudit import __version__
from certaudit.errors import PathError
from certaudit.evidence.snapshot import minimal_snapshot
from certaudit.readers import shown_text
from certaudit.redact import untrusted

if TYPE_CHECKING:
    from certaudit.audit import Audit

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
        "hosts_reached": sorted(audit.facts),
        "policies": {t.name: t.policy.as_dict() for t in inventory} if inventory else {},
        "versions": _versions(),
    }
    if audit.shard is not None:  # hosts_expected is then this shard's part of the inventory
        metadata["shard"] = audit.shard.as_dict(audit.inventory_hosts)
    return metadata


def evidence_document(audit: Audit, exitstatus: int) -> dict[str, Any]:
    document = _document(audit, exitstatus)
    if audit.lifetimes:  # optional: only a run that asked (or the quarterly job) carries the what-if
        rows = [untrusted_row(row.as_dict()) for row in audit.what_if_rows()]
        document["lifetime_what_if"] = {"lifetimes_days": list(audit.lifetimes), "rows": rows}
    return document


def untrusted_row(row: dict[str, Any]) -> dict[str, Any]:
    """A what-if row's reasons quote the host's files (a renewal conf's value): redacted and bounded."""
    return {**row, "reasons": [untrusted(reason) for reason in row["reasons"]], "window_rule": untrusted(row["window_rule"])}


def _document(audit: Audit, exitstatus: int) -> dict[str, Any]:
    waivers = audit.waivers()
    return {
        "$schema": EVIDENCE_SCHEMA_ID,
        "schema_version": EVIDENCE_SCHEMA_VERSION,
        "run": {**run_metadata(audit), "exit_status": int(exitstatus)},
        "results": [json.loads(r.to_json()) for r in audit.records],
        "unreachable": {host: untrusted(why) for host, why in sorted(audit.probe_errors.items())},
        "waivers": {
            "file": waivers.path,
            "file_problem": waivers.file_problem or None,
            "entries": [w.as_dict() for w in waivers.entries],
            "unused": [w.index for w in waivers.unused()],
        },
        # Facts and digests, never whole files: see certaudit/evidence/snapshot.py.
        "snapshots": {name: minimal_snapshot(facts.raw) for name, facts in sorted(audit.facts.items())},
    }


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, flush it to disk, then rename: the file is whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def write_evidence(path: Path, audit: Audit, exitstatus: int) -> None:
    write_atomically(path, json.dumps(evidence_document(audit, exitstatus), indent=1, sort_keys=True).encode())


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
