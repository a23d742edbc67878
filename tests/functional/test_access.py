"""Who may connect (--allow-from), whose forwarding headers are believed
(--forwarded-allow-ips), and who owns the unix sockets (--socket-owner,
--socket-group), on a real server and real sockets.  The rules themselves
are tested in tests/unit/test_access.py."""

from __future__ import annotations

import grp
import http.client
import json
import os
import pwd
import socket
from typing import Any

import pytest

from dumbwaiter.protocols import scgi
from dumbwaiter.server.sockets import bind, parse_address
from serving import Server, free_port, short_tmpdir


def http_echo(port: int, headers: dict[str, str], source: str = "127.0.0.1") -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    conn.request("GET", "/echo", headers=headers)
    info: dict[str, Any] = json.loads(conn.getresponse().read())
    conn.close()
    return info


PROXY_HEADERS = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}


def test_forwarding_headers_from_a_local_proxy_are_believed_by_default() -> None:
    port = free_port()
    with Server(["--http", f"127.0.0.1:{port}"]):
        info = http_echo(port, PROXY_HEADERS)
        assert info["REMOTE_ADDR"] == "203.0.113.7"
        assert info["wsgi.url_scheme"] == "https" and info["HTTPS"] == "on"
        # From a peer that is not a trusted proxy, they are the client's claims.
        info = http_echo(port, PROXY_HEADERS, source="127.0.0.2")
        assert info["REMOTE_ADDR"] == "127.0.0.2"
        assert info["wsgi.url_scheme"] == "http" and info["HTTPS"] is None


def test_forwarded_allow_ips_narrows_who_is_believed() -> None:
    port = free_port()
    with Server(["--http", f"127.0.0.1:{port}", "--forwarded-allow-ips", "127.0.0.2"]):
        assert http_echo(port, PROXY_HEADERS)["REMOTE_ADDR"] == "127.0.0.1"
        assert http_echo(port, PROXY_HEADERS, source="127.0.0.2")["REMOTE_ADDR"] == "203.0.113.7"


def scgi_status(port: int, source: str) -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/hello", "SERVER_PROTOCOL": "HTTP/1.1"}
    sock.sendall(scgi.encode_request(environ))
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    sock.close()
    return data.partition(b"\r\n")[0]


def test_allow_from_refuses_other_peers_on_tcp() -> None:
    port = free_port()
    with Server(["--scgi", f"127.0.0.1:{port}", "--allow-from", "127.0.0.1/32"]) as server:
        assert scgi_status(port, "127.0.0.1") == b"Status: 200 OK"
        assert scgi_status(port, "127.0.0.2") == b""
        assert "refused connection from 127.0.0.2 " in server.log()
        assert scgi_status(port, "127.0.0.1") == b"Status: 200 OK"


def test_socket_owner_and_group() -> None:
    if os.getuid() != 0:
        pytest.skip("changing a file's owner needs root (CI runs as root)")
    folder = short_tmpdir()
    path = os.path.join(folder, "app.sock")
    args = ["--scgi", f"unix:{path}", "--socket-owner", "nobody", "--socket-group", "nogroup"]
    with Server(args, workdir=folder):
        status = os.stat(path)
        assert status.st_uid == pwd.getpwnam("nobody").pw_uid
        assert status.st_gid == grp.getgrnam("nogroup").gr_gid
        assert status.st_mode & 0o777 == 0o660


def test_a_unix_socket_has_its_owner_and_mode_before_it_listens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No client may connect while the socket file's owner or mode is not
    yet the asked one: both are set before listen()."""
    if os.getuid() != 0:
        pytest.skip("changing a file's owner needs root (CI runs as root)")
    path = os.path.join(short_tmpdir(), "app.sock")
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    at_listen: list[os.stat_result] = []
    listen = socket.socket.listen

    def watched(sock: socket.socket, *args: int) -> None:
        at_listen.append(os.stat(path))
        listen(sock, *args)

    monkeypatch.setattr(socket.socket, "listen", watched)
    sock = bind(parse_address(f"unix:{path}"), 16, 0o660, owner=nobody, group=nogroup)
    try:
        [status] = at_listen
        assert (status.st_uid, status.st_gid, status.st_mode & 0o777) == (nobody, nogroup, 0o660)
    finally:
        sock.close()
        os.unlink(path)
