"""The types the layers share: a leaf that imports nothing of dumbwaiter at run time.

The WSGI names (PEP 3333) are used by the gateway, the middleware, the
command line and the process code; :class:`Exchange` is the seam between the
server and a gateway: one request, and the means to answer it.  Keeping them
here, and not in the gateway, is what lets the settings table, the
middleware and the master import them without importing the gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from .request import Request

__all__ = ["FORWARDED", "ExcInfo", "Exchange", "StartResponse", "WSGIApp"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Set in a connection's peer values when its forwarding headers
#: (X-Forwarded-*, Forwarded) are to be believed: the listener decides, the
#: gateway applies them.
FORWARDED: Final = "dumbwaiter.forwarded"


class Exchange(Protocol):
    """One request and the means to answer it: what a gateway is given.

    The server implements it once per driver (the event loop's and the
    blocking sockets'); the gateway calls it from the thread that runs the
    application.  The calls, in order: at most one ``start`` (the head,
    optionally with the first body bytes and the end), then ``write``\\ s,
    then exactly one of ``end`` or ``abort``; or ``start(..., end=True)``
    alone.  ``cancelled`` turns true when the client or the front server
    gave up: writes are then dropped, and the gateway stops iterating.
    """

    request: Request
    cancelled: bool

    @property
    def peer(self) -> dict[str, str]:
        """CGI variables only the socket knows (``REMOTE_ADDR`` ...), used
        where the protocol gave none, and :data:`FORWARDED` when set."""
        ...

    def start(self, status: str, headers: list[tuple[str, str]], body: bytes, end: bool) -> None:
        """The response head (validated, latin-1 safe), with ``body`` and,
        when ``end``, the whole response."""
        ...

    def write(self, data: bytes) -> bool:
        """More of the body; waits while the client is slow.  False: the
        client is gone (``cancelled``)."""
        ...

    def end(self) -> None:
        """The response is complete."""
        ...

    def abort(self) -> None:
        """The response cannot be finished: the front server must see it broken."""
        ...

    def sendfile(self, file: IO[bytes], offset: int, count: int) -> bool:
        """Send ``count`` bytes of ``file`` from ``offset`` (after ``start``)
        without copying them through Python, when the wire allows; False
        when it does not, and the caller writes the file itself."""
        ...
