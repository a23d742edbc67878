"""Protocol errors, with a direction and the answer the wire should get.

``RemoteProtocolError`` means the peer broke the protocol: the connection layer
sends whatever :meth:`ServerProtocol.error_response` makes of it (an HTTP 4xx
for HTTP, nothing for a FastCGI record stream that cannot be trusted any
more), logs one line and closes that one connection.

``LocalProtocolError`` means our own code misused a protocol object (a response
started twice, a body after the end).  It is a bug, never the peer's fault.

Any other exception escaping a parser is a bug too; the fuzz tests assert that
only these two come out.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base of both directions."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow, or over a limit.

    ``status`` is the HTTP status that describes it (400 malformed, 413 body
    too large, 414 URI too long, 431 header fields too large).  Protocols
    without a way to answer (a broken FastCGI record stream) ignore it.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LocalProtocolError(ProtocolError):
    """We asked a protocol object for something its state does not allow."""
