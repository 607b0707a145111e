"""The shape of the house: no import circles between mdsim's modules.

Every ``import`` of a module counts, the ones inside functions included: a lazy
import is still an arrow from one room to another, and a circle means a shared
piece belongs in a room below both (docs/architecture.md).
"""

import ast
from pathlib import Path

import mdsim

PACKAGE = Path(mdsim.__file__).parent


def module_files() -> dict:
    """``{dotted module name: path}`` of every module under mdsim/."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _owner(name: str, modules) -> str | None:
    """The module that ``name`` (a module or a name in one) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict:
    """``{module: {modules it imports}}`` over mdsim's modules, from their source."""
    modules = module_files()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {t for t in (_owner(t, modules) for t in targets if t.split(".")[0] == "mdsim")
                       if t and t != name}
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_graph_sees_lazy_imports():
    graph = import_graph()
    assert "mdsim.features.pipeline" in graph
    assert "mdsim.errors" in graph["mdsim.audio"]  # a module-level import
    assert "mdsim.locking" in graph["mdsim.features.store"]  # an import inside a function


def test_cycles_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import circles between mdsim's modules (move the shared piece down): " + \
        "; ".join(" <-> ".join(c) for c in found)
