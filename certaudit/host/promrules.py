"""A Prometheus server's alert rules for the certificate metric (MON-02).

The runbook's two alerts must exist where Prometheus loads rules from (`rule_files:` of its
config, globs relative to the config's directory), on `stemedb_tls_cert_expiry_seconds`:
CertificateExpiringWarning under 30 days and CertificateExpiringSoon under 7. A threshold written
as `metric < <arithmetic>` is read here; any expression is proven by promtool where the host has
it (the probe runs `promtool test rules` with series at 31, 29, 8 and 6 days).
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
_GOT = re.compile(r"^\s*got:\s*(.*)$")
_ALERTNAME = re.compile(r'alertname="([^"]+)"')


def promtool_points(promtool: Promtool) -> tuple[list[PointResult], str | None]:
    """What promtool proved at each point; the second value explains a run that proved nothing."""
    if promtool.error:
        return [], promtool.error
    output = promtool.output
    failed: dict[int, tuple[str, ...]] = {}
    current: int | None = None
    for line in output.splitlines():
        at = _FAILED_AT.search(line)
        if at:
            current = int(at.group(1))
            continue
        got = _GOT.match(line)
        if got and current is not None:
            failed[current] = tuple(_ALERTNAME.findall(got.group(1)))
            current = None
    if promtool.rc != 0 and not failed:
        lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("Unit Testing")]
        return [], "promtool could not test the rules: " + ("; ".join(lines)[:400] or f"exit {promtool.rc}")
    results = [PointResult(days, expected, failed.get(days), days not in failed) for days, expected in promtool.points]
    return results, None
