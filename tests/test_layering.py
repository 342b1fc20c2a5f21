"""The package's imports go down the data flow (DESIGN.md "Layout"), read from the source.

tagging < storage < ingest < analysis < the surfaces (server, cli, monitor, ...): a module
imports only from its own package and from packages of a lower layer. The cross-cutting
root modules (config, errors, processes, the package's lazy public names) may be imported
from anywhere and import no layer themselves (the lazy names in ``__init__`` excepted).
Imports under ``TYPE_CHECKING`` and inside functions count too: they are dependencies all
the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "chainmap_otel"

#: Lowest first. Packages of one layer may not import each other, except the surfaces
#: (which still may not import each other both ways).
LAYERS = (
    {"tagging"},
    {"storage"},
    {"ingest"},
    {"analysis", "registry"},  # registry: the chain registry in PostgreSQL, beside the analyses
    {"server", "cli", "monitor", "grafana", "collector", "demo"},  # the surfaces
)
SURFACES = LAYERS[-1]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}

#: (importing module, imported package) pairs that break the rules, each with its reason.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # `chainmap demo` (cli/demo.py) runs the demo, and the demo's report prints its tables
    # with the CLI's table helper (cli/app.py fitted_table): cli and demo import each other.
    ("chainmap_otel.demo.report", "cli"): "the demo report borrows the CLI's table helper",
}

#: TraceStore methods that write; in analysis/ only the rollups (analysis/rollups/) call them.
STORE_WRITES = {"command", "insert_spans", "insert_arrow", "insert_columns"}


def modules() -> list[tuple[str, ast.Module]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, ast.parse(path.read_text(encoding="utf-8"))))
    return found


def imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] == "chainmap_otel"}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def test_imports_go_down_the_data_flow() -> None:
    wrong = []
    used: dict[str, set[str]] = {}
    for module, tree in modules():
        source = package_of(module)
        for imported in imports(tree):
            target = package_of(imported)
            if target is None or target == source:
                continue
            if source is None:  # a root module: only the package's lazy names may look up
                if module != "chainmap_otel":
                    wrong.append(f"{module} imports {imported}")
                continue
            if (module, target) in EXCEPTIONS:
                continue
            used.setdefault(source, set()).add(target)
            if not (RANK[target] < RANK[source] or {source, target} <= SURFACES):
                wrong.append(f"{module} imports {imported}")
    assert sorted(set(wrong)) == []
    mutual = [(a, b) for a in used for b in used[a] if a < b and a in used.get(b, set())]
    assert mutual == [], "no two packages import each other"


def test_only_the_rollups_write_to_the_store_from_analysis() -> None:
    writers = []
    for module, tree in modules():
        if package_of(module) != "analysis" or module.startswith("chainmap_otel.analysis.rollups"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and (
                node.attr in STORE_WRITES or node.attr == "client"
            ):
                writers.append(f"{module}:{node.lineno} .{node.attr}")
    assert writers == []


def test_the_rules_see_the_imports_they_judge() -> None:
    found = dict(modules())
    assert "chainmap_otel.storage.store" in imports(found["chainmap_otel.ingest.inserter"])
    assert "chainmap_otel.ingest.files" in imports(found["chainmap_otel.cli.store"])


def test_every_package_has_a_layer() -> None:
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages == set(RANK)
