"""Which requests the event loop reads and hands to the thread pool, and
which get a 503 at once.

Two bounds, both kept on the loop thread (so they need no lock):

* **The 503 bound.**  At most ``--threads + --queue-size`` requests are owed
  an answer by the pool (queued or running); past it a request is answered
  503 without touching the application (:meth:`Admission.admit`).  Requests
  left unread (below) count as waiting, so the bound is the same whether a
  request was read or not.
* **Read-ahead** (``--read-ahead``, ``--read-ahead-bytes``).  Once that many
  requests wait for a thread (or that many body bytes are held in memory
  for requests handed to the threads), a new connection's first bytes are
  kept unparsed and its reading paused (:meth:`Admission.should_defer`):
  the rest of its request waits in the kernel's socket buffer, and the
  worker holds a few KB for it instead of a parsed request.  A finished
  request reads the oldest such connection again
  (:meth:`Admission.read_deferred`).  The decision is taken at a
  connection's first bytes, not when it is accepted, so idle connections
  take no room; accepting stays eager, so the 503s go on.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .exchange import ExchangeBase
    from .pool import ThreadPool

__all__ = ["Admission", "Deferrable"]


class Deferrable(Protocol):
    """A connection that can be left unread, and read again."""

    def read_again(self) -> None:
        """Parse what was kept, from the loop's next turn."""
        ...


class Admission:
    """The loop's bounds on what the pool is given (see the module doc)."""

    def __init__(
        self,
        pool: ThreadPool[ExchangeBase],
        *,
        read_ahead: int,
        read_ahead_bytes: int,
        timed: bool,
    ) -> None:
        self.pool = pool
        self.read_ahead = read_ahead
        self.read_ahead_bytes = read_ahead_bytes
        #: Note when each request is queued (--timeout, --status, the access log).
        self.timed = timed
        #: Connections whose first request was left unread, oldest first,
        #: and how many were read again but are not parsed yet.
        self.deferred: deque[Deferrable] = deque()
        self.resuming = 0
        #: The body bytes in memory of the requests handed to the threads.
        self.body_bytes = 0

    def reading_room(self) -> int:
        """How many more first requests may be read now: those running or
        queued, and those about to be, stay under ``--threads`` +
        ``--read-ahead``, and their bodies under ``--read-ahead-bytes`` (past
        half of it, one at a time: each may bring a large body)."""
        room = 1
        if self.read_ahead:
            room = self.pool.threads + self.read_ahead - self.pool.owed() - self.resuming
        budget = self.read_ahead_bytes
        held = self.body_bytes + (sum(self.pool.held) if self.pool.idle is not None else 0)
        if budget and held * 2 > budget:
            if held > budget or self.resuming:
                return 0
            return min(room, 1)
        return room

    def waiting(self) -> int:
        """Requests owed an answer that no thread has yet, wherever they wait;
        with the running ones, at most the pool's capacity (then 503)."""
        return self.pool.owed() + len(self.deferred) + self.resuming

    def should_defer(self) -> bool:
        """At a connection's first bytes: leave them unread for now?"""
        return self.reading_room() <= 0 and self.waiting() < self.pool.capacity

    def defer(self, conn: Deferrable) -> None:
        self.deferred.append(conn)

    def forget(self, conn: Deferrable) -> None:
        """``conn`` left the queue of deferred connections (closed, or its
        request is whole: the client half-closed)."""
        self.deferred.remove(conn)

    def read_deferred(self, everything: bool = False) -> None:
        """Read on the connections left unread, oldest first, as far as
        :meth:`reading_room` allows (``everything``: all, when stopping)."""
        room = len(self.deferred) if everything else self.reading_room()
        while room > 0 and self.deferred:
            self.deferred.popleft().read_again()
            room -= 1

    def admit(self, exchange: ExchangeBase) -> bool:
        """Queue ``exchange`` for a thread; False when the pool is full
        (counting the requests left unread): the caller answers 503."""
        if self.timed:
            exchange.queued = time.monotonic()
        pool = self.pool
        if (self.deferred and self.waiting() >= pool.capacity) or not pool.try_submit(exchange):
            return False
        request = exchange.request
        request.held = request.body.in_memory
        if request.filter_data is not None:
            request.held += request.filter_data.in_memory
        self.body_bytes += request.held
        return True

    def release(self, exchange: ExchangeBase) -> None:
        """The application is done with an admitted ``exchange``: its thread
        is free, its body no longer held; read a deferred connection."""
        self.pool.done()
        request = exchange.request
        self.body_bytes -= request.held
        request.held = 0
        if self.deferred:
            self.read_deferred()
