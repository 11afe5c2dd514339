"""`certaudit merge`: the run directories of the shards of one audit, as one run an auditor can read.

Each shard (`pytest checks --shard i/n --report-dir ...`) seals its own directory. The merge checks
every one against its manifest (and signature, given the signer's public key) before reading it,
refuses shards that do not make one audit (different inventories or waivers, a shard missing or
given twice, a host in two shards), and writes a new sealed directory: evidence.json (every result,
snapshot and unreachable host of the shards, and where each shard's evidence came from), junit.xml
(every shard's test cases in one suite), report.html (the host x control matrix, outcomes, hosts,
expiry horizon and run metadata of the whole audit, then every result) and MANIFEST.sha256, signed
with --signing-key.

The shards' files are untrusted input: nothing in them reaches the report unescaped, and their
XML is parsed by the standard library's parser, which expands no external entity.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import getpass
import hashlib
import json
import os
import shutil
import socket
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from certaudit import __version__
from certaudit.audit import JOB_RE
from certaudit.errors import CertauditError
from certaudit.evidence import report_html, report_view
from certaudit.evidence.fleet_merge import Part, judge_fleet
from certaudit.evidence.jsonstream import JsonStreamError, read_object
from certaudit.evidence.manifest import MANIFEST, MAX_MANIFEST_BYTES, verify, write_manifest
from certaudit.evidence.run import (
    EVIDENCE_SCHEMA_ID,
    EVIDENCE_SCHEMA_VERSION,
    certaudit_commit,
    ci_job,
    dumped_line,
    evidence_parts,
    write_atomically,
    write_streamed,
)
from certaudit.evidence.snapshot import minimal_snapshot
from certaudit.readers import ReadError, read_bounded, shown_text
from certaudit.record import Record

__all__ = ["MergeError", "Merged", "merge_runs"]

EVIDENCE = "evidence.json"
JUNIT = "junit.xml"
REPORT = "report.html"
MAX_EVIDENCE_BYTES = 512 * 1024 * 1024
MAX_JUNIT_BYTES = 256 * 1024 * 1024
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "evidence-v1.schema.json"
SHOWN_PROBLEMS = 5
# pytest's exit statuses, most telling first: an interrupted or broken shard makes the merged run so.
STATUS_PRIORITY = (2, 3, 4, 1, 5, 0)


class MergeError(CertauditError):
    """The shards cannot be merged into one run; the message says which and why."""


class Spool:
    """The shards' results and snapshots, each a compact JSON line in one anonymous temporary file,
    found again by offset: a merge holds their index, never the documents (ten shards of a thousand
    hosts are half a gigabyte of JSON, several times that as objects)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix=".certaudit-merge-")  # noqa: SIM115 (closed by close())
        self._size = 0

    def put(self, value: Any) -> tuple[int, int]:
        data = dumped_line(value)  # what evidence.json holds of a result or a snapshot, as it is
        self._file.write(data)
        at = (self._size, len(data))
        self._size += len(data)
        return at

    def get(self, at: tuple[int, int]) -> bytes:
        self._file.flush()
        data = os.pread(self._file.fileno(), at[1], at[0])
        if len(data) != at[1]:
            raise MergeError("the merge's temporary file ended early")
        return data

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class ShardRun:
    directory: Path
    evidence: dict[str, Any]  # every member but results and snapshots, which are in the spool
    junit: ET.Element | None
    manifest_sha256: str
    # (host, control, nodeid, where in the spool) of each result; host -> where of each snapshot
    results: list[tuple[str, str, str, tuple[int, int]]] = field(default_factory=list)
    snapshots: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def run(self) -> dict[str, Any]:
        run: dict[str, Any] = self.evidence["run"]
        return run

    @property
    def shard(self) -> dict[str, int] | None:
        shard: dict[str, int] | None = self.run.get("shard")
        return shard

    def label(self) -> str:
        return f"{self.directory}" + (f" (shard {self.shard['index']}/{self.shard['count']})" if self.shard else "")


@dataclass
class Merged:
    directory: Path
    shards: int
    hosts: int
    results: int
    exit_status: int
    signed: bool
    files: list[str] = field(default_factory=list)


def load_shard(directory: Path, public_key: Path | None, spool: Spool | None = None) -> ShardRun:
    """One shard's run directory, verified against its manifest before a byte of it is used; its
    results and snapshots go to `spool` (a spool of its own when none is given)."""
    if not directory.is_dir():
        raise MergeError(f"{directory}: not a run directory")
    checked = verify(directory, public_key)
    if not checked.ok:
        shown = "; ".join(checked.problems[:SHOWN_PROBLEMS])
        more = f" (and {len(checked.problems) - SHOWN_PROBLEMS} more)" if len(checked.problems) > SHOWN_PROBLEMS else ""
        raise MergeError(f"{directory} does not verify, refusing to merge it: {shown}{more}")
    evidence_path = directory / EVIDENCE
    if not evidence_path.is_file():
        raise MergeError(f"{directory}: has no {EVIDENCE} (run the shard with --report-dir)")
    results: list[tuple[str, str, str, tuple[int, int]]] = []
    snapshots: dict[str, tuple[int, int]] = {}
    evidence = _evidence_of(evidence_path, spool if spool is not None else Spool(), results, snapshots)
    if evidence["run"].get("merged_from"):
        raise MergeError(f"{directory}: is itself a merged run; merge the shards' own directories")
    junit = None
    if (directory / JUNIT).is_file():
        try:
            data = read_bounded(directory / JUNIT, MAX_JUNIT_BYTES)
            junit = ET.fromstring(data)  # noqa: S314 (the stdlib parser expands no external entity, and expat bounds entity amplification)
        except ReadError as exc:
            raise MergeError(str(exc)) from None
        except ET.ParseError as exc:
            raise MergeError(f"{directory / JUNIT}: not XML ({exc})") from None
    try:
        manifest_sha256 = hashlib.sha256(read_bounded(directory / MANIFEST, MAX_MANIFEST_BYTES)).hexdigest()
    except ReadError as exc:
        raise MergeError(str(exc)) from None
    return ShardRun(directory, evidence, junit, manifest_sha256, results, snapshots)


@functools.cache
def _validators() -> tuple[Any, Any, Any]:
    """The evidence schema's validators: of the document (its results and snapshots empty), of one
    result, of one snapshot; each element is checked as it is read."""
    import jsonschema  # here: only a merge needs it, not every certaudit command

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    defs = {"$defs": schema.get("$defs", {})}
    result = {**defs, **schema["properties"]["results"]["items"]}
    snapshot = {**defs, **schema["properties"]["snapshots"]["additionalProperties"]}
    validator = jsonschema.Draft202012Validator
    return validator(schema), validator(result), validator(snapshot)


def _first_error(validator: Any, value: Any, prefix: tuple[str | int, ...], path: Path) -> None:
    error = next(iter(sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))), None)
    if error is not None:
        where = "/".join(str(p) for p in (*prefix, *error.absolute_path)) or "(the document)"
        raise MergeError(f"{path}: not valid certaudit evidence: at {shown_text(where, 120)}: {shown_text(error.message, 200)}")


def _evidence_of(
    path: Path,
    spool: Spool,
    results: list[tuple[str, str, str, tuple[int, int]]],
    snapshots: dict[str, tuple[int, int]],
) -> dict[str, Any]:
    """A shard's evidence.json, valid against the evidence schema and consistent in itself, or
    MergeError saying where it is not: a part whose manifest verifies is still untrusted input.
    Read element by element (certaudit/evidence/jsonstream.py): each result and snapshot is checked
    against its schema and goes to the spool, only its index stays; the rest is returned."""
    _, result_schema, snapshot_schema = _validators()

    def result(index: str | int, value: Any) -> None:
        _first_error(result_schema, value, ("results", index), path)
        results.append((value["host"], value["control"], value["nodeid"], spool.put(value)))

    def snapshot(host: str | int, value: Any) -> None:
        _first_error(snapshot_schema, value, ("snapshots", host), path)
        # Made minimal again: a part written by an older certaudit may carry whole files (content_b64),
        # which the merged evidence must not (a part already minimal is unchanged).
        snapshots[str(host)] = spool.put(minimal_snapshot(value))

    try:
        with _open_bounded(path) as stream:
            evidence, present = read_object(stream, {"results": result, "snapshots": snapshot})
    except JsonStreamError as exc:
        if str(exc).startswith("expected '{' at character 0"):
            raise MergeError(f"{path}: not certaudit evidence of schema version {EVIDENCE_SCHEMA_VERSION}") from None
        raise MergeError(f"{path}: not JSON ({shown_text(str(exc), 200)})") from None
    if evidence.get("schema_version") != EVIDENCE_SCHEMA_VERSION:
        raise MergeError(f"{path}: not certaudit evidence of schema version {EVIDENCE_SCHEMA_VERSION}")
    document = {**evidence, **{k: v for k, v in (("results", []), ("snapshots", {})) if k in present}}
    _first_error(_validators()[0], document, (), path)
    problem = _inconsistency({**evidence, "results": [{"host": h} for h, *_ in results], "snapshots": snapshots})
    if problem:
        raise MergeError(f"{path}: not valid certaudit evidence: {problem}")
    return evidence


@contextlib.contextmanager
def _open_bounded(path: Path) -> Iterator[IO[bytes]]:
    """The regular file at `path` of at most MAX_EVIDENCE_BYTES, open for reading, or MergeError."""
    shown = shown_text(str(path), 300)
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise MergeError(f"{shown} cannot be read: {exc.strerror or type(exc).__name__}") from None
    with stream:
        size = os.fstat(stream.fileno()).st_size
        if size > MAX_EVIDENCE_BYTES:
            raise MergeError(f"{shown} is {size} bytes, more than the {MAX_EVIDENCE_BYTES} a real one needs")
        yield stream


def _inconsistency(evidence: dict[str, Any]) -> str:
    """What the schema cannot say: hosts named in one place and not in the list of hosts expected,
    a shard outside its count, a run that finished before it started, waivers named twice."""
    run = evidence["run"]
    expected = run["hosts_expected"]
    if len(set(expected)) != len(expected):
        return "run/hosts_expected names a host twice"
    # A fleet control's result (FLT-*) names a domain of the run's hosts, not a host.
    domains = {p.get("domain") for p in run["policies"].values() if isinstance(p, dict)}
    elsewhere = (
        ("run/hosts_reached", run["hosts_reached"]),
        ("run/policies", run["policies"]),
        ("results", [r["host"] for r in evidence["results"] if r["host"] not in domains or r["host"] in expected]),
        ("unreachable", evidence["unreachable"]),
        ("snapshots", evidence["snapshots"]),
    )
    for where, hosts in elsewhere:
        stray = sorted(set(hosts) - set(expected))
        if stray:
            return f"{where} names host {shown_text(stray[0], 80)}, which run/hosts_expected does not list"
    shard = run.get("shard")
    if shard and not (shard["index"] <= shard["count"] and len(expected) <= shard["inventory_hosts"]):
        return f"run/shard {shard['index']}/{shard['count']} of {shard['inventory_hosts']} hosts holds {len(expected)}"
    try:
        started, finished = (dt.datetime.fromisoformat(run[k]) for k in ("started", "finished"))
        if started.tzinfo is None or finished.tzinfo is None or finished < started:
            return "run/started and run/finished are not a UTC time span"
    except ValueError:
        return "run/started or run/finished is not a date-time"
    indexes = [e["index"] for e in evidence["waivers"]["entries"]]
    if len(set(indexes)) != len(indexes) or not set(evidence["waivers"]["unused"]) <= set(indexes):
        return "waivers/entries and waivers/unused do not name each waiver once"
    return ""


def check_one_audit(shards: Sequence[ShardRun]) -> None:
    """Refuse shards that are not the parts of one audit."""
    first = shards[0]
    for other in shards[1:]:
        if other.run.get("inventory_sha256") != first.run.get("inventory_sha256"):
            raise MergeError(
                f"{other.directory} and {first.directory} audited different inventories "
                f"(SHA-256 {other.run.get('inventory_sha256')} and {first.run.get('inventory_sha256')})"
            )
        if _waiver_rules(other) != _waiver_rules(first):
            raise MergeError(f"{other.directory} and {first.directory} used different waivers")
    sharded = [s for s in shards if s.shard]
    if sharded and len(sharded) != len(shards):
        plain = next(s for s in shards if not s.shard)
        raise MergeError(f"{plain.directory} is not a shard (no --shard), but {sharded[0].label()} is")
    if sharded:
        counts = {s.shard["count"] for s in sharded if s.shard}
        if len(counts) > 1:
            raise MergeError(f"the shards split the hosts in different numbers of parts: {sorted(counts)}")
        count = counts.pop()
        seen: dict[int, ShardRun] = {}
        for run in sharded:
            assert run.shard is not None
            index = run.shard["index"]
            if index in seen:
                raise MergeError(f"shard {index}/{count} is given twice: {seen[index].directory} and {run.directory}")
            seen[index] = run
        missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
        if missing:
            raise MergeError(f"incomplete: shard {', '.join(missing)} missing (every shard is needed to cover the inventory)")
        totals = sorted({s.shard["inventory_hosts"] for s in sharded if s.shard})
        held = sum(len(s.run.get("hosts_expected", [])) for s in sharded)
        if totals != [held]:  # e.g. shards run with different --limit
            raise MergeError(f"the shards hold {held} hosts between them, but their inventory has {totals}")
    owner: dict[str, ShardRun] = {}
    for run in shards:
        for host in run.run.get("hosts_expected", []):
            if host in owner:
                raise MergeError(f"host {host} is in both {owner[host].directory} and {run.directory}")
            owner[host] = run


def _waiver_rules(run: ShardRun) -> list[dict[str, Any]]:
    """The waivers as written (what each run found they covered aside)."""
    keep = ("index", "control", "hosts", "reason", "approver", "ticket", "expires", "status", "problem")
    return [{k: e.get(k) for k in keep} for e in run.evidence["waivers"].get("entries", [])]


def merged_status(statuses: Iterable[int]) -> int:
    found = set(statuses)
    return next((s for s in STATUS_PRIORITY if s in found), 0) if found else 0


def merged_evidence(shards: Sequence[ShardRun], job: str | None) -> dict[str, Any]:
    """The merged evidence.json but its results and snapshots (merged_results, merged_snapshots)."""
    runs = [s.run for s in shards]
    waivers = dict(shards[0].evidence["waivers"])
    entries = [dict(e) for e in waivers.get("entries", [])]
    for entry in entries:
        # A waiver covered (or matched) what it covered in any shard; it is unused only if unused in all.
        entry["covered"] = sorted(c for s in shards for e in s.evidence["waivers"]["entries"] if e["index"] == entry["index"]
                                  for c in e.get("covered", []))  # fmt: skip
        entry["matched_passing"] = sorted(
            c for s in shards for e in s.evidence["waivers"]["entries"] if e["index"] == entry["index"]
            for c in e.get("matched_passing", [])
        )  # fmt: skip
    unused = set.intersection(*(set(s.evidence["waivers"].get("unused", [])) for s in shards))
    policies: dict[str, Any] = {}
    for run in runs:
        policies.update(run.get("policies", {}))
    run = {
        "run_id": uuid.uuid4().hex,
        "job": job or runs[0].get("job", "audit"),
        "started": min(r["started"] for r in runs),
        "finished": max(r["finished"] for r in runs),
        "operator": f"{getpass.getuser()}@{socket.gethostname()}",
        "ci_job": ci_job(),
        "certaudit_version": __version__,
        "certaudit_commit": certaudit_commit(),
        "inventory": runs[0].get("inventory"),
        "inventory_sha256": runs[0].get("inventory_sha256"),
        "waivers_file": runs[0].get("waivers_file"),
        "hosts_expected": sorted({h for r in runs for h in r.get("hosts_expected", [])}),
        "hosts_reached": sorted({h for r in runs for h in r.get("hosts_reached", [])}),
        "policies": dict(sorted(policies.items())),
        "versions": runs[0].get("versions", {}),
        "exit_status": merged_status(int(r.get("exit_status", 0)) for r in runs),
        "merged_from": [
            {
                "directory": s.directory.name,
                "manifest_sha256": s.manifest_sha256,
                "run_id": s.run["run_id"],
                "shard": s.shard,
                "operator": s.run.get("operator"),
                "ci_job": s.run.get("ci_job"),
                "started": s.run["started"],
                "finished": s.run["finished"],
                "exit_status": s.run.get("exit_status"),
                "certaudit_commit": s.run.get("certaudit_commit"),
            }
            for s in sorted(shards, key=lambda s: (s.shard or {}).get("index", 0))
        ],
    }
    return {
        "$schema": EVIDENCE_SCHEMA_ID,
        "schema_version": EVIDENCE_SCHEMA_VERSION,
        "run": run,
        "unreachable": dict(sorted((h, m) for s in shards for h, m in s.evidence["unreachable"].items())),
        "waivers": {**waivers, "entries": entries, "unused": sorted(unused)},
    }


def merged_results(shards: Sequence[ShardRun], spool: Spool) -> _Lines:
    """Every shard's results by host, control and node id, each its compact JSON line (read back
    from the spool as it is iterated)."""
    return _Lines(spool, [at for *_, at in sorted(r for s in shards for r in s.results)])


def merged_snapshots(shards: Sequence[ShardRun], spool: Spool) -> Iterator[tuple[str, bytes]]:
    """Every shard's snapshot (made minimal as it was read) by host, as evidence.json holds it."""
    for host, at in sorted((h, at) for s in shards for h, at in s.snapshots.items()):
        yield host, spool.get(at)  # the snapshot's dumped_line, as the spool keeps it


class _Lines:
    """Spooled JSON lines in a given order, iterable as often as needed (bytes, or parsed with `parsed`)."""

    def __init__(self, spool: Spool, where: list[tuple[int, int]]) -> None:
        self.spool = spool
        self.where = where

    def __len__(self) -> int:
        return len(self.where)

    def __iter__(self) -> Iterator[bytes]:
        return (self.spool.get(at) for at in self.where)

    def parsed(self) -> Iterator[dict[str, Any]]:
        return (json.loads(line) for line in self)

    def replace(self, where: dict[int, tuple[int, int]]) -> None:
        """Point the lines at these positions at other spooled lines (a judged result for a placeholder)."""
        for index, at in where.items():
            self.where[index] = at


# --- JUnit ----------------------------------------------------------------------------------------
def merged_junit(shards: Sequence[ShardRun]) -> bytes:
    """One <testsuite> with every shard's test cases; a case in several shards (not a host's) once."""
    cases: list[ET.Element] = []
    seen: set[tuple[str, str]] = set()
    times: list[float] = []
    stamps: list[str] = []
    for shard in shards:
        if shard.junit is None:
            continue
        suites = [shard.junit] if shard.junit.tag == "testsuite" else shard.junit.findall("testsuite")
        for suite in suites:
            times.append(_float(suite.get("time")))
            stamps.extend([suite.get("timestamp", "")] if suite.get("timestamp") else [])
            for case in suite.findall("testcase"):
                key = (case.get("classname", ""), case.get("name", ""))
                if key not in seen:
                    seen.add(key)
                    cases.append(case)
    suite = ET.Element(
        "testsuite",
        {
            "name": "pytest",
            "errors": str(sum(1 for c in cases if c.find("error") is not None)),
            "failures": str(sum(1 for c in cases if c.find("failure") is not None)),
            "skipped": str(sum(1 for c in cases if c.find("skipped") is not None)),
            "tests": str(len(cases)),
            "time": f"{max(times, default=0.0):.3f}",  # the shards ran side by side
            "timestamp": min(stamps, default=""),
            "hostname": socket.gethostname(),
        },
    )
    suite.extend(cases)
    root = ET.Element("testsuites", {"name": "certaudit merged shards"})
    root.append(suite)
    return b'<?xml version="1.0" encoding="utf-8"?>' + bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False))


def _float(value: str | None) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


# --- the HTML report -------------------------------------------------------------------------------
def _metadata_rows(run: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in run.items():
        label = report_view.METADATA_LABELS.get(key, key)
        if key == "policies" and isinstance(value, dict) and value:
            distinct = {json.dumps(p, sort_keys=True, default=str) for p in value.values()}
            if len(distinct) == 1:
                rows.append((f"{label} (all {len(value)} hosts)", _shown(next(iter(value.values())))))
            else:
                rows.extend((f"{label} of {host}", _shown(policy)) for host, policy in value.items())
        elif key == "merged_from" and isinstance(value, list):
            for part in value:
                shard = part.get("shard") or {}
                name = f"shard {shard.get('index')}/{shard.get('count')}" if shard else part.get("directory")
                rows.append((f"Merged from {name}", _shown(part)))
        elif key == "exit_status" and isinstance(value, int):
            rows.append((label, report_view.exit_status_text(value)))
        else:
            rows.append((label, _shown(value)))
    return rows


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list | tuple):
        return ", ".join(report_view.format_value(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return "\n".join(f"{k}: {report_view.format_value(v)}" for k, v in value.items()) if value else "(none)"
    return report_view.format_value(value)


def merged_report(evidence: Mapping[str, Any]) -> str:
    """A self-contained page: the same summary as a run's report (report_view, one renderer for both),
    then a row per result that did not pass or apply (the others are in the summary's filter and
    blobs, as in a run's report). `evidence["results"]` may be read back from the merge's spool."""
    run = evidence["run"]
    data = report_view.ReportData().add_all(Record(**r) for r in evidence["results"])
    expected = list(run["hosts_expected"])
    reached = list(run["hosts_reached"])
    thresholds = {
        h: (int(p.get("warn_days", report_view.DEFAULT_WARN_DAYS)), int(p.get("crit_days", report_view.DEFAULT_CRIT_DAYS)))
        for h, p in run["policies"].items()
        if isinstance(p, dict)
    }
    parts = len(run.get("merged_from", []))
    lead = (
        f"Job {run['job']}, merged by {run['operator']} from {parts} shard(s), started {run['started']}; "
        f"inventory {run.get('inventory')}: {len(expected)} host(s) expected, {len(set(reached) & set(expected))} reached; "
        f"{data.results} result(s)."
    )
    context = report_view.RunContext(expected, reached, dict(evidence["unreachable"]), thresholds, _metadata_rows(run))
    header = "".join(report_html.header_cells())
    rows = "".join(
        f'<tr><td class="col-result">{report_view.text(r.outcome)}</td><td class="col-testId">{report_view.text(r.nodeid)}</td>'
        f"{''.join(report_html.result_cells(r))}</tr>"
        for r in (Record(**raw) for raw in evidence["results"] if raw.get("outcome") not in report_html.ROWLESS_OUTCOMES)
    )
    title = f"certaudit {run['job']} report, merged from {parts} shard(s), {run['started'][:10]} (UTC)"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{report_view.text(title)}</title></head><body>"
        f"<h1>{report_view.text(title)}</h1>"
        f"{report_view.render_summary(data, context, lead)}"
        # Closed until asked for: what it lists is in "Needs action" above, and laying out thousands of
        # rows nobody opened is what made the page slow.
        '<details class="ca-results"><summary><h2 style="display:inline">Results that did not pass or apply, as a table'
        "</h2></summary><p>Passing and N/A results are in the filter above and in evidence.json.</p>"
        '<table id="results-table" class="ca-table"><thead><tr><th>Result</th><th>Test</th>'
        f"{header}</tr></thead><tbody>{rows}</tbody></table></details></body></html>\n"
    )


# --- the merge -------------------------------------------------------------------------------------
def merge_runs(
    directories: Sequence[Path],
    out: Path,
    signing_key: Path | None = None,
    public_key: Path | None = None,
    job: str | None = None,
    network: bool = True,
) -> Merged:
    """Merge the shards' run directories into the new run directory `out` (written whole, or not at all);
    a sharded run's fleet controls are judged here (certaudit/evidence/fleet_merge.py)."""
    if not directories:
        raise MergeError("no run directory to merge")
    if job is not None and not JOB_RE.fullmatch(job):
        raise MergeError(f"--job {shown_text(repr(job), 80)}: expected a name of letters, digits, '.', '_' and '-'")
    if len({d.resolve() for d in directories}) != len(directories):
        raise MergeError("a run directory is given twice")
    partial = out.with_name(out.name + ".partial")
    if out.exists() or partial.exists():
        raise MergeError(f"{out if out.exists() else partial} already exists; merge into a new directory")
    spool = Spool()
    try:
        return _merge(directories, out, partial, spool, signing_key, public_key, job, network)
    finally:
        spool.close()


def _merge(
    directories: Sequence[Path],
    out: Path,
    partial: Path,
    spool: Spool,
    signing_key: Path | None,
    public_key: Path | None,
    job: str | None,
    network: bool,
) -> Merged:
    shards = [load_shard(d, public_key, spool) for d in directories]
    check_one_audit(shards)
    evidence = merged_evidence(shards, job)
    results = merged_results(shards, spool)
    # The shards' FLT placeholders, judged on their fleet summaries (FLT-03 from here, unless network=False).
    parts = [Part(s.label(), s.evidence, s.junit) for s in shards]
    judged = judge_fleet(parts, evidence, network=network, results=results.parsed)
    results.replace({index: spool.put(record) for index, record in judged.items()})
    try:
        partial.mkdir(parents=True)
    except OSError as exc:
        raise MergeError(f"{partial}: cannot be created: {exc.strerror or exc}") from None
    try:
        write_streamed(partial / EVIDENCE, evidence_parts(evidence, results, merged_snapshots(shards, spool)))
        if any(s.junit is not None for s in shards):
            write_atomically(partial / JUNIT, merged_junit(shards))
        write_atomically(partial / REPORT, merged_report({**evidence, "results": results.parsed()}).encode())
        files = write_manifest(partial, signing_key)
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # nothing half-written may pass for a run
        raise
    run = evidence["run"]
    return Merged(
        directory=out,
        shards=len(shards),
        hosts=len(run["hosts_expected"]),
        results=len(results),
        exit_status=run["exit_status"],
        signed=signing_key is not None,
        files=files,
    )
