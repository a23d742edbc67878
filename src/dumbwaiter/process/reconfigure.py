"""SIGHUP's settings: the config file (and the environment the server
started with) read again, and what of it a reload can apply.

A new generation of workers is forked with the new settings: the thread
count, the queue, the limits and timeouts, the log level, gzip, the hooks
... all apply.  What needs new sockets, privileges or the master's own
files (settings declared ``restart=True``: the listeners, ``--user``, the
log files ...) keeps its old value, with a line saying it needs a restart
(or an upgrade in place, SIGUSR2).  A file that no longer parses, or a bad
value, keeps every old setting and logs why, as a broken app does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from ..config import Config, ConfigError, flag_of, settings
from ..hooks import HookError, Hooks
from ..typing import WSGIApp
from .child import Setup

__all__ = ["Reread", "reconfigured"]

log = logging.getLogger("dumbwaiter")

#: Reads the settings again: the config and how to load the app they name.
Reread = Callable[[], tuple[Config, Callable[[], WSGIApp]]]


def reconfigured(current: Setup, reread: Reread) -> Setup | None:
    """What the next generation is forked with, or None to keep
    ``current`` (the reason logged).  The hooks module is imported again."""
    try:
        config, load = reread()
    except ConfigError as exc:
        log.error("master: reload: settings kept as they were: %s", exc)
        return None
    config = dataclasses.replace(config, **kept_settings(current.config, config))
    hooks = current.hooks
    try:
        hooks = Hooks.load(config.hooks, again=True)
    except HookError as exc:
        log.error("master: reload: the hooks stay as they were: %s", exc)
    logging.getLogger("dumbwaiter").setLevel(config.log_level.upper())
    return dataclasses.replace(current, config=config, load=load, hooks=hooks)


def kept_settings(current: Config, config: Config) -> dict[str, Any]:
    """The old values of the settings that changed but need a restart
    (each logged, as each change a reload applies is)."""
    kept: dict[str, Any] = {}
    for f in settings():
        old, new = getattr(current, f.name), getattr(config, f.name)
        if old == new:
            continue
        if f.metadata.get("restart"):
            log.warning(
                "master: reload: %s changed to %r: that needs a restart (or USR2); kept %r",
                flag_of(f),
                new,
                old,
            )
            kept[f.name] = old
        else:
            log.info("master: reload: %s = %r (was %r)", flag_of(f), new, old)
    return kept
