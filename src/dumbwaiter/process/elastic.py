"""Elastic workers (``--workers MIN:MAX``): how many workers the load wants.

Each worker says in its heartbeat, once a second, how many of its threads
are busy plus how many requests wait for one (its *load*).  The master adds
a worker when the workers have been *saturated* (the load at
:data:`SATURATED` of all their threads or more: every thread busy, or
requests queued) for :data:`UP_AFTER`; it retires one, gracefully, when the
load has fitted in one worker fewer at :data:`IDLE_SHARE` of its threads for
``--workers-idle`` (30 s by default).  Up is quick, down is slow, and between
two changes at least :data:`STEP` passes (a new worker's warm-up, or a
retiring one's requests, are not yet in the figures): that is the
hysteresis.  One worker at a time, between MIN and MAX.

Compare uWSGI's ``cheaper`` algorithms: this is its *busyness* one, with
the backlog (queued requests) counted as load, as its *backlog* one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..config import Config
from .child import Worker

__all__ = ["Elastic", "elastic_for"]

#: The share of all threads busy (or requests queued) that is saturation.
SATURATED: Final = 0.9
#: How long saturation lasts before a worker is added.
UP_AFTER: Final = 2.0
#: A worker is retired when the load fits in one fewer at this share.
IDLE_SHARE: Final = 0.5
#: Between two changes, at least this long.
STEP: Final = 5.0


@dataclass
class Elastic:
    """The decisions, from the workers' loads; the arbiter acts on them."""

    minimum: int
    maximum: int
    idle_after: float
    #: Each worker's threads.
    threads: int
    #: Since when saturated, and since when idle (None: not now).
    saturated_since: float | None = None
    idle_since: float | None = None
    changed_at: float = -STEP
    #: Why the count last changed ("" until it does), for --status.
    why: str = ""

    def decide(self, now: float, workers: Sequence[Worker], target: int) -> tuple[int, str] | None:
        """The new worker count and why, or None; ``workers``: those of the
        current generation (the ready ones' last loads count)."""
        loads = [worker.load for worker in workers if worker.ready]
        threads = self.threads
        count = len(loads)
        if count < target:  # one is starting, or being replaced: wait for it
            self.saturated_since = self.idle_since = None
            return None
        load = sum(loads)
        if load >= SATURATED * threads * count:
            self.idle_since = None
            self.saturated_since = now if self.saturated_since is None else self.saturated_since
        elif count > 1 and load <= IDLE_SHARE * threads * (count - 1):
            self.saturated_since = None
            self.idle_since = now if self.idle_since is None else self.idle_since
        else:
            self.saturated_since = self.idle_since = None
        if now - self.changed_at < STEP:
            return None
        since = self.saturated_since
        if since is not None and now - since >= UP_AFTER and target < self.maximum:
            why = f"every thread busy or requests queued for {UP_AFTER:g}s"
            return self.changed(now, target + 1, why)
        since = self.idle_since
        if since is not None and now - since >= self.idle_after and target > self.minimum:
            why = f"the load fitted in {count - 1} worker(s) for {self.idle_after:g}s"
            return self.changed(now, target - 1, why)
        return None

    def changed(self, now: float, count: int, why: str) -> tuple[int, str]:
        """Note a change made now (and why)."""
        self.changed_at = now
        self.saturated_since = self.idle_since = None
        self.why = why
        return count, why


def elastic_for(config: Config) -> Elastic | None:
    """The policy for ``config``: None for a fixed number of workers."""
    if not config.max_workers:
        return None
    return Elastic(config.workers, config.max_workers, config.workers_idle, config.threads)
