"""The pure-Python floor: the least work a WSGI server can do per request.

``floor_serve.py uwsgi|fcgi PATH`` serves ``benchapp`` on a unix socket with
one thread that blocks in ``accept()``, reads the whole request, builds the
environ from what the front sent plus the ``wsgi.*`` keys, calls the
application, and writes its answer in one ``sendall`` before closing.  Nothing
else: no limits, no timeouts, no second thread, no SCRIPT_NAME repair, no
log, no 503; a malformed request or a FastCGI connection kept open would
break it.  It is not a server to use: it measures what no pure-Python server
on this interpreter can go below, so that a target set in CPU per request
can be checked against what pure Python allows at all (bench/history.md).

The ``floor-compiled-*`` targets run this same file compiled by mypyc (as
``floor_compiled``, built by bench/targets.py at a run's start), as the
README's install compiles dumbwaiter's request path: what a compiled Python
server costs at least.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import sys
from collections.abc import Callable, Iterable
from typing import Any

from benchapp import app  # type: ignore[import-not-found]

BASE = {
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}
FCGI_HEADER = struct.Struct(">BBHHBx")
STDOUT, END_REQUEST, PARAMS, STDIN = 6, 3, 4, 5


def call(environ: dict[str, Any], body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    environ.update(BASE)
    environ["wsgi.input"] = io.BytesIO(body)
    answer: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer[:] = [status, headers]

    result: Iterable[bytes] = app(environ, start_response)
    content = b"".join(result)
    return answer[0], answer[1], content


def head(first: str, status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [first, status, "\r\n"]
    for name, value in headers:
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def recv_exactly(conn: socket.socket, data: bytes, size: int) -> bytes:
    while len(data) < size:
        more = conn.recv(max(65536, size - len(data)))
        if not more:
            raise EOFError
        data += more
    return data


def uwsgi(conn: socket.socket) -> None:
    data = recv_exactly(conn, conn.recv(65536), 4)
    size = data[1] | data[2] << 8
    data = recv_exactly(conn, data, 4 + size)
    text = data[4 : 4 + size].decode("latin-1")
    environ: dict[str, Any] = {}
    position = 0
    while position < size:
        key_end = position + 2 + (data[4 + position] | data[5 + position] << 8)
        value_end = key_end + 2 + (data[4 + key_end] | data[5 + key_end] << 8)
        environ[text[position + 2 : key_end]] = text[key_end + 2 : value_end]
        position = value_end
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = recv_exactly(conn, data, 4 + size + length)
    status, headers, content = call(environ, data[4 + size :])
    conn.sendall(head("HTTP/1.1 ", status, headers) + content)


def fcgi(conn: socket.socket) -> None:
    data = b""
    position = 0
    params = b""
    body = []
    request_id = 1
    while True:
        data = recv_exactly(conn, data, position + 8)
        _, kind, request_id, length, padding = FCGI_HEADER.unpack_from(data, position)
        start = position + 8
        data = recv_exactly(conn, data, start + length + padding)
        content = data[start : start + length]
        position = start + length + padding
        if kind == PARAMS:
            params += content
        elif kind == STDIN:
            if not length:
                break
            body.append(content)
    environ: dict[str, Any] = {}
    text = params.decode("latin-1")
    position = 0
    end = len(params)
    while position < end:
        name_length = params[position]
        value_length = params[position + 1]
        if name_length < 0x80 and value_length < 0x80:
            position += 2
        else:
            if name_length < 0x80:
                position += 1
            else:
                name_length = int.from_bytes(params[position : position + 4], "big") & 0x7FFFFFFF
                position += 4
            value_length = params[position]
            if value_length < 0x80:
                position += 1
            else:
                value_length = int.from_bytes(params[position : position + 4], "big") & 0x7FFFFFFF
                position += 4
        name_end = position + name_length
        value_end = name_end + value_length
        environ[text[position:name_end]] = text[name_end:value_end]
        position = value_end
    status, headers, content = call(environ, b"".join(body))
    out = head("Status: ", status, headers) + content
    records = []
    for offset in range(0, len(out), 65535):
        piece = out[offset : offset + 65535]
        records.append(FCGI_HEADER.pack(1, STDOUT, request_id, len(piece), 0) + piece)
    records.append(FCGI_HEADER.pack(1, STDOUT, request_id, 0, 0))
    records.append(FCGI_HEADER.pack(1, END_REQUEST, request_id, 8, 0) + bytes(8))
    conn.sendall(b"".join(records))


def main() -> None:
    protocol, path = sys.argv[1], sys.argv[2]
    serve: Callable[[socket.socket], None] = uwsgi if protocol == "uwsgi" else fcgi
    with socket.socket(socket.AF_UNIX) as listener:
        if os.path.exists(path):
            os.unlink(path)
        listener.bind(path)
        os.chmod(path, 0o666)
        listener.listen(4096)
        while True:
            conn, _ = listener.accept()
            try:
                serve(conn)
            except (EOFError, OSError):
                pass
            finally:
                conn.close()


if __name__ == "__main__":
    main()
