"""The master's own small HTTP server, for ``--metrics`` and ``--status``.

It runs in the master's select loop, so it answers while every worker is
busy, stuck or being replaced.  Each connection is non-blocking with a
deadline: a browser's idle pre-connection or a client that never sends its
request costs a slot, never the master's time.  One request per connection
(``Connection: close``), GET and HEAD (any method for ``/healthz``: HAProxy's
check sends ``OPTIONS``); what it answers is its owner's
(:class:`~dumbwaiter.process.status.Monitor`).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["AdminServer", "Response"]

log = logging.getLogger("dumbwaiter")

#: A connection must have sent its request and taken its answer in this long.
DEADLINE_SECONDS = 5.0
#: Open connections at once; more are closed as they come.
MAX_CONNECTIONS = 64
MAX_HEAD = 8192


@dataclass(frozen=True)
class Response:
    status: str
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self, head_only: bool) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Cache-Control: no-store",
            "X-Content-Type-Options: nosniff",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


def not_found(routes: frozenset[str]) -> Response:
    return Response(
        "404 Not Found",
        "text/plain; charset=utf-8",
        ("not found: try " + ", ".join(sorted(routes)) + "\n").encode(),
    )


@dataclass(eq=False)
class _Listener:
    sock: socket.socket
    routes: frozenset[str]


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    routes: frozenset[str]
    deadline: float
    received: bytearray = field(default_factory=bytearray)
    answer: bytes = b""


class AdminServer:
    """Serve ``listeners`` (socket, routes) from the master's ``selector``.

    ``respond(path)`` makes the answer; the owner calls :meth:`handle` for
    every selector key whose ``data`` is one of ours (:meth:`owns`) and
    :meth:`expire` once per loop.
    """

    def __init__(
        self,
        selector: selectors.BaseSelector,
        listeners: list[tuple[socket.socket, frozenset[str]]],
        respond: Callable[[str], Response],
    ) -> None:
        self.selector = selector
        self.respond = respond
        self.listeners = [_Listener(sock, routes) for sock, routes in listeners]
        self.clients: dict[socket.socket, _Client] = {}
        for listener in self.listeners:
            listener.sock.setblocking(False)
            selector.register(listener.sock, selectors.EVENT_READ, listener)

    def owns(self, data: object) -> bool:
        return isinstance(data, (_Listener, _Client))

    def handle(self, data: object, mask: int) -> None:
        if isinstance(data, _Listener):
            self._accept(data)
        elif isinstance(data, _Client):
            if mask & selectors.EVENT_READ and not data.answer:
                self._read(data)
            elif mask & selectors.EVENT_WRITE:
                self._write(data)

    def expire(self, now: float) -> None:
        for client in [c for c in self.clients.values() if c.deadline <= now]:
            self._close(client)

    def close(self) -> None:
        """Stop serving (the sockets stay open: they are the caller's)."""
        for client in list(self.clients.values()):
            self._close(client)
        for listener in self.listeners:
            self.selector.unregister(listener.sock)

    def forget(self) -> None:
        """In a forked worker: close our copies of the connections (their
        clients must see the master's close), leave the selector alone."""
        for client in self.clients.values():
            client.sock.close()
        self.clients.clear()

    def _accept(self, listener: _Listener) -> None:
        for _ in range(16):
            try:
                sock, _ = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("status: accept: %s", exc)
                return
            if len(self.clients) >= MAX_CONNECTIONS:
                sock.close()
                continue
            sock.setblocking(False)
            client = _Client(sock, listener.routes, time.monotonic() + DEADLINE_SECONDS)
            self.clients[sock] = client
            self.selector.register(sock, selectors.EVENT_READ, client)

    def _read(self, client: _Client) -> None:
        try:
            chunk = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(client)
            return
        client.received += chunk
        end = client.received.find(b"\r\n\r\n")
        if end < 0:
            if len(client.received) > MAX_HEAD:
                self._close(client)
            return
        request_line = bytes(client.received[: client.received.find(b"\r\n")])
        parts = request_line.decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            response = Response("400 Bad Request", "text/plain", b"bad request\n")
            method = ""
        else:
            method, target = parts[0], parts[1]
            path = target.partition("?")[0]
            if path not in client.routes:
                response = not_found(client.routes)
            elif method not in ("GET", "HEAD") and path != "/healthz":
                response = Response(
                    "405 Method Not Allowed",
                    "text/plain",
                    b"GET or HEAD\n",
                    (("Allow", "GET, HEAD"),),
                )
            else:
                response = self.respond(path)
        client.answer = response.encode(head_only=method == "HEAD")
        self.selector.modify(client.sock, selectors.EVENT_WRITE, client)
        self._write(client)

    def _write(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.answer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            sent = len(client.answer)
        client.answer = client.answer[sent:]
        if not client.answer:
            self._close(client)

    def _close(self, client: _Client) -> None:
        self.clients.pop(client.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(client.sock)
        client.sock.close()
