"""Listening sockets: parse addresses, bind, inherit from a web server.

Binding happens before the event loop starts, so that every start-up error
(address in use, permission denied, a live server on a unix socket path) is
reported as one :class:`ListenError` line before anything is served, and the
caller can remove what it created.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import struct
from dataclasses import dataclass
from typing import Any

from .systemd import activated_socket

__all__ = [
    "Address",
    "ListenError",
    "bind",
    "close_all",
    "inherited_listener",
    "parse_address",
    "reset_on_close",
]


class ListenError(Exception):
    """A listener could not be set up; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed listener address (``text`` is what the user wrote)."""

    text: str
    kind: str  # "tcp", "unix", "fd" or "systemd"
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1


def parse_address(text: str) -> Address:
    """``HOST:PORT``, ``:PORT``, ``[IPv6]:PORT``, ``unix:/path``, ``fd:N`` or
    ``systemd:NAME`` (a socket-activated socket by its FileDescriptorName).

    Raises :class:`ListenError` for anything else.
    """
    if text.startswith("systemd:"):
        return Address(text, "systemd", path=text[8:])
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ListenError(f"{text}: empty unix socket path")
        return Address(text, "unix", path=path)
    if text.startswith("fd:"):
        try:
            fd = int(text[3:])
        except ValueError:
            raise ListenError(f"{text}: fd:N needs a number") from None
        if fd < 0:
            raise ListenError(f"{text}: negative file descriptor")
        return Address(text, "fd", fd=fd)
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ListenError(
            f"{text}: expected HOST:PORT, :PORT, [IPv6]:PORT, unix:/path, fd:N or systemd:NAME"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ListenError(f"{text}: write IPv6 addresses in brackets, as [::1]:8000")
    try:
        port = int(port_text)
    except ValueError:
        raise ListenError(f"{text}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ListenError(f"{text}: port out of range")
    return Address(text, "tcp", host=host or "0.0.0.0", port=port)


def bind(
    address: Address, backlog: int, socket_mode: int, *, owner: int = -1, group: int = -1
) -> socket.socket:
    """Create, bind and listen a socket for ``address``.

    A unix socket file gets ``socket_mode`` and, unless -1, the ``owner``
    uid and ``group`` gid, all before ``listen()``: no client can connect
    while the file's owner or mode is not yet the asked one.  A stale socket
    file (nothing accepts on it) is replaced, a live one is never taken
    over.  Raises :class:`ListenError`; on error nothing is left behind.
    """
    activated = activated_socket(address.text)
    if activated is not None:
        return activated
    if address.kind == "fd":
        return _from_fd(address)
    if address.kind == "unix":
        return _bind_unix(address, backlog, socket_mode, owner, group)
    return _bind_tcp(address, backlog)


def _bind_tcp(address: Address, backlog: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(f"{address.text}: cannot resolve {address.host!r}: {exc}") from None
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenError(f"{address.text}: {_reason(exc)}") from None
    return sock


def _bind_unix(
    address: Address, backlog: int, socket_mode: int, owner: int, group: int
) -> socket.socket:
    path = address.path
    _remove_if_stale(address)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    created = False
    failed = ""  # what failed, when not the bind itself
    try:
        # Create the file with no permissions at all, give it its owner, then
        # open it up to the asked mode, and only then listen: no window in
        # which it is reachable with a looser mode or by the wrong group.
        old_umask = os.umask(0o777)
        try:
            sock.bind(path)
            created = True
        finally:
            os.umask(old_umask)
        if owner != -1 or group != -1:
            failed = "cannot change owner: "
            os.chown(path, owner, group)
            failed = ""
        os.chmod(path, socket_mode)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if created:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise ListenError(f"{address.text}: {failed}{_reason(exc)}") from None
    return sock


def _remove_if_stale(address: Address) -> None:
    path = address.path
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ListenError(f"{address.text}: {_reason(exc)}") from None
    if not stat.S_ISSOCK(mode):
        raise ListenError(f"{address.text}: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # a dead server's leftover
        return
    except OSError as exc:
        raise ListenError(f"{address.text}: cannot probe existing socket: {_reason(exc)}") from None
    finally:
        probe.close()
    raise ListenError(f"{address.text}: address in use (a server is listening on {path})")


def _from_fd(address: Address) -> socket.socket:
    try:
        sock = socket.socket(fileno=address.fd)
    except OSError as exc:
        raise ListenError(f"{address.text}: not a socket: {_reason(exc)}") from None
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise ListenError(f"{address.text}: socket is not listening")
    return sock


def inherited_listener() -> socket.socket | None:
    """The listening socket on fd 0, if a web server spawned us with one.

    That is how lighttpd ``bin-path``, mod_fcgid and the FastCGI spec
    (``FCGI_LISTENSOCK_FILENO``, section 2.2) hand over the socket.
    """
    try:
        sock = socket.socket(fileno=0)
    except OSError:
        return None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    if not listening:
        sock.detach()
        return None
    return sock


def close_all(sockets: list[tuple[Address, socket.socket]]) -> None:
    """Close listeners and remove the unix socket files we created."""
    for address, sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()
        if address.kind == "unix":
            with contextlib.suppress(OSError):
                os.unlink(address.path)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address in use"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


#: SO_LINGER on, zero seconds: close() sends RST instead of FIN.
LINGER_ZERO = struct.pack("ii", 1, 0)


def reset_on_close(sock: Any) -> None:
    """Have the socket's close end the connection abnormally: a reset on
    TCP (a zero linger time); unix sockets have none.  ``sock``: a socket,
    or the loop's stand-in for one (uvloop's PseudoSocket; Any, since the
    compiled build checks a declared type at the call)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
