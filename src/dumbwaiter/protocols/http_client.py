"""HTTP/1.1 client side, sans-IO: requests out, response events in (RFC 9112).

Small on purpose: it serves the tests (a second, independent parser to
round-trip the server's responses through) and the ``dumbwaiter request``
command.  It is written by hand rather than over llhttp because a response's
framing depends on the request (a response to HEAD has no body, section 6.3),
which llhttp's response parser cannot be told.

Theory of operation: received bytes go into a buffer; the current state is a
method that consumes what it can and returns False when it needs more bytes.

    head --(1xx, 204, 304, HEAD)--> head
    head --(Content-Length)--> body --> head
    head --(chunked)--> chunk_size <--> chunk_data --> trailer --> head
    head --(no length)--> until_close --(EOF)--> closed
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .errors import RemoteProtocolError

__all__ = [
    "ClientEvent",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "HTTPClientProtocol",
    "Response",
]

MAX_HEAD = 64 * 1024


@dataclass(slots=True)
class Response:
    """A response head; 1xx interim responses come as one too (then EndOfMessage)."""

    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]


@dataclass(slots=True)
class Data:
    """A piece of the response body (de-chunked)."""

    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    """The response (or interim response) is complete."""


@dataclass(slots=True)
class ConnectionClosed:
    """The server closed its side; nothing follows."""


ClientEvent = Response | Data | EndOfMessage | ConnectionClosed

_HEX = frozenset(b"0123456789abcdefABCDEF")


class HTTPClientProtocol:
    """The client side of one HTTP/1.1 connection.

    :meth:`send_request` returns the bytes of a request; :meth:`receive_data`
    turns the server's bytes into :data:`ClientEvent` s, raising
    :class:`RemoteProtocolError` for a response it cannot frame.
    """

    def __init__(self, max_head: int = MAX_HEAD) -> None:
        self._max_head = max_head
        self._buffer = bytearray()
        self._events: list[ClientEvent] = []
        self._methods: deque[str] = deque()  # of requests not yet answered
        self._remaining = 0
        self._state: Callable[[], bool] = self._head

    def send_request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> bytes:
        """The request's bytes; adds Content-Length for a body unless given."""
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        lines += (f"{name}: {value}\r\n" for name, value in headers)
        framed = any(name.lower() in ("content-length", "transfer-encoding") for name, _ in headers)
        if not framed and (body or method in ("POST", "PUT", "PATCH")):
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        self._methods.append(method)
        return "".join(lines).encode("latin-1") + body

    def receive_data(self, data: bytes) -> list[ClientEvent]:
        """Feed received bytes; ``b""`` means the server closed."""
        events: list[ClientEvent] = []
        self._events = events
        if self._state == self._closed:
            return events
        if not data:
            if self._state == self._until_close:
                events.append(EndOfMessage())
            elif self._state != self._head or self._buffer:
                raise RemoteProtocolError("connection closed in the middle of a response")
            events.append(ConnectionClosed())
            self._state = self._closed
            return events
        self._buffer += data
        while self._state():
            pass
        return events

    # -- states: consume from the buffer, False when more bytes are needed --------
    def _head(self) -> bool:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > self._max_head:
                raise RemoteProtocolError("response head too large")
            return False
        if end > self._max_head:
            raise RemoteProtocolError("response head too large")
        lines = bytes(buffer[:end]).split(b"\r\n")
        del buffer[: end + 4]
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise RemoteProtocolError(f"bad status line {lines[0]!r}")
        status = int(code)
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or line[:1] in b" \t":
                raise RemoteProtocolError(f"bad header line {line!r}")
            headers.append((name, value.strip(b" \t")))
        self._events.append(Response(status, reason, headers))
        self._frame(status, headers)
        return True

    def _frame(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Choose how the body is delimited (RFC 9112 section 6.3)."""
        if status < 200:
            self._end()  # interim: the final response follows
            return
        method = self._methods.popleft() if self._methods else "GET"
        lengths = {v for n, v in headers if n.lower() == b"content-length"}
        codings = b",".join(v for n, v in headers if n.lower() == b"transfer-encoding")
        if method == "HEAD" or status in (204, 304):
            self._end()
        elif codings:
            chunked = codings.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
            self._state = self._chunk_size if chunked else self._until_close
        elif lengths:
            # int() refuses more than 4300 digits (a ValueError): leading
            # zeros are dropped, and no body has more than 20 digits of length.
            value = next(iter(lengths))
            digits = value.lstrip(b"0")
            if len(lengths) > 1 or not value.isdigit() or len(digits) > 20:
                raise RemoteProtocolError(f"bad Content-Length {sorted(lengths)!r:.80}")
            self._remaining = int(digits or b"0")
            if self._remaining:
                self._state = self._body
            else:
                self._end()
        else:
            self._state = self._until_close

    def _end(self) -> None:
        self._events.append(EndOfMessage())
        self._state = self._head

    def _body(self) -> bool:
        return self._take(self._end)

    def _take(self, then: Callable[[], None]) -> bool:
        """Up to ``_remaining`` bytes of body; ``then()`` once they are all in."""
        buffer = self._buffer
        if not buffer:
            return False
        size = min(self._remaining, len(buffer))
        self._events.append(Data(bytes(buffer[:size])))
        del buffer[:size]
        self._remaining -= size
        if not self._remaining:
            then()
        return True

    def _chunk_size(self) -> bool:
        buffer = self._buffer
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) > self._max_head:
                raise RemoteProtocolError("chunk size line too long")
            return False
        size = bytes(buffer[:end]).partition(b";")[0].rstrip(b" \t")
        del buffer[: end + 2]
        if not size or not _HEX.issuperset(size):
            raise RemoteProtocolError(f"bad chunk size {size!r}")
        self._remaining = int(size, 16)
        self._state = self._chunk_data if self._remaining else self._trailer
        return True

    def _chunk_data(self) -> bool:
        return self._take(self._chunk_done)

    def _chunk_done(self) -> None:
        self._state = self._chunk_end

    def _chunk_end(self) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        if buffer[:2] != b"\r\n":
            raise RemoteProtocolError("chunk data longer than its size")
        del buffer[:2]
        self._state = self._chunk_size
        return True

    def _trailer(self) -> bool:
        # Trailer fields are read and dropped, up to the empty line.
        buffer = self._buffer
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) > self._max_head:
                raise RemoteProtocolError("trailer too large")
            return False
        del buffer[: end + 2]
        if end == 0:
            self._end()
        return True

    def _until_close(self) -> bool:
        if self._buffer:
            self._events.append(Data(bytes(self._buffer)))
            self._buffer.clear()
        return False

    def _closed(self) -> bool:
        return False
