"""The settings table drives the parser, the environment and validation."""

from __future__ import annotations

import dataclasses

import pytest

from dumbwaiter.cli import build_parser, config_from_args
from dumbwaiter.config import Config, ConfigError, parse_size, settings
from dumbwaiter.protocols import Role


def test_every_cli_setting_has_exactly_one_option() -> None:
    parser = build_parser()
    dests = [a.dest for a in parser._actions]
    for f in settings():
        expected = 1 if f.metadata["cli"] else 0
        assert dests.count(f.name) == expected, f.name
        assert f.metadata["help"], f"{f.name} has no help text"


def test_defaults_from_the_table() -> None:
    spec, config = config_from_args(["mod:app"])
    assert spec == "mod:app"
    assert config == Config()
    assert config.socket_mode == 0o660
    assert config.fastcgi_roles == frozenset(Role)


def test_options_are_parsed_by_type() -> None:
    _, config = config_from_args(
        [
            "--fastcgi",
            "unix:/tmp/a.sock",
            "--fastcgi",
            ":9000",
            "--http",
            "127.0.0.1:8080",
            "--threads",
            "3",
            "--queue-size",
            "0",
            "--max-body",
            "10M",
            "--socket-mode",
            "666",
            "--keepalive-timeout",
            "1.5",
            "--script-name",
            "/app",
            "--debug",
            "--fastcgi-roles",
            "responder,authorizer",
            "m",
        ]
    )
    assert config.fastcgi == ["unix:/tmp/a.sock", ":9000"]
    assert config.http == ["127.0.0.1:8080"]
    assert (config.threads, config.queue_size, config.max_body) == (3, 0, 10 * 1024 * 1024)
    assert config.socket_mode == 0o666
    assert config.keepalive_timeout == 1.5
    assert config.script_name == "/app"
    assert config.debug is True
    assert config.fastcgi_roles == {Role.RESPONDER, Role.AUTHORIZER}


def test_environment_then_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUMBWAITER_THREADS", "5")
    monkeypatch.setenv("DUMBWAITER_QUEUE_SIZE", "7")
    _, config = config_from_args(["--threads", "2", "m"])
    assert (config.threads, config.queue_size) == (2, 7)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--threads", "0", "m"], "--threads: must be at least 1"),
        (["--threads", "many", "m"], "--threads: bad value 'many'"),
        (["--max-body", "-1", "m"], "--max-body"),
        (["--socket-mode", "999", "m"], "--socket-mode"),
        (["--script-name", "app/", "m"], "--script-name"),
        (["--log-level", "loud", "m"], "--log-level"),
        (["--fastcgi-roles", "janitor", "m"], "unknown FastCGI role 'janitor'"),
    ],
)
def test_bad_values_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_args(argv)


def test_sizes() -> None:
    assert parse_size("512") == 512
    assert parse_size("64k") == 65536
    assert parse_size("2G") == 2 << 30
    with pytest.raises(ConfigError):
        parse_size("lots")


def test_config_is_one_table() -> None:
    names = [f.name for f in dataclasses.fields(Config)]
    assert len(names) == len(set(names))
    assert Config().limits().max_body == Config().max_body
