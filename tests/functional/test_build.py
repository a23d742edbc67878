"""What ``pip install .`` builds (build_backend.py, setup.py): the compiled
build where it can be compiled, else the pure-Python one with one line
saying why.  The compiled build itself is built and tested by
``./run-tests-compiled``; here, the two ways to the pure one, as real pip
builds of this source tree (without build isolation: the test venv has
setuptools and mypy)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def build_wheel(tmp_path: pathlib.Path, **env: str) -> tuple[pathlib.Path, str]:
    """The wheel pip builds here with ``env`` added, and pip's output."""
    pip = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*pip, "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = tmp_path.glob("dumbwaiter-*.whl")
    return wheel, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"DUMBWAITER_PURE": "1"}, "DUMBWAITER_PURE=1"),
        ({"CC": "/nonexistent/cc"}, "no C compiler (/nonexistent/cc)"),
    ],
)
def test_the_pure_build_when_asked_or_without_a_compiler(
    tmp_path: pathlib.Path, env: dict[str, str], why: str
) -> None:
    wheel, output = build_wheel(tmp_path, **env)
    said = [line.strip() for line in output.splitlines() if line.strip().startswith("dumbwaiter: ")]
    assert said == [f"dumbwaiter: {why}: installing the pure-Python build"], said
    assert wheel.name.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dumbwaiter/server/session.py" in names
    assert not [name for name in names if name.endswith(".so")]
