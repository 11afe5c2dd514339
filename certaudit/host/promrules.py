"""A Prometheus server's alert rules for the certificate metric (MON-02).

The runbook's two alerts must exist where Prometheus loads rules from (`rule_files:` of its
config, globs relative to the config's directory), on `stemedb_tls_cert_expiry_seconds`:
CertificateExpiringWarning under 30 days and CertificateExpiringSoon under 7. A threshold written
as `metric < <arithmetic>` is read here; any expression is proven by promtool where the host has
it (the probe runs `promtool test rules` with series at 31, 29, 8 and 6 days, and, for 64, 45
and 6-day certificates, at the points of their cycle that matter: an hour before certbot renews,
renewal overdue, and 5% of the lifetime left).

A lifetime-relative rule reads the lifetime from the notBefore and notAfter timestamps the service
exports, e.g. CertificateExpiringWarning on `stemedb_tls_cert_expiry_seconds <
(stemedb_tls_cert_not_after_timestamp_seconds - stemedb_tls_cert_not_before_timestamp_seconds) / 3`:
a third of the lifetime left is the runbook's 30 days of a 90-day certificate, and where certbot
4.0 and later renew a shorter one.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from certaudit.host.facts import Promtool

METRIC = "stemedb_tls_cert_expiry_seconds"
WARNING_ALERT = "CertificateExpiringWarning"
SOON_ALERT = "CertificateExpiringSoon"
NOT_BEFORE_METRIC = "stemedb_tls_cert_not_before_timestamp_seconds"
NOT_AFTER_METRIC = "stemedb_tls_cert_not_after_timestamp_seconds"
_THRESHOLD = re.compile(r"^\s*\(?\s*" + METRIC + r"\s*(\{[^{}]*\})?\s*\)?\s*(?P<op><=?)\s*(?P<rhs>[0-9.()\s*+/-]+?)\s*$")
_OPERATORS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


class RulesError(ValueError):
    """A config or rule file Prometheus would refuse; the message names the file and the cause."""


@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: str
    for_: str
    file: str
    group: str

    def as_evidence(self) -> dict[str, str]:
        return {"alert": self.name, "expr": self.expr, "for": self.for_ or "0s", "file": self.file, "group": self.group}


def _yaml(text: str, path: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RulesError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', None) or 'parse error'}") from None


def config_rule_files(text: str, path: str) -> list[str]:
    """The `rule_files:` patterns of a Prometheus config."""
    document = _yaml(text, path)
    if document is None:
        return []
    if not isinstance(document, dict):
        raise RulesError(f"{path} is not a Prometheus config (a YAML mapping)")
    patterns = document.get("rule_files") or []
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise RulesError(f"{path}: rule_files is not a list of file patterns")
    return list(patterns)


def alert_rules(text: str, path: str) -> list[AlertRule]:
    """Every alerting rule of a rule file (recording rules are skipped)."""
    document = _yaml(text, path)
    if document is None:
        return []
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list):
        raise RulesError(f"{path} is not a Prometheus rule file (no list of groups)")
    found: list[AlertRule] = []
    for group in groups:
        if not isinstance(group, dict) or not isinstance(group.get("rules", []), list):
            raise RulesError(f"{path}: a group is not a mapping with a list of rules")
        for rule in group.get("rules") or []:
            if not isinstance(rule, dict) or "alert" not in rule:
                continue
            if not isinstance(rule.get("expr"), str | int | float):
                raise RulesError(f"{path}: alert {rule.get('alert')!r} has no expr")
            found.append(
                AlertRule(str(rule["alert"]), str(rule["expr"]), str(rule.get("for", "")), path, str(group.get("name", "")))
            )
    return found


def _arithmetic(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _arithmetic(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_arithmetic(node.left), _arithmetic(node.right))
    raise ValueError("not plain arithmetic")


def static_threshold(expr: str) -> float | None:
    """The seconds below which `expr` fires when it reads `metric{...} < arithmetic`; None for any other form."""
    match = _THRESHOLD.match(" ".join(expr.split()))
    if not match:
        return None
    rhs = match.group("rhs")
    if len(rhs) > 200:
        return None
    try:
        return _arithmetic(ast.parse(rhs, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, OverflowError):
        return None


@dataclass(frozen=True)
class PointResult:
    days: int
    expected: tuple[str, ...]
    fired: tuple[str, ...] | None  # None: promtool reported nothing for this point (it passed, or did not run)
    ok: bool

    def describe(self) -> str:
        expected = ", ".join(self.expected) or "no alert"
        if self.ok:
            return f"at {self.days} days: {expected}, as expected"
        fired = ", ".join(self.fired or ()) or "no alert"
        return f"at {self.days} days: {fired} fired, expected {expected}"


_FAILED_AT = re.compile(r"# at (\d+) days")
_FAILED_LIFETIME = re.compile(r"# lifetime (\d{1,4}) point ([0-9.]{1,12}) days")
_GOT = re.compile(r"^\s*got:\s*(.*)$")
_ALERTNAME = re.compile(r'alertname="([^"]+)"')


def _failures(output: str) -> tuple[dict[int, tuple[str, ...]], dict[tuple[int, str], tuple[str, ...]]]:
    """What fired at each failed point: the runbook's points by days, the lifetime points by (lifetime, days)."""
    failed: dict[int, tuple[str, ...]] = {}
    failed_lifetime: dict[tuple[int, str], tuple[str, ...]] = {}
    current: int | tuple[int, str] | None = None
    for line in output.splitlines():
        at = _FAILED_AT.search(line)
        of = _FAILED_LIFETIME.search(line)
        if at:
            current = int(at.group(1))
            continue
        if of:
            current = (int(of.group(1)), of.group(2))
            continue
        got = _GOT.match(line)
        if got and current is not None:
            fired = tuple(_ALERTNAME.findall(got.group(1)))
            if isinstance(current, int):
                failed[current] = fired
            else:
                failed_lifetime[current] = fired
            current = None
    return failed, failed_lifetime


def promtool_points(promtool: Promtool) -> tuple[list[PointResult], str | None]:
    """What promtool proved at each point; the second value explains a run that proved nothing."""
    if promtool.error:
        return [], promtool.error
    output = promtool.output
    failed, failed_lifetime = _failures(output)
    if promtool.rc != 0 and not failed and not failed_lifetime:
        lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("Unit Testing")]
        return [], "promtool could not test the rules: " + ("; ".join(lines)[:400] or f"exit {promtool.rc}")
    results = [PointResult(days, expected, failed.get(days), days not in failed) for days, expected in promtool.points]
    return results, None


@dataclass(frozen=True)
class LifetimePoint:
    """One point of a shorter certificate's cycle, and what the rules did there."""

    lifetime: int
    days: float
    expected: tuple[str, ...]
    fired: tuple[str, ...]  # what fires there: the expected alerts where promtool reported no failure
    ok: bool

    def describe(self) -> str:
        where = f"{self.lifetime}-day certificate at {self.days:g} days left"
        expected = ", ".join(self.expected) or "no alert"
        if self.ok:
            return f"{where}: {expected}, as expected"
        return f"{where}: {', '.join(self.fired) or 'no alert'} fired, expected {expected}"

    def as_evidence(self) -> dict[str, object]:
        return {"lifetime_days": self.lifetime, "days_left": self.days, "fired": list(self.fired), "ok": self.ok}


def lifetime_points(promtool: Promtool) -> list[LifetimePoint]:
    """The lifetime points promtool proved (empty when promtool proved nothing: see promtool_points)."""
    if promtool.error:
        return []
    _, failed = _failures(promtool.output)
    results = []
    for lifetime, days, expected in promtool.lifetime_points:
        fired = failed.get((lifetime, _tag_days(days)))
        results.append(LifetimePoint(lifetime, days, expected, expected if fired is None else fired, fired is None))
    return results


def _tag_days(days: float) -> str:
    """The days as the probe's tag wrote them (Python's str of the rounded float)."""
    return str(days)


def lifetime_relative(expr: str) -> bool:
    """Whether an alert's expression reads the certificate's lifetime (its notBefore or notAfter)."""
    return NOT_BEFORE_METRIC in expr or NOT_AFTER_METRIC in expr
