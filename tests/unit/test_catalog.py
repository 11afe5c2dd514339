"""The control catalog: every id unique, well formed, documented in code and in the README."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from certaudit.controls import ID_RE, REGISTRY, CatalogError, control, parse_docstring

REPO = Path(__file__).resolve().parents[2]
CHECK_MODULES = sorted(p.stem for p in (REPO / "checks").glob("test_*.py"))
RUNBOOK_CONTROLS = {"REN-01", "REN-02", "REN-03", "KEY-01", "KEY-02", "CRT-01", "LIVE-01"}


@pytest.fixture(scope="module")
def catalog() -> dict[str, object]:
    for module in CHECK_MODULES:
        importlib.import_module(f"checks.{module}")
    return dict(REGISTRY)


def test_runbook_controls_are_all_there(catalog: dict[str, object]) -> None:
    assert set(catalog) >= RUNBOOK_CONTROLS


def test_every_control_is_documented(catalog: dict[str, object]) -> None:
    for control_id, meta in REGISTRY.items():
        assert ID_RE.fullmatch(control_id)
        assert meta.title[0].isupper() and not meta.title.endswith("."), meta.title
        assert len(meta.rationale) > 40 and len(meta.check) > 40 and len(meta.fix) > 10, control_id
        assert meta.source, control_id


def test_readme_catalog_matches_the_code(catalog: dict[str, object]) -> None:
    readme = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^\| ([A-Z]{3,4}-\d{2}) \| (.+?) \|", readme, re.MULTILINE))
    assert set(rows) == set(REGISTRY), "README's catalog table and checks/ disagree"
    for control_id, title in rows.items():
        assert title == REGISTRY[control_id].title, control_id
    gates = set(re.findall(r"^\| ([A-Z]{3,4}-\d{2}) \| .+? \| yes \|$", readme, re.MULTILINE))
    assert gates == {c for c, m in REGISTRY.items() if m.gate}


def test_one_function_per_id(catalog: dict[str, object]) -> None:
    functions = [m.function for m in REGISTRY.values()]
    assert len(functions) == len(set(functions))
    with pytest.raises(CatalogError, match="is used twice"):

        @control("KEY-01", title="Duplicate", source="test")
        def test_duplicate() -> None:
            """Rationale: r. Check: c. Fix: f."""


def test_malformed_ids_and_docstrings_are_refused() -> None:
    with pytest.raises(CatalogError, match="not a control id"):
        control("key-1", title="x", source="y")
    with pytest.raises(CatalogError, match="lacks Check, Fix"):
        parse_docstring("Rationale: only this.", "XYZ-01")
    assert parse_docstring("Rationale: a b.\n\n Check: c\n d.\n Fix: e.", "XYZ-01") == {
        "rationale": "a b.",
        "check": "c d.",
        "fix": "e.",
    }
