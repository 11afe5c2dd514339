"""The control catalog: each control is a test function in checks/ carrying one stable id.

`@control(...)` records the id, the imperative title, the runbook source, whether the pre-deploy
gate runs it, and when it does not apply; the function's docstring carries the rationale, the
check and the fix, in three paragraphs headed `Rationale:`, `Check:` and `Fix:`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from certaudit.policy import Policy

ID_RE = re.compile(r"^[A-Z]{3,4}-\d{2}$")
SECTIONS = ("Rationale", "Check", "Fix")

Applicability = Callable[[Policy], "str | None"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    source: str
    rationale: str
    check: str
    fix: str
    gate: bool
    not_applicable: Applicability | None
    function: str

    def reason_not_applicable(self, policy: Policy) -> str | None:
        return self.not_applicable(policy) if self.not_applicable else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "source": self.source,
            "rationale": self.rationale,
            "check": self.check,
            "fix": self.fix,
            "gate": self.gate,
        }


REGISTRY: dict[str, Control] = {}


class CatalogError(ValueError):
    pass


def parse_docstring(doc: str | None, control_id: str) -> dict[str, str]:
    text = " ".join((doc or "").split())
    found: dict[str, str] = {}
    pattern = re.compile(r"\b(" + "|".join(SECTIONS) + r"):\s*")
    matches = list(pattern.finditer(text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(text)
        found[match.group(1).lower()] = text[match.end() : end].strip()
    missing = [s for s in SECTIONS if not found.get(s.lower())]
    if missing:
        raise CatalogError(f"{control_id}: the docstring lacks {', '.join(missing)}")
    return found


def control(
    control_id: str,
    *,
    title: str,
    source: str,
    gate: bool = False,
    not_applicable: Applicability | None = None,
) -> Callable[[F], F]:
    """Declare a test function as the control `control_id`."""
    if not ID_RE.fullmatch(control_id):
        raise CatalogError(f"{control_id!r} is not a control id like KEY-01")

    def register(function: F) -> F:
        sections = parse_docstring(function.__doc__, control_id)
        meta = Control(
            id=control_id,
            title=title,
            source=source,
            gate=gate,
            not_applicable=not_applicable,
            rationale=sections["rationale"],
            check=sections["check"],
            fix=sections["fix"],
            function=f"{function.__module__}.{function.__qualname__}",
        )
        previous = REGISTRY.get(control_id)
        if previous is not None and previous.function != meta.function:
            raise CatalogError(f"control id {control_id} is used twice: {previous.function} and {meta.function}")
        REGISTRY[control_id] = meta
        function.__certaudit_control__ = meta  # type: ignore[attr-defined]
        return function

    return register


def control_of(function: object) -> Control | None:
    meta = getattr(function, "__certaudit_control__", None)
    return meta if isinstance(meta, Control) else None


def renewal_by_certbot(policy: Policy) -> str | None:
    """The REN-* controls judge certbot's automation; a custom-CA host renews by hand, and a host
    that receives its domain's certificate (`certaudit_renews: false`) does not renew at all."""
    if policy.renewal == "custom-ca":
        return "certaudit_renewal is custom-ca: this host's certificate is renewed through its CA, not by certbot"
    if not policy.renews:
        # Behind a balancer one host renews the domain and the others receive its certificate (FLT-01).
        return "certaudit_renews is false: this host receives its certificate from its domain's renewer, it does not renew"
    return None
