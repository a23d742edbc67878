"""Helpers for the --reload watcher's tests (tests/unit/test_reloader.py,
polling in-process; tests/functional/test_reloader.py, the watchfiles helper
process).  Their ``tree`` fixture, a source folder to watch, is in
tests/conftest.py."""

from __future__ import annotations

import time

from dumbwaiter.process.reloader import SourceWatcher

INTERVAL = 0.05


def reports(watcher: SourceWatcher, within: float = 2.0, quiet: float = 0.15) -> list[list[str]]:
    """Every non-empty ``changes()`` from now until ``quiet`` seconds after the
    first one (or ``within`` seconds without any)."""
    found: list[list[str]] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        changed = watcher.changes()
        if changed:
            found.append(changed)
            deadline = min(deadline, time.monotonic() + quiet)
        time.sleep(0.01)
    return found
