"""Clients for a real dumbwaiter process, shared by the functional tests.

``FCGI`` is a FastCGI connection: the sans-IO client over a real socket
(``params()`` builds a request's CGI variables, ``Reply`` is an answer).
``scrape()`` reads a ``--metrics`` address with prometheus_client's own
parser; ``total()`` sums its samples.
"""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from dumbwaiter.protocols import Role
from dumbwaiter.protocols.fastcgi_client import (
    EndRequest,
    FastCGIClientProtocol,
    Stdout,
    parse_cgi_response,
)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    app_status: int = 0
    protocol_status: int = 0
    raw: bytes = b""

    @classmethod
    def of(cls, stdout: bytes, end: EndRequest | None) -> Reply:
        status, _reason, headers, body = parse_cgi_response(stdout)
        return cls(
            status,
            {k.lower(): v for k, v in headers},
            body,
            end.app_status if end else -1,
            end.protocol_status if end else -1,
            stdout,
        )


@dataclass
class FCGI:
    """A FastCGI connection: the sans-IO client plus a real socket."""

    sock: socket.socket
    client: FastCGIClientProtocol = field(default_factory=FastCGIClientProtocol)
    stdout: dict[int, bytearray] = field(default_factory=dict)
    ended: dict[int, EndRequest] = field(default_factory=dict)
    other: list[object] = field(default_factory=list)
    closed: bool = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def start(
        self,
        params: dict[str, str],
        body: bytes = b"",
        *,
        role: Role = Role.RESPONDER,
        keep_conn: bool = False,
        data: bytes | None = None,
        stdin: bool = True,
    ) -> int:
        rid = self.client.begin_request(role, keep_conn=keep_conn)
        out = [
            self.client.send_begin(rid),
            self.client.send_params(rid, params),
            self.client.send_params(rid, {}),
        ]
        if stdin:
            if body:
                out.append(self.client.send_stdin(rid, body))
            out.append(self.client.send_stdin(rid, b""))
        if data is not None:
            if data:
                out.append(self.client.send_data(rid, data))
            out.append(self.client.send_data(rid, b""))
        self.send(b"".join(out))
        self.stdout[rid] = bytearray()
        return rid

    def pump(self, until: callable, timeout: float = 10.0) -> None:  # type: ignore[valid-type]
        deadline = time.monotonic() + timeout
        while not until():
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise AssertionError("no answer in time") from None
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return
            for event in self.client.receive_data(data):
                if isinstance(event, Stdout):
                    self.stdout.setdefault(event.request_id, bytearray()).extend(event.data)
                elif isinstance(event, EndRequest):
                    self.ended[event.request_id] = event
                else:
                    self.other.append(event)

    def reply(self, rid: int, timeout: float = 10.0) -> Reply:
        self.pump(lambda: rid in self.ended, timeout)
        return Reply.of(bytes(self.stdout[rid]), self.ended.get(rid))

    def close(self) -> None:
        self.sock.close()


def params(path: str, method: str = "GET", query: str = "", **extra: str) -> dict[str, str]:
    base = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REQUEST_URI": path + ("?" + query if query else ""),
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.7",
        "GATEWAY_INTERFACE": "CGI/1.1",
    }
    base.update(extra)
    return base


def scrape(port: int) -> dict[str, Any]:
    """Samples by name, as (labels, value) lists."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/plain; version=0.0.4")
    text = response.read().decode()
    samples: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(samples: dict[str, Any], name: str, **labels: str) -> float:
    return sum(
        value
        for got, value in samples.get(name, [])
        if all(got.get(k) == v for k, v in labels.items())
    )
