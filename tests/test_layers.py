"""course_lib imports in one direction: a layer imports only from itself and the layers below, the import graph
has no cycle, and course_lib imports sit at the top of each file (a reader sees a module's dependencies there).

Layers, bottom to top (CONTRIBUTING.md, "Layout"):
  0 foundation: offline (hub check, what served, run log), atomic, checks
  1 runtime: device, checkpoint
  2 concepts, in lab order: data, tokenization, attention, model, objectives, training, generation, ...
  3 loaders that use the whole library: standins, hub, model_cards, real_model_fixture
  4 top: plotting, the lab runner, grading, train_ddp
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "course_lib"
LAYERS = [
    {"offline", "atomic", "checks"},
    {"device", "checkpoint"},
    None,  # every module not named elsewhere: the concepts
    {"standins", "hub", "model_cards", "real_model_fixture"},
    {"plotting", "labs", "grading", "train_ddp"},
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name or "__init__"] = path
    return out


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if names is not None and top in names:
            return i
    return 2


def _imports(module: str, path: Path, modules: dict) -> list[tuple[str, int, bool]]:
    """(imported course_lib module, line, inside a function) for every course_lib import of ``module``."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[: len(package) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        elif (node.module or "").startswith("course_lib."):
            target = node.module[len("course_lib."):]
        else:
            continue
        candidates = [target] if node.module else [f"{target}.{a.name}".strip(".") for a in node.names]
        for cand in candidates:
            while cand and cand not in modules:
                cand = cand.rpartition(".")[0]
            if cand and cand != module:
                found.append((cand, node.lineno, id(node) in in_function))
    return found


MODULES = _modules()
GRAPH = {m: _imports(m, p, MODULES) for m, p in MODULES.items()}


def test_no_import_runs_back_up_a_layer():
    upward = [f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)}), line {line}"
              for m, edges in GRAPH.items() for t, line, _ in edges
              if _layer(t) > _layer(m) and m.split(".")[0] != t.split(".")[0]]
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_cycle():
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t, _, _ in GRAPH.get(m, []):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in MODULES:
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_course_lib_imports_sit_at_the_top_of_each_file():
    hidden = [f"{m}: {t}, line {line}" for m, edges in GRAPH.items() for t, line, inside in edges if inside]
    assert not hidden, "function-local course_lib imports hide a module's dependencies:\n" + "\n".join(hidden)


@pytest.mark.parametrize("module", ["offline", "atomic", "checks"])
def test_the_foundation_imports_nothing_of_course_lib(module):
    assert not GRAPH[module], GRAPH[module]
