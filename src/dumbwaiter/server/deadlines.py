"""Which deadline applies to a connection, and the settings it comes from.

Every wait is bounded.  A connection is given one deadline at a time, the
one of its current state (:meth:`Deadline.arm`), and the driver closes it
once that passes (the loop's tick sweeps the connections; a thread serving
one directly waits no longer in its read).  Times are ``time.monotonic()``
seconds, read from :attr:`SessionSettings.clock` (a test may give another).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Final

from ..protocols import ServerProtocol
from ..request import Request
from .exchange import Wire, peer_name

__all__ = ["DRAIN_GRACE", "LINGER_SECONDS", "Deadline", "SessionSettings"]

log = logging.getLogger("dumbwaiter")

#: After a peer's protocol error: how long we read and drop what it still
#: sends, so that it sees our answer rather than a reset.
LINGER_SECONDS: Final = 2.0
#: On a graceful stop, how long a connection that has sent no request yet
#: may take to send one (it was accepted before we stopped).
DRAIN_GRACE: Final = 1.0


class SessionSettings:
    """The settings a session reads per request, copied once from the
    configuration (where compiled code reads them as plain attributes)."""

    __slots__ = (
        "clock",
        "header_timeout",
        "keepalive_timeout",
        "min_body_rate",
        "read_timeout",
        "spool_threshold",
        "write_timeout",
    )

    def __init__(
        self,
        *,
        keepalive_timeout: float,
        read_timeout: float,
        header_timeout: float,
        min_body_rate: int,
        write_timeout: float,
        spool_threshold: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        #: How long a connection may stay silent between requests, and
        #: before its first.
        self.keepalive_timeout = keepalive_timeout
        self.read_timeout = read_timeout
        self.header_timeout = header_timeout
        self.min_body_rate = min_body_rate
        self.write_timeout = write_timeout
        self.spool_threshold = spool_threshold


class Deadline:
    """A connection's current deadline: when it must have made progress (0:
    no deadline now), and what it was waiting for (the log line when it
    passes); what happens when it does.  The base of
    :class:`~.session.Session`, which sets the fields declared here."""

    # Class attributes: an instance stores only what changes.
    deadline = 0.0
    waiting_for = ""
    #: When the head being received began (0: none is).
    head_since = 0.0
    #: Answering a peer's error: reading only to drop.
    lingering = False
    #: The connection is gone (the driver's wire can do nothing more).
    closed = False
    proto: ServerProtocol
    wire: Wire
    listener: str
    peer: dict[str, str]
    settings: SessionSettings

    def fresh(self, now: float, settings: SessionSettings) -> None:
        """A new connection: silent for ``keepalive_timeout`` at most (the
        rule of :meth:`next_deadline` for it, without its questions)."""
        self.deadline = now + settings.keepalive_timeout

    def next_deadline(
        self,
        now: float,
        settings: SessionSettings,
        busy: bool,
        idle: bool,
        receiving: Iterable[Request],
    ) -> None:
        """Set the deadline of the connection's state.

        While the app has a request (``busy``), the client's time does not
        count.  Idle, before a request or between two: ``keepalive_timeout``.
        A head arriving: no more than
        ``read_timeout`` of silence, and all of it within ``header_timeout``
        of its first byte (slowloris gains nothing by trickling).  A body
        arriving: silence as for the head, and the whole body within
        ``read_timeout + size / min_body_rate`` of the head.
        """
        if busy:
            self.deadline = 0.0
            self.head_since = 0.0
            return
        if idle:
            self.deadline = now + settings.keepalive_timeout
            self.waiting_for = ""
            self.head_since = 0.0
            return
        self.deadline = now + settings.read_timeout
        rate = settings.min_body_rate
        bodies = False
        for request in receiving:
            bodies = True
            self.waiting_for = "more of the body"
            if rate:
                due = request.arrived + settings.read_timeout + request.body.size / rate
                if due < self.deadline:
                    self.deadline = due
                    self.waiting_for = f"the body at {rate} bytes/s"
        if bodies:
            self.head_since = 0.0
            return
        if not self.head_since:
            self.head_since = now
        self.waiting_for = "more of the head"
        if self.head_since + settings.header_timeout < self.deadline:
            self.deadline = self.head_since + settings.header_timeout
            self.waiting_for = f"the whole head within {settings.header_timeout:g}s"

    def hold(self) -> None:
        """The driver leaves the connection unread for now (``--read-ahead``):
        no deadline meanwhile, the wait is ours; the head's clock starts again
        when it is read."""
        self.deadline = 0.0
        self.head_since = 0.0

    def timed_out(self) -> None:
        """The deadline passed: log what was awaited (not for an idle
        kept-alive connection), and close."""
        if self.closed:
            return
        if not self.proto.idle and not self.lingering:
            log.info(
                "%s: %s: closing: still waiting for %s",
                self.listener,
                peer_name(self.peer),
                self.waiting_for,
            )
        self.wire.close()

    def write_stalled(self, since: float, now: float) -> bool:
        """Whether the peer has taken nothing we wrote since ``since`` for
        longer than ``write_timeout`` (a client that stopped reading holds
        memory, and perhaps a thread waiting to write); logs it once."""
        limit = self.settings.write_timeout
        if now - since <= limit:
            return False
        log.info(
            "%s: %s: the peer read nothing for %gs, dropping the connection",
            self.listener,
            peer_name(self.peer),
            limit,
        )
        return True
