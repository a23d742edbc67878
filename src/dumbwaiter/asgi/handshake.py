"""What the server decides of a WebSocket before wsproto is needed: whether
a handshake is one to hand the application, the accept token, and the
settings and gauge the worker keeps (so a WSGI worker never imports
wsproto: Debian's python3 runs a FastCGI app with the standard library)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, Protocol

from .detect import Message

__all__ = [
    "GUID",
    "Denial",
    "Sockets",
    "WebSocketSettings",
    "accept_token",
    "handshake_refusal",
]

#: RFC 6455 section 1.3.
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Sockets:
    """A worker's open WebSockets (a gauge: ``--metrics``, ``--status``)."""

    def __init__(self) -> None:
        self.open = 0


class WebSocketSettings:
    """``--ws-max-size``, ``--ws-ping-interval``, ``--ws-ping-timeout``,
    ``--ws-no-compression``."""

    def __init__(
        self,
        max_size: int = 16 * 1024 * 1024,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
        compression: bool = True,
    ) -> None:
        self.max_size = max_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.compression = compression


def handshake_refusal(environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]]] | None:
    """The answer to a handshake that is not a valid one (RFC 6455 section
    4.2.1): 426 for another version, 400 without a proper key; None: valid."""
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != "13":
        return "426 Upgrade Required", [("Sec-WebSocket-Version", "13")]
    try:
        key = base64.b64decode(environ.get("HTTP_SEC_WEBSOCKET_KEY", ""), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 16:
        return "400 Bad Request", []
    return None


def accept_token(key: str) -> str:
    digest = hashlib.sha1(key.strip().encode("ascii") + GUID).digest()  # (the RFC's digest)
    return base64.b64encode(digest).decode("ascii")


class Denial(Protocol):
    """The handshake's HTTP answer when it is not accepted: the gateway's
    ``Call`` (a 403, the application's denial response, a 400 or a 500)."""

    start: tuple[int, list[tuple[str, str]]] | None
    complete: bool

    async def send(self, message: Message) -> None: ...

    def body(self, body: bytes, more: bool) -> None: ...

    def returned(self) -> None: ...

    def failed(self, detail: str) -> None: ...
