"""The version of dumbwaiter: a leaf, so that any module may import it
without importing the package's public face (which loads the server)."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0.dev0"
