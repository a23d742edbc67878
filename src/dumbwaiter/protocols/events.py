"""The one event vocabulary every wire protocol produces.

A server-side protocol object (see :class:`dumbwaiter.protocols.ServerProtocol`)
turns received bytes into these events.  The connection layer reacts to them
without knowing which protocol produced them, so the WSGI gateway (and a later
ASGI gateway) is written once.

Order on one stream (``stream_id``) is always::

    RequestReceived, BodyReceived*, [FilterDataReceived*], RequestComplete
                                        or, at any point after RequestReceived,
                                    RequestAborted

HTTP/1.1 and the one-request-per-connection protocols use stream id 1 for
every request (requests on one HTTP connection are strictly sequential);
FastCGI uses its request id, so several streams may be open at once on a
multiplexed connection.
"""

from __future__ import annotations

import enum
from typing import ClassVar, Final

from .errors import RemoteProtocolError

__all__ = [
    "BODY_VIEW",
    "BodyReceived",
    "Chunk",
    "Event",
    "FilterDataReceived",
    "PeerError",
    "RequestAborted",
    "RequestComplete",
    "RequestReceived",
    "Role",
]


class Role(enum.IntEnum):
    """What the front server asks of the application (FastCGI 1.0, section 6).

    Protocols other than FastCGI always produce ``RESPONDER``.
    """

    RESPONDER = 1
    AUTHORIZER = 2
    FILTER = 3


#: (a Final: a default compiled code reads without a lookup)
RESPONDER: Final = Role.RESPONDER


class _Event:
    """Equality and a repr by fields, for tests and debugging.  (Not
    dataclasses: compiled, a dataclass is built through the Python
    ``__init__`` its decorator generates, a fifth of a microsecond each.)"""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, name) == getattr(other, name) for name in self._fields
        )

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({values})"


class RequestReceived(_Event):
    """The request head is complete.

    ``environ`` holds CGI/1.1 meta-variables as ``str`` (decoded latin-1, as
    PEP 3333 asks).  For FastCGI, SCGI and uwsgi it is the parameter block as
    received (duplicate names: the last one wins).  For HTTP the adapter
    derives ``REQUEST_METHOD``, ``PATH_INFO`` (percent-decoded), ``QUERY_STRING``,
    ``REQUEST_URI``, ``SERVER_PROTOCOL``, ``CONTENT_TYPE``, ``CONTENT_LENGTH``
    and ``HTTP_*`` once.  Variables only the socket knows (``REMOTE_ADDR``,
    ``SERVER_NAME`` ...) are filled in by the connection layer when absent.
    """

    __slots__ = ("environ", "role", "stream_id")
    _fields = ("stream_id", "environ", "role")

    def __init__(self, stream_id: int, environ: dict[str, str], role: Role = RESPONDER) -> None:
        self.stream_id = stream_id
        self.environ = environ
        self.role = role


#: A piece of a body: ``bytes`` (or a ``bytearray`` no one else holds), or a
#: view into the bytes a read returned when slicing a large record out of them
#: would be a copy for nothing.  Readers that need ``bytes`` join the pieces,
#: which copies each byte once.
Chunk = bytes | bytearray | memoryview

#: Pieces of a body longer than this are handed on as views; shorter ones as
#: copies, which cost less than a view.
BODY_VIEW: Final = 2048


class BodyReceived(_Event):
    """A piece of the request body (FastCGI ``FCGI_STDIN``; HTTP de-chunked)."""

    __slots__ = ("data", "stream_id")
    _fields = ("stream_id", "data")

    def __init__(self, stream_id: int, data: Chunk) -> None:
        self.stream_id = stream_id
        self.data = data


class FilterDataReceived(_Event):
    """A piece of the FastCGI ``FCGI_DATA`` stream (FILTER role only)."""

    __slots__ = ("data", "stream_id")
    _fields = ("stream_id", "data")

    def __init__(self, stream_id: int, data: Chunk) -> None:
        self.stream_id = stream_id
        self.data = data


class RequestComplete(_Event):
    """Every input stream of the request has ended; it may be dispatched."""

    __slots__ = ("stream_id",)
    _fields = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class RequestAborted(_Event):
    """The front server gave up on this request (``FCGI_ABORT_REQUEST``).

    The protocol has already forgotten the stream except for the reply it
    still owes: the connection layer must call ``end_response`` (FastCGI sends
    ``FCGI_END_REQUEST``) once the application, if it was running, has stopped.
    """

    __slots__ = ("stream_id",)
    _fields = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class PeerError(_Event):
    """The peer broke the protocol in bytes that also completed the requests
    before this event (HTTP pipelining): rather than raise and lose them,
    the protocol returns them, then this, and reads nothing more.  The
    server answers ``error`` (``error_response``) once their responses are
    out, as if it had been raised after them.  Always the last event;
    ``stream_id`` is the one the bad bytes came on."""

    __slots__ = ("error", "stream_id")
    _fields = ("stream_id", "error")

    def __init__(self, stream_id: int, error: RemoteProtocolError) -> None:
        self.stream_id = stream_id
        self.error = error


Event = (
    RequestReceived
    | BodyReceived
    | FilterDataReceived
    | RequestComplete
    | RequestAborted
    | PeerError
)
