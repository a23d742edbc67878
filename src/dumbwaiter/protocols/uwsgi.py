"""The uwsgi protocol, server side, sans-IO (nginx ``uwsgi_pass``, Apache
mod_proxy_uwsgi).

A request is a 4-byte header -- ``modifier1`` (u8, 0 for a WSGI request),
``datasize`` (u16, little-endian), ``modifier2`` (u8) -- then ``datasize``
bytes of vars, each ``keysize`` (u16 LE), key, ``valsize`` (u16 LE), value;
then exactly ``CONTENT_LENGTH`` bytes of body.  The response is an HTTP/1.1
status line and headers, as uWSGI answers, and it ends when the server
closes the connection.  Everything else is in :mod:`.oneshot`.

The 16-bit datasize bounds a var block at 64 KiB.  Decoding is latin-1
(PEP 3333); a var that appears twice keeps its last value.

``modifier1`` 30 is uWSGI's "manage PATH_INFO": the front sends the whole
path in PATH_INFO and the mount point in SCRIPT_NAME, and the server takes
the one off the other (nginx's ``uwsgi_modifier1 30`` beside ``uwsgi_param
SCRIPT_NAME /app``, which uWSGI's own docs long showed).  Where SCRIPT_NAME
is a prefix of PATH_INFO at a segment boundary it is taken off; where it is
not (``location /app`` matches ``/application`` too) the request is not
under the mount, and SCRIPT_NAME becomes "" (uWSGI cuts its length off
blindly).  Any other modifier is not a WSGI request.

Of uWSGI's "magic variables", ``UWSGI_SCHEME`` is honoured: it names the
request's scheme (``uwsgi_param UWSGI_SCHEME https;``, its documented way
to say a request came over TLS), as REQUEST_SCHEME, when it is http or https.
"""

from __future__ import annotations

import struct
from typing import Final

from .errors import RemoteProtocolError
from .heads import http_head
from .mount import split_at
from .oneshot import OneShotServerProtocol

__all__ = ["UwsgiServerProtocol", "encode_request"]

HEADER = struct.Struct("<BHB")
HEAD_SIZE: Final = HEADER.size
SIZE = struct.Struct("<H")
#: The modifiers served: a WSGI request, and one whose PATH_INFO holds SCRIPT_NAME.
WSGI: Final = 0
MANAGE_PATH_INFO: Final = 30


class UwsgiServerProtocol(OneShotServerProtocol):
    name = "uwsgi"

    def parse_head(self, buffer: bytes | bytearray) -> tuple[dict[str, str], int] | None:
        if len(buffer) < HEAD_SIZE:
            return None
        # (byte reads, not HEADER.unpack_from: plain ints when compiled)
        modifier1 = buffer[0]
        size = buffer[1] | buffer[2] << 8
        if modifier1 != WSGI and modifier1 != MANAGE_PATH_INFO:
            raise RemoteProtocolError(f"uwsgi modifier1 {modifier1} is not a WSGI request")
        if size > self.limits.max_header_bytes:
            raise RemoteProtocolError(f"uwsgi vars over {self.limits.max_header_bytes} bytes", 431)
        end = HEAD_SIZE + size
        if len(buffer) < end:
            return None
        data = bytes(buffer[HEAD_SIZE:end])
        text = data.decode("latin-1")  # byte i is character i: sizes index the text
        environ: dict[str, str] = {}
        position = 0
        try:
            while position < size:
                # Sizes are 16-bit little-endian; byte reads, not struct calls
                # (a plain index when compiled).
                key_end = position + 2 + (data[position] | data[position + 1] << 8)
                value_end = key_end + 2 + (data[key_end] | data[key_end + 1] << 8)
                if value_end > size:
                    raise RemoteProtocolError("uwsgi var runs past the block")
                environ[text[position + 2 : key_end]] = text[key_end + 2 : value_end]
                position = value_end
        except IndexError:
            raise RemoteProtocolError("truncated uwsgi var") from None
        if modifier1 == MANAGE_PATH_INFO:
            _strip_script_name(environ)
        scheme = environ.get("UWSGI_SCHEME")
        if scheme:
            scheme = scheme.lower()
            if scheme == "https" or scheme == "http":
                environ["REQUEST_SCHEME"] = scheme
        return environ, end

    def response_head(self, status: str, headers: list[tuple[str, str]]) -> bytes:
        return http_head(status, headers)


def _strip_script_name(environ: dict[str, str]) -> None:
    """PATH_INFO without the SCRIPT_NAME it begins with (modifier1 30); a
    path not under SCRIPT_NAME is the application's whole."""
    path = environ.get("PATH_INFO")
    if path is not None:  # (else fix_paths derives it from REQUEST_URI)
        script = environ.get("SCRIPT_NAME", "").rstrip("/")
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = split_at(script, path)


def encode_request(environ: dict[str, str], body: bytes = b"", modifier1: int = WSGI) -> bytes:
    """A complete uwsgi request (the client side, for tests and tools)."""
    fields = dict(environ)
    fields["CONTENT_LENGTH"] = str(len(body))
    block = b"".join(
        SIZE.pack(len(k)) + k.encode("latin-1") + SIZE.pack(len(v)) + v.encode("latin-1")
        for k, v in fields.items()
    )
    if len(block) > 0xFFFF:
        raise ValueError("uwsgi vars cannot exceed 65535 bytes")
    return HEADER.pack(modifier1, len(block), 0) + block + body
