"""The protocol layer stays sans-IO: nothing under protocols/ may import I/O."""

from __future__ import annotations

import ast
import pathlib

import dumbwaiter.protocols

FORBIDDEN = {"socket", "asyncio", "threading", "selectors", "logging", "time", "os"}
PROTOCOLS_DIR = pathlib.Path(dumbwaiter.protocols.__file__).parent


def imported_modules(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level >= 2:
            names.add("dumbwaiter-outside-protocols")
    return names


def test_there_are_protocol_modules() -> None:
    found = {p.stem for p in PROTOCOLS_DIR.glob("*.py")}
    assert {"fastcgi", "http", "events", "errors"} <= found


def test_protocols_import_no_io() -> None:
    offenders = {}
    for path in sorted(PROTOCOLS_DIR.glob("*.py")):
        bad = imported_modules(path) & (FORBIDDEN | {"dumbwaiter-outside-protocols"})
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_the_check_can_fail(tmp_path: pathlib.Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import asyncio\nfrom ..server import x\n")
    assert imported_modules(sample) == {"asyncio", "dumbwaiter-outside-protocols"}


# -- server/ is one serving process: it never imports the master (process/) ----

SERVER_DIR = pathlib.Path(dumbwaiter.protocols.__file__).parent.parent / "server"


def absolute_imports(path: pathlib.Path, package: str) -> set[str]:
    """Every module that ``path`` (a module of ``package``) names in an
    import, absolute and dotted, wherever the statement is: a function, a
    ``TYPE_CHECKING`` block.  ``from .. import x`` counts ``x`` as a module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def imports_the_master(names: set[str]) -> set[str]:
    return {n for n in names if n == "dumbwaiter.process" or n.startswith("dumbwaiter.process.")}


def test_server_never_imports_the_master() -> None:
    modules = sorted(SERVER_DIR.rglob("*.py"))
    assert len(modules) > 5
    offenders = {}
    for path in modules:
        package = ".".join(["dumbwaiter", *path.parent.relative_to(SERVER_DIR.parent).parts])
        found = imports_the_master(absolute_imports(path, package))
        if found:
            offenders[str(path.relative_to(SERVER_DIR.parent))] = sorted(found)
    assert offenders == {}


def test_the_server_check_can_fail(tmp_path: pathlib.Path) -> None:
    sample = tmp_path / "sample.py"
    for line in (
        "from ..process.arbiter import Arbiter",
        "from .. import process",
        "import dumbwaiter.process.status",
        "from dumbwaiter.process import Monitor",
        "if TYPE_CHECKING:\n    from ..process import child",
        "def f():\n    from ..process.upgrade import Upgrade",
    ):
        sample.write_text(line + "\n")
        assert imports_the_master(absolute_imports(sample, "dumbwaiter.server")), line
    sample.write_text("from ..config import Config\nfrom . import process\nimport processing\n")
    assert imports_the_master(absolute_imports(sample, "dumbwaiter.server")) == set()
