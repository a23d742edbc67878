"""Who may connect, and whose forwarding headers are believed.

The gateway protocols (FastCGI, SCGI, uwsgi) carry the front server's word
for REMOTE_ADDR, HTTPS and the rest, so on TCP anyone who can connect could
claim anything: ``--allow-from`` (and FastCGI's ``FCGI_WEB_SERVER_ADDRS``)
limit who connects.  Over HTTP the same holds for ``X-Forwarded-For``,
``X-Forwarded-Proto`` and ``Forwarded`` (RFC 7239): they are used only when
the peer is in ``--forwarded-allow-ips``.

:class:`AddressList` holds addresses and networks (``10.0.0.0/8``, ``::1``,
``*`` for any) and answers membership for an address as text, with a small
cache since a front server connects from the same few addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, MutableMapping
from typing import Any

__all__ = ["AddressList", "apply_forwarded", "parse_address_list"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address_list(text: str) -> list[str]:
    """``"127.0.0.1, 10.0.0.0/8"`` -> the items, each checked; ValueError names a bad one."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        if item != "*":
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network: {item!r}") from None
    return items


class AddressList:
    """A set of networks, asked with addresses as text."""

    __slots__ = ("_cache", "any", "networks", "text")

    def __init__(self, items: Iterable[str]) -> None:
        items = list(items)
        self.text = ",".join(items)
        self.any = "*" in items
        self.networks: list[Network] = [
            ipaddress.ip_network(item, strict=False) for item in items if item != "*"
        ]
        self._cache: dict[str, bool] = {}

    def __contains__(self, address: object) -> bool:
        if self.any:
            return True
        if not isinstance(address, str):
            return False
        known = self._cache.get(address)
        if known is None:
            known = self._lookup(address)
            if len(self._cache) < 1024:
                self._cache[address] = known
        return known

    def _lookup(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 from a dual-stack socket
        return any(ip in network for network in self.networks)

    def __repr__(self) -> str:
        return f"AddressList({self.text!r})"


def apply_forwarded(environ: MutableMapping[str, Any], trusted: AddressList) -> None:
    """Use a trusted proxy's forwarding headers (the peer was trusted).

    The client is the rightmost address of ``X-Forwarded-For`` (or of the
    ``for=`` parameters of ``Forwarded``) that is not itself a trusted
    proxy: each proxy appends the address it saw, so the entries left of
    the first untrusted one could have been made up by the client.  The
    scheme comes from ``X-Forwarded-Proto`` (or ``proto=``) of the nearest
    proxy.
    """
    hops: list[str] = []
    proto = ""
    forwarded = environ.get("HTTP_FORWARDED")
    if forwarded:
        for element in forwarded.split(","):
            for pair in element.split(";"):
                name, _, value = pair.strip().partition("=")
                value = value.strip().strip('"')
                if name.lower() == "for" and value:
                    hops.append(_strip_port(value))
                elif name.lower() == "proto" and value:
                    proto = value.lower()
    else:
        xff = environ.get("HTTP_X_FORWARDED_FOR")
        if xff:
            hops = [hop.strip() for hop in xff.split(",") if hop.strip()]
        xfp = environ.get("HTTP_X_FORWARDED_PROTO")
        if xfp:
            proto = xfp.rpartition(",")[2].strip().lower()
    if hops:
        client = hops[0]
        for hop in reversed(hops):
            if hop not in trusted:
                client = hop
                break
        environ["REMOTE_ADDR"] = client
        environ.pop("REMOTE_PORT", None)  # the proxy's port says nothing about the client
    if proto == "https":
        environ["HTTPS"] = "on"
        environ["REQUEST_SCHEME"] = "https"
    elif proto == "http":
        environ.pop("HTTPS", None)
        environ["REQUEST_SCHEME"] = "http"


def _strip_port(node: str) -> str:
    """A ``Forwarded`` node: ``192.0.2.1:4711``, ``"[2001:db8::1]:80"``, ``unknown``."""
    if node.startswith("["):
        return node[1:].partition("]")[0]
    if node.count(":") == 1:
        return node.partition(":")[0]
    return node
