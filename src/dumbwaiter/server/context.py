"""What the serving parts of one worker share, and the interface the
worker's once-a-second duties talk to them through.

:class:`ServerContext` knows no connection class: the drivers (the event
loop's :class:`~.loop.LoopServer`, the threads' :class:`~.direct.DirectServer`)
hold their connections and are reached through :class:`Driver`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..protocols import ServerProtocol
from .deadlines import SessionSettings
from .exchange import ExchangeBase, Reports
from .pool import ThreadPool

if TYPE_CHECKING:
    from ..asgi.gateway import ASGIGateway
    from ..config import Config
    from .channel import WorkerChannel

__all__ = ["Driver", "ServerContext"]

log = logging.getLogger("dumbwaiter")


class Driver(Protocol):
    """One way a worker serves connections, as the tick and the stop see it.
    Called on the loop thread."""

    def served(self) -> int:
        """Requests finished so far."""
        ...

    def owed(self) -> int:
        """Requests owed an answer by a thread (queued or in the app)."""
        ...

    def in_flight(self) -> list[ExchangeBase]:
        """The requests in flight (for ``--timeout`` and ``--status``)."""
        ...

    def gauges(self) -> tuple[int, int, int, int]:
        """(requests queued, threads busy, threads, connections)."""
        ...

    def sweep(self) -> None:
        """Once a tick: deadlines passed, writes stalled."""
        ...

    def expire(self, exchange: ExchangeBase) -> None:
        """``--timeout`` passed for ``exchange``: answer for it now."""
        ...

    def stop(self) -> None:
        """Accept no more."""
        ...

    def drain(self) -> None:
        """Graceful stop: finish what was accepted."""
        ...

    def finished(self) -> bool:
        """Nothing accepted is left to finish."""
        ...

    def busy(self) -> int:
        """Requests still being answered (the graceful stop's log line)."""
        ...

    def abort(self) -> None:
        """Stop now."""
        ...


class ServerContext:
    """The worker-wide state its drivers and its tick share (loop thread,
    unless a member says otherwise)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: Config,
        pool: ThreadPool[ExchangeBase],
        settings: SessionSettings,
        reporter: Reports | None,
        channel: WorkerChannel | None,
    ) -> None:
        self.loop = loop
        self.config = config
        self.pool = pool
        self.settings = settings
        self.reporter = reporter
        #: The line to the master, when there is one.
        self.channel = channel
        #: When each request is taken up (and by which thread) is noted:
        #: --timeout, --status and the access log's queue time read it.
        self.timed = bool(config.timeout or config.status or reporter is not None)
        #: protocol name -> constructor of its server protocol object
        self.factories: dict[str, Callable[[], ServerProtocol]] = {}
        self.drivers: list[Driver] = []
        #: An ASGI application's gateway (None: a WSGI one).
        self.asgi: ASGIGateway | None = None
        self.draining = False
        #: Why this worker is being replaced ("" while it is not).
        self.retiring = ""
        #: Requests after which to retire (--max-requests plus jitter); 0 = never.
        self.request_limit = 0
        #: The Date header's value, refreshed by the tick.
        self.date = b""
        #: Ends the worker: "graceful" or "fast" (set by the worker).
        self.stop: Callable[[str], None] = lambda how: None
        self.refresh_date()

    def served(self) -> int:
        """Requests finished, by every driver.  Any thread."""
        return sum(driver.served() for driver in self.drivers)

    def owed(self) -> int:
        return sum(driver.owed() for driver in self.drivers)

    def past_request_limit(self) -> str:
        """Why to retire now, if ``--max-requests`` is reached (else "").
        Any thread: the caller has :meth:`retire` run on the loop."""
        if not self.request_limit or self.retiring:
            return ""
        served = self.served()
        if served < self.request_limit:
            return ""
        return f"served {served} requests (--max-requests)"

    def count_served(self) -> None:
        """A request finished on the loop thread: retire past the limit."""
        if self.request_limit and (reason := self.past_request_limit()):
            self.retire(reason)

    def retire(self, reason: str) -> None:
        """Have this worker replaced: by the master, or by our own supervisor."""
        if self.retiring:
            return
        self.retiring = reason
        if self.channel is not None and self.channel.send("retire", reason):
            log.info("retiring: %s; serving on until replaced", reason)
            return
        log.info("retiring: %s; stopping", reason)
        self.stop("graceful")

    def refresh_date(self) -> None:
        self.date = email.utils.formatdate(usegmt=True).encode("ascii")
