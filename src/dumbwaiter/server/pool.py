"""The bounded thread pool that runs blocking applications.

A fixed number of threads take work from one queue.  The queue's bound is
kept on the event-loop side: :meth:`ThreadPool.try_submit` and
:meth:`ThreadPool.done` are only ever called from the loop thread, so
``pending`` (queued + running) needs no lock, and a full pool is known before
anything is queued, which is what lets the loop answer 503 at once without
touching the application.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["ThreadPool"]

log = logging.getLogger("dumbwaiter")

T = TypeVar("T")


def batch_scheduling() -> None:
    """Put the calling thread under Linux's SCHED_BATCH policy (same share of
    CPU, same nice value; no privilege needed), where the platform has it.

    Why: a thread woken by the loop (``try_submit``) would otherwise preempt
    the loop at once, only to block on the GIL the loop still holds: two
    useless context switches per request, on a busy core most of the pool's
    cost.  A batch thread does not preempt on wakeup; it runs once the loop
    blocks (in epoll, where it releases the GIL anyway).  The loop thread keeps
    the normal policy.  Processes the application starts inherit the policy
    (SCHED_RESET_ON_FORK resets only the real-time ones).
    """
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is not None:
        with contextlib.suppress(OSError):  # a seccomp filter, an exotic kernel
            os.sched_setscheduler(0, policy, os.sched_param(0))


class ThreadPool(Generic[T]):
    """``threads`` threads calling ``target(item)`` for each submitted item.

    At most ``threads + queue_size`` items are pending at once; the caller
    must call :meth:`done` once per accepted item when its work is over (the
    loop learns that from the response's end, not from the thread returning).
    """

    def __init__(
        self, threads: int, queue_size: int, target: Callable[[T], None], *, batch: bool = True
    ) -> None:
        self.threads = threads
        #: Run the threads under SCHED_BATCH (:func:`batch_scheduling`).
        self.batch = batch
        self.capacity = threads + queue_size
        self.pending = 0
        self.served = 0
        self._target = target
        self._queue: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(self.threads):
            thread = threading.Thread(
                target=self._work, name=f"dumbwaiter-app-{number}", daemon=True
            )
            thread.start()
            self._workers.append(thread)

    def try_submit(self, item: T) -> bool:
        """Queue ``item``; False (and nothing queued) when the pool is full."""
        if self.pending >= self.capacity:
            return False
        self.pending += 1
        self._queue.put(item)
        return True

    @property
    def queued(self) -> int:
        """Items waiting for a thread (approximate: threads take them meanwhile)."""
        return self._queue.qsize()

    def done(self) -> None:
        self.pending -= 1
        self.served += 1

    def stop(self, timeout: float) -> None:
        """Let each thread finish its current item, then end it; waits
        ``timeout`` in all (a stuck thread is left to the process's end)."""
        for _ in self._workers:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._workers.clear()

    def _work(self) -> None:
        if self.batch:
            batch_scheduling()
        get = self._queue.get
        target = self._target
        while (item := get()) is not None:
            try:
                target(item)
            except BaseException:  # the gateway handles app errors; this is our bug
                log.exception("internal error in an application thread")
