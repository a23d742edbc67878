"""The version of dumbwaiter: a leaf, so that any module may import it
without importing the package's public face (which loads the server)."""

from __future__ import annotations

__all__ = ["__version__", "build"]

__version__ = "0.1.0.dev0"


def build() -> str:
    """Which build runs: ``"compiled"`` (setup.py: mypyc over the request
    path; a compiled module is an extension, its origin no ``.py``) or
    ``"pure Python"``."""
    import importlib.util

    spec = importlib.util.find_spec("dumbwaiter.request")
    origin = (spec.origin if spec is not None else None) or ""
    return "pure Python" if origin.endswith(".py") else "compiled"
