"""The shape SCGI and the uwsgi protocol share: one request per connection.

Theory of operation
-------------------
The front server connects, sends a header block that *is* the CGI environ
(its framing is the only difference between the two protocols), then exactly
``CONTENT_LENGTH`` bytes of body, and waits for the response, which ends when
we close the connection.  So the states are::

    HEAD --(header block parsed)--> BODY --(CONTENT_LENGTH bytes)--> DONE

A subclass says how to find the header block (``parse_head``) and how the
response head is written (``response_head``).  Bytes after the body are a
protocol error; so is EOF before the body is complete.

Responses are close-delimited, so a broken one (``abort_response``) can only
be shown by ending the connection abnormally: the connection layer resets it
rather than closing it cleanly.
"""

from __future__ import annotations

from typing import Final

from . import Limits
from .errors import LocalProtocolError, RemoteProtocolError
from .events import BODY_VIEW, BodyReceived, Chunk, Event, RequestComplete, RequestReceived

__all__ = ["STREAM_ID", "OneShotServerProtocol"]

STREAM_ID: Final = 1

HEAD: Final = "head"
BODY: Final = "body"
DONE: Final = "done"


class OneShotServerProtocol:
    """Server side of a one-request-per-connection gateway protocol."""

    #: A name for error messages ("SCGI", "uwsgi").
    name = "?"

    def __init__(self, limits: Limits = Limits()) -> None:  # noqa: B008 - frozen
        self.limits = limits
        self._buffer = bytearray()
        self._state = HEAD
        self._remaining = 0
        self._responding = False
        self._ended = False

    # -- what a protocol defines -----------------------------------------------
    def parse_head(self, buffer: bytes | bytearray) -> tuple[dict[str, str], int] | None:
        """The environ and the bytes it took, or None if more are needed.

        Raises :class:`RemoteProtocolError` for a malformed or oversized block.
        """
        raise NotImplementedError

    def response_head(self, status: str, headers: list[tuple[str, str]]) -> bytes:
        raise NotImplementedError

    # -- receiving ------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        if not data:
            if self._state == HEAD and not self._buffer:
                self._state = DONE  # closed before a byte: a probe, not an error
            if self._state != DONE:
                self._state = DONE
                raise RemoteProtocolError(f"{self.name} request cut short")
            return events
        if self._state == DONE:
            raise RemoteProtocolError(f"data after the {self.name} request")
        if self._state == HEAD:
            head: bytes | bytearray = data
            if self._buffer:
                self._buffer += data
                head = self._buffer
            parsed = self.parse_head(head)
            if parsed is None:
                if head is data:
                    self._buffer += data
                if len(self._buffer) > self.limits.max_header_bytes + 16:
                    raise RemoteProtocolError(f"{self.name} header block too large", 431)
                return events
            environ, used = parsed
            if len(environ) > self.limits.max_header_count:
                raise RemoteProtocolError(f"more than {self.limits.max_header_count} vars", 431)
            length = _content_length(environ, self.name)
            if self.limits.max_body and length > self.limits.max_body:
                raise RemoteProtocolError(f"body over {self.limits.max_body} bytes", 413)
            events.append(RequestReceived(STREAM_ID, environ))
            self._remaining = length
            self._state = BODY
            # The body's first piece: a view when large (a bytearray head is
            # dropped here, never resized under it), else a copy.
            rest = len(head) - used
            body: Chunk = b""
            if rest > BODY_VIEW:
                body = memoryview(head)[used:]
            elif rest:
                body = head[used:]
            if head is not data:
                self._buffer = bytearray()
        else:
            body = data
        if body:
            if len(body) > self._remaining:
                raise RemoteProtocolError(f"more bytes than CONTENT_LENGTH on {self.name}")
            self._remaining -= len(body)
            events.append(BodyReceived(STREAM_ID, body))
        if self._remaining == 0:
            self._state = DONE
            events.append(RequestComplete(STREAM_ID))
        return events

    def data_to_send(self) -> bytes:
        return b""

    # -- responding -------------------------------------------------------------
    def start_response(
        self,
        stream_id: int,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        end: bool = False,
    ) -> bytes:
        if self._responding or self._ended:
            raise LocalProtocolError("response already started")
        self._responding = True
        if end:
            self._ended = True
        head = self.response_head(status, headers)
        return head + body if body else head

    def send_body(self, stream_id: int, data: bytes) -> bytes:
        if not self._responding or self._ended:
            raise LocalProtocolError("no response in progress")
        return data

    def end_response(self, stream_id: int) -> bytes:
        self._ended = True
        return b""

    def reject(
        self, stream_id: int, status: str, headers: list[tuple[str, str]], body: bytes
    ) -> bytes:
        return self.start_response(
            stream_id, status, [*headers, ("Content-Length", str(len(body)))], body, True
        )

    def abort_response(self, stream_id: int) -> bytes:
        self._ended = True
        return b""

    def error_response(self, error: RemoteProtocolError) -> bytes:
        if self._responding:
            return b""
        self._responding = self._ended = True
        reason = str(error).encode("latin-1", "replace") + b"\n"
        phrase = {413: "Content Too Large", 431: "Request Header Fields Too Large"}.get(
            error.status, "Bad Request"
        )
        return (
            self.response_head(
                f"{error.status} {phrase}",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(reason)))],
            )
            + reason
        )

    def raw_body_ok(self, stream_id: int) -> bool:
        """The body follows the head as it is, until we close."""
        return self._responding and not self._ended

    def keeps_connection(self, stream_id: int) -> bool:
        """Never: one request per connection."""
        return False

    def take_over(self, stream_id: int) -> None:
        return None  # (a front never passes a WebSocket to SCGI or uwsgi)

    def drain(self) -> None:
        """Nothing to do: one request per connection already."""

    @property
    def closing(self) -> bool:
        return True  # one request per connection, whatever happens

    @property
    def idle(self) -> bool:
        return self._state == HEAD and not self._buffer


def _content_length(environ: dict[str, str], name: str) -> int:
    text = environ.get("CONTENT_LENGTH", "")
    if not text or text == "0":
        return 0  # (most requests)
    if not text.isdigit() or not text.isascii():
        raise RemoteProtocolError(f"bad CONTENT_LENGTH {text[:40]!r} on {name}")
    # int() refuses more than 4300 digits with a ValueError: leading zeros
    # are harmless, and a number of more than 20 digits is past any body.
    digits = text.lstrip("0")
    if len(digits) > 20:
        raise RemoteProtocolError(f"CONTENT_LENGTH of {len(digits)} digits on {name}", 413)
    return int(digits or "0")
