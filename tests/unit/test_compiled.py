"""The optional compiled fast path (setup.py: mypyc over the request path).

CI runs the whole suite twice: on the pure-Python sources, then on a build
with ``DUMBWAITER_COMPILE=1`` and ``DUMBWAITER_EXPECT_COMPILED=1``, so that the
compiled modules pass the same tests and this file checks they really ran.
"""

from __future__ import annotations

import ast
import importlib
import os
import pathlib
import subprocess
import sys

import pytest

from dumbwaiter.server.worker import compiled

ROOT = pathlib.Path(__file__).resolve().parents[2]  # tests/unit/ -> the repo
EXPECTED = os.environ.get("DUMBWAITER_EXPECT_COMPILED") == "1"


def modules() -> list[str]:
    """setup.py's COMPILED list, read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "COMPILED":
            paths: list[str] = ast.literal_eval(node.value)
            return [p.removeprefix("src/").removesuffix(".py").replace("/", ".") for p in paths]
    raise AssertionError("setup.py has no COMPILED list")


def test_the_compiled_list_names_real_modules() -> None:
    names = modules()
    assert "dumbwaiter.protocols.fastcgi" in names
    for name in names:
        assert (ROOT / "src" / (name.replace(".", "/") + ".py")).is_file(), name


@pytest.mark.parametrize("name", modules())
def test_each_module_is_what_this_run_expects(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert module.__file__.endswith(".py") is not EXPECTED, module.__file__
    assert compiled() is EXPECTED


def test_the_version_says_which_build_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dumbwaiter", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    build = "compiled" if EXPECTED else "pure Python"
    assert result.stdout.strip().endswith(f"({build})"), result.stdout
