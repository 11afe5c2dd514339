"""The package's folders are its layers: every import points down, and no module imports itself back.

A fact flows upward: gather/ reads it, host/ gives it meaning, the checks judge it into a record,
jobs/ and evidence/ act on the records. A module may import its own layer or a lower one, never a
higher one; imports inside functions and under TYPE_CHECKING count too, since they tie the same knot.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "certaudit"

# Lowest first. A top-level module names its own layer; a folder's modules share the folder's.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("certaudit", "certaudit.errors", "certaudit.redact", "certaudit.readers"),
    ("certaudit.policy", "certaudit.controls", "certaudit.record", "certaudit.inventory", "certaudit.waivers"),
    ("certaudit.host",),
    ("certaudit.gather",),
    ("certaudit.jobs",),
    ("certaudit.audit",),
    ("certaudit.control_run",),
    ("certaudit.evidence",),
    ("certaudit.plugin", "certaudit.cli", "certaudit.host_fixture"),
)


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "certaudit":
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "certaudit"}
    return found


def layer_of(module: str) -> int:
    best = (-1, -1)  # (length of the matching prefix, layer)
    for index, members in enumerate(LAYERS):
        for member in members:
            if (module == member or module.startswith(member + ".")) and len(member) > best[0]:
                best = (len(member), index)
    if best[1] < 0:
        pytest.fail(f"{module} belongs to no layer: add it to LAYERS in {__file__}")
    return best[1]


MODULES = module_names()
GRAPH = {name: imports_of(path, MODULES) - {name, "certaudit"} for name, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_its_own_layer_or_lower(module: str) -> None:
    upward = sorted(dep for dep in GRAPH[module] if layer_of(dep) > layer_of(module))
    assert not upward, f"{module} (layer {layer_of(module)}) imports a higher layer: {upward}"


def test_no_import_circle() -> None:
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(GRAPH.get(node, ())):
            if state.get(dep) == 1:
                pytest.fail("import circle: " + " -> ".join([*path[path.index(dep) :], dep]))
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_each_layer_is_a_folder_a_newcomer_can_find() -> None:
    for folder in ("gather", "host", "host/certbot", "jobs", "evidence"):
        assert (PACKAGE / folder / "__init__.py").is_file(), folder
