"""permessage-deflate (RFC 7692) for WebSockets with a bound on inflating.

wsproto's extension inflates a frame whole, so a few kilobytes of
compressed zeros can make a message of a gigabyte in memory.  This one
stops at the message limit (``--ws-max-size``) and fails the connection
with 1009.  Not compiled: it subclasses wsproto's class.
"""

from __future__ import annotations

import zlib
from typing import Any

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason

__all__ = ["BoundedDeflate"]


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
