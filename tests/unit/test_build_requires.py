"""The compiled build asks for what mypy must read: every typed third-party
package a compiled module imports (an isolated build has nothing else)."""

from __future__ import annotations

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Imported by compiled modules, but untyped: pyproject's mypy settings
#: declare them missing, so the build needs none of them.
UNTYPED = {"httptools", "uvloop", "tomli"}


def compiled_modules() -> list[pathlib.Path]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            return [ROOT / path for path in value]
    raise AssertionError("no COMPILED in setup.py")


def third_party(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names} - {"dumbwaiter"}


def test_the_compiled_build_asks_for_every_typed_import() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        import build_backend
    finally:
        sys.path.remove(str(ROOT))
    asked = {requirement.split(">")[0].split("=")[0] for requirement in build_backend.TYPED_IMPORTS}
    imported = set().union(*(third_party(path) for path in compiled_modules()))
    assert "wsproto" in imported  # (the check sees the imports)
    assert imported - UNTYPED == asked
