"""``dumbwaiter request``: one request over FastCGI, SCGI, uwsgi or HTTP.

The I/O around the sans-IO client sides of the protocols: connect, send,
read until the response is complete, and hand back status, headers and
body.  It is what ``cgi-fcgi -bind -connect`` was for health checks, for
every protocol dumbwaiter speaks.

Exit status of the command: 0 for a response below 500, 1 for a 5xx, 2 when
no response could be had (connection refused, timeout, protocol error).  A
reader that goes away before the end (``| head -3``, ``| grep -q ok``) does
not change it, and ends the command quietly (:func:`reader_gone`).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from .protocols import ProtocolError, RemoteProtocolError, Role, scgi, uwsgi
from .protocols.fastcgi_client import EndRequest, FastCGIClientProtocol, Stdout, parse_cgi_response
from .protocols.http_client import Data, EndOfMessage, HTTPClientProtocol, Response
from .server.sockets import ListenError, parse_address

__all__ = ["Reply", "main", "reader_gone", "request"]

PROTOCOLS = ("fastcgi", "scgi", "uwsgi", "http")
READ = 65536


@dataclass
class Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def cgi_environ(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> dict[str, str]:
    """The CGI variables a front server would send for this request."""
    path, _, query = target.partition("?")
    host = next((v for n, v in headers if n.lower() == "host"), "localhost")
    environ = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "REQUEST_URI": target,
        "SERVER_NAME": host.partition(":")[0],
        "SERVER_PORT": host.partition(":")[2] or "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "dumbwaiter-request",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "0",
        "CONTENT_LENGTH": str(len(body)) if body else "",
    }
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ["HTTP_" + key] = value
    environ.setdefault("HTTP_HOST", host)
    return environ


def _connect(address: str, timeout: float) -> socket.socket:
    parsed = parse_address(address)
    if parsed.kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(parsed.path)
        except OSError:
            sock.close()
            raise
        return sock
    if parsed.kind == "fd":
        raise ListenError(f"{address}: a client needs HOST:PORT or unix:/path")
    host = "127.0.0.1" if parsed.host == "0.0.0.0" else parsed.host
    return socket.create_connection((host, parsed.port), timeout=timeout)


def request(
    address: str,
    target: str,
    *,
    protocol: str = "fastcgi",
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    role: Role = Role.RESPONDER,
    timeout: float = 30.0,
) -> Reply:
    """Send one request and return the reply.

    Raises OSError (connection), TimeoutError, or ProtocolError (a reply that
    breaks the protocol or never completes)."""
    headers = list(headers)
    with _connect(address, timeout) as sock:
        if protocol == "http":
            return _http(sock, address, method, target, headers, body)
        environ = cgi_environ(method, target, headers, body)
        if protocol == "fastcgi":
            return _fastcgi(sock, environ, body, role)
        if role is not Role.RESPONDER:
            raise ValueError("only FastCGI has roles")
        encode = scgi.encode_request if protocol == "scgi" else uwsgi.encode_request
        sock.sendall(encode(environ, body))
        raw = _read_all(sock)
        if protocol == "uwsgi" and raw.startswith(b"HTTP/"):
            line, _, rest = raw.partition(b"\r\n")
            raw = b"Status: " + line.split(b" ", 1)[1] + b"\r\n" + rest
        return Reply(*parse_cgi_response(raw))


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(READ):
        chunks.append(chunk)
    return b"".join(chunks)


def _fastcgi(sock: socket.socket, environ: dict[str, str], body: bytes, role: Role) -> Reply:
    client = FastCGIClientProtocol()
    rid = client.begin_request(role)
    out = [client.send_begin(rid), client.send_params(rid, environ), client.send_params(rid, {})]
    if role is not Role.AUTHORIZER:
        if body:
            out.append(client.send_stdin(rid, body))
        out.append(client.send_stdin(rid, b""))
    sock.sendall(b"".join(out))
    stdout = bytearray()
    while True:
        data = sock.recv(READ)
        if not data:
            raise RemoteProtocolError("the server closed before FCGI_END_REQUEST")
        for event in client.receive_data(data):
            if isinstance(event, Stdout):
                stdout += event.data
            elif isinstance(event, EndRequest):
                if event.protocol_status not in (0, 2):  # 2: overloaded, with its 503
                    raise RemoteProtocolError(
                        f"request refused, FastCGI protocol status {event.protocol_status}"
                    )
                return Reply(*parse_cgi_response(bytes(stdout)))


def _http(
    sock: socket.socket,
    address: str,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> Reply:
    client = HTTPClientProtocol()
    if not any(n.lower() == "host" for n, _ in headers):
        headers.append(("Host", "localhost"))
    headers.append(("Connection", "close"))
    sock.sendall(client.send_request(method, target, headers, body))
    reply: Reply | None = None
    body_parts = []
    while True:
        data = sock.recv(READ)
        for event in client.receive_data(data):
            if isinstance(event, Response) and event.status >= 200:
                reply = Reply(
                    event.status,
                    event.reason.decode("latin-1"),
                    [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers],
                )
            elif isinstance(event, Data):
                body_parts.append(event.data)
            elif isinstance(event, EndOfMessage) and reply is not None:
                reply.body = b"".join(body_parts)
                return reply
        if not data:
            raise RemoteProtocolError("the server closed before the response was complete")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dumbwaiter request",
        description="Send one request to a FastCGI, SCGI, uwsgi or HTTP server and print the "
        "response. Exit status: 0 below 500, 1 for a 5xx, 2 for no response.",
    )
    parser.add_argument("address", metavar="ADDR", help="HOST:PORT or unix:/path")
    parser.add_argument("target", metavar="PATH", help="the request target, as /path?query")
    parser.add_argument("--protocol", "-p", choices=PROTOCOLS, default="fastcgi")
    parser.add_argument("-X", "--method", default=None)
    parser.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'")
    body = parser.add_mutually_exclusive_group()
    body.add_argument("-d", "--data", help="request body")
    body.add_argument("--data-file", metavar="FILE", help="request body from a file ('-': stdin)")
    parser.add_argument("--role", choices=("responder", "authorizer"), default="responder")
    parser.add_argument("-i", "--include", action="store_true", help="print the head too")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    headers = []
    for line in args.header:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            print(f"dumbwaiter request: error: bad header {line!r}", file=sys.stderr)
            return 2
        headers.append((name.strip(), value.strip()))
    if args.data_file == "-":
        body = sys.stdin.buffer.read()
    elif args.data_file:
        with open(args.data_file, "rb") as f:
            body = f.read()
    else:
        body = (args.data or "").encode()
    method = args.method or ("POST" if body else "GET")
    try:
        reply = request(
            args.address,
            args.target,
            protocol=args.protocol,
            method=method,
            headers=headers,
            body=body,
            role=Role[args.role.upper()],
            timeout=args.timeout,
        )
    except (OSError, ProtocolError, ListenError, ValueError) as exc:
        print(
            f"dumbwaiter request: error: {args.address}: {exc or type(exc).__name__}",
            file=sys.stderr,
        )
        return 2
    try:
        show(reply, args.include)
    except BrokenPipeError:
        reader_gone()
    return 1 if reply.status >= 500 else 0


def show(reply: Reply, include: bool) -> None:
    """Write the body (with ``include``, the head first) to stdout."""
    out = sys.stdout.buffer
    if include:
        head = [f"{reply.status} {reply.reason}\r\n"]
        head += [f"{name}: {value}\r\n" for name, value in reply.headers]
        out.write(("".join(head) + "\r\n").encode("latin-1"))
    out.write(reply.body)
    out.flush()


def reader_gone() -> None:
    """Our stdout's reader closed the pipe (``| head -3``): it has what it
    wanted.  Point stdout at /dev/null, so that nothing more is written and
    the interpreter's last flush does not end in a BrokenPipeError traceback
    (the recipe of the :mod:`signal` module's documentation, "Note on
    SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
