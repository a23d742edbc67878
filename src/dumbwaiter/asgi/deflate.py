"""permessage-deflate (RFC 7692) for WebSockets: the offer checked, and a
bound on inflating.

:func:`agree` takes the first offer that RFC 7692 section 7 lets a server
accept (known parameters, none twice, window bits 9 to 15, quoted values
unquoted) and declines the rest; wsproto's own parsing accepts unknown and
repeated parameters and raises on a value that is not a number.
:class:`BoundedDeflate` inflates at most the message limit
(``--ws-max-size``) a frame, failing the connection with 1009 beyond:
wsproto's inflates a frame whole, so a few kilobytes of compressed zeros
could make a gigabyte in memory.  Not compiled: it subclasses wsproto's
class.
"""

from __future__ import annotations

import zlib
from typing import Any

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason
from wsproto.handshake import server_extensions_handshake

__all__ = ["BoundedDeflate", "agree"]

#: The parameters of RFC 7692 section 7.1, and whether each takes a value
#: (None: may).
PARAMETERS = {
    "server_no_context_takeover": False,
    "client_no_context_takeover": False,
    "server_max_window_bits": True,
    "client_max_window_bits": None,
}


#: The window sizes a server may agree to (8 too is valid, but zlib's raw
#: deflate has no 256-byte window); as text: only these, in ASCII digits.
WINDOW_BITS = frozenset(str(bits) for bits in range(9, 16))


def agree(header: str, max_size: int) -> tuple[str, BoundedDeflate] | None:
    """The ``Sec-WebSocket-Extensions`` answer to the client's offers in
    ``header``, and the extension it agrees to; None: no offer is
    acceptable (the connection goes on uncompressed)."""
    for offer in header.split(","):
        text = normalized(offer)
        if text is None:
            continue
        deflate = BoundedDeflate(max_size)
        try:
            agreed = server_extensions_handshake([text], [deflate])
        except ValueError:
            continue
        if agreed:
            return agreed.decode("ascii"), deflate
    return None


def normalized(offer: str) -> str | None:
    """A permessage-deflate offer with its values unquoted; None for
    another extension or an offer the RFC says to decline."""
    name, *params = (part.strip() for part in offer.split(";"))
    if name.lower() != "permessage-deflate":
        return None
    parts = ["permessage-deflate"]
    seen = set()
    for param in params:
        key, equals, value = param.partition("=")
        key, value = key.strip().lower(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        takes = PARAMETERS.get(key, ...)
        if takes is ... or key in seen or (takes is True and not equals):
            return None
        seen.add(key)
        if not equals:
            parts.append(key)
        elif takes is False or value not in WINDOW_BITS:
            return None  # (8 too: zlib's raw deflate has no 256-byte window)
        else:
            parts.append(f"{key}={int(value)}")
    return "; ".join(parts)


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate whose inflating stops at ``max_size`` bytes a
    frame: a small compressed frame cannot make a large message in memory."""

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None  # (made with the frame's header)
        try:
            inflated = self._decompressor.decompress(bytes(data), self.max_size + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if self._decompressor.unconsumed_tail or len(inflated) > self.max_size:
            return CloseReason.MESSAGE_TOO_BIG
        return inflated

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        # wsproto forgets that a fragmented message is compressed when a
        # control frame (a ping) comes between its fragments: a control
        # frame's end changes nothing here.
        if fin and not self._inbound_is_compressible:
            return None
        return super().frame_inbound_complete(proto, fin)
