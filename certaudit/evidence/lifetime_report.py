"""The report's lifetime what-if section: per lifetime asked for, the hosts that will break, those
that will page needlessly, those whose readiness is unknown, and those that are ready."""

from __future__ import annotations

import html
from collections.abc import Sequence

from certaudit.jobs.whatif import Row

GROUPS = (
    ("breaks", "Will break", "renewal would not happen in time, or the gate would fail a healthy host"),
    ("pages", "Will page needlessly", "renews in time, but alerts or CRT-01 fire on a healthy certificate every cycle"),
    ("unknown", "Unknown", "a fact the judgement needs was not read"),
    ("ready", "Ready", "renews in time, passes the gate, pages nobody"),
    ("not applicable", "Not applicable", "not renewed by certbot here"),
)
STYLE = (
    "<style>.ca-whatif table{border-collapse:collapse;margin:.3em 0 1em}"
    ".ca-whatif td,.ca-whatif th{border:1px solid #ccc;padding:2px 6px;vertical-align:top;text-align:left}"
    ".ca-whatif .v-breaks{color:#a00}.ca-whatif .v-pages{color:#a60}.ca-whatif .v-ready{color:#070}</style>"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _row(row: Row) -> str:
    point = "" if row.renewal_point_days is None else f"{row.renewal_point_days:.2f} days before expiry"
    gap = "" if row.runs_at_most_hours_apart is None else f"{row.runs_at_most_hours_apart:g} h"
    reasons = "<br>".join(_e(r) for r in row.reasons)
    return (
        f"<tr><td>{_e(row.host)}</td><td>{_e(point)}<br><small>{_e(row.window_rule)}</small></td>"
        f"<td>{_e(gap)}</td><td>{reasons}</td></tr>"
    )


def render_section(lifetimes: Sequence[int], rows: Sequence[Row]) -> str:
    """The section's HTML; empty when no what-if was asked for."""
    if not lifetimes:
        return ""
    parts = [f'{STYLE}<div class="certaudit ca-whatif" id="certaudit-lifetime-what-if"><h2>Lifetime what-if</h2>']
    for lifetime in lifetimes:
        mine = [r for r in rows if r.lifetime_days == lifetime]
        parts.append(f"<h3>If the next certificate lived {lifetime} days ({len(mine)} host(s))</h3>")
        for verdict, title, meaning in GROUPS:
            group = [r for r in mine if r.verdict == verdict]
            if not group:
                continue
            slug = verdict.replace(" ", "-")
            parts.append(
                f'<h4 class="v-{slug}">{_e(title)}: {len(group)}</h4><p><small>{_e(meaning)}</small></p>'
                "<table><tr><th>host</th><th>renewal point</th><th>runs at most apart</th><th>why</th></tr>"
                + "".join(_row(r) for r in group)
                + "</table>"
            )
    parts.append("</div>")
    return "".join(parts)
