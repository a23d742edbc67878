"""ASGI 3 over the session layer: each request a task on the worker's loop.

A request arrives whole (the session read its body, spooled past
``--spool-threshold``), as for WSGI.  ``receive()`` hands the body over in
``http.request`` chunks, then waits: it returns ``http.disconnect`` once the
client has gone (a closed connection, ``FCGI_ABORT_REQUEST``) or the
response is complete.  ``send()`` holds ``http.response.start`` back until
the first body chunk (so that a one-chunk response goes out as one write, as
for WSGI), and waits while the client is slow to read; once the client has
gone it raises :class:`~dumbwaiter.errors.ClientDisconnected`, an
``OSError`` (spec 2.4).

An exception before the response started gives a 500; after, a broken
response (the front server sees it end early).  Past ``--threads +
--queue-size`` requests running at once, the next gets a 503 at once, the
application not called.
"""

from __future__ import annotations

import asyncio
import http
import logging
import os
import time
import traceback
from collections.abc import Callable

from ..access import AddressList
from ..errors import ClientDisconnected
from ..fields import pairs_of, status_code
from ..protocols.http_environ import wants_websocket
from ..request import Request
from ..server.exchange import ExchangeBase
from ..server.session import Session
from ..server.static import Conn, Upgraded
from ..server.static import send as send_file
from ..wsgi.environ import complete_environ
from .detect import ASGIApp, Message
from .handshake import Sockets, WebSocketSettings, handshake_refusal
from .lifespan import Lifespan
from .scope import http_scope, websocket_scope

__all__ = ["ASGIExchange", "ASGIGateway", "Call", "WebSocketExchange"]

log = logging.getLogger("dumbwaiter")

#: The body chunk ``receive()`` hands over.
CHUNK = 64 * 1024
#: How long a cancelled task may take to end before it is logged and no
#: longer counted against the cap.
CANCEL_GRACE = 5.0
ERROR_HEADERS = [("Content-Type", "text/plain; charset=utf-8")]


class ASGIExchange(ExchangeBase):
    """A request an ASGI task answers (on the loop, through the session)."""

    __slots__ = ("over", "overs", "session", "task")
    #: True once the client is gone or the response complete (``receive``'s
    #: end); ``overs``: the event a ``receive`` waiting for that awaits
    #: (made only then: most requests never wait for it).
    over: bool
    overs: asyncio.Event | None
    session: Session
    #: The task running the application (``--timeout`` cancels it).
    task: asyncio.Task[None]

    def cancel(self) -> None:
        super().cancel()
        self.wake()

    def peer_closed(self) -> None:
        self.wake()

    def wake(self) -> None:
        self.over = True
        if self.overs is not None:
            self.overs.set()


class WebSocketExchange(ASGIExchange):
    """A WebSocket handshake, then the connection it opens."""

    __slots__ = ("websocket",)
    websocket: Upgraded | None

    def cancel(self) -> None:
        super().cancel()
        if self.websocket is not None:  # (gone before or after the accept)
            self.websocket.lost()

    def peer_closed(self) -> None:
        super().peer_closed()
        if self.websocket is not None:  # (before the accept: after, it is the connection's)
            self.websocket.eof()


class ASGIGateway:
    """The ASGI application of a worker and its requests in flight."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        trusted: AddressList,
        script_name: str | None,
        debug: bool = False,
        lifespan: Lifespan | None = None,
        websocket: WebSocketSettings | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.trusted = trusted
        self.script_name = script_name
        self.debug = debug
        self.lifespan = lifespan
        self.websocket = websocket or WebSocketSettings()
        self.sockets = Sockets()
        #: WebSocket tasks running (handshakes and open ones: not requests).
        self.socket_tasks = 0
        #: Requests running now (their tasks), and done so far.
        self.running: set[asyncio.Task[None]] = set()
        self.served = 0
        #: Called as each request ends (the worker counts it: --max-requests).
        self.done: Callable[[], None] | None = None
        #: Tasks cancelled by --timeout, until they end (or CANCEL_GRACE).
        self.cancelled: list[tuple[float, ASGIExchange]] = []

    def dispatch(self, conn: Conn, request: Request) -> ExchangeBase | None:
        """Start ``request``'s task; None (a 503 from the session) when
        ``limit`` are running already."""
        if len(self.running) >= self.limit:
            return None
        session = conn.session
        if session.gateway == "http" and wants_websocket(request.environ):
            upgrade = WebSocketExchange(request, session.peer, session.listener)
            upgrade.websocket = None
            exchange: ASGIExchange = upgrade
            run = self.run_websocket(conn, upgrade)
        else:
            exchange = ASGIExchange(request, session.peer, session.listener)
            run = self.run(conn, exchange)
        exchange.over = False
        exchange.overs = None
        exchange.session = session
        exchange.began = exchange.queued = time.monotonic()  # (for --timeout)
        exchange.task = task = conn.loop.create_task(run)
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        if isinstance(exchange, WebSocketExchange):
            self.socket_tasks += 1
            task.add_done_callback(self.socket_task_done)
        return exchange

    def cancel(self, exchange: ASGIExchange) -> None:
        """``--timeout`` answered for ``exchange``: its task is cancelled."""
        exchange.task.cancel()
        self.cancelled.append((time.monotonic() + CANCEL_GRACE, exchange))

    def check_cancelled(self, now: float) -> None:
        """(Each tick) A task still running :data:`CANCEL_GRACE` after its
        cancellation ignores it: logged, and no longer counted against the
        cap (it runs on, but the worker serves the others)."""
        waiting = []
        for deadline, exchange in self.cancelled:
            task = exchange.task
            if task.done():
                continue
            if now < deadline:
                waiting.append((deadline, exchange))
                continue
            environ = exchange.request.environ
            log.error(
                "%s: ASGI task for %s %s ignored its cancellation (--timeout): still running "
                "%gs later; no longer counted against the cap",
                exchange.listener,
                environ.get("REQUEST_METHOD", ""),
                environ.get("REQUEST_URI") or environ.get("PATH_INFO", ""),
                CANCEL_GRACE,
            )
            self.running.discard(task)
        self.cancelled = waiting

    def gauges(self) -> dict[str, int]:
        """Requests in the application, and open WebSockets."""
        requests = len(self.running) - self.socket_tasks
        return {"asgi": max(0, requests), "websockets": self.sockets.open}

    def socket_task_done(self, task: asyncio.Task[None]) -> None:
        self.socket_tasks -= 1

    async def run(self, conn: Conn, exchange: ASGIExchange) -> None:
        environ = complete_environ(
            exchange.request, exchange.peer, {}, self.trusted, self.script_name
        )
        state = self.lifespan.state if self.lifespan is not None else None
        call = Call(conn, exchange)
        try:
            await self.app(http_scope(environ, state), call.receive, call.send)
        except asyncio.CancelledError:  # --timeout answered for it
            return
        except Exception as exc:
            self.ended()
            if not isinstance(exc, ClientDisconnected) or not exchange.cancelled:
                log.exception(
                    "error in ASGI application (%s %s)",
                    environ.get("REQUEST_METHOD"),
                    environ.get("PATH_INFO"),
                )
            call.failed(traceback.format_exc() if self.debug else "")
        else:
            self.ended()
            call.returned()

    async def run_websocket(self, conn: Conn, exchange: WebSocketExchange) -> None:
        environ = complete_environ(
            exchange.request, exchange.peer, {}, self.trusted, self.script_name
        )
        call = Call(conn, exchange)
        refusal = handshake_refusal(environ)
        if refusal is not None:  # not a handshake the app could accept
            status, headers = refusal
            call.start = (int(status[:3]), headers)
            call.body(b"", False)
            self.ended()
            return
        from .websocket import WebSocket  # (wsproto: only once a WebSocket comes)

        state = self.lifespan.state if self.lifespan is not None else None
        websocket = exchange.websocket = WebSocket(
            conn, exchange, self.websocket, call, self.sockets
        )
        try:
            await self.app(websocket_scope(environ, state), websocket.receive, websocket.send)
        except asyncio.CancelledError:
            if not exchange.expired:  # (not --timeout's: the application's own)
                self.ended()
                websocket.returned(failed=True)
            return
        except Exception as exc:
            self.ended()
            if not isinstance(exc, ClientDisconnected):
                log.exception("error in ASGI application (WebSocket %s)", environ.get("PATH_INFO"))
            websocket.returned(failed=True)
        else:
            self.ended()
            websocket.returned(failed=False)

    def ended(self) -> None:
        self.served += 1
        if self.done is not None:
            self.done()


class Call:
    """One request's ``receive`` and ``send``."""

    def __init__(self, conn: Conn, exchange: ASGIExchange) -> None:
        self.conn = conn
        self.session = conn.session
        self.exchange = exchange
        self.input = exchange.request.input
        self.body_left = True
        #: ``http.response.start``'s status and headers, until the first body.
        self.start: tuple[int, list[tuple[str, str]]] | None = None
        self.head_sent = False
        self.complete = False

    async def receive(self) -> Message:
        if self.body_left and not self.exchange.cancelled:
            data = self.input.read(CHUNK)
            self.body_left = len(data) == CHUNK
            return {"type": "http.request", "body": data, "more_body": self.body_left}
        exchange = self.exchange
        if not exchange.over:
            if exchange.overs is None:
                exchange.overs = asyncio.Event()
            await exchange.overs.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        exchange = self.exchange
        if exchange.cancelled:
            raise ClientDisconnected("the client is gone")
        kind = message["type"]
        if kind == "http.response.start":
            if self.start is not None:
                raise RuntimeError("http.response.start sent twice")
            self.start = (status_code(message["status"]), pairs_of(message.get("headers", ())))
        elif kind == "http.response.pathsend":  # the extension: a file, zero-copy if it can
            await self.pathsend(str(message["path"]))
        elif kind == "http.response.body":
            if self.start is None:
                raise RuntimeError("http.response.body before http.response.start")
            if self.complete:
                raise RuntimeError("http.response.body after the response ended")
            if self.conn.gone:
                raise ClientDisconnected("the client is gone")
            body = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            self.body(body, more)
            if more and self.conn.write_paused:
                await self.conn.drained()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for an HTTP request")

    async def pathsend(self, path: str) -> None:
        if self.start is None or self.head_sent:
            raise RuntimeError("http.response.pathsend needs a response started, with no body")
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            status, headers = self.start
            self.head_sent = True
            self.session.send_head(self.exchange, status_line(status), headers, b"", not size)
            if size and await send_file(self.conn, self.exchange, file, 0, size):
                self.session.send_end(self.exchange)
        self.complete = True
        self.exchange.wake()

    def body(self, body: bytes, more: bool) -> None:
        session, exchange = self.session, self.exchange
        if not self.head_sent:
            assert self.start is not None
            status, headers = self.start
            self.head_sent = True
            session.send_head(exchange, status_line(status), headers, body, not more)
        else:
            if body:
                session.send_body(exchange, body)
            if not more:
                session.send_end(exchange)
        if not more:
            self.complete = True
            exchange.wake()

    def returned(self) -> None:
        """The application returned: a response it started but did not
        finish is broken off; none at all, or a start without a body, is a
        500 (and logged), unless the client had gone: then nothing is owed."""
        if self.complete:
            return
        if self.head_sent or self.exchange.over:
            # (over: the client left or closed its side, the application was
            # told with http.disconnect and ended: no error, nothing owed)
            self.abort()
        else:  # (a start without a body: its head may promise one; none sent)
            what = "a response" if self.start is None else "the end of its response"
            environ = self.exchange.request.environ
            method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
            log.error("ASGI application returned without %s (%s %s)", what, method, path)
            self.failed("")

    def failed(self, detail: str) -> None:
        """The application raised (or returned without a response)."""
        if self.complete:
            return
        if self.head_sent:
            self.abort()
            return
        text = detail or "Internal Server Error\n"
        self.head_sent = self.complete = True
        self.session.send_head(
            self.exchange, "500 Internal Server Error", ERROR_HEADERS, text.encode(), True
        )
        self.exchange.wake()

    def abort(self) -> None:
        self.complete = True
        self.session.send_abort(self.exchange)
        self.exchange.wake()


#: Every status line HTTPStatus knows, made once (the enum's lookup was a
#: measurable part of an ASGI response's cost).
STATUS_LINES = {int(known): f"{int(known)} {known.phrase}" for known in http.HTTPStatus}


def status_line(status: int) -> str:
    line = STATUS_LINES.get(status)
    return line if line is not None else f"{status} Unknown"
