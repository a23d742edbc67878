"""SIGHUP's settings: the config file (and the environment the server
started with) read again, and what of it a reload can apply.

A new generation of workers is forked with the new settings: the thread
count, the queue, the limits and timeouts, gzip, the hooks, the logs (the
level, the access log and its format, the error log: opened by the master
now, as whatever user it runs as; one it cannot open stays as it was) ...
all apply.  What needs new sockets, privileges or the master's own files
(settings declared ``restart=True``: the listeners, ``--user``, ``--pid``
...) keeps its old value, with a line saying it needs a restart (or an
upgrade in place, SIGUSR2).  A file that no longer parses, or a bad value,
keeps every old setting and logs why, as a broken app does.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable
from typing import Any

from ..accesslog import AccessLog
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
    config, access_log = new_logs(current, config)
    hooks = current.hooks
    try:
        hooks = Hooks.load(config.hooks, again=True)
    except HookError as exc:
        log.error("master: reload: the hooks stay as they were: %s", exc)
    logging.getLogger("dumbwaiter").setLevel(config.log_level.upper())
    return dataclasses.replace(
        current, config=config, load=load, hooks=hooks, access_log=access_log
    )


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


def new_logs(current: Setup, config: Config) -> tuple[Config, AccessLog | None]:
    """The access log and the error log ``config`` names, opened now; one
    that cannot be opened keeps the old one, and its settings."""
    old = current.config
    access_log = current.access_log
    if (config.access_log, config.access_log_format) != (old.access_log, old.access_log_format):
        try:
            access_log = (
                AccessLog(config.access_log, config.access_log_format)
                if config.access_log
                else None
            )
        except OSError as exc:
            log.error("master: reload: --access-log %s: %s; kept", config.access_log, exc.strerror)
            config = dataclasses.replace(
                config, access_log=old.access_log, access_log_format=old.access_log_format
            )
        else:
            if current.access_log is not None:  # (the workers have copies of its file)
                current.access_log.close()
    if config.error_log != old.error_log and not switch_error_log(config.error_log):
        config = dataclasses.replace(config, error_log=old.error_log)
    return config, access_log


def switch_error_log(path: str | None) -> bool:
    """Log to ``path`` (None: standard error) from now on, if the server set
    up its own logging (not an embedding program); whether it could."""
    logger = logging.getLogger("dumbwaiter")
    if len(logger.handlers) != 1 or type(logger.handlers[0]) not in (
        logging.FileHandler,
        logging.StreamHandler,
    ):
        log.error("master: reload: --error-log: the logging is not ours to change; kept")
        return False
    old = logger.handlers[0]
    try:
        handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    except OSError as exc:
        log.error("master: reload: --error-log %s: %s; kept", path, exc.strerror)
        return False
    handler.setFormatter(old.formatter)
    logger.addHandler(handler)
    logger.removeHandler(old)
    old.close()
    log.info("master: reload: logging to %s", path or "standard error")
    return True
