"""The layers of the engine, and no import cycles, checked on every ``make test``.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``): the engine's
sub-packages are layers (a module imports only from layers below its own); the engine
never imports a plugin (triggers and readers come through the registry); trigger plugins
use only the plugin API, the maths and the errors; readers only the plugin API, the
errors and shared infrastructure.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("panen.engine", "panen.triggers", "panen.datasets", "panen.testing")


def test_the_import_contracts_hold(monkeypatch, capsys):
    from importlinter.cli import lint_imports

    monkeypatch.chdir(REPO)
    code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 broken" in out and "engine layers KEPT" in out


def test_no_module_imports_itself_through_a_cycle():
    graph = grimp.build_graph(*PACKAGES)
    adjacency = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in adjacency[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert cycles == []


def test_a_layer_violation_would_be_caught(tmp_path, monkeypatch, capsys):
    """The contract can fail: the maths importing the pipeline breaks the layers."""
    from importlinter.cli import lint_imports

    text = (REPO / "pyproject.toml").read_text()
    config = tmp_path / "contracts.toml"
    config.write_text(text)
    bad = REPO / "engine" / "maths" / "_layer_probe.py"
    bad.write_text("from panen.engine.pipeline import steps  # noqa: F401\n")
    try:
        monkeypatch.chdir(REPO)
        code = lint_imports(config_filename=str(config), no_cache=True)
    finally:
        bad.unlink()
    assert code != 0
    assert "panen.engine.maths._layer_probe -> panen.engine.pipeline" in capsys.readouterr().out
