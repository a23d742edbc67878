"""The build backend: setuptools', choosing the build before it starts.

``pip install .`` and ``python -m build`` give the compiled build (the
request path compiled by mypyc, see setup.py) when this machine can build
it: a C compiler and the Python headers are present.  Otherwise, or with
``DUMBWAITER_PURE=1``, the pure-Python build, which runs the same code.
``DUMBWAITER_COMPILE=1`` insists on the compiled one (a build that cannot
compile fails).  An editable install (``pip install -e .``) is pure: its
modules are the sources being edited.

What this adds to setuptools: the build asks for mypy only when it will
compile, so a pure build installs nothing more.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from typing import Any

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403  (the rest of the PEP 517 hooks)

#: The mypy that compiles (mypyc comes with it), and the typed package the
#: compiled modules import, which mypy reads (httptools and uvloop have no
#: types: they are declared missing in pyproject's mypy settings).
MYPY = "mypy>=1.10"
TYPED_IMPORTS = ["wsproto>=1.2"]


def pure_because() -> str:
    """Why this build is pure Python ("" when it compiles)."""
    if os.environ.get("DUMBWAITER_PURE") == "1":
        return "DUMBWAITER_PURE=1"
    if os.environ.get("DUMBWAITER_COMPILE") == "1":
        return ""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if not shutil.which(compiler):
        return f"no C compiler ({compiler})"
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        return f"no Python headers ({include}/Python.h; Debian: apt install python3-dev)"
    return ""


def say(line: str) -> None:
    print(f"dumbwaiter: {line}", file=sys.stderr)


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    needs: list[str] = build_meta.get_requires_for_build_wheel(config_settings)
    return needs if pure_because() else [*needs, MYPY, *TYPED_IMPORTS]


def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:
    needs: list[str] = build_meta.get_requires_for_build_editable(config_settings)
    return needs


def build_editable(
    wheel_directory: str, config_settings: Any = None, metadata_directory: str | None = None
) -> str:
    os.environ["DUMBWAITER_PURE"] = "1"  # (this process only: the build's)
    os.environ.pop("DUMBWAITER_COMPILE", None)
    name: str = build_meta.build_editable(wheel_directory, config_settings, metadata_directory)
    return name
