"""The common WebSocket frame, read and written without wsproto.

An echo's time went to wsproto's general framing (three times what the
rest of a round trip costs; docs/performance.md): most frames are whole
small text or binary messages, which need a header of two to four bytes,
an unmasking and, for text, a strict UTF-8 decoding.  :class:`Frames`
takes those from the bytes received at frame boundaries, and hands every
other frame (control frames, fragments, reserved bits or opcodes, an
unmasked or long frame, text that is not UTF-8, anything once compression
was agreed) to wsproto unchanged and whole or in order, counting its bytes
so that it knows where the next frame starts: wsproto then keeps no bytes
of its own between two frames, and sees every frame that needs its rules.
A frame that has not come whole in one read is wsproto's too: it checks
UTF-8 as the bytes come (bad text fails at once), and nothing here holds
more than a frame's header.  :func:`data_frame` writes an unfragmented
unmasked server frame.
"""

from __future__ import annotations

__all__ = ["FAST_MAX", "Frames", "data_frame"]

#: The longest payload read here (a 16-bit length).
FAST_MAX = 65535
#: The opcodes of a whole text and binary frame with FIN set, no RSV bits.
FIN_TEXT = 0x81
FIN_BINARY = 0x82


class Frames:
    """Splits received bytes into whole common frames (decoded here) and
    the rest (for wsproto), in order."""

    def __init__(self) -> None:
        self.pending = b""  # the start of a frame not yet whole
        self.owed = 0  # bytes of a frame being handed to wsproto, still to come
        self.fragmented = False  # inside a fragmented message: all to wsproto

    def split(self, data: bytes) -> list[str | bytes | bytearray]:
        """The messages of the common frames in ``data``, in order, each a
        ``str`` (text) or ``bytes`` (binary); and, as a ``bytearray``, a
        stretch of bytes for wsproto (the rest of its frame, or frames).
        Stops at the end of the bytes: a frame not yet whole waits."""
        out: list[str | bytes | bytearray] = []
        if self.pending:
            data = self.pending + data
            self.pending = b""
        position = 0
        end = len(data)
        while position < end:
            owed = self.owed
            if owed:  # the rest of a frame wsproto has the start of
                take = min(owed, end - position)
                out.append(bytearray(data[position : position + take]))
                self.owed = owed - take
                position += take
                continue
            if end - position < 2:
                break
            first = data[position]
            second = data[position + 1]
            size = second & 0x7F
            head = 2
            if size == 126:
                if end - position < 4:
                    break
                size = int.from_bytes(data[position + 2 : position + 4], "big")
                head = 4
            elif size == 127:
                if end - position < 10:
                    break
                size = int.from_bytes(data[position + 2 : position + 10], "big")
                head = 10
            masked = second & 0x80
            whole = head + (4 if masked else 0) + size
            fragmented = self.fragmented
            if first & 0x0F < 8:  # a data frame: a message goes on after it without FIN
                self.fragmented = not first & 0x80
            common = (
                first in (FIN_TEXT, FIN_BINARY)
                and masked
                and size <= FAST_MAX
                and (head == 2 or size >= 126)  # (a length not in its shortest form: 1002)
                and not fragmented  # (wsproto must see a new message inside one)
            )
            if common and end - position >= whole:
                start = position + head + 4
                payload = unmask(data[start : start + size], data[start - 4 : start])
                if first == FIN_TEXT:
                    try:
                        out.append(payload.decode("utf-8"))
                    except UnicodeDecodeError:  # wsproto says 1007
                        out.append(bytearray(data[position : position + whole]))
                else:
                    out.append(payload)
                position += whole
                continue
            take = min(whole, end - position)  # all of it to wsproto, in order
            out.append(bytearray(data[position : position + take]))
            self.owed = whole - take
            position += take
        if position < end:
            self.pending = data[position:]
        return out


def unmask(payload: bytes, mask: bytes) -> bytes:
    size = len(payload)
    if not size:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )


def data_frame(payload: bytes, text: bool) -> bytes:
    """One unfragmented, unmasked (server) frame."""
    size = len(payload)
    first = b"\x81" if text else b"\x82"
    if size < 126:
        return first + bytes((size,)) + payload
    if size <= FAST_MAX:
        return first + b"\x7e" + size.to_bytes(2, "big") + payload
    return first + b"\x7f" + size.to_bytes(8, "big") + payload
