"""WebSockets for ASGI applications on HTTP listeners (RFC 6455), framed by
wsproto (and :mod:`.frames` for the common frame); docs/asgi.md says what
an application sees.

The handshake waits on the application: ``websocket.accept`` sends the 101
and takes the connection from the HTTP protocol (:meth:`Session.take_over`;
its bytes then come here, ``Connection.upgraded``); ``websocket.close``
before it is a 403, ``websocket.http.response.*`` the application's own
answer, an exception or a return a 500.  Once open, what is read goes
through :meth:`WebSocket.take_in` while the application keeps up: reading
pauses while :data:`INBOX` messages (or :data:`INBOX_BYTES`, or a message
at the limit) wait, and while the client is slow to take what we write
(pongs included); what was read meanwhile waits as bytes, or as wsproto's
events not yet drawn.  Closing either way ends in :meth:`WebSocket.ended`:
the application gets ``websocket.disconnect`` (code and reason) and the
session reports the connection (a ``101``) and closes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterator

from wsproto.connection import Connection as Framing
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.events import Message as Data
from wsproto.extensions import Extension
from wsproto.utilities import LocalProtocolError

from ..errors import ClientDisconnected
from ..fields import check_value, pairs_of
from ..server.exchange import ExchangeBase
from ..server.static import Conn
from .deflate import agree
from .detect import Message
from .frames import Frames, data_frame
from .handshake import Denial, Sockets, WebSocketSettings, accept_token

__all__ = ["CLOSE_WAIT", "INBOX", "INBOX_BYTES", "WebSocket"]

log = logging.getLogger("dumbwaiter")

#: Messages, and their bytes (or one message at the limit, if more),
#: received ahead of the application before reading pauses.
INBOX = 16
INBOX_BYTES = 1 << 20
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
        self.denial = denial
        self.sockets = sockets
        self.state = CONNECTING
        self.connected = False  # websocket.connect handed over
        self.framing: Framing | None = None
        #: The common frames' reader (None: compression agreed, all is wsproto's).
        self.fast: Frames | None = None
        #: Messages for the application (and their bytes), then the
        #: disconnect once there is one; ``arrived`` wakes a waiting receive.
        self.inbox: deque[Message] = deque()
        self.queued = 0
        self.budget = max(INBOX_BYTES, settings.max_size)
        self.disconnect: Message | None = None
        self.arrived: asyncio.Event | None = None
        #: Read but not yet taken in (see take_in), and reading paused.
        self.backlog: deque[str | bytes | bytearray] = deque()
        self.events: Iterator[Event] | None = None
        self.paused = False
        self.unblock: asyncio.Task[None] | None = None
        #: A fragmented message so far (text as its UTF-8), and its size.
        self.fragments = bytearray()
        self.size = 0
        self.seen = time.monotonic()
        self.pinged = 0.0  # (when a ping went out and no pong came yet)
        self.close_by = 0.0  # (when a close we sent stops waiting)
        self.timer: asyncio.TimerHandle | None = None

    # -- the application's -------------------------------------------------------
    async def receive(self) -> Message:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        while not self.inbox:
            if self.disconnect is not None:
                return self.disconnect
            if self.arrived is None:
                self.arrived = asyncio.Event()
            self.arrived.clear()
            await self.arrived.wait()
        message = self.inbox.popleft()
        self.queued -= len(message.get("text") or message.get("bytes") or b"")
        if self.paused or self.backlog or self.events is not None:
            self.take_in()
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        state = self.state
        if state == CLOSED or (state == CLOSING and kind != "websocket.close"):
            if kind == "websocket.close":
                return
            raise ClientDisconnected("the WebSocket is closed")
        if state == OPEN and self.conn.gone:  # (before the loop runs connection_lost)
            raise ClientDisconnected("the connection is gone")
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
            subprotocol = str(subprotocol)
            check_value("Sec-WebSocket-Protocol", subprotocol)
            headers.append(("Sec-WebSocket-Protocol", subprotocol))
        extensions: list[Extension] = []
        offers = environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS", "")
        if offers and self.settings.compression:
            agreed = agree(offers, self.settings.max_size)
            if agreed is not None:
                headers.append(("Sec-WebSocket-Extensions", agreed[0]))
                extensions.append(agreed[1])
        headers += pairs_of(message.get("headers", ()))
        exchange = self.exchange
        tail = self.session.take_over(exchange)
        if tail is None:  # the client left, or sent too much before the 101
            if not exchange.cancelled:
                self.denial.start = (400, [])
                self.denial.body(b"", False)
            self.ended(1006, "")
            return
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
        if self.session.draining:  # accepted as the server stops
            self.going_away()

    def deny(self, code: int) -> None:
        """``websocket.close`` before the handshake was accepted: 403."""
        self.denial.start = (403, [])
        self.denial.body(b"", False)
        self.ended(code, "")

    def returned(self, failed: bool) -> None:
        """The application is done: an open connection is closed (1000, or
        1011 when it raised); an unanswered handshake gets a 500 (or, when
        the application began a denial response and returned, its end)."""
        if self.state == CONNECTING:
            denial = self.denial
            if failed or denial.start is None:
                if not failed:
                    log.error("ASGI application returned without answering a WebSocket handshake")
                denial.failed("")
            else:
                denial.returned()
            self.ended(1006, "")
        elif self.state == OPEN:
            self.close(1011 if failed else 1000, "")

    # -- the connection's (Upgraded) ---------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self.framing is None or self.state == CLOSED:
            return
        self.seen = time.monotonic()
        if self.fast is None:
            self.backlog.append(bytearray(data))
        else:
            self.backlog.extend(self.fast.split(data))
        self.take_in()

    def take_in(self) -> None:
        """Turn what was read into messages while the application keeps up
        and the client takes what we write; then pause or resume reading."""
        framing = self.framing
        assert framing is not None
        backlog = self.backlog
        while self.state != CLOSED and not self.full() and not self.conn.write_paused:
            events = self.events
            if events is None:
                if not backlog:
                    break
                piece = backlog.popleft()
                if not isinstance(piece, bytearray):  # a whole message of a common frame
                    self.message(piece, True)
                    continue
                try:
                    framing.receive_data(bytes(piece))
                except LocalProtocolError:  # (bytes after the close: dropped)
                    break
                events = self.events = framing.events()
            for event in events:
                self.event(event)
                if self.state == CLOSED or self.full():
                    break
            else:
                self.events = None
        if self.state == CLOSED:
            backlog.clear()
            self.events = None
            return
        stop = self.full() or self.conn.write_paused
        if stop and not self.paused:
            self.paused = True
            self.conn.pause_reading()
            if self.conn.write_paused and self.unblock is None:
                self.unblock = self.loop.create_task(self.when_drained())
        elif not stop and self.paused:
            self.paused = False
            self.conn.resume_reading()

    async def when_drained(self) -> None:
        await self.conn.drained()
        self.unblock = None
        if self.state != CLOSED:
            self.take_in()

    def full(self) -> bool:
        return len(self.inbox) >= INBOX or self.queued >= self.budget

    def event(self, event: Event) -> None:
        framing = self.framing
        assert framing is not None
        kind = type(event)
        if kind is TextMessage or kind is BytesMessage:
            assert isinstance(event, Data)
            data = event.data
            if not event.message_finished or self.fragments:
                self.fragment(data, event.message_finished)
            else:
                self.message(data if type(data) is str else bytes(data), False)
        elif kind is Ping:
            assert isinstance(event, Ping)
            if framing.state == ConnectionState.OPEN:
                self.write(framing.send(event.response()))
        elif kind is Pong:
            self.pinged = 0.0
        elif kind is CloseConnection:
            assert isinstance(event, CloseConnection)
            self.closed(event)

    def fragment(self, data: str | bytes | bytearray, last: bool) -> None:
        """A piece of a fragmented message: kept as bytes (an empty piece
        costs nothing), joined at the last."""
        text = type(data) is str
        piece = data.encode() if isinstance(data, str) else data
        self.size += len(piece)
        if self.size > self.settings.max_size:
            self.fail(1009, f"message over {self.settings.max_size} bytes")
            return
        self.fragments += piece
        if last:
            joined = bytes(self.fragments)
            self.fragments = bytearray()
            self.size = 0
            self.message(joined.decode() if text else joined, False)

    def message(self, data: str | bytes, checked: bool) -> None:
        """A whole message for the application (``checked``: not yet
        against the limit, which is in bytes: a text counts its UTF-8)."""
        if checked:
            size = len(data) if type(data) is not str or data.isascii() else len(data.encode())
            if size > self.settings.max_size:
                self.fail(1009, f"message over {self.settings.max_size} bytes")
                return
        if type(data) is str:
            self.inbox.append({"type": "websocket.receive", "text": data})
        else:
            self.inbox.append({"type": "websocket.receive", "bytes": data})
        self.queued += len(data)
        if self.arrived is not None:
            self.arrived.set()

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
        if self.arrived is not None:
            self.arrived.set()
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
