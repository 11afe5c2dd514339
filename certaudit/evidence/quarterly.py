"""The quarterly audit: runs filed by quarter, and what changed since the previous quarter.

`--quarterly` (with `--report-dir DIR`, as `make quarterly` runs it) files the run under
`DIR/<YYYY>-Q<n>/<UTC timestamp>-<job>/` (the quarter of the run's start, UTC), and writes into it,
before it is sealed and signed, the diff against the previous quarter's evidence:
`quarterly-diff.txt` (what the terminal shows) and `quarterly-diff.json`.

Until 2028-02-16 (by the audit's own clock) a quarterly run also runs the lifetime what-if for
Let's Encrypt's announced lifetimes still to come (64 and 45 days, then 45), unless
`--lifetime-what-if` says otherwise: see certaudit/jobs/whatif.py (`quarterly_default`).

The previous quarter's evidence is the newest complete run (not `.partial`) in the newest
quarter directory before this one; its manifest is checked first, and the diff says whether it
verified. Per host, each control is compared between the two runs:

- a finding is an outcome of fail, error (compliance that cannot be shown) or waived (a failure
  accepted for a while: still open);
- new: a finding now that was not one then; fixed: a finding then that passes now (or no longer
  applies); persisting: a finding in both;
- not re-checked: a finding then whose control or host this run did not judge; it is neither
  fixed nor forgotten.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from certaudit.errors import CertauditError
from certaudit.evidence.manifest import SIGNATURE, verify
from certaudit.readers import ReadError, read_bounded, shown_text

QUARTER_RE = re.compile(r"^(\d{4})-Q([1-4])$")
FINDING_OUTCOMES = ("fail", "error", "waived")
CLEAR_OUTCOMES = ("pass", "not applicable")
DIFF_TEXT = "quarterly-diff.txt"
DIFF_JSON = "quarterly-diff.json"
_TEXT_LIMIT = 200
MAX_EVIDENCE_BYTES = 512 * 1024 * 1024  # as certaudit merge reads a part

Change = Literal["new", "fixed", "persisting", "not_rechecked"]
CHANGES: tuple[Change, ...] = ("new", "fixed", "persisting", "not_rechecked")
LABELS = {"new": "NEW", "fixed": "FIXED", "persisting": "PERSISTING", "not_rechecked": "NOT RE-CHECKED"}


def quarter_of(when: dt.datetime) -> str:
    """`2026-Q4` for any instant of October to December 2026 (UTC)."""
    utc = when.astimezone(dt.UTC)
    return f"{utc.year}-Q{(utc.month - 1) // 3 + 1}"


def _quarter_key(name: str) -> tuple[int, int] | None:
    match = QUARTER_RE.fullmatch(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def previous_run(reports: Path, current_quarter: str) -> Path | None:
    """The newest complete run of the newest quarter before `current_quarter` that holds one."""
    current = _quarter_key(current_quarter)
    if current is None or not reports.is_dir():
        return None
    quarters = sorted(
        ((key, p) for p in reports.iterdir() if p.is_dir() and (key := _quarter_key(p.name)) is not None and key < current),
        reverse=True,
    )
    for _, quarter in quarters:
        runs = sorted(
            (p for p in quarter.iterdir() if p.is_dir() and not p.name.endswith(".partial") and (p / "evidence.json").is_file()),
            key=lambda p: p.name,
        )
        if runs:
            return runs[-1]
    return None


@dataclass(frozen=True)
class Result:
    control: str
    host: str
    outcome: str
    finding: str  # the first finding, or the message's first line (errors)

    @property
    def is_finding(self) -> bool:
        return self.outcome in FINDING_OUTCOMES


@dataclass(frozen=True)
class RunSummary:
    """One run's evidence, as far as the diff needs it."""

    path: str
    run_id: str
    job: str
    started: str
    quarter: str
    results: dict[tuple[str, str], Result]
    integrity: str = ""

    def describe(self) -> str:
        started = self.started[:19].replace("T", " ") + " UTC" if self.started else "start unknown"
        integrity = f", {self.integrity}" if self.integrity else ""
        return f"{self.path} (run {self.run_id[:12] or '?'}, {started}{integrity})"


def _evidence_path(path: Path) -> Path:
    return path / "evidence.json" if path.is_dir() else path


def load_run(path: Path) -> RunSummary:
    """Read a run's evidence.json (or a run directory); raises CertauditError saying what is wrong."""
    evidence = _evidence_path(path)
    try:
        document = json.loads(read_bounded(evidence, MAX_EVIDENCE_BYTES))  # a FIFO never blocks, nor a huge file fills memory
    except ReadError as exc:
        raise CertauditError(str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise CertauditError(f"{evidence}: not certaudit evidence (not JSON: {shown_text(str(exc), 200)})") from None
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(results, list):
        raise CertauditError(f"{evidence}: not certaudit evidence (no results list)")
    found: dict[tuple[str, str], Result] = {}
    for index, item in enumerate(results):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("control", "host", "outcome")):
            raise CertauditError(f"{evidence}: result #{index + 1} lacks control, host or outcome")
        findings = item.get("findings")
        first = findings[0] if isinstance(findings, list) and findings else None
        text = first if isinstance(first, str) else str(item.get("message", "")).split("\n")[0]
        text = " ".join(text.split())
        found[(item["host"], item["control"])] = Result(
            item["control"], item["host"], item["outcome"], text[: _TEXT_LIMIT - 1] + "…" if len(text) > _TEXT_LIMIT else text
        )
    run = document.get("run") if isinstance(document.get("run"), dict) else {}
    started = str(run.get("started") or "")
    try:
        quarter = quarter_of(dt.datetime.fromisoformat(started)) if started else "?"
    except ValueError:
        quarter = "?"
    return RunSummary(
        path=str(evidence.parent if evidence.name == "evidence.json" else evidence),
        run_id=str(run.get("run_id") or ""),
        job=str(run.get("job") or ""),
        started=started,
        quarter=quarter,
        results=found,
    )


def integrity_of(run_dir: Path) -> str:
    """Whether a past run is what it wrote: its manifest checked (its signature needs the public key)."""
    if not run_dir.is_dir():
        return "not a run directory: integrity not checked"
    try:
        result = verify(run_dir)
    except CertauditError as exc:
        return f"integrity not checked: {exc}"
    problems = [p for p in result.problems if not p.startswith(f"{SIGNATURE}: present, but no public key")]
    if problems:
        return f"DOES NOT VERIFY: {'; '.join(problems[:3])}{' …' if len(problems) > 3 else ''}"
    signed = "; signed (check with certaudit verify --public-key)" if result.signed else "; not signed"
    return f"manifest verified{signed}"


@dataclass(frozen=True)
class Entry:
    control: str
    outcome: str
    finding: str
    was_outcome: str = ""
    was_finding: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v or not k.startswith("was_")}


@dataclass
class HostDiff:
    host: str
    new: list[Entry] = field(default_factory=list)
    fixed: list[Entry] = field(default_factory=list)
    persisting: list[Entry] = field(default_factory=list)
    not_rechecked: list[Entry] = field(default_factory=list)

    def entries(self, change: Change) -> list[Entry]:
        found: list[Entry] = getattr(self, change)
        return found

    @property
    def empty(self) -> bool:
        return not any(self.entries(c) for c in CHANGES)


@dataclass(frozen=True)
class QuarterlyDiff:
    previous: RunSummary | None
    current: RunSummary
    hosts: dict[str, HostDiff]
    clean_hosts: tuple[str, ...]  # judged in both runs (or only now) without a finding either time
    previous_problem: str = ""  # why the previous quarter's evidence could not be used

    def totals(self) -> dict[str, int]:
        return {c: sum(len(h.entries(c)) for h in self.hosts.values()) for c in CHANGES}

    def as_dict(self) -> dict[str, Any]:
        def side(run: RunSummary | None) -> dict[str, str] | None:
            if run is None:
                return None
            return {"path": run.path, "run_id": run.run_id, "job": run.job, "started": run.started,
                    "quarter": run.quarter, "integrity": run.integrity}  # fmt: skip

        return {
            "previous": side(self.previous),
            "current": side(self.current),
            "hosts": {
                name: {c: [e.as_dict() for e in diff.entries(c)] for c in CHANGES} for name, diff in sorted(self.hosts.items())
            },
            "clean_hosts": list(self.clean_hosts),
            "previous_problem": self.previous_problem or None,
            "totals": self.totals(),
        }


def diff(previous: RunSummary | None, current: RunSummary, previous_problem: str = "") -> QuarterlyDiff:
    """New, fixed, persisting (and not re-checked) findings per host between two runs."""
    before = previous.results if previous else {}
    hosts: dict[str, HostDiff] = {}
    now_hosts = {h for h, _ in current.results}

    def host(name: str) -> HostDiff:
        return hosts.setdefault(name, HostDiff(name))

    for key, now in sorted(current.results.items()):
        then = before.get(key)
        if now.is_finding and then is not None and then.is_finding:
            host(now.host).persisting.append(Entry(now.control, now.outcome, now.finding, then.outcome, then.finding))
        elif now.is_finding:
            host(now.host).new.append(Entry(now.control, now.outcome, now.finding, then.outcome if then else ""))
        elif then is not None and then.is_finding and now.outcome in CLEAR_OUTCOMES:
            host(now.host).fixed.append(Entry(now.control, now.outcome, now.finding, then.outcome, then.finding))
    for key, then in sorted(before.items()):
        if key not in current.results and then.is_finding:
            reason = "host not in this run" if then.host not in now_hosts else "control not run this time"
            host(then.host).not_rechecked.append(Entry(then.control, reason, "", then.outcome, then.finding))
    judged = sorted(now_hosts | {h for h, _ in before})
    clean = tuple(h for h in judged if h not in hosts and h in now_hosts)
    return QuarterlyDiff(previous, current, dict(sorted(hosts.items())), clean, previous_problem)


def _entry_line(change: Change, entry: Entry) -> str:
    label = f"{LABELS[change]:<15}"
    if change == "fixed":
        return f"{label}{entry.control} {entry.outcome} now (was {entry.was_outcome}: {entry.was_finding})"
    if change == "not_rechecked":
        return f"{label}{entry.control} {entry.outcome} (was {entry.was_outcome}: {entry.was_finding})"
    return f"{label}{entry.control} {entry.outcome}: {entry.finding}"


def render(result: QuarterlyDiff, title: str = "certaudit quarterly diff") -> list[str]:
    """The diff as the terminal and quarterly-diff.txt show it."""
    current = result.current
    if result.previous_problem:
        head = [f"{title}: {current.quarter}: the previous quarter's run cannot be used: {result.previous_problem}"]
    elif result.previous is None:
        head = [f"{title}: {current.quarter}: no earlier quarter's run to compare with (first quarterly audit)"]
    else:
        head = [
            f"{title}: {current.quarter} against {result.previous.quarter}",
            f"  previous: {result.previous.describe()}",
        ]
    lines = [*head, f"  current:  {current.describe()}"]
    for name, host in result.hosts.items():
        counts = ", ".join(
            f"{len(host.entries(c))} {c.replace('_', ' ').replace('rechecked', 're-checked')}"
            for c in CHANGES
            if c != "not_rechecked" or host.not_rechecked
        )
        lines.append(f"  {name}: {counts}")
        lines += [f"    {_entry_line(c, e)}" for c in CHANGES for e in host.entries(c)]
    if result.clean_hosts:
        lines.append(f"  no findings: {', '.join(result.clean_hosts)}")
    totals = result.totals()
    lines.append(
        f"  total: {totals['new']} new, {totals['fixed']} fixed, {totals['persisting']} persisting"
        + (f", {totals['not_rechecked']} not re-checked" if totals["not_rechecked"] else "")
    )
    return lines


def write_diff(run_dir: Path, final: Path, reports: Path) -> QuarterlyDiff:
    """Diff this run (its evidence.json in run_dir, to be sealed as `final`) against the previous
    quarter's under `reports`; write both forms into run_dir, so the manifest and signature cover them."""
    current = load_run(run_dir)
    current = RunSummary(**{**current.__dict__, "path": str(final)})
    found = previous_run(reports, current.quarter)
    previous = None
    if found is not None:
        try:
            previous = load_run(found)
        except CertauditError as exc:
            return _written(run_dir, diff(None, current, str(exc)))
        integrity = integrity_of(found)
        if previous.quarter != found.parent.name:
            # A run is filed by the quarter it started in; one filed elsewhere was moved.
            integrity += f"; filed under {found.parent.name} but started in {previous.quarter}"
        previous = RunSummary(**{**previous.__dict__, "integrity": integrity, "quarter": found.parent.name})
    return _written(run_dir, diff(previous, current))


def _written(run_dir: Path, result: QuarterlyDiff) -> QuarterlyDiff:
    (run_dir / DIFF_TEXT).write_text("\n".join(render(result)) + "\n", encoding="utf-8")
    (run_dir / DIFF_JSON).write_text(json.dumps(result.as_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return result
