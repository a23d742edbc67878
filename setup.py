"""The compiled build: the request path compiled with mypyc (the same
sources, checked by ``mypy --strict``), wherever a C compiler and the Python
headers are; else the pure-Python build, which runs the same code
(build_backend.py decides, and says why in one line).

    pip install .                       # compiled when it can be, else pure
    DUMBWAITER_PURE=1 pip install .     # pure Python
    DUMBWAITER_COMPILE=1 pip install .  # compiled, or fail

The metadata lives in pyproject.toml; this file only adds the extensions.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_backend import pure_because, say

#: The request path (docs/ARCHITECTURE.md): the sans-IO protocols, the request
#: model, the WSGI gateway, the serving process's modules.  What applications
#: get as classes (wsgi/objects.py, errors.py: ClientDisconnected subclasses
#: OSError, which mypyc cannot compile) stays Python, and http.py is mostly
#: httptools already.
COMPILED = [
    "src/dumbwaiter/protocols/__init__.py",
    "src/dumbwaiter/protocols/events.py",
    "src/dumbwaiter/protocols/heads.py",
    "src/dumbwaiter/protocols/fastcgi_records.py",
    "src/dumbwaiter/protocols/fastcgi_states.py",
    "src/dumbwaiter/protocols/fastcgi.py",
    "src/dumbwaiter/protocols/oneshot.py",
    "src/dumbwaiter/protocols/mount.py",
    "src/dumbwaiter/protocols/uwsgi.py",
    "src/dumbwaiter/protocols/scgi.py",
    "src/dumbwaiter/protocols/http_environ.py",
    "src/dumbwaiter/request.py",
    "src/dumbwaiter/fields.py",
    "src/dumbwaiter/wsgi/environ.py",
    "src/dumbwaiter/wsgi/gateway.py",
    "src/dumbwaiter/server/pool.py",
    "src/dumbwaiter/server/exchange.py",
    "src/dumbwaiter/server/deadlines.py",
    "src/dumbwaiter/server/session.py",
    "src/dumbwaiter/server/admission.py",
    "src/dumbwaiter/server/connection.py",
    "src/dumbwaiter/server/loop.py",
    "src/dumbwaiter/server/static.py",
    "src/dumbwaiter/asgi/detect.py",
    "src/dumbwaiter/asgi/scope.py",
    "src/dumbwaiter/asgi/gateway.py",
    "src/dumbwaiter/asgi/lifespan.py",
    "src/dumbwaiter/asgi/handshake.py",
    "src/dumbwaiter/asgi/frames.py",
    "src/dumbwaiter/asgi/websocket.py",
    "src/dumbwaiter/server/blocking.py",
    "src/dumbwaiter/server/direct.py",
    "src/dumbwaiter/server/context.py",
    "src/dumbwaiter/server/reporting.py",
    "src/dumbwaiter/server/listeners.py",
    "src/dumbwaiter/server/worker.py",
]

INSIST = os.environ.get("DUMBWAITER_COMPILE") == "1"


class BuildOrFallBack(build_ext):
    """Compile the extensions; if the compiler fails (and the compiled
    build was not insisted on), install none of them: the pure build."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            if INSIST:
                raise
            say(f"the compiler failed ({type(exc).__name__}): installing the pure-Python build")
            for extension in self.extensions:
                path = self.get_ext_fullpath(extension.name)
                if os.path.exists(path):
                    os.remove(path)
            self.extensions = []


def extensions() -> list:  # type: ignore[type-arg]
    """mypyc's extensions, or none (and one line saying why)."""
    why = pure_because()
    if why:
        if "bdist_wheel" in sys.argv:  # (once: not for the metadata's runs)
            say(f"{why}: installing the pure-Python build")
        return []
    try:
        from mypyc.build import mypycify

        return mypycify(["--config-file", "pyproject.toml", *COMPILED], opt_level="3")
    except Exception as exc:  # no mypy (the metadata's runs), or it failed: the pure build
        if INSIST:
            raise
        if "bdist_wheel" in sys.argv:
            say(f"mypyc is not available or failed ({exc}): installing the pure-Python build")
        return []


modules = extensions()
setup(
    ext_modules=modules,
    cmdclass={"build_ext": BuildOrFallBack},
    # Each build in its own folder: a pure build never packages a compiled
    # one's leftovers (pip builds in the source tree).
    options={"build": {"build_base": "build/compiled" if modules else "build/pure"}},
)
