"""dumbwaiter: a WSGI application server for the gateway protocols of front web servers.

The public face::

    from dumbwaiter import serve
    serve(app, fastcgi="unix:/run/app.sock", threads=8)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Config, ConfigError
from .version import __version__

if TYPE_CHECKING:
    from .main import serve

__all__ = ["Config", "ConfigError", "__version__", "serve"]


def __getattr__(name: str) -> Any:
    # The server (asyncio, the protocols) loads on first use, so that
    # importing a protocol module alone stays light.
    if name == "serve":
        from .main import serve

        return serve
    raise AttributeError(f"module 'dumbwaiter' has no attribute {name!r}")
