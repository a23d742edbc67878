"""WebSockets for ASGI applications on HTTP listeners (RFC 6455), framed by
wsproto.

A GET that asks to upgrade to a WebSocket reaches the application as a
``websocket`` scope.  Its first ``receive()`` is ``websocket.connect``; the
handshake then waits on the application:

* ``websocket.accept``: the 101 goes out (with the subprotocol and headers
  it chose, and ``permessage-deflate`` when the client offered it), the
  HTTP protocol gives the connection up (:meth:`Session.take_over`) and its
  bytes come here (``Connection.upgraded``);
* ``websocket.close`` before that: a 403; ``websocket.http.response.*``
  (the denial-response extension): the application's own HTTP response;
* an exception or a return before either: a 500, logged.

Once open, each whole message the client sends (its fragments joined,
``--ws-max-size`` bounding it: 1009 beyond) is a ``websocket.receive``.
Pings are answered; a connection silent for ``--ws-ping-interval`` is
pinged, and closed when the pong does not come within
``--ws-ping-timeout``.  Reading pauses while :data:`INBOX` messages wait for
the application; its sends wait while the client is slow to read.

Closing: the client's close frame is answered and the application gets
``websocket.disconnect`` with its code and reason (spec 2.5); the
application's ``websocket.close`` sends one with its code and reason (2.3)
and the connection ends when the client answers, or after
:data:`CLOSE_WAIT`.  A frame that breaks the protocol gets a close with its
code (1002, 1007 ...) and the connection ends.  ``send()`` once the
connection is gone raises :class:`~dumbwaiter.errors.ClientDisconnected`
(2.4).  The session reports the connection when it ends, as a ``101``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Protocol

from wsproto.connection import Connection as Framing
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.events import Message as Data
from wsproto.extensions import Extension
from wsproto.utilities import LocalProtocolError

from ..errors import ClientDisconnected
from ..server.exchange import ExchangeBase
from ..server.static import Conn
from .deflate import agree
from .detect import Message
from .frames import Frames, data_frame
from .handshake import Sockets, WebSocketSettings, accept_token


class Denial(Protocol):
    """The handshake's HTTP answer when it is not accepted: the gateway's
    ``Call`` (a 403, the application's denial response, a 500)."""

    start: tuple[int, list[tuple[str, str]]] | None
    complete: bool

    async def send(self, message: Message) -> None: ...

    def body(self, body: bytes, more: bool) -> None: ...

    def returned(self) -> None: ...

    def failed(self, detail: str) -> None: ...


__all__ = ["CLOSE_WAIT", "INBOX", "WebSocket"]

log = logging.getLogger("dumbwaiter")

#: Messages received ahead of the application before reading pauses.
INBOX = 16
#: How long a close we sent waits for the client's.
CLOSE_WAIT = 5.0

CONNECTING, OPEN, CLOSING, CLOSED = range(4)


class WebSocket:
    """One WebSocket connection: the application's ``receive`` and ``send``,
    and what the connection hands it once upgraded (``receive_data`` ...)."""

    def __init__(
        self,
        conn: Conn,
        exchange: ExchangeBase,
        settings: WebSocketSettings,
        denial: Denial,
        sockets: Sockets,
    ) -> None:
        self.conn = conn
        self.loop = conn.loop
        self.session = conn.session
        self.exchange = exchange
        self.settings = settings
        self.state = CONNECTING
        self.connected = False  # websocket.connect handed over
        self.framing: Framing | None = None
        #: The common frames' reader (None: compression agreed, all is wsproto's).
        self.fast: Frames | None = None
        #: Messages for the application, then the disconnect once there is one.
        self.inbox: deque[Message] = deque()
        self.disconnect: Message | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.fragments: list[Any] = []
        self.size = 0
        self.seen = time.monotonic()
        self.pinged = 0.0  # (when a ping went out and no pong came yet)
        self.close_by = 0.0  # (when a close we sent stops waiting)
        self.timer: asyncio.TimerHandle | None = None
        self.denial = denial
        self.sockets = sockets

    # -- the application's -------------------------------------------------------
    async def receive(self) -> Message:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        while not self.inbox:
            if self.disconnect is not None:
                return self.disconnect
            self.waiter = self.loop.create_future()
            await self.waiter
        message = self.inbox.popleft()
        if self.paused and len(self.inbox) < INBOX // 2:
            self.paused = False
            self.conn.resume_reading()
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        state = self.state
        if state == CLOSED or (state == CLOSING and kind != "websocket.close"):
            if kind == "websocket.close":
                return
            raise ClientDisconnected("the WebSocket is closed")
        if kind == "websocket.send":
            if state == CONNECTING:
                raise RuntimeError("websocket.send before websocket.accept")
            text = message.get("text")
            data = message.get("bytes")
            framing = self.framing
            assert framing is not None
            if data is not None:
                if self.fast is not None:
                    self.write(data_frame(bytes(data), False))
                else:
                    self.write(framing.send(BytesMessage(data=bytes(data))))
            elif text is not None:
                if self.fast is not None:
                    self.write(data_frame(str(text).encode("utf-8"), True))
                else:
                    self.write(framing.send(TextMessage(data=str(text))))
            else:
                raise RuntimeError("websocket.send with neither bytes nor text")
            if self.conn.write_paused:  # (no coroutine made for nothing)
                await self.conn.drained()
        elif kind == "websocket.accept":
            if state != CONNECTING or self.denial.start is not None:
                raise RuntimeError("websocket.accept after the handshake was answered")
            self.accept(message)
        elif kind == "websocket.close":
            if state == CONNECTING and self.denial.start is None:
                self.deny(int(message.get("code") or 1000))
            elif state == OPEN:
                self.close(int(message.get("code") or 1000), str(message.get("reason") or ""))
            # (CONNECTING with a denial started: its response goes on)
        elif kind == "websocket.http.response.start" or kind == "websocket.http.response.body":
            if state != CONNECTING:
                raise RuntimeError(f"{kind} after the handshake was answered")
            await self.denial.send({**message, "type": kind[10:]})  # as http.response.*
            if self.denial.complete:
                self.ended(1006, "")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for a WebSocket")

    def accept(self, message: Message) -> None:
        environ = self.exchange.request.environ
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_token(environ["HTTP_SEC_WEBSOCKET_KEY"])),
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.append(("Sec-WebSocket-Protocol", str(subprotocol)))
        extensions: list[Extension] = []
        offers = environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS", "")
        if offers and self.settings.compression:
            agreed = agree(offers, self.settings.max_size)
            if agreed is not None:
                headers.append(("Sec-WebSocket-Extensions", agreed[0]))
                extensions.append(agreed[1])
        for name, value in message.get("headers", ()):
            headers.append((bytes(name).decode("latin-1"), bytes(value).decode("latin-1")))
        tail = self.session.take_over(self.exchange)
        if tail is None:  # (the client left as the application accepted)
            self.ended(1006, "")
            return
        exchange = self.exchange
        exchange.started = exchange.upgraded = True
        exchange.status = "101 Switching Protocols"
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
        self.conn.write(f"HTTP/1.1 101 Switching Protocols\r\n{lines}\r\n".encode("latin-1"))
        self.framing = Framing(ConnectionType.SERVER, extensions)
        self.fast = None if extensions else Frames()
        self.state = OPEN
        self.sockets.open += 1
        self.conn.upgraded = self
        self.seen = time.monotonic()
        self.arm()
        if tail:
            self.receive_data(tail)

    def deny(self, code: int) -> None:
        """``websocket.close`` before the handshake was accepted: 403."""
        self.denial.start = (403, [])
        self.denial.body(b"", False)
        self.ended(code, "")

    def returned(self, failed: bool) -> None:
        """The application is done: an open connection is closed (1000, or
        1011 when it raised); an unanswered handshake gets a 500."""
        if self.state == CONNECTING:
            denial = self.denial
            if denial.start is not None:  # (an empty body ends it, if it has none)
                denial.returned()
            else:
                if not failed:
                    log.error("ASGI application returned without answering a WebSocket handshake")
                denial.failed("")
            self.ended(1006, "")
        elif self.state == OPEN:
            self.close(1011 if failed else 1000, "")

    # -- the connection's (Upgraded) ---------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self.framing is None or self.state == CLOSED:
            return
        self.seen = time.monotonic()
        fast = self.fast
        if fast is None:
            self.framed(data)
        else:
            for piece in fast.split(data):
                if type(piece) is bytearray:  # a frame (or part) for wsproto
                    if not self.framed(bytes(piece)):
                        return
                elif not self.whole(piece):
                    return
        if len(self.inbox) >= INBOX and not self.paused:
            self.paused = True
            self.conn.pause_reading()

    def whole(self, data: str | bytes | bytearray) -> bool:
        """A whole message from a common frame; False once the connection failed."""
        size = len(data) if type(data) is not str or data.isascii() else len(data.encode())
        if size > self.settings.max_size:
            self.fail(1009, f"message over {self.settings.max_size} bytes")
            return False
        if type(data) is str:
            self.post({"type": "websocket.receive", "text": data})
        else:
            self.post({"type": "websocket.receive", "bytes": data})
        return True

    def framed(self, data: bytes) -> bool:
        """Bytes for wsproto, and the events they make; False once the
        connection ended."""
        framing = self.framing
        assert framing is not None
        try:
            framing.receive_data(data)
        except LocalProtocolError:  # (bytes after the close: dropped)
            return False
        for event in framing.events():
            kind = type(event)
            if kind is TextMessage or kind is BytesMessage:
                assert isinstance(event, Data)
                if not self.message(event):
                    return False
            elif kind is Ping:
                assert isinstance(event, Ping)
                if framing.state == ConnectionState.OPEN:
                    self.write(framing.send(event.response()))
            elif kind is Pong:
                self.pinged = 0.0
            elif kind is CloseConnection:
                assert isinstance(event, CloseConnection)
                self.closed(event)
                return False
        return True

    def message(self, event: Data[Any]) -> bool:
        """A piece of a message; False once the connection failed."""
        data = event.data
        # (the limit is in bytes: a text counts its UTF-8, not its characters)
        self.size += len(data) if type(data) is not str or data.isascii() else len(data.encode())
        if self.size > self.settings.max_size:
            self.fail(1009, f"message over {self.settings.max_size} bytes")
            return False
        if not event.message_finished:
            self.fragments.append(data)
            return True
        if self.fragments:
            self.fragments.append(data)
            data = "".join(self.fragments) if isinstance(data, str) else b"".join(self.fragments)
            self.fragments = []
        self.size = 0
        if isinstance(data, str):
            self.post({"type": "websocket.receive", "text": data})
        else:
            self.post({"type": "websocket.receive", "bytes": bytes(data)})
        return True

    def closed(self, event: CloseConnection) -> None:
        """A close frame came (or wsproto found the frames broken)."""
        framing = self.framing
        assert framing is not None
        state = framing.state
        if state == ConnectionState.REMOTE_CLOSING:  # the client's: answered
            self.write(framing.send(event.response()))
            self.ended(event.code, event.reason or "")
        elif state == ConnectionState.CLOSED:  # the answer to ours
            self.ended(event.code, event.reason or "")
        else:  # broken frames: wsproto says why, we close
            self.fail(event.code, event.reason or "")

    def fail(self, code: int, reason: str) -> None:
        """The client broke the protocol, or a limit: close with ``code``,
        and drop the connection without waiting for its answer."""
        log.info("%s: WebSocket closed with %d: %s", self.exchange.listener, code, reason)
        framing = self.framing
        if framing is not None and framing.state in (
            ConnectionState.OPEN,
            ConnectionState.REMOTE_CLOSING,
        ):
            self.write(framing.send(CloseConnection(code=code, reason=reason[:100])))
        self.ended(code, reason)

    def close(self, code: int, reason: str) -> None:
        """The server closes: the client's answer ends the connection."""
        assert self.framing is not None
        self.state = CLOSING
        self.write(self.framing.send(CloseConnection(code=code, reason=reason)))
        self.close_by = time.monotonic() + CLOSE_WAIT
        self.arm()

    def eof(self) -> None:
        self.ended(1006, "")

    def lost(self) -> None:
        self.ended(1006, "")

    def going_away(self) -> None:
        if self.state == OPEN:
            self.close(1001, "server stopping")

    # -- helpers -------------------------------------------------------------------
    def post(self, message: Message) -> None:
        self.inbox.append(message)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def ended(self, code: int, reason: str) -> None:
        """The connection is over: the application is told, the session
        reports it and closes the connection."""
        if self.state == CLOSED:
            return
        if self.framing is not None:
            self.sockets.open -= 1
        self.state = CLOSED
        if self.timer is not None:
            self.timer.cancel()
        self.disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        # Reported once, and the connection closed (not again after a denial
        # or a 504, which finished it).
        self.session.finish(self.exchange)

    def write(self, data: bytes) -> None:
        if data:
            self.exchange.sent += len(data)
            self.conn.write(bytes(data))

    def arm(self) -> None:
        """The next look at the connection: a ping due, a pong or a close late."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        settings = self.settings
        if self.state == CLOSING:
            delay = max(0.0, self.close_by - time.monotonic())
        elif settings.ping_interval:
            delay = settings.ping_timeout if self.pinged else settings.ping_interval
        else:
            return
        self.timer = self.loop.call_later(delay, self.tick)

    def tick(self) -> None:
        self.timer = None
        now = time.monotonic()
        framing = self.framing
        if self.state == CLOSING and now >= self.close_by:
            self.ended(1006, "")
        elif self.state == OPEN and framing is not None:
            settings = self.settings
            if self.pinged and now - self.pinged >= settings.ping_timeout:
                self.fail(1011, "no pong to the keepalive ping")
                return
            if not self.pinged and now - self.seen >= settings.ping_interval:
                self.pinged = now
                self.write(framing.send(Ping(payload=b"dumbwaiter")))
        self.arm()
