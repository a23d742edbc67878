"""A small raw-socket WebSocket client (RFC 6455) for the tests: it sends
exactly the frames it is told to, broken ones included, and reads frames one
by one, so a test sees what the server put on the wire."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeRefused(Exception):
    def __init__(self, status: int, head: bytes, body: bytes) -> None:
        super().__init__(f"handshake answered {status}")
        self.status = status
        self.head = head
        self.body = body


class WSClient:
    def __init__(self, sock: socket.socket, head: bytes, rest: bytes) -> None:
        self.sock = sock
        self.head = head  # the 101 response's head
        self.buffer = rest

    @classmethod
    def connect(
        cls,
        address: tuple[str, int] | str,
        path: str = "/",
        *,
        host: str = "localhost",
        headers: list[tuple[str, str]] | None = None,
        subprotocols: list[str] | None = None,
        deflate: bool = False,
        timeout: float = 10.0,
    ) -> WSClient:
        sock = socket.socket(socket.AF_UNIX) if isinstance(address, str) else socket.socket()
        sock.settimeout(timeout)
        sock.connect(address)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
        if deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
        for name, value in headers or []:
            lines.append(f"{name}: {value}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {data!r}")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            body = rest
            length = header(head, "content-length")
            if length is not None:
                while len(body) < int(length):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    body += chunk
            sock.close()
            raise HandshakeRefused(status, head, body)
        expected = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if header(head, "sec-websocket-accept") != expected:
            raise AssertionError(f"wrong Sec-WebSocket-Accept in {head!r}")
        return cls(sock, head, rest)

    # -- sending ------------------------------------------------------------------
    def frame(self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
        return build_frame(opcode, payload, fin=fin, rsv=rsv)

    def send(self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> None:
        self.sock.sendall(self.frame(opcode, payload, fin=fin, rsv=rsv))

    def send_text(self, text: str) -> None:
        self.send(TEXT, text.encode())

    def send_bytes(self, data: bytes) -> None:
        self.send(BINARY, data)

    def close(self, code: int | None = 1000, reason: str = "") -> None:
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
        self.send(CLOSE, payload)

    # -- receiving ----------------------------------------------------------------
    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed by the server")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def receive_frame(self) -> tuple[bool, int, int, bytes]:
        """(fin, rsv, opcode, payload) of the next frame."""
        first, second = self.read(2)
        if second & 0x80:
            raise AssertionError("a server frame was masked")
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self.read(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", self.read(8))
        return bool(first & 0x80), (first >> 4) & 7, first & 0x0F, self.read(size)

    def receive(self) -> tuple[int, bytes]:
        """The next whole message or control frame: (opcode, payload)."""
        fin, _rsv, opcode, payload = self.receive_frame()
        while not fin:
            fin, _rsv, _more, piece = self.receive_frame()
            payload += piece
        return opcode, payload

    def receive_close(self) -> tuple[int | None, str]:
        """Skip to the close frame: (code, reason); code None when empty."""
        while True:
            opcode, payload = self.receive()
            if opcode == CLOSE:
                if not payload:
                    return None, ""
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    def at_eof(self, timeout: float = 5.0) -> bool:
        """Whether the server closes the TCP connection within ``timeout``
        (what it still sends is dropped)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    def shut(self) -> None:
        self.sock.close()


def build_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """A masked client frame; ``rsv``: 4 = RSV1, 2 = RSV2, 1 = RSV3."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, size)
    mask = os.urandom(4)
    return head + mask + mask_bytes(payload, mask)


def mask_bytes(data: bytes, mask: bytes) -> bytes:
    if not data:
        return b""
    repeated = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(data), "big"
    )


def header(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.encode():
            return value.strip().decode("latin-1")
    return None
