"""The settings' sources: the TOML file, the environment, the command line,
merged in that order, each value with where it came from."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest
import tomllib

from dumbwaiter.config import Config, ConfigError, settings
from dumbwaiter.configfile import find_file, key_lines, load, render
from dumbwaiter.protocols import Role


@pytest.fixture
def here(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_precedence_default_file_environment_command_line(here: pathlib.Path) -> None:
    (here / "dumbwaiter.toml").write_text(
        'app = "proj.wsgi:application"\n'
        "threads = 3\n"
        "queue-size = 10\n"
        'max_body = "2M"\n'
        'fastcgi = ["unix:/run/a.sock", "127.0.0.1:9000"]\n'
    )
    environ = {"DUMBWAITER_QUEUE_SIZE": "20", "DUMBWAITER_READ_TIMEOUT": "7"}
    loaded = load({"read_timeout": "9", "gzip": True}, None, environ)
    config = loaded.config
    assert loaded.spec == "proj.wsgi:application"
    assert config.threads == 3  # the file
    assert config.queue_size == 20  # the environment over the file
    assert config.read_timeout == 9.0  # the command line over the environment
    assert config.max_body == 2 * 1024 * 1024
    assert config.fastcgi == ["unix:/run/a.sock", "127.0.0.1:9000"]
    assert config.gzip is True
    assert config.write_timeout == Config().write_timeout
    assert loaded.origin("threads") == "dumbwaiter.toml:2"
    assert loaded.origin("queue_size") == "DUMBWAITER_QUEUE_SIZE"
    assert loaded.origin("read_timeout") == "--read-timeout"
    assert loaded.origin("app") == "dumbwaiter.toml:1"
    assert loaded.origin("write_timeout") == "default"
    # The positional app wins over the file's.
    assert load({}, "other:app", {}).spec == "other:app"


def test_which_file(here: pathlib.Path) -> None:
    assert find_file(None, {}) is None
    (here / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_file(None, {}) is None  # no [tool.dumbwaiter] in it
    (here / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.dumbwaiter]\nthreads = 5\nworkers = "auto"\n'
    )
    assert find_file(None, {}) == ("pyproject.toml", "tool.dumbwaiter")
    loaded = load({}, "m", {})
    assert loaded.config.threads == 5
    assert loaded.origin("threads") == "pyproject.toml:5"
    (here / "dumbwaiter.toml").write_text("threads = 6\n")
    assert load({}, "m", {}).config.threads == 6  # dumbwaiter.toml first
    (here / "elsewhere.toml").write_text("threads = 7\n")
    assert load({}, "m", {"DUMBWAITER_CONFIG": "elsewhere.toml"}).config.threads == 7
    assert load({}, "m", {"DUMBWAITER_CONFIG": "x"}, "elsewhere.toml").config.threads == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("thread = 4", "dumbwaiter.toml:1: unknown key 'thread' (did you mean 'threads'?)"),
        ("\n\nmax-bdy = 4", "dumbwaiter.toml:3: unknown key 'max-bdy' (did you mean 'max_body'?)"),
        (
            'threads = "8"',
            "dumbwaiter.toml:1: threads: expected a whole number, got '8' (a string)",
        ),
        ("threads = 0", "dumbwaiter.toml:1: threads: must be at least 1 (got 0)"),
        ("gzip = 1", "dumbwaiter.toml:1: gzip: expected true or false, got 1 (an integer)"),
        ("read_timeout = true", "read_timeout: expected a number of seconds, got True"),
        ("fastcgi = [1]", "fastcgi: expected a list of strings, got [1] (a list)"),
        ('max_body = "12Q"', "max_body: not a size: '12Q'"),
        ("socket_mode = 0o660", 'socket_mode: expected an octal mode in a string ("660")'),
        ('fastcgi_roles = ["responder", "nope"]', "unknown FastCGI role 'nope'"),
        ("app = 3", "dumbwaiter.toml:1: app: expected 'module:callable', got 3"),
        ("threads = [", "dumbwaiter.toml: not valid TOML"),
        ("[other]\nx = 1", "dumbwaiter.toml: unknown key 'other'"),
        (
            "no_master = true\nworkers = 2",
            "--workers must be 1 (--no-master from dumbwaiter.toml:1; "
            "--workers from dumbwaiter.toml:2)",
        ),
    ],
)
def test_errors_say_where(here: pathlib.Path, text: str, message: str) -> None:
    (here / "dumbwaiter.toml").write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load({}, "m", {})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_errors_in_the_environment_name_the_variable(here: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match=r"^DUMBWAITER_THREADS: bad value 'x'"):
        load({}, "m", {"DUMBWAITER_THREADS": "x"})
    with pytest.raises(ConfigError, match=r"^DUMBWAITER_THREADS: must be at least 1"):
        load({}, "m", {"DUMBWAITER_THREADS": "0"})
    with pytest.raises(ConfigError, match=r"^DUMBWAITER_GZIP: not a yes or no: 'maybe'"):
        load({}, "m", {"DUMBWAITER_GZIP": "maybe"})
    assert load({}, "m", {"DUMBWAITER_GZIP": "off"}).config.gzip is False
    with pytest.raises(ConfigError, match=r"^--threads: bad value 'x'"):
        load({"threads": "x"}, "m", {})
    with pytest.raises(ConfigError, match=r"^elsewhere.toml: cannot read it"):
        load({}, "m", {}, "elsewhere.toml")


def test_every_setting_has_a_key_and_print_config_reads_back(here: pathlib.Path) -> None:
    """--print-config's output is a config file giving the same settings,
    for defaults and for a value other than the default in every setting."""
    changed = Config(
        fastcgi=["unix:/run/a.sock"],
        http=["127.0.0.1:8080"],
        scgi=[":4000"],
        uwsgi=["unix:/run/u.sock"],
        socket_mode=0o600,
        socket_owner="www",
        socket_group="www-data",
        allow_from=["10.0.0.0/8"],
        forwarded_allow_ips=["*"],
        backlog=10,
        script_name="/app",
        static=[f"/static/={here}"],
        interface="asgi",
        lifespan="on",
        ws_max_size=1234567,
        ws_ping_interval=5.0,
        ws_ping_timeout=6.0,
        ws_no_compression=True,
        debug=True,
        threads=3,
        no_batch_threads=True,
        loop_only=True,
        queue_size=5,
        read_ahead=2,
        read_ahead_bytes=1000,
        spool_threshold=2000,
        max_body=3000,
        max_header_bytes=4000,
        max_header_count=50,
        max_request_line=5000,
        max_streams=6,
        write_buffer=7000,
        max_connections=8,
        keepalive_timeout=1.5,
        read_timeout=2.5,
        header_timeout=3.5,
        min_body_rate=9,
        write_timeout=4.5,
        graceful_timeout=5.5,
        fastcgi_multiplex=False,
        fastcgi_roles=frozenset({Role.RESPONDER}),
        cgi=True,
        gzip=True,
        gzip_min_size=11,
        gzip_types="text/*",
        metrics="127.0.0.1:9100",
        status="127.0.0.1:9200",
        health_busy=6.5,
        workers=4,
        max_workers=6,
        workers_idle=12.5,
        no_master=False,
        preload=True,
        max_requests=12,
        max_requests_jitter=13,
        max_rss=14,
        max_lifetime=3600.0,
        max_lifetime_jitter=60.0,
        timeout=7.5,
        reload=False,
        pid="/run/dw.pid",
        user="nobody",
        group="nogroup",
        chdir="/srv",
        loop="asyncio",
        log_level="debug",
        error_log="/var/log/dw.log",
        access_log="-",
        access_log_format="json",
        hooks="proj.dw_hooks",
    )
    unchanged = {
        f.name for f in settings() if getattr(changed, f.name) == getattr(Config(), f.name)
    }
    # (each excludes one of the others above: --loop-only, --workers, --preload)
    assert unchanged == {"direct", "no_master", "reload"}
    for config in (Config(), changed):
        loaded = load({}, "proj:app", {})
        text = render(dataclasses.replace(loaded, config=config))
        tomllib.loads(text)  # valid TOML
        (here / "dumbwaiter.toml").write_text(text)
        again = load({}, None, {})
        assert again.config == config
        assert again.spec == "proj:app"
        for f in settings():
            assert f"{f.name} = " in text, f.name


def test_print_config_says_where_each_value_came_from(here: pathlib.Path) -> None:
    (here / "dumbwaiter.toml").write_text("# settings\nthreads = 3\n")
    text = render(load({"read_timeout": "9"}, "proj:app", {"DUMBWAITER_QUEUE_SIZE": "20"}))
    lines = {line.split(" = ")[0]: line for line in text.splitlines() if " = " in line}
    assert lines["threads"].endswith("# dumbwaiter.toml:2")
    assert lines["queue_size"].endswith("# DUMBWAITER_QUEUE_SIZE")
    assert lines["read_timeout"].endswith("# --read-timeout")
    assert lines["write_timeout"].endswith("# default")
    assert lines["app"].endswith("# command line")
    assert lines["# pid"].endswith("# default")  # not set: commented out


def test_key_lines_follow_the_table_and_skip_arrays() -> None:
    text = (
        "[project]\n"
        "threads = 1\n"
        "[tool.dumbwaiter]\n"
        "fastcgi = [\n"
        '  "unix:/a",\n'
        "]\n"
        '"max-body" = 5\n'
        "[ tool . dumbwaiter . inner ]\n"
        "threads = 2\n"
    )
    assert key_lines(text, "tool.dumbwaiter") == {"fastcgi": 4, "max-body": 7}
    assert key_lines(text, "project") == {"threads": 2}
