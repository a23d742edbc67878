"""Sans-IO wire protocols: bytes in, events out; response calls in, bytes out.

Nothing in this package imports socket, asyncio, threading, selectors or
logging (``tests/unit/test_layering.py`` checks it).  Each module implements
one wire protocol behind the same :class:`ServerProtocol` contract, and produces
the events of :mod:`dumbwaiter.protocols.events`.

The response vocabulary
-----------------------
Every protocol consumes the same five calls; each returns the bytes to write
(possibly empty) and never writes anything itself:

``start_response(stream_id, status, headers, body=b"", end=False)``
    The response head, optionally with the first body bytes and the end (one
    call, one write for the common small response).  ``status`` is a WSGI
    status line (``"200 OK"``); ``headers`` a list of ``(name, value)`` str
    pairs, latin-1 encodable, already validated by the gateway (no CR/LF).
    Hop-by-hop headers (Connection, Keep-Alive, Transfer-Encoding ...) from
    the application are dropped: framing is the protocol's business.
``send_body(stream_id, data)``
    More body bytes (``data`` non-empty).
``end_response(stream_id)``
    The response is complete.  Also owed after :class:`RequestAborted`.
``reject(stream_id, status, headers, body)``
    A whole response produced by the server itself, for a request the
    application never saw (503 when the queue is full, 413 ...).  FastCGI
    marks a 503 with ``FCGI_OVERLOADED``.
``abort_response(stream_id)``
    A started response cannot be finished (the application raised after the
    head went out).  The protocol makes sure the front server sees a broken
    response, never a complete-looking truncated one: afterwards ``closing``
    is true and the connection must be closed without further bytes.

Two questions a server may ask: ``raw_body_ok`` (may the response body
now go out unframed, by sendfile?) and ``keeps_connection`` (may another
request follow this one on the connection?).

After any of these, ``closing`` tells whether the connection must be closed
once the written bytes are flushed (HTTP ``Connection: close``, FastCGI
without ``FCGI_KEEP_CONN``, an abort).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    BodyReceived,
    Chunk,
    Event,
    FilterDataReceived,
    PeerError,
    RequestAborted,
    RequestComplete,
    RequestReceived,
    Role,
)

__all__ = [
    "BodyReceived",
    "Chunk",
    "Event",
    "FilterDataReceived",
    "Limits",
    "LocalProtocolError",
    "PeerError",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestAborted",
    "RequestComplete",
    "RequestReceived",
    "Role",
    "ServerProtocol",
]

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits a protocol enforces while parsing (each raises
    :class:`RemoteProtocolError` with the status given beside it).

    The server builds one from its Config; the defaults are safe for the
    front servers' usual traffic.
    """

    #: FastCGI params / SCGI / uwsgi header block, total bytes (431).
    max_header_bytes: int = 64 * KiB
    #: Number of params / header fields (431).
    max_header_count: int = 256
    #: HTTP request-target length (414).
    max_request_line: int = 8 * KiB
    #: Request body bytes (413); 0 means no limit.
    max_body: int = 1024 * MiB
    #: Concurrent requests on one multiplexed FastCGI connection.
    max_streams: int = 100


class ServerProtocol(Protocol):
    """The contract every server-side protocol object fulfils (see module doc)."""

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed received bytes; ``b""`` means the peer closed its side.

        Returns the events the bytes completed, in order.  Raises
        :class:`RemoteProtocolError` when the peer broke the protocol; the
        object is then unusable except for :meth:`error_response`.
        """
        ...

    def data_to_send(self) -> bytes:
        """Replies caused by receiving (FastCGI GET_VALUES answers, HTTP
        ``100 Continue``); ``b""`` when there are none.  Drains the buffer."""
        ...

    def start_response(
        self,
        stream_id: int,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        end: bool = False,
    ) -> bytes: ...

    def send_body(self, stream_id: int, data: bytes) -> bytes: ...

    def end_response(self, stream_id: int) -> bytes: ...

    def reject(
        self, stream_id: int, status: str, headers: list[tuple[str, str]], body: bytes
    ) -> bytes: ...

    def abort_response(self, stream_id: int) -> bytes: ...

    def error_response(self, error: RemoteProtocolError) -> bytes:
        """What to send, if anything, before closing after ``error``."""
        ...

    def raw_body_ok(self, stream_id: int) -> bool:
        """Whether the body of the response under way may now go out as raw
        bytes, with no framing between them (the caller may then send a file
        with ``sendfile``): after ``start_response``, when the protocol
        delimits the body by a length or by the connection's close.  False
        when each piece must be framed (FastCGI records, HTTP chunks)."""
        ...

    def keeps_connection(self, stream_id: int) -> bool:
        """Whether the connection may carry another request after this one
        (FastCGI's ``FCGI_KEEP_CONN``, HTTP keep-alive; never for SCGI and
        uwsgi).  A driver that serves one request per connection hands the
        others to one that keeps connections.  Once ``RequestComplete`` was
        received for ``stream_id``."""
        ...

    def take_over(self, stream_id: int) -> bytes | None:
        """Give the connection up after ``stream_id``'s request (a WebSocket
        handshake): the bytes received after it, which belong to the new
        protocol; None when this protocol cannot be left (only HTTP can).
        Afterwards every call writes nothing."""
        ...

    def drain(self) -> None:
        """The server is stopping gracefully: finish what was received and
        tell the peer that the connection ends after it (HTTP says
        ``Connection: close`` on the last response owed)."""
        ...

    @property
    def closing(self) -> bool:
        """True once no further request may be read on this connection."""
        ...

    @property
    def idle(self) -> bool:
        """True when no request is open or partly received (a keep-alive
        wait), so the idle timeout applies rather than the read timeout."""
        ...
