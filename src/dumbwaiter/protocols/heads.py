"""Response heads: what the application's status and header fields become.

Behind a front server (FastCGI, SCGI, CGI: RFC 3875 section 6) the head is a
CGI one, a ``Status:`` line, the application's fields and a blank line; the
uwsgi protocol has an HTTP/1.1 status line instead, as uWSGI writes.  The
front server frames the response to its client itself.

Serving HTTP/1.1 ourselves, the framing is ours (:func:`framed_head`): the
status says whether there may be a body (RFC 9110 section 6.4.1: none for 1xx,
204 and 304, nor for a HEAD request), and a body is delimited by its
Content-Length, by chunked coding, or, for an HTTP/1.0 client when its length
is unknown, by closing the connection (RFC 9112 section 6.3).  We also write
the Connection, Date (RFC 9110 section 6.6.1) and Server fields.

Either way the application's hop-by-hop fields (``HOP_BY_HOP``) are dropped:
they describe a connection it does not own.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from http import HTTPStatus
from typing import Final

__all__ = [
    "CHUNKED",
    "HOP_BY_HOP",
    "NO_BODY",
    "RAW",
    "UNTIL_CLOSE",
    "Owed",
    "cgi_head",
    "error_answer",
    "framed_head",
    "http_date",
    "http_head",
]

#: Connection-specific fields (RFC 9110 section 7.6.1), and Trailer: no
#: trailer follows our chunked bodies, and behind a front server none at all.
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

#: Only names of these lengths can be hop-by-hop: the others skip lower().
_HOP_LENGTHS: Final = frozenset(len(name) for name in HOP_BY_HOP)


# -- behind a front server -------------------------------------------------------
def _head(first: str, status: str, headers: list[tuple[str, str]]) -> bytes:
    # Built as text and encoded once: one encode per head, not two per field.
    lines = [first, status, "\r\n"]
    for name, value in headers:
        if len(name) in _HOP_LENGTHS and name.lower() in HOP_BY_HOP:
            continue
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def cgi_head(status: str, headers: list[tuple[str, str]]) -> bytes:
    """``Status: 200 OK`` + headers + blank line, latin-1."""
    return _head("Status: ", status, headers)


def http_head(status: str, headers: list[tuple[str, str]]) -> bytes:
    """``HTTP/1.1 200 OK`` + headers + blank line, latin-1."""
    return _head("HTTP/1.1 ", status, headers)


# -- serving HTTP/1.1 ------------------------------------------------------------
# Framings, what framed_head returns: the body goes out as it is (RAW: with a
# Content-Length, or close-delimited), chunked, or not at all.  UNTIL_CLOSE is
# RAW for a body that only the connection's close can end.
RAW: Final = 1
CHUNKED: Final = 2
NO_BODY: Final = 3
UNTIL_CLOSE: Final = 4

_CHUNKED_LINE: Final = b"Transfer-Encoding: chunked\r\n"
_CLOSE_LINE: Final = b"Connection: close\r\n"
_KEEP_ALIVE_LINE: Final = b"Connection: keep-alive\r\n"

# Status kinds: what the status allows of a body (RFC 9110 sections 8.6, 15.4.5).
_BODY: Final = 0
_NO_CONTENT: Final = 1  # 1xx, 204: no body and no Content-Length
_NOT_MODIFIED: Final = 2  # 304: no body, but the Content-Length a 200 would have


def _status_entry(status: str) -> tuple[bytes, int]:
    code = status[:3]
    kind = _BODY
    if code == "204" or code[0] == "1":
        kind = _NO_CONTENT
    elif code == "304":
        kind = _NOT_MODIFIED
    return b"HTTP/1.1 " + status.encode("latin-1") + b"\r\n", kind


#: Status line and kind per WSGI status; the common ones precomputed.
_STATUSES: Final = {
    f"{s.value} {s.phrase}": _status_entry(f"{s.value} {s.phrase}") for s in HTTPStatus
}

# What framed_head does with an application's field it must look at.
_HOP: Final = 0  # dropped
_LENGTH: Final = 1  # taken for the framing
_DATE: Final = 2  # kept, and no Date of ours
_SERVER: Final = 3  # kept, and no Server of ours
_RESPONSE_FIELDS: Final = dict.fromkeys(HOP_BY_HOP, _HOP)
_RESPONSE_FIELDS.update({"content-length": _LENGTH, "date": _DATE, "server": _SERVER})
# Only names of these lengths are lowercased and looked up.
_FIELD_LENGTHS: Final = frozenset(len(name) for name in _RESPONSE_FIELDS)


def http_date() -> bytes:
    """The Date value (RFC 9110 section 5.6.7) from the clock, read on every
    call: the default of HTTPServerProtocol (the server passes a cached value,
    refreshed once a second, instead)."""
    return email.utils.formatdate(usegmt=True).encode("ascii")


def framed_head(
    parts: list[bytes],
    status: str,
    headers: list[tuple[str, str]],
    head: bool,
    http10: bool,
    size: int,
    close: bool,
    date: Callable[[], bytes],
    server_line: bytes,
) -> int:
    """Append the HTTP/1.1 head for ``status`` and ``headers`` to ``parts``;
    return its framing: RAW, CHUNKED, NO_BODY or UNTIL_CLOSE.

    ``head`` and ``http10`` describe the request: a HEAD, an HTTP/1.0 one.
    ``size`` is the body's whole length when the response is complete with
    it, else -1.  ``close``: the connection closes after this response;
    UNTIL_CLOSE means it must, and the head says so whatever ``close`` was.
    ``date()`` gives the Date value, ``server_line`` the Server field (``b""``:
    none); neither is written when the application sent its own.  The
    application's Content-Length is used when it is a number, else dropped.
    """
    line, kind = _STATUSES.get(status) or _status_entry(status)
    lines: list[str] = []
    length: str | None = None
    add_date = add_server = True
    for name, value in headers:
        if len(name) in _FIELD_LENGTHS:
            field = _RESPONSE_FIELDS.get(name.lower())
            if field == _HOP:
                continue
            if field == _LENGTH:
                if length is None and value.isascii() and value.isdigit():
                    length = value
                continue  # written by _frame
            if field == _DATE:
                add_date = False
            elif field == _SERVER:
                add_server = False
        lines.append(f"{name}: {value}\r\n")
    framing = _frame(lines, kind, length, head, http10, size)
    parts.append(line)
    parts.append("".join(lines).encode("latin-1"))
    if framing == CHUNKED:
        parts.append(_CHUNKED_LINE)
    if close or framing == UNTIL_CLOSE:
        parts.append(_CLOSE_LINE)
    elif http10:
        parts.append(_KEEP_ALIVE_LINE)
    if add_date:
        parts.append(b"Date: ")
        parts.append(date())
        parts.append(b"\r\n")
    if add_server:
        parts.append(server_line)
    parts.append(b"\r\n")
    return framing


def _frame(
    lines: list[str], kind: int, length: str | None, head: bool, http10: bool, size: int
) -> int:
    """The framing for a status of ``kind`` (RFC 9110 section 8.6, RFC 9112
    section 6.3); its Content-Length line, if any, is appended to ``lines``.

    ``length`` is the application's Content-Length (a number, used as it
    is), else None; the others are as for :func:`framed_head`.
    """
    framing = RAW
    if kind == _NO_CONTENT:
        return NO_BODY  # and no Content-Length, whatever the application said
    if kind == _NOT_MODIFIED or head:
        framing = NO_BODY
        if length is None and head and size > 0:
            length = str(size)  # what a GET would have said
    elif length is None:
        if size >= 0:
            length = str(size)
        elif not http10:
            framing = CHUNKED
        else:
            framing = UNTIL_CLOSE  # RFC 9112 section 6.3, item 8
    if length is not None:
        lines.append(f"Content-Length: {length}\r\n")
    return framing


def error_answer(status: int, date: Callable[[], bytes], server_line: bytes) -> bytes:
    """A whole small response for a peer's error ``status`` (4xx, 5xx): its
    reason phrase as plain text, and ``Connection: close``."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    body = f"{reason}\n".encode("latin-1")
    fields = [("Content-Type", "text/plain; charset=utf-8")]
    parts: list[bytes] = []
    framed_head(
        parts, f"{status} {reason}", fields, False, False, len(body), True, date, server_line
    )
    parts.append(body)
    return b"".join(parts)


class Owed:
    """An HTTP request whose head is complete, until its response is done:
    what its response's framing depends on."""

    __slots__ = ("complete", "continue_owed", "head", "http10", "keep_alive", "websocket")

    def __init__(self, head: bool, http10: bool, keep_alive: bool) -> None:
        self.head = head  # a HEAD request: the response never has a body
        self.http10 = http10
        self.keep_alive = keep_alive
        self.complete = False  # the whole body arrived
        self.continue_owed = False  # 100 Continue waits for earlier responses
        self.websocket = False  # a WebSocket handshake: nothing after it is HTTP
