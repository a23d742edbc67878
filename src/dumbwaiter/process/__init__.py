"""The master: a prefork arbiter over the serving processes of
:mod:`dumbwaiter.server`, and what it does besides.

``arbiter``
    :class:`Arbiter`: forks the workers, reaps, replaces and recycles them,
    turns signals into actions (reload, scale, stop).
``child``
    One worker from both sides of the fork: the master's record of it, and
    what the child does before it serves (``faulthandler`` armed first).
``deaths``
    What a worker's end means (replace it, abandon a reload, back off, fail).
``reconfigure``
    SIGHUP's settings: read again, what needs a restart kept.
``signals``
    Signal handlers that only enqueue, and the wakeup of the master's loop.
``upgrade``
    SIGUSR2: a new master on the same sockets, and the inheriting side.
``status``, ``admin``, ``metrics``
    ``--status`` and ``--metrics``: the answers, the small HTTP server that
    serves them from the master's loop, and the sums over the workers.
``reloader``
    ``--reload``: which source files changed (a helper runs it by name).
``chores``
    ``--chdir``, ``--pid``, ``--user``/``--group`` at start-up.

This package imports :mod:`dumbwaiter.server`; nothing there imports this
package.  The names below load on first use, so that the ``--reload``
helper (``python -m dumbwaiter.process.reloader``) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .arbiter import Arbiter
    from .child import EXIT_APP_FAILED, AppLoadFailed
    from .chores import PidFile, ProcessError, change_directory, drop_privileges, write_pidfile
    from .status import Monitor
    from .upgrade import Inheritance, Upgrade

__all__ = [
    "EXIT_APP_FAILED",
    "AppLoadFailed",
    "Arbiter",
    "Inheritance",
    "Monitor",
    "PidFile",
    "ProcessError",
    "Upgrade",
    "change_directory",
    "drop_privileges",
    "write_pidfile",
]

_HOMES = {
    "Arbiter": "arbiter",
    "EXIT_APP_FAILED": "child",
    "AppLoadFailed": "child",
    "PidFile": "chores",
    "ProcessError": "chores",
    "change_directory": "chores",
    "drop_privileges": "chores",
    "write_pidfile": "chores",
    "Monitor": "status",
    "Inheritance": "upgrade",
    "Upgrade": "upgrade",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
