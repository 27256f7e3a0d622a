"""The layering contract, checked over the import statements of the source tree (no module is
imported): data flows one way, and a stage never imports another stage.

    model/             torch only: never Spark, Delta or pipeline/
    pipeline/sources/  input adapters: no stage, and not the config (it imports them)
    pipeline/*.py      shared modules (schema, config, pairs, anchors, text, evidence, ...):
                       never a stage, never the runner
    pipeline/<stage>   each stage of runner.STAGES: shared modules only, never another stage
    pipeline/runner    the one module that imports the stages
    jobs/*.py          thin entry points: the runner only

Imports under ``if TYPE_CHECKING:`` are for annotations and do not count."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipeline.runner import STAGES

REPO = Path(__file__).resolve().parents[1]
STAGE_MODULES = {f"pipeline.{name}" for name in STAGES}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path, top_level_only: bool = False, text: str | None = None) -> set[str]:
    """Every module ``path`` imports at run time (``from a.b import c`` counts as a.b and, where
    c is a module of the tree, a.b.c); with ``top_level_only`` only the imports run when the
    module is loaded (not those inside functions)."""
    found: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                if not top_level_only:
                    visit(child, True)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.add(child.module)
                for alias in child.names:
                    if (REPO / Path(*f"{child.module}.{alias.name}".split("."))).with_suffix(".py").is_file():
                        found.add(f"{child.module}.{alias.name}")
            visit(child, in_function)

    visit(ast.parse(path.read_text() if text is None else text), False)
    return found


def sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (REPO / f).rglob("*.py"))


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(added: dict[Path, str] | None = None) -> list[str]:
    """What breaks the contract; ``added``: source text appended to files (to test the check)."""
    added = added or {}

    def imports_of(path: Path) -> set[str]:
        return imports(path, text=path.read_text() + added[path]) if path in added else imports(path)

    found = []
    for path in sources("model"):
        for name in imports_of(path):
            if _within(name, ("pipeline", "pyspark", "delta")):
                found.append(f"{module_name(path)} imports {name}: model/ never imports Spark, Delta or pipeline/")
    for path in sources("pipeline"):
        me = module_name(path)
        if me == "pipeline.runner":
            continue
        for name in imports_of(path):
            if name in STAGE_MODULES and name != me:
                what = "a stage imports shared modules only" if me in STAGE_MODULES else "only the runner imports stages"
                found.append(f"{me} imports the stage {name}: {what}; move what both need below them")
            if name == "pipeline.runner":
                found.append(f"{me} imports pipeline.runner: only jobs/ and tools import the runner")
            if me.startswith("pipeline.sources") and name == "pipeline.config":
                found.append(f"{me} imports pipeline.config at run time: the config imports the adapters "
                             "(import DatasetConfig under `if TYPE_CHECKING:`)")
    for path in sources("jobs"):
        for name in imports_of(path):
            if _within(name, ("pipeline", "model")) and name != "pipeline.runner":
                found.append(f"{module_name(path)} imports {name}: a job calls pipeline.runner only")
    return found


def load_cycles() -> list[list[str]]:
    """Cycles among the imports pipeline/ and model/ run when loaded."""
    graph = {module_name(p): {n for n in imports(p, top_level_only=True) if _within(n, ("pipeline", "model"))}
             for p in sources("pipeline", "model")}
    cycles, state = [], {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, trail + [nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            walk(start, [start])
    return cycles


def test_the_layers_hold():
    assert violations() == []


def test_no_import_cycle_when_modules_load():
    assert load_cycles() == []


@pytest.mark.parametrize("source, expected", [
    ("\nfrom pipeline.score import run\n", "pipeline.block imports the stage pipeline.score"),
    ("\ndef f():\n    from pipeline import merge\n", "pipeline.block imports the stage pipeline.merge"),
])
def test_the_contract_catches_a_sideways_import(source, expected):
    """The check is not vacuous: a stage importing another stage, at the top or inside a
    function, is reported."""
    assert any(expected in v for v in violations({REPO / "pipeline" / "block.py": source}))


def test_type_checking_imports_do_not_count(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pipeline.config import X\n")
    assert "pipeline.config" not in imports(module)
