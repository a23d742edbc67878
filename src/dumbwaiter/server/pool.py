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
from typing import Final, Generic, TypeVar

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


#: A thread's state, in :attr:`ThreadPool.state`.
FREE: Final = 0
#: Running an item of the queue.
QUEUED: Final = 1
#: Serving a connection it accepted itself (not counted in ``pending``).
OWN: Final = 2


class ThreadPool(Generic[T]):
    """``threads`` threads calling ``target(item)`` for each submitted item.

    At most ``threads + queue_size`` items are pending at once (counting the
    threads busy with connections of their own); the caller must call
    :meth:`done` once per accepted item when its work is over (the loop
    learns that from the response's end, not from the thread returning).

    With :attr:`idle` set (see :mod:`.direct`), a thread that finds the
    queue empty calls ``idle(number)``, which accepts and serves a
    connection itself, or waits for one; it must return soon after
    something is queued: :meth:`try_submit` writes to :attr:`wake` when a
    thread said it is waiting (:attr:`polling`).
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
        #: What a thread does when the queue is empty (None: wait on it);
        #: False once there is nothing more to do than wait on the queue.
        self.idle: Callable[[int], bool] | None = None
        #: Each thread's state (FREE, QUEUED, OWN), written by the thread.
        self.state = [FREE] * threads
        #: Per thread serving a connection itself: its request's body bytes
        #: in memory (counted against --read-ahead-bytes with the queue's).
        self.held = [0] * threads
        #: Called (by the thread) when one became busy and none is FREE.
        self.full: Callable[[], None] | None = None
        #: An eventfd written when an item is queued while a thread waits
        #: for a connection (``polling``); given with ``idle``.
        self.wake = -1
        #: Whether the accept turn's owner, and its watcher, wait in poll()
        #: (see .blocking.Waiting; each thread writes its own slot).
        self.polling = [False, False]

    def start(self) -> None:
        for number in range(self.threads):
            thread = threading.Thread(
                target=self._work, args=(number,), name=f"dumbwaiter-app-{number}", daemon=True
            )
            thread.start()
            self._workers.append(thread)

    def owed(self) -> int:
        """Requests the threads owe an answer: queued or running, and the
        connections they serve themselves."""
        if self.idle is None:
            return self.pending
        return self.pending + self.state.count(OWN)

    def try_submit(self, item: T) -> bool:
        """Queue ``item``; False (and nothing queued) when the pool is full."""
        if self.owed() >= self.capacity:
            return False
        self.pending += 1
        self._queue.put(item)
        if True in self.polling:  # (read after the put: see _work)
            self.nudge()
        return True

    def nudge(self) -> None:
        """Wake the thread waiting for a connection (it looks at the queue)."""
        with contextlib.suppress(OSError):
            os.eventfd_write(self.wake, 1)

    @property
    def queued(self) -> int:
        """Items waiting for a thread (approximate: threads take them meanwhile)."""
        return self._queue.qsize()

    def busy(self, number: int, state: int) -> None:
        """Thread ``number`` takes work up; the last FREE one says so."""
        states = self.state
        states[number] = state
        if FREE not in states and self.full is not None:
            self.full()

    def done(self) -> None:
        self.pending -= 1
        self.served += 1

    def stop(self, timeout: float) -> None:
        """Let each thread finish its current item, then end it; waits
        ``timeout`` in all (a stuck thread is left to the process's end)."""
        for _ in self._workers:
            self._queue.put(None)
        if self.wake >= 0:
            self.nudge()
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._workers.clear()

    def _work(self, number: int) -> None:
        if self.batch:
            batch_scheduling()
        get = self._queue.get
        target = self._target
        idle = self.idle
        while True:
            if idle is None:
                item = get()
            elif not self._queue.qsize():
                # Serve a connection of our own, or wait for one (the
                # queue is looked at again once ``polling`` is set).
                if not idle(number):
                    idle = None  # stopping: the queue's items, then the end
                continue
            else:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:  # another thread took it
                    continue
            if item is None:
                return
            if self.full is not None:
                self.busy(number, QUEUED)
            try:
                target(item)
            except BaseException:  # the gateway handles app errors; this is our bug
                log.exception("internal error in an application thread")
            self.state[number] = FREE
