"""A copy of course_lib in which the exercises' reference functions are unavailable.

Grading runs a submission a second time with this copy mounted over the real
package (``sandbox.Isolation.overlays``), so an answer that calls the reference
implementation (by any alias, a saved copy, or by re-reading the source file)
fails there and earns nothing. Only the named functions change: each body becomes
one ``raise`` naming the function.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # the course_lib folder
MESSAGE = "{name} is unavailable while an answer is graded: the exercise asks you to write it yourself"


class ReferenceError_(LookupError):
    """A reference name that names no function in course_lib."""


def _module_file(parts: list[str]) -> tuple[Path, list[str]]:
    """The source file of the longest module prefix of ``parts`` (below course_lib) and the remaining names."""
    for cut in range(len(parts), 0, -1):
        base = PACKAGE.joinpath(*parts[:cut])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate, parts[cut:]
    raise ReferenceError_(f"no course_lib module in {'.'.join(parts)!r}")


class _Stub(ast.NodeTransformer):
    def __init__(self, path: list[str], name: str):
        self.path, self.name, self.stack, self.done = path, name, [], False

    def _visit_scope(self, node):
        self.stack.append(node.name)
        if self.stack == self.path and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            message = ast.Constant(MESSAGE.format(name=self.name))
            node.body = [ast.Raise(exc=ast.Call(ast.Name("RuntimeError", ast.Load()), [message], []), cause=None)]
            self.done = True
        elif self.path[: len(self.stack)] == self.stack:
            self.generic_visit(node)
        self.stack.pop()
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_scope


def poisoned_copy(references: list[str], dest: str | Path) -> Path:
    """Copy course_lib into ``dest/course_lib`` with every function in ``references`` made to raise; return it.

    A reference is the dotted name where the function is defined, e.g.
    ``course_lib.tokenization.pair_frequencies`` or ``course_lib.model.DecoderOnlyLM.num_parameters``.
    """
    target = Path(dest) / "course_lib"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    by_file: dict[Path, list[tuple[list[str], str]]] = {}
    for name in references:
        parts = name.split(".")
        if parts[0] != "course_lib" or len(parts) < 3:
            raise ReferenceError_(f"{name!r}: a reference is a course_lib function, e.g. course_lib.tokenization.apply_merge")
        source, inner = _module_file(parts[1:])
        if not inner:
            raise ReferenceError_(f"{name!r} names a module, not a function")
        by_file.setdefault(source, []).append((inner, name))
    for source, stubs in by_file.items():
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for inner, name in stubs:
            stub = _Stub(inner, name)
            stub.visit(tree)
            if not stub.done:
                raise ReferenceError_(f"{name!r}: no function {'.'.join(inner)} in {source.relative_to(PACKAGE.parent)}")
        (target / source.relative_to(PACKAGE)).write_text(ast.unparse(ast.fix_missing_locations(tree)) + "\n", encoding="utf-8")
    return target
