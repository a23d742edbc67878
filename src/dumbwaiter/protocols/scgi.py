"""SCGI, server side, sans-IO (the SCGI protocol specification, 2006).

The request is a netstring holding the headers -- ``len ":" (name NUL value
NUL)* ","`` -- whose first header must be ``CONTENT_LENGTH``, and which must
include ``SCGI`` with the value ``1``; then exactly ``CONTENT_LENGTH`` bytes
of body.  The response is a CGI response (``Status:`` line and headers), and
it ends when the server closes the connection.  Everything else is in
:mod:`.oneshot`.

Decoding is latin-1 (PEP 3333); a name that appears twice keeps its last
value, as for FastCGI.
"""

from __future__ import annotations

from .errors import RemoteProtocolError
from .heads import cgi_head
from .oneshot import OneShotServerProtocol

__all__ = ["SCGIServerProtocol", "encode_request"]

#: The netstring length has at most this many digits before ":".
MAX_DIGITS = 10


class SCGIServerProtocol(OneShotServerProtocol):
    name = "SCGI"

    def parse_head(self, buffer: bytes | bytearray) -> tuple[dict[str, str], int] | None:
        colon = buffer.find(b":", 0, MAX_DIGITS + 1)
        if colon < 0:
            if len(buffer) > MAX_DIGITS or (not bytes(buffer).isdigit() and buffer):
                raise RemoteProtocolError("SCGI request does not start with a netstring")
            return None
        digits = bytes(buffer[:colon])
        if not digits.isdigit() or not digits.isascii():
            raise RemoteProtocolError("SCGI netstring length is not a number")
        size = int(digits)
        if size > self.limits.max_header_bytes:
            raise RemoteProtocolError(
                f"SCGI headers over {self.limits.max_header_bytes} bytes", 431
            )
        end = colon + 1 + size
        if len(buffer) <= end:
            return None
        if buffer[end] != ord(","):
            raise RemoteProtocolError("SCGI netstring not closed by ','")
        block = bytes(buffer[colon + 1 : end])
        if block and not block.endswith(b"\0"):
            raise RemoteProtocolError("SCGI header block does not end with NUL")
        parts = block.decode("latin-1").split("\0")[:-1]
        if len(parts) % 2:
            raise RemoteProtocolError("SCGI header without a value")
        if not parts or parts[0] != "CONTENT_LENGTH":
            raise RemoteProtocolError("SCGI: CONTENT_LENGTH must come first")
        environ = dict(zip(parts[::2], parts[1::2], strict=True))
        if environ.get("SCGI") != "1":
            raise RemoteProtocolError("SCGI header SCGI=1 missing")
        return environ, end + 1

    def response_head(self, status: str, headers: list[tuple[str, str]]) -> bytes:
        return cgi_head(status, headers)


def encode_request(environ: dict[str, str], body: bytes = b"") -> bytes:
    """A complete SCGI request (the client side, for tests and tools)."""
    fields = {"CONTENT_LENGTH": str(len(body)), "SCGI": "1"}
    fields.update((k, v) for k, v in environ.items() if k not in fields)
    block = b"".join(
        k.encode("latin-1") + b"\0" + v.encode("latin-1") + b"\0" for k, v in fields.items()
    )
    return str(len(block)).encode() + b":" + block + b"," + body
