"""Who may connect (--allow-from), whose forwarding headers are believed
(--forwarded-allow-ips), and who owns the unix sockets (--socket-owner,
--socket-group): the rules, in-process.  A real server applying them is
tested in tests/functional/test_access.py."""

from __future__ import annotations

import os
from typing import Any

import pytest

from dumbwaiter.access import AddressList, apply_forwarded, parse_address_list
from dumbwaiter.config import Config, ConfigError, parse_value, settings
from dumbwaiter.server.sockets import ListenError, bind, parse_address
from serving import short_tmpdir


def test_address_lists_match_addresses_and_networks() -> None:
    trusted = AddressList(["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"])
    assert "127.0.0.1" in trusted and "10.20.30.40" in trusted
    assert "2001:db8::1" in trusted and "[2001:db8::1]" in trusted
    assert "::ffff:10.1.2.3" in trusted  # an IPv4 client on a dual-stack socket
    assert "127.0.0.2" not in trusted and "11.0.0.1" not in trusted
    assert "unknown" not in trusted and "" not in trusted
    assert "198.51.100.1" in AddressList(["*"])


def test_a_bad_address_list_is_a_clear_config_error() -> None:
    assert parse_address_list(" 127.0.0.1 , ::1 ") == ["127.0.0.1", "::1"]
    field = {f.name: f for f in settings()}["allow_from"]
    with pytest.raises(ConfigError, match=r"--allow-from: not an address or network: '10\.0\.0'"):
        parse_value(field, "127.0.0.1,10.0.0")
    assert Config().forwarded_allow_ips == ["127.0.0.1", "::1"]


def forwarded(headers: dict[str, str], trusted: list[str]) -> dict[str, Any]:
    environ: dict[str, Any] = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "5000", **headers}
    apply_forwarded(environ, AddressList(trusted))
    return environ


def test_the_client_is_the_rightmost_untrusted_hop() -> None:
    # The client may send its own X-Forwarded-For: entries left of the first
    # untrusted one are not believed.
    environ = forwarded({"HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7, 10.0.0.2"}, ["10.0.0.0/8"])
    assert environ["REMOTE_ADDR"] == "203.0.113.7"
    assert "REMOTE_PORT" not in environ
    environ = forwarded({"HTTP_X_FORWARDED_FOR": "10.0.0.3, 10.0.0.2"}, ["10.0.0.0/8"])
    assert environ["REMOTE_ADDR"] == "10.0.0.3"


def test_the_scheme_comes_from_the_nearest_proxy() -> None:
    environ = forwarded({"HTTP_X_FORWARDED_PROTO": "https"}, ["127.0.0.1"])
    assert environ["HTTPS"] == "on" and environ["REMOTE_ADDR"] == "127.0.0.1"
    environ = forwarded({"HTTP_X_FORWARDED_PROTO": "http", "HTTPS": "on"}, ["127.0.0.1"])
    assert "HTTPS" not in environ


def test_rfc_7239_forwarded_wins_over_x_forwarded() -> None:
    headers = {
        "HTTP_FORWARDED": 'for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711"',
        "HTTP_X_FORWARDED_FOR": "6.6.6.6",
    }
    environ = forwarded(headers, ["127.0.0.1"])
    assert environ["REMOTE_ADDR"] == "2001:db8:cafe::17"
    assert environ["HTTPS"] == "on"


def test_a_failed_chown_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: str, uid: int, gid: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chown", refuse)
    path = os.path.join(short_tmpdir(), "app.sock")
    with pytest.raises(ListenError, match="cannot change owner: permission denied"):
        bind(parse_address(f"unix:{path}"), 16, 0o660, owner=0)
    assert not os.path.exists(path)
