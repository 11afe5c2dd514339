"""The pre-deploy gate: only the controls marked for it, one line per host, and the exit status decides.

A gate run is `--gate` (what `make gate` passes) or a `-m` expression that selects the gate
controls and no other control (`-m gate`). The plugin marks every control declared with
`@control(..., gate=True)` with `pytest.mark.gate`, so both select the same items.

In a gate run CRT-01 stops a deploy only in its critical tier: a certificate under the warning
line (30 days) needs renewing soon but must not block a release; one under 7 days must. CRT-01
reads the `gate_mode` fixture and records the warning as a note instead of a finding there.

The one line per host (`GATE PASS web-1 (KEY-01 pass, CRT-01 pass: 60.0 days, LIVE-01 pass)`)
is printed at the end of the run; a host passes when none of its gate controls failed or errored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from certaudit.record import Record

MARKER = "gate"
MARKER_HELP = "gate: a control the pre-deploy gate runs (set by @control(..., gate=True))"
_PART_LIMIT = 110
_BLOCKING = ("fail", "error")


def expression_selects_gate(markexpr: str) -> bool:
    """Whether `-m markexpr` keeps the gate controls and drops the others.

    Evaluated as pytest evaluates it, against the marks a gate control carries (control, gate)
    and those of any other control (control).
    """
    if not markexpr.strip():
        return False
    try:
        from _pytest.mark.expression import Expression  # pytest's own -m parser; no public API exposes it

        expression = Expression.compile(markexpr)

        def marked(*names: str) -> bool:
            return expression.evaluate(lambda name, /, **kwargs: name in names and not kwargs)

        return marked("control", MARKER) and not marked("control")
    except (ImportError, SyntaxError):  # pytest reports a malformed expression itself
        return False


def requested(config: Any) -> bool:
    """A gate run: --gate, or a -m expression that selects exactly the gate controls."""
    return bool(config.getoption("gate", False)) or expression_selects_gate(config.getoption("markexpr", "") or "")


def gate_markexpr(markexpr: str) -> str:
    """The -m expression a --gate run uses: the user's own, narrowed to the gate controls."""
    return f"({markexpr}) and {MARKER}" if markexpr.strip() else MARKER


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _PART_LIMIT else line[: _PART_LIMIT - 1] + "…"


def _part(record: Record) -> str:
    """One control's verdict in a gate line: the outcome, and for CRT-01 the days left."""
    observed = record.observed
    if record.outcome in ("pass", "fail") and isinstance(observed.get("days_left"), int | float):
        days = f"{observed['days_left']:.1f} days"
        tier = observed.get("tier")
        detail = days if tier in (None, "ok") else f"{days}, {tier} tier"
        return f"{record.control} {record.outcome}: {detail}"
    if record.outcome == "fail":
        return f"{record.control} fail: {_short(record.findings[0] if record.findings else record.message)}"
    if record.outcome == "error":
        return f"{record.control} error: {_short(record.message.splitlines()[0] if record.message else 'unknown')}"
    if record.outcome == "waived" and record.waiver:
        return f"{record.control} waived ({record.waiver.get('ticket', '?')})"
    return f"{record.control} {record.outcome}"


@dataclass(frozen=True)
class HostVerdict:
    host: str
    passed: bool
    line: str
    domain: bool = False  # a fleet control's verdict on a whole domain (FLT-02)


def verdicts(records: Iterable[Record], hosts: Iterable[str], domains: Iterable[str] = ()) -> list[HostVerdict]:
    """One verdict per host (in `hosts` order, then any other host with a gate result); a fleet
    control's records name a domain (one of `domains`), whose line says so."""
    domains = set(domains)
    by_host: dict[str, list[Record]] = {}
    for record in records:
        if record.gate:
            by_host.setdefault(record.host, []).append(record)
    order = [h for h in hosts if h in by_host] + [h for h in by_host if h not in set(hosts)]
    result = []
    for host in dict.fromkeys(order):
        mine = by_host[host]
        passed = not any(r.outcome in _BLOCKING for r in mine)
        messages = {r.message for r in mine}
        if all(r.outcome == "error" for r in mine) and len(messages) == 1 and len(mine) > 1:
            # An unreachable host: one cause, said once.
            parts = [f"{', '.join(r.control for r in mine)} error: {_short(next(iter(messages)).splitlines()[0])}"]
        else:
            parts = [_part(r) for r in mine]
        subject = f"domain {host}" if host in domains else host
        result.append(
            HostVerdict(host, passed, f"GATE {'PASS' if passed else 'FAIL'} {subject} ({', '.join(parts)})", host in domains)
        )
    return result


def summary(found: list[HostVerdict]) -> str:
    """The gate's closing line: the deploy's verdict and the hosts that block it."""
    blocking = [v.host for v in found if not v.passed]
    if not found:
        return "GATE FAIL: no gate control ran on any host"
    domains = sum(1 for v in found if v.domain)
    hosts = f"{len(found) - domains} host{'s' * (len(found) - domains != 1)}"
    hosts += f" and {domains} domain{'s' * (domains != 1)}" if domains else ""
    if blocking:
        verb = "blocks" if len(blocking) == 1 else "block"
        return f"GATE FAIL: {len(blocking)} of {hosts} {verb} the deploy ({', '.join(blocking)})"
    return f"GATE PASS: {hosts}, every gate control passes"
