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


ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"


def drawn_floors() -> dict:
    """``{module: floor}`` as the drawing of docs/architecture.md places them: a line
    ``floor N`` starts a floor; ``mdsim/x.py`` is a module, ``mdsim/x/`` a room whose
    modules are the names that follow it (on its line and the indented lines below)."""
    import re

    text = ARCHITECTURE.read_text()
    block = text.split("## The house, floor by floor", 1)[1].split("```", 2)[1]
    modules = module_files()
    floors, floor, room = {}, None, None
    for line in block.splitlines():
        head = re.match(r"floor (\d+)\b", line)
        if head:
            floor = int(head.group(1))
        tokens = re.findall(r"mdsim/[\w/]*?(?:\.py\b|/)", line)
        if tokens:
            room = None
        for token in tokens:
            if token.endswith(".py"):
                floors[token[:-3].replace("/", ".").removesuffix(".__init__")] = floor
            else:
                room = token.rstrip("/").replace("/", ".")
        if room is not None:
            after = line.split(room.replace(".", "/") + "/", 1)[-1]
            for word in re.findall(r"\b[a-z_]+\b", after):
                name = room if word == "__init__" else f"{room}.{word}"
                if name in modules and name not in floors:
                    floors[name] = floor
        elif not line.startswith(" "):
            room = None
    return floors


def test_architecture_names_every_module():
    import re

    text = ARCHITECTURE.read_text()
    floors = drawn_floors()
    missing = sorted(set(module_files()) - set(floors))
    assert not missing, f"docs/architecture.md does not draw: {', '.join(missing)}"
    gone = sorted(p for p in re.findall(r"mdsim/[\w/]*\.py\b", text) if not (PACKAGE.parent / p).is_file())
    assert not gone, f"docs/architecture.md names modules that do not exist: {', '.join(gone)}"


def test_architecture_arrows_point_down():
    """Every import goes to a lower floor of the drawing, or stays in its own room."""
    floors = drawn_floors()

    def room(name):
        return ".".join(name.split(".")[:2])

    up = [f"{m} (floor {floors[m]}) imports {d} (floor {floors[d]})"
          for m, targets in import_graph().items() for d in sorted(targets)
          if m in floors and d in floors
          and (floors[d] > floors[m] or (floors[d] == floors[m] and room(d) != room(m)))]
    assert not up, "docs/architecture.md's floors are not the imports': " + "; ".join(up)
