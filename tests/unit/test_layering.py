"""The layers stay apart: nothing under protocols/ imports I/O, the session
layer does no I/O, the gateway imports neither the settings nor the server,
server/ never imports the master (process/), and no module imports, however
indirectly, one that imports it."""

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


# -- the session layer does no I/O; the gateway is given its settings -------------

PACKAGE_DIR = SERVER_DIR.parent
#: The modules that decide for both drivers: no sockets, loop or threads.
SESSION_LAYER = ("server/session.py", "server/exchange.py", "server/deadlines.py")
NO_IO = {"socket", "_socket", "asyncio", "threading", "selectors", "select"}


def test_the_session_layer_imports_no_io() -> None:
    offenders = {}
    for name in SESSION_LAYER:
        path = PACKAGE_DIR / name
        bad = {n.split(".")[0] for n in absolute_imports(path, "dumbwaiter.server")} & NO_IO
        if bad:
            offenders[name] = sorted(bad)
    assert offenders == {}


def test_the_gateways_do_not_import_the_settings_or_the_server() -> None:
    offenders = {}
    for path in sorted((PACKAGE_DIR / "wsgi").glob("*.py")):
        names = absolute_imports(path, "dumbwaiter.wsgi")
        bad = {
            n
            for n in names
            if n == "dumbwaiter.config" or n.startswith(("dumbwaiter.server", "dumbwaiter.process"))
        }
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


# -- no import cycle anywhere in the package ----------------------------------------


def module_of(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: pathlib.Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, from every import statement
    (TYPE_CHECKING blocks and functions included): ``from .x import y``
    names module ``x.y`` if there is one, else ``x``."""
    paths = {module_of(path, root): path for path in root.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:
                    full = f"{module}.{alias.name}"
                    edges.add(full if full in paths else module)
        graph[name] = {edge for edge in edges if edge in paths and edge != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE_DIR)
    assert len(graph) > 50
    assert "dumbwaiter.server.session" in graph["dumbwaiter.server.connection"]
    assert cycles(graph) == []


def test_the_cycle_check_can_fail(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "dumbwaiter"
    (root / "server").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "server" / "__init__.py").write_text("")
    (root / "server" / "a.py").write_text("from . import b\n")
    (root / "server" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import X\n"
    )
    (root / "server" / "c.py").write_text("from .a import X\n")
    assert cycles(import_graph(root)) == [["dumbwaiter.server.a", "dumbwaiter.server.b"]]
    sample = root / "server" / "session.py"
    sample.write_text("import asyncio\nfrom socket import socket\n")
    assert {n.split(".")[0] for n in absolute_imports(sample, "dumbwaiter.server")} & NO_IO
    sample.write_text("from ..config import Config\n")
    assert "dumbwaiter.config" in absolute_imports(sample, "dumbwaiter.wsgi")


#: The declaration tables, the only modules allowed past MAX_LINES
#: (docs/ARCHITECTURE.md names them).
TABLES = {"config.py", "frontconf.py"}
MAX_LINES = 450


def too_long(root: pathlib.Path) -> list[str]:
    return [
        f"{path.relative_to(root)}: {count} lines"
        for path in sorted(root.rglob("*.py"))
        if path.name not in TABLES and (count := len(path.read_text().splitlines())) > MAX_LINES
    ]


def test_no_module_is_over_450_lines_but_the_tables() -> None:
    assert too_long(PROTOCOLS_DIR.parent) == []


def test_the_size_check_can_fail(tmp_path: pathlib.Path) -> None:
    (tmp_path / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "config.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert too_long(tmp_path) == [f"long.py: {MAX_LINES + 1} lines"]


def top_level_imports(root: pathlib.Path) -> dict[str, set[str]]:
    """As :func:`import_graph`, from the module bodies' own statements only
    (what importing the module imports at once)."""
    paths = {module_of(path, root): path for path in root.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.ImportFrom):
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:
                    full = f"{module}.{alias.name}"
                    edges.add(full if full in paths else module)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
        graph[name] = edges
    return graph


def test_a_wsgi_worker_imports_no_wsproto() -> None:
    # Debian's python3 runs a spawned FastCGI app (mod_fcgid) with copies of
    # the package and the app only: wsproto is imported once a WebSocket comes.
    graph = top_level_imports(PACKAGE_DIR)
    seen: set[str] = set()
    todo = ["dumbwaiter.main", "dumbwaiter.server.worker", "dumbwaiter.process.arbiter"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(edge for edge in graph.get(name, ()) if edge.startswith("dumbwaiter"))
    wsproto = {name for name in seen if any(e.startswith("wsproto") for e in graph.get(name, ()))}
    assert wsproto == set()
    assert "dumbwaiter.asgi.gateway" in seen  # (the check sees the ASGI gateway's imports)
