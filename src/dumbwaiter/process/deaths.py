"""What a worker's end means, decided apart from acting on it.

A worker that was asked to stop has simply ended.  One that dies after
serving a while is replaced at once.  One that dies before it is ready, or
soon after, says something is wrong with the app: in a reload's new
generation, the reload is abandoned (the old workers serve on); at start-up
with the app's own error, the master ends with it; otherwise it is retried
with an exponential back-off, and after :data:`MAX_START_FAILURES` in a row
the master ends.  :func:`judge` says which; the arbiter acts.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from typing import Final, Protocol

from .child import Worker

__all__ = ["ABANDON_RELOAD", "ENDED", "FAIL", "REPLACE", "RETRY", "Verdict", "judge"]

#: Deaths within this long of the fork count as failures to start.
QUICK_DEATH_SECONDS: Final = 5.0
#: After this many failures to start in a row, the master gives up.
MAX_START_FAILURES: Final = 5
BACKOFF_FIRST: Final = 0.1
BACKOFF_MAX: Final = 10.0

#: The verdicts.
ENDED: Final = "ended"  # asked to stop, or the master stops
REPLACE: Final = "replace"  # died after serving a while
ABANDON_RELOAD: Final = "abandon reload"
FAIL: Final = "fail"  # the master ends, with ``reason``
RETRY: Final = "retry"  # a failure to start: the next worker after ``delay``


@dataclass(frozen=True)
class Verdict:
    action: str
    #: What to log (the whole line after "master: "), or the failure.
    reason: str
    level: int = logging.ERROR
    delay: float = 0.0


class Master(Protocol):
    """What :func:`judge` reads of the arbiter."""

    @property
    def stopping(self) -> str: ...
    @property
    def started(self) -> bool: ...
    @property
    def serving_generation(self) -> int: ...
    @property
    def failures(self) -> int: ...


def judge(worker: Worker, how: str, now: float, master: Master) -> Verdict:
    """The verdict on ``worker``, which ended ``how`` (in words) at ``now``
    (``master.failures``: failures to start in a row before this one)."""
    stopping, started = master.stopping, master.started
    serving_generation, failures = master.serving_generation, master.failures
    if worker.stop_sent or stopping:
        asked = worker.stop_signal in (signal.SIGTERM, signal.SIGQUIT)
        level = logging.DEBUG if asked else logging.INFO
        return Verdict(ENDED, f"worker {worker.pid} ended ({how})", level)
    if worker.ready and now - worker.born >= QUICK_DEATH_SECONDS:
        return Verdict(REPLACE, f"worker {worker.pid} died ({how}); replacing it")
    reason = worker.failed or f"worker {worker.pid} ended before it was ready ({how})"
    if worker.ready:
        reason = f"worker {worker.pid} died {now - worker.born:.1f}s after it started ({how})"
    if worker.generation > serving_generation and started:
        return Verdict(ABANDON_RELOAD, reason)
    if worker.failed and not started:
        return Verdict(FAIL, worker.failed)
    failures += 1
    if failures >= MAX_START_FAILURES:
        return Verdict(FAIL, f"workers keep failing to start ({failures} in a row): {reason}")
    delay = min(BACKOFF_FIRST * 2 ** (failures - 1), BACKOFF_MAX)
    return Verdict(RETRY, f"{reason}; next worker in {delay:.1f}s", delay=delay)
