"""The import graph of spu_sim, read from the source (ast; imports written inside functions included): it has no
cycle, every import goes down (or sideways within one layer of) the written layer order, and no spu_sim module
is imported inside a function (only the lazy facade spu_sim/__init__.py does that). README.md shows the same
order. A new module must be placed in a layer here, which is the point: its place is a decision."""

from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent.parent / "spu_sim"

#: lowest first; a module belongs to the first entry that is itself or one of its packages
LAYERS: list[tuple[str, ...]] = [
    ("errors", "registry", "io", "ideal", "plotting"),
    ("config",),
    ("circuit", "spice"),
    ("problems",),
    ("engines", "parts"),
    ("topologies",),
    ("run_config",),
    ("readout", "pipeline"),
    ("compare", "plots", "analyses", "posterior", "runs", "sweep", "sweep_plots", "experiments", "analog"),
    ("optim",),
    ("train",),
    ("cli",),
]
FACADE = "spu_sim"


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (f, is_pkg)
    return out


def _layer(module: str) -> int | None:
    rel = module.split(".")[1:]
    for level, names in enumerate(LAYERS):
        if rel and rel[0] in names:
            return level
    return None


def _imports(modules: dict[str, tuple[Path, bool]]) -> list[tuple[str, str, int, bool]]:
    """(importer, imported spu_sim module, line, inside a function) for every import in the package."""
    rows = []
    for mod, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_function = {id(n) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                       for n in ast.walk(fn)}
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                targets = [f"{name}.{a.name}" if f"{name}.{a.name}" in modules else name for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if not (t == FACADE or t.startswith(FACADE + ".")):
                    continue
                while t not in modules:
                    t = t.rpartition(".")[0]
                if t != mod:
                    rows.append((mod, t, node.lineno, id(node) in in_function))
    return rows


MODULES = _modules()
IMPORTS = _imports(MODULES)


def test_the_graph_is_read():
    assert len(MODULES) > 80 and len(IMPORTS) > 200


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if m != FACADE and _layer(m) is None)
    assert not missing, f"place these modules in LAYERS (tests/test_layers.py) and README's layer order: {missing}"


def upward(imports) -> list[str]:
    """The imports of ``imports`` (rows as _imports gives) that run up the layer order."""
    return [f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)}) at line {line}"
            for a, b, line, _ in imports if a != FACADE and b != FACADE and _layer(b) > _layer(a)]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_imports_go_down_the_layers():
    up = upward(IMPORTS)
    assert not up, "imports that run up the layers:\n" + "\n".join(up)


def test_nothing_imports_the_facade():
    assert not [(a, line) for a, b, line, _ in IMPORTS if b == FACADE]


def test_no_spu_sim_import_inside_a_function():
    inner = [f"{MODULES[a][0].relative_to(PACKAGE.parent)}:{line} imports {b}" for a, b, line, inside in IMPORTS
             if inside and a != FACADE]
    assert not inner, "imports inside functions hide the graph; move them to the top:\n" + "\n".join(inner)


def test_no_cycle():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for a, b, _, _ in IMPORTS:
        graph[a].add(b)
    assert not cycles(graph), f"import cycles: {cycles(graph)}"


def test_the_checks_reject_an_upward_import_and_a_cycle():
    """The two checks are not vacuous: an import from a topology up to the pipeline and a two-module circle are
    found."""
    assert upward([("spu_sim.topologies.opamp.build", "spu_sim.pipeline", 1, False)])
    assert not upward([("spu_sim.pipeline", "spu_sim.topologies.opamp.build", 1, False)])
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
