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
