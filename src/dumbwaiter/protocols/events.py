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
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BODY_VIEW",
    "BodyReceived",
    "Chunk",
    "Event",
    "FilterDataReceived",
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


@dataclass(slots=True)
class RequestReceived:
    """The request head is complete.

    ``environ`` holds CGI/1.1 meta-variables as ``str`` (decoded latin-1, as
    PEP 3333 asks).  For FastCGI, SCGI and uwsgi it is the parameter block as
    received (duplicate names: the last one wins).  For HTTP the adapter
    derives ``REQUEST_METHOD``, ``PATH_INFO`` (percent-decoded), ``QUERY_STRING``,
    ``REQUEST_URI``, ``SERVER_PROTOCOL``, ``CONTENT_TYPE``, ``CONTENT_LENGTH``
    and ``HTTP_*`` once.  Variables only the socket knows (``REMOTE_ADDR``,
    ``SERVER_NAME`` ...) are filled in by the connection layer when absent.
    """

    stream_id: int
    environ: dict[str, str]
    role: Role = Role.RESPONDER


#: A piece of a body: ``bytes`` (or a ``bytearray`` no one else holds), or a
#: view into the bytes a read returned when slicing a large record out of them
#: would be a copy for nothing.  Readers that need ``bytes`` join the pieces,
#: which copies each byte once.
Chunk = bytes | bytearray | memoryview

#: Pieces of a body longer than this are handed on as views; shorter ones as
#: copies, which cost less than a view.
BODY_VIEW: Final = 2048


@dataclass(slots=True)
class BodyReceived:
    """A piece of the request body (FastCGI ``FCGI_STDIN``; HTTP de-chunked)."""

    stream_id: int
    data: Chunk


@dataclass(slots=True)
class FilterDataReceived:
    """A piece of the FastCGI ``FCGI_DATA`` stream (FILTER role only)."""

    stream_id: int
    data: Chunk


@dataclass(slots=True)
class RequestComplete:
    """Every input stream of the request has ended; it may be dispatched."""

    stream_id: int


@dataclass(slots=True)
class RequestAborted:
    """The front server gave up on this request (``FCGI_ABORT_REQUEST``).

    The protocol has already forgotten the stream except for the reply it
    still owes: the connection layer must call ``end_response`` (FastCGI sends
    ``FCGI_END_REQUEST``) once the application, if it was running, has stopped.
    """

    stream_id: int


Event = RequestReceived | BodyReceived | FilterDataReceived | RequestComplete | RequestAborted
