"""What a session shares with its drivers and its reporter.

* :class:`ExchangeBase`: one request on a connection and the state of its
  response.  A driver's subclass (the loop's, the threads') adds the I/O of
  :class:`~dumbwaiter.typing.Exchange`, which the gateway calls from the
  application thread;
* :class:`Wire`: what a :class:`~dumbwaiter.server.session.Session` asks of
  the driver that moves its bytes;
* :class:`Reports`: where each response is reported.
"""

from __future__ import annotations

from typing import IO, Final, Protocol

from ..request import Request

__all__ = ["GONE", "ExchangeBase", "Gone", "Reports", "Wire", "peer_name"]


def peer_name(peer: dict[str, str]) -> str:
    """``address:port`` of a connection's peer, for log lines ("peer" on a
    unix socket)."""
    address = peer.get("REMOTE_ADDR")
    return f"{address}:{peer.get('REMOTE_PORT', '')}" if address else "peer"


class ExchangeBase:
    """One request and its response's state (see the module doc).

    ``cancelled`` turns true when the client or the front server gave up, or
    the server answered for the application (``--timeout``): further writes
    are dropped.  It may be set from any thread (:meth:`cancel`).  The other
    fields belong to the thread that owns the connection, except ``began``
    and ``thread``, which the application thread sets as it takes the request
    up, and ``status`` and ``sent``, which the thread writing the response
    sets.
    """

    # Slots, every one set here: pure Python reads a slot fastest, and one
    # of these is made and read over and over per request.
    __slots__ = (
        "began",
        "cancelled",
        "expired",
        "listener",
        "peer",
        "queued",
        "reported",
        "request",
        "sent",
        "started",
        "status",
        "thread",
        "upgraded",
    )

    def __init__(self, request: Request, peer: dict[str, str], listener: str) -> None:
        self.request = request
        #: CGI variables only the socket knows (``Listener.peer_environ``),
        #: and the listener's name: the connection's.
        self.peer = peer
        self.listener = listener
        self.cancelled = False
        #: The response head went out.
        self.started = False
        #: ``--timeout`` answered for the application (504, or shut).
        self.expired = False
        #: When it was queued for a thread, and when a thread took it up (0:
        #: not yet), and which: for ``--timeout``, ``--status`` and the access
        #: log's queue time (set only when something reads them).
        self.queued = 0.0
        self.began = 0.0
        self.thread = ""
        #: Its status line and body bytes sent, and whether it is reported.
        self.status = ""
        self.sent = 0
        self.reported = False
        #: The connection became a WebSocket (101): no --timeout from then on.
        self.upgraded = False

    # -- the driver's: see dumbwaiter.typing.Exchange ------------------------------
    def start(self, status: str, headers: list[tuple[str, str]], body: bytes, end: bool) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> bool:
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def sendfile(self, file: IO[bytes], offset: int, count: int) -> bool:
        raise NotImplementedError

    def peer_closed(self) -> None:
        """The peer closed its side (it may still read the response): an
        ASGI request's ``receive()`` says ``http.disconnect`` from now on."""

    def cancel(self) -> None:
        """The response is not wanted any more: further writes are dropped and
        the app's further reads see EOF.  Any thread."""
        self.cancelled = True
        self.request.abort_input()


class Wire(Protocol):
    """What a session asks of the driver that moves its bytes; each call is
    made by the thread that owns the session (``Connection``, ``DirectLink``;
    :data:`GONE` for a connection that is gone).  A protocol, so that a test
    may hand a session any object with these methods, compiled or not."""

    def write(self, data: bytes) -> None:
        """Send ``data`` (non-empty) to the peer, in order."""
        ...

    def pause_reading(self) -> None:
        """Read nothing more until :meth:`resume_reading`."""
        ...

    def resume_reading(self) -> None:
        """Read on."""
        ...

    def close(self) -> None:
        """End the connection once what was written has gone out."""
        ...

    def linger(self) -> None:
        """After an error answer: end our side, read and drop what the peer
        still sends for :data:`~.deadlines.LINGER_SECONDS`, then close."""
        ...

    def reset(self) -> None:
        """End the connection abnormally (a reset on TCP), so that even a
        close-delimited response is seen as broken."""
        ...

    def dispatch(self, request: Request) -> ExchangeBase | None:
        """Have ``request`` (complete) answered by the application: its
        exchange, handed to a thread; None when no thread will take it (the
        session answers 503)."""
        ...


class Gone:
    """The wire of a session whose connection is gone: it does nothing."""

    def write(self, data: bytes) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def linger(self) -> None:
        pass

    def reset(self) -> None:
        pass

    def dispatch(self, request: Request) -> ExchangeBase | None:
        return None


#: The wire of every session whose connection is gone.  Giving it to a lost
#: session also breaks the reference cycle between the session and its
#: driver, so both are freed at once rather than by the cyclic garbage
#: collector (a connection per request, behind lighttpd: that collector's
#: work was a tenth of a request's cost).
GONE: Final = Gone()


class Reports(Protocol):
    """Where responses are reported (:class:`~.reporting.Reporter`)."""

    def report(self, exchange: ExchangeBase, gateway: str) -> None:
        """Once per response, from the thread that owns the connection (or
        the one answering for it past ``--timeout``); ``gateway``: the
        protocol it came over."""
        ...
