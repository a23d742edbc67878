"""The master's signal handlers, which only enqueue.

A handler runs between two bytecodes of whatever the master was doing, so it
does nothing there but note the signal: :class:`SignalQueue` appends the
number, and Python's wakeup descriptor (``signal.set_wakeup_fd``) writes a
byte to a pipe that the master's ``select`` watches, so the wait ends at
once.  The loop then takes the numbers in order and acts on each
(:meth:`~dumbwaiter.process.arbiter.Arbiter.handle_signals`).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any

__all__ = ["SignalQueue"]

Handler = Callable[[int, FrameType | None], Any] | int | None


class SignalQueue:
    """Queue ``signums`` while installed; the pipe's read end is registered
    in ``selector`` with this queue as its data (see :meth:`clear_wakeup`)."""

    def __init__(self, selector: selectors.BaseSelector, signums: Iterable[int]) -> None:
        self.signums = tuple(signums)
        self.pending: deque[int] = deque()
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        selector.register(self._read, selectors.EVENT_READ, self)
        self._previous: dict[int, Handler] = {}
        self._previous_wakeup = -1

    def install(self) -> None:
        self._previous = {signum: signal.signal(signum, self._enqueue) for signum in self.signums}
        self._previous_wakeup = signal.set_wakeup_fd(self._write)

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        signal.set_wakeup_fd(self._previous_wakeup)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _enqueue(self, signum: int, frame: FrameType | None) -> None:
        self.pending.append(signum)  # only this: the loop acts on it

    def take(self) -> Iterator[int]:
        """The signals received, oldest first, each once."""
        while self.pending:
            yield self.pending.popleft()

    def clear_wakeup(self) -> None:
        """Empty the pipe once ``select`` said it is readable."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 512):
                pass

    def close(self) -> None:
        """Close the pipe (also in a forked worker, whose copy it is)."""
        os.close(self._read)
        os.close(self._write)
