"""What a worker listens on: a bound socket, the protocol spoken on it, who
may connect, and how each connection's protocol object is made.

A :class:`Listener` also knows what only the socket can tell about a peer
(its address, ours) and turns it into CGI variables once per connection
(:meth:`Listener.peer_environ`); :func:`protocol_factory` builds the
zero-argument constructor of a listener's sans-IO protocol from the settings.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..access import AddressList
from ..config import Config
from ..protocols import ServerProtocol
from ..typing import FORWARDED
from .sockets import Address

__all__ = ["PROTOCOLS", "Listener", "import_ahead", "protocol_factory"]

log = logging.getLogger("dumbwaiter")


@dataclass(eq=False)
class Listener:
    """A bound socket plus the protocol spoken on it."""

    protocol: str  # one of PROTOCOLS
    address: Address
    sock: socket.socket
    #: Peers allowed to connect on TCP (--allow-from, FCGI_WEB_SERVER_ADDRS);
    #: None = anyone.
    allowed: AddressList | None = None
    #: HTTP: peers whose forwarding headers are believed (--forwarded-allow-ips).
    trusted: AddressList | None = None
    #: A unix socket (known once: asking each connection costs system calls).
    unix: bool = field(init=False, default=False)
    #: "fastcgi unix:/run/app.sock": for log lines and reports (made once).
    name: str = field(init=False, default="")
    #: The socket's family, type and protocol as plain ints, for the sockets
    #: accepted on it (``sock.family`` and ``sock.type`` convert to enums).
    kind: tuple[int, int, int] = field(init=False, default=(0, 0, 0))

    def __post_init__(self) -> None:
        self.unix = self.sock.family == socket.AF_UNIX
        self.kind = (int(self.sock.family), int(self.sock.type), self.sock.proto)
        self.name = f"{self.protocol} {self.address.text}"

    def peer_environ(self, peer: object, local: Callable[[], Any]) -> dict[str, str] | None:
        """CGI variables only the socket knows, used where the protocol gave
        none; None for a peer ``--allow-from`` refuses (logged).  ``peer``
        is the peer's address (None on a unix socket), ``local`` gives ours."""
        if not isinstance(peer, tuple):
            # The front server says who; over HTTP, in its forwarding headers
            # (only it can connect: the socket file's permissions say so).
            return {FORWARDED: "1"} if self.trusted is not None else {}
        if self.allowed is not None and peer[0] not in self.allowed:
            log.warning(
                "%s: refused connection from %s (not an allowed web server)", self.name, peer[0]
            )
            return None
        local_address = local()
        environ = {
            "REMOTE_ADDR": peer[0],
            "REMOTE_PORT": str(peer[1]),
            "SERVER_NAME": local_address[0],
            "SERVER_PORT": str(local_address[1]),
        }
        if self.trusted is not None and peer[0] in self.trusted:
            environ[FORWARDED] = "1"
        return environ


def import_ahead(config: Config, kinds: set[str]) -> None:
    """Import now what the workers import lazily: once we switch to
    ``--user``, the Python installation may not be readable any more."""
    import importlib

    for kind in kinds:
        importlib.import_module(f"..protocols.{kind}", __package__)
    if config.loop != "asyncio":
        with contextlib.suppress(ImportError):
            importlib.import_module("uvloop")


def protocol_factory(
    kind: str,
    ctx_date: Callable[[], bytes],
    config: Config,
    capacity: int,
) -> Callable[[], ServerProtocol]:
    """A zero-argument constructor of the server protocol for one listener."""
    limits = config.limits()
    if kind == "fastcgi":
        from ..protocols.fastcgi import FastCGIServerProtocol

        multiplex = config.fastcgi_multiplex
        roles = config.fastcgi_roles

        def make_fastcgi() -> ServerProtocol:
            return FastCGIServerProtocol(
                limits, max_conns=capacity, max_reqs=capacity, multiplex=multiplex, roles=roles
            )

        return make_fastcgi

    if kind == "scgi":
        from ..protocols.scgi import SCGIServerProtocol

        return lambda: SCGIServerProtocol(limits)
    if kind == "uwsgi":
        from ..protocols.uwsgi import UwsgiServerProtocol

        return lambda: UwsgiServerProtocol(limits)
    from ..protocols.http import HTTPServerProtocol

    def make_http() -> ServerProtocol:
        return HTTPServerProtocol(limits, date=ctx_date)

    return make_http


#: Listener kinds, each a Config field of addresses.
PROTOCOLS = ("fastcgi", "http", "scgi", "uwsgi")
