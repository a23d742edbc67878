"""The optional compiled fast path: ``DUMBWAITER_COMPILE=1`` compiles the hot
modules with mypyc (the same sources, checked by ``mypy --strict``); without
it, and wherever a module is not compiled, the pure-Python code runs.

    pip install mypy setuptools
    DUMBWAITER_COMPILE=1 pip install --no-build-isolation .

The metadata lives in pyproject.toml; this file only adds the extensions.
"""

from __future__ import annotations

import os

from setuptools import setup

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
    "src/dumbwaiter/protocols/uwsgi.py",
    "src/dumbwaiter/protocols/scgi.py",
    "src/dumbwaiter/protocols/http_environ.py",
    "src/dumbwaiter/request.py",
    "src/dumbwaiter/wsgi/environ.py",
    "src/dumbwaiter/wsgi/gateway.py",
    "src/dumbwaiter/server/pool.py",
    "src/dumbwaiter/server/exchange.py",
    "src/dumbwaiter/server/deadlines.py",
    "src/dumbwaiter/server/session.py",
    "src/dumbwaiter/server/admission.py",
    "src/dumbwaiter/server/connection.py",
    "src/dumbwaiter/server/loop.py",
    "src/dumbwaiter/server/blocking.py",
    "src/dumbwaiter/server/direct.py",
    "src/dumbwaiter/server/context.py",
    "src/dumbwaiter/server/reporting.py",
    "src/dumbwaiter/server/listeners.py",
    "src/dumbwaiter/server/worker.py",
]

ext_modules = []
if os.environ.get("DUMBWAITER_COMPILE") == "1":
    from mypyc.build import mypycify

    ext_modules = mypycify(["--config-file", "pyproject.toml", *COMPILED], opt_level="3")

setup(ext_modules=ext_modules)
