"""Every setting, declared once.

:class:`Config` is the one table: each field carries its default, its unit
and its help text in ``metadata``.  The command-line parser (``cli.py``), the
``DUMBWAITER_*`` variables and the config file's keys (``configfile.py``) and
the settings page of the docs (``settingsdoc.py``, docs/settings.md) are all
produced from it, so no option is spelled twice.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .access import parse_address_list
from .protocols import Limits, Role

__all__ = [
    "SECONDS",
    "Config",
    "ConfigError",
    "GiB",
    "KiB",
    "MiB",
    "check_value",
    "env_name",
    "parse_size",
    "parse_value",
    "settings",
]

SECONDS = 1.0
KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class ConfigError(Exception):
    """A setting has a value it cannot take; the message names it."""


def parse_size(text: str) -> int:
    """``"512"``, ``"64k"``, ``"16M"``, ``"1G"`` (binary units) -> bytes."""
    text = text.strip()
    units = {"k": KiB, "m": MiB, "g": GiB}
    scale = units.get(text[-1:].lower(), 1)
    number = text[:-1] if scale != 1 else text
    try:
        value = int(number)
    except ValueError:
        raise ConfigError(f"not a size: {text!r} (use bytes, or a k/M/G suffix)") from None
    if value < 0:
        raise ConfigError(f"a size cannot be negative: {text!r}")
    return value * scale


def parse_mode(text: str) -> int:
    """A unix permission mode in octal, ``"660"`` or ``"0o660"``."""
    try:
        mode = int(text.removeprefix("0o"), 8)
    except ValueError:
        raise ConfigError(f"not an octal mode: {text!r}") from None
    if not 0 <= mode <= 0o777:
        raise ConfigError(f"mode out of range: {text!r}")
    return mode


def parse_roles(text: str) -> frozenset[Role]:
    """``"responder,authorizer,filter"`` -> roles."""
    try:
        return frozenset(Role[name.strip().upper()] for name in text.split(",") if name.strip())
    except KeyError as exc:
        raise ConfigError(f"unknown FastCGI role {exc.args[0].lower()!r}") from None


def parse_workers(text: str) -> int | tuple[int, int]:
    """A number of processes, or ``auto``: the CPUs this process may run on;
    or ``MIN:MAX`` (either may be ``auto``), which sets ``--max-workers``
    too (the settings' loader splits it)."""
    low, colon, high = text.partition(":")
    if colon:
        return one_count(low, text), one_count(high, text)
    return one_count(text, text)


def one_count(text: str, whole: str) -> int:
    if text.strip().lower() == "auto":
        return cpu_count()
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"not a number of workers: {whole!r} (use N, auto, or MIN:MAX)") from None


def split_static(text: str) -> tuple[str, str]:
    """``/static=/srv/app/static`` -> ("/static/", "/srv/app/static")."""
    url, equals, folder = text.partition("=")
    if not equals or not url.startswith("/") or not folder:
        raise ConfigError(f"{text!r}: give URL=DIR, the URL starting with /")
    return url.rstrip("/") + "/", folder


def static_map(text: str) -> tuple[str, str]:
    """``--static /static/=/srv/app/static`` -> ("/static/", the folder's
    real path)."""
    url, folder = split_static(text)
    if not os.path.isdir(folder):
        raise ConfigError(f"{text!r}: {folder!r} is not a folder")
    return url.rstrip("/") + "/", os.path.realpath(folder)


def _static_maps(value: Any) -> None:
    for text in value:
        static_map(text)


def cpu_count() -> int:
    """CPUs available to this process (``taskset`` and cgroup cpusets count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _address_list(text: str) -> list[str]:
    try:
        return parse_address_list(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _log_format(value: Any) -> None:
    from .accesslog import check_format

    try:
        check_format(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _positive(value: Any) -> None:
    if value < 1:
        raise ConfigError("must be at least 1")


def _not_negative(value: Any) -> None:
    if value < 0:
        raise ConfigError("cannot be negative")


def setting(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    check: Callable[[Any], None] | None = None,
    repeat: bool = False,
    cli: bool = True,
    restart: bool = False,
) -> Any:
    """Declare one setting: the field's default plus how to read and document
    it.  ``restart``: a reload (SIGHUP) cannot apply a new value (new
    sockets, privileges, the master's own files); it needs a restart, or an
    upgrade in place (SIGUSR2)."""
    meta = {
        "help": help,
        "flag": flag,
        "metavar": metavar,
        "parse": parse,
        "check": check,
        "repeat": repeat,
        "cli": cli,
        "restart": restart,
    }
    if isinstance(default, list | dict | set):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(slots=True)
class Config:
    """The settings of one server.  Build it with keyword arguments (the
    Python API), from the command line (``cli.py``) or from the environment
    (:meth:`from_env`); then call :meth:`validate`."""

    # -- listeners ---------------------------------------------------------
    fastcgi: list[str] = setting(
        [],
        "Serve FastCGI on ADDR (HOST:PORT, :PORT, [IPv6]:PORT, unix:/path or fd:N). Repeatable.",
        metavar="ADDR",
        repeat=True,
        restart=True,
    )
    http: list[str] = setting(
        [],
        "Serve HTTP/1.1 on ADDR (same forms as --fastcgi). Repeatable.",
        metavar="ADDR",
        repeat=True,
        restart=True,
    )
    scgi: list[str] = setting(
        [],
        "Serve SCGI on ADDR (same forms as --fastcgi). Repeatable.",
        metavar="ADDR",
        repeat=True,
        restart=True,
    )
    uwsgi: list[str] = setting(
        [],
        "Serve the uwsgi protocol (nginx uwsgi_pass) on ADDR (same forms). Repeatable.",
        metavar="ADDR",
        repeat=True,
        restart=True,
    )
    socket_mode: int = setting(
        0o660,
        "Permissions of unix sockets we create, in octal.",
        metavar="MODE",
        parse=parse_mode,
        restart=True,
    )
    socket_owner: str | None = setting(
        None, "Owner (user name or id) of unix sockets we create.", metavar="USER", restart=True
    )
    socket_group: str | None = setting(
        None,
        "Group of unix sockets we create, e.g. the front server's (www-data).",
        metavar="GROUP",
        restart=True,
    )
    allow_from: list[str] | None = setting(
        None,
        "Comma-separated addresses and networks (10.0.0.0/8) allowed to connect to TCP "
        "listeners; others are refused.  Default: anyone (FastCGI: FCGI_WEB_SERVER_ADDRS).",
        metavar="LIST",
        parse=_address_list,
        restart=True,
    )
    forwarded_allow_ips: list[str] = setting(
        ["127.0.0.1", "::1"],
        "HTTP peers whose X-Forwarded-For/-Proto and Forwarded headers are believed "
        "('*' = any; unix sockets always are).",
        metavar="LIST",
        parse=_address_list,
        restart=True,
    )
    backlog: int = setting(
        socket.SOMAXCONN,
        "Length of the kernel's accept queue.",
        metavar="N",
        check=_positive,
        restart=True,
    )
    # -- the application ---------------------------------------------------
    script_name: str | None = setting(
        None,
        "The URL prefix the app is mounted under: SCRIPT_NAME is set to it and PATH_INFO to "
        "the rest of the path, whatever the front server sent. Use '' for an app at the root.",
        metavar="PREFIX",
    )
    static: list[str] = setting(
        [],
        "HTTP listeners: serve the files of DIR at URL from the event loop (URL=DIR, "
        "repeatable), with ETag, Range and HEAD; for local use: in production the front "
        "server should (dumbwaiter config FRONT --static URL=DIR).",
        metavar="URL=DIR",
        repeat=True,
        check=_static_maps,
    )
    interface: str = setting(
        "auto",
        "The application's interface: auto (ASGI 3 for a coroutine function or an object "
        "with an async __call__, else WSGI), wsgi, asgi, or asgi2 (a double callable).",
        metavar="NAME",
    )
    lifespan: str = setting(
        "auto",
        "ASGI lifespan: on (startup must succeed before the worker serves), auto (an app "
        "that does not speak it is served without), off.",
        metavar="MODE",
    )
    ws_max_size: int = setting(
        16 * MiB,
        "ASGI WebSockets: the largest message received (closed with 1009 beyond).",
        metavar="BYTES",
        parse=parse_size,
        check=_positive,
    )
    ws_ping_interval: float = setting(
        20 * SECONDS,
        "ASGI WebSockets: ping a connection that has sent nothing this long; 0 = never.",
        metavar="S",
        check=_not_negative,
    )
    ws_ping_timeout: float = setting(
        20 * SECONDS,
        "ASGI WebSockets: close a connection whose pong has not come this long after a ping.",
        metavar="S",
        check=_not_negative,
    )
    ws_no_compression: bool = setting(
        False,
        "ASGI WebSockets: do not accept permessage-deflate (RFC 7692) when a client offers it.",
    )
    debug: bool = setting(
        False, "Send tracebacks of app errors to the client (never in production)."
    )
    # -- concurrency -------------------------------------------------------
    threads: int = setting(8, "Threads running the app.", metavar="N", check=_positive)
    no_batch_threads: bool = setting(
        False,
        "Keep the app's threads under the normal scheduling policy (by default, on Linux, "
        "they run as SCHED_BATCH: the same CPU share, but a woken thread does not preempt "
        "the event loop; processes the app starts inherit it).",
    )
    loop_only: bool = setting(
        False,
        "Serve every connection from the event loop, which hands each request to a thread "
        "(more CPU per request; for comparison and debugging). By default the threads accept and "
        "serve FastCGI, SCGI and uwsgi connections themselves while one is free, and the "
        "loop takes over when none is, or when a peer is slow to send its request.",
    )
    direct: bool = setting(
        False,
        "Accepted for older command lines: what it did is now the default (see --loop-only).",
    )
    queue_size: int = setting(
        1024,
        "Requests that may wait for a thread; beyond that the server answers 503 at once.",
        metavar="N",
        check=_not_negative,
    )
    read_ahead: int = setting(
        64,
        "Requests read ahead of the threads: once this many wait for a thread, new "
        "connections' requests are left unread (they wait in the kernel, costing this "
        "process little) until one is taken; they still count toward --queue-size, so "
        "503s come as before. 0 = read every request at once.",
        metavar="N",
        check=_not_negative,
    )
    read_ahead_bytes: int = setting(
        16 * MiB,
        "Request bodies held in memory by requests handed to the threads (queued or "
        "running); past this, new connections' requests are left unread as with "
        "--read-ahead. 0 = no bound.",
        metavar="BYTES",
        parse=parse_size,
    )
    # -- sizes -------------------------------------------------------------
    spool_threshold: int = setting(
        1 * MiB,
        "Request bodies larger than this are spooled to a temporary file.",
        metavar="BYTES",
        parse=parse_size,
    )
    max_body: int = setting(
        1 * GiB,
        "Largest request body accepted (413 beyond); 0 = no limit.",
        metavar="BYTES",
        parse=parse_size,
    )
    max_header_bytes: int = setting(
        64 * KiB,
        "Largest FastCGI params block / HTTP header section (431 beyond).",
        metavar="BYTES",
        parse=parse_size,
    )
    max_header_count: int = setting(
        256,
        "Most params / header fields in one request (431 beyond).",
        metavar="N",
        check=_positive,
    )
    max_request_line: int = setting(
        8 * KiB, "Longest HTTP request target (414 beyond).", metavar="BYTES", parse=parse_size
    )
    max_streams: int = setting(
        100,
        "Most concurrent requests on one multiplexed FastCGI connection.",
        metavar="N",
        check=_positive,
    )
    write_buffer: int = setting(
        256 * KiB,
        "Response bytes buffered per connection before the app's writes wait for the client.",
        metavar="BYTES",
        parse=parse_size,
    )
    max_connections: int = setting(
        4096,
        "Connections one worker holds at most; beyond, it stops accepting and the kernel's "
        "backlog (or another worker) takes them.",
        metavar="N",
        check=_positive,
    )
    # -- timeouts ----------------------------------------------------------
    keepalive_timeout: float = setting(
        120 * SECONDS,
        "Close a kept-alive connection idle this long (keep it above the front server's "
        "upstream keepalive_timeout).",
        metavar="S",
        check=_not_negative,
    )
    read_timeout: float = setting(
        60 * SECONDS,
        "Close a connection that sends nothing for this long while a request is partly received.",
        metavar="S",
        check=_not_negative,
    )
    header_timeout: float = setting(
        20 * SECONDS,
        "A request's head (HTTP headers, FastCGI params, SCGI/uwsgi header block) must "
        "arrive whole within this long, however it trickles in.",
        metavar="S",
        check=_positive,
    )
    min_body_rate: int = setting(
        500,
        "Bytes per second a request body must keep up after a --read-timeout grace: its "
        "deadline is start + read timeout + bytes received / rate; 0 = no minimum.",
        metavar="BYTES",
        check=_not_negative,
    )
    write_timeout: float = setting(
        60 * SECONDS,
        "Drop a connection whose peer has taken none of the response for this long.",
        metavar="S",
        check=_positive,
    )
    graceful_timeout: float = setting(
        30 * SECONDS,
        "On SIGTERM, how long requests in flight may take to finish.",
        metavar="S",
        check=_not_negative,
    )
    # -- FastCGI -----------------------------------------------------------
    fastcgi_multiplex: bool = setting(
        True, "Advertise and serve FCGI_MPXS_CONNS (several requests per connection).", cli=False
    )
    fastcgi_roles: frozenset[Role] = setting(
        frozenset(Role),
        "FastCGI roles served (responder,authorizer,filter); others get FCGI_UNKNOWN_ROLE.",
        metavar="ROLES",
        parse=parse_roles,
    )
    cgi: bool = setting(
        False, "Serve one request as CGI from the environment and stdin.", cli=False, restart=True
    )
    # -- responses ---------------------------------------------------------
    gzip: bool = setting(
        False,
        "Compress responses for clients that accept it: gzip, and brotli/zstd when installed "
        "(dumbwaiter[compress]).",
    )
    gzip_min_size: int = setting(
        1024, "Do not compress bodies known to be smaller.", metavar="BYTES", parse=parse_size
    )
    gzip_types: str | None = setting(
        None,
        "Comma-separated media types to compress (type/sub, type/*, */*+json); default: "
        "text, JSON, JavaScript, XML, SVG.",
        metavar="TYPES",
    )
    # -- operations --------------------------------------------------------
    metrics: str | None = setting(
        None,
        "Serve Prometheus metrics at http://ADDR/metrics from the master (HOST:PORT or "
        "unix:/path), summed over the workers.",
        metavar="ADDR",
        restart=True,
    )
    status: str | None = setting(
        None,
        "Serve a live status page at http://ADDR/ (its data at /status.json, plus /healthz "
        "and /metrics) from the master (HOST:PORT or unix:/path).",
        metavar="ADDR",
        restart=True,
    )
    health_busy: float = setting(
        10 * SECONDS,
        "/healthz answers 503 once every thread of every worker has been busy this long.",
        metavar="S",
        check=_positive,
    )
    # -- processes ---------------------------------------------------------
    workers: int = setting(
        1,
        "Worker processes serving the listeners; 'auto' = one per CPU this process may use; "
        "MIN:MAX = elastic, from MIN to MAX (as --max-workers MAX).",
        metavar="N|auto|MIN:MAX",
        parse=parse_workers,
        check=_positive,
    )
    max_workers: int = setting(
        0,
        "Elastic workers: the master adds one (up to this many) while every thread of "
        "every worker has been busy for 2s, and retires one after --workers-idle; "
        "0 = a fixed --workers (docs/processes.md).",
        metavar="N",
        check=_not_negative,
    )
    workers_idle: float = setting(
        30 * SECONDS,
        "With --max-workers: how long the load must have fitted in one worker fewer (at "
        "half its threads) before one is retired.",
        metavar="S",
        check=_positive,
    )
    no_master: bool = setting(
        False,
        "Serve in this one process, without a master (for servers a web server spawns or "
        "a program embeds); recycling then ends the process and its supervisor restarts it.",
        restart=True,
    )
    preload: bool = setting(
        False,
        "Import the app in the master before forking the workers (less memory; SIGHUP "
        "then restarts the workers without loading new code).",
        restart=True,
    )
    max_requests: int = setting(
        0,
        "Replace a worker after it has served this many requests; 0 = never.",
        metavar="N",
        check=_not_negative,
    )
    max_requests_jitter: int = setting(
        0,
        "Add a random 0..N to --max-requests for each worker, so they do not all restart at once.",
        metavar="N",
        check=_not_negative,
    )
    max_rss: int = setting(
        0,
        "Replace a worker whose resident memory grows past this many MiB; 0 = never.",
        metavar="MIB",
        check=_not_negative,
    )
    max_lifetime: float = setting(
        0.0,
        "Replace a worker once it has run this long (its replacement is ready before it "
        "stops taking requests); 0 = never.",
        metavar="S",
        check=_not_negative,
    )
    max_lifetime_jitter: float = setting(
        0.0,
        "Add a random 0..S to --max-lifetime for each worker, so they do not all go at once.",
        metavar="S",
        check=_not_negative,
    )
    timeout: float = setting(
        0.0,
        "A request still in the app after this long gets 504 (if its response has not "
        "started) and its worker is replaced once the others finish; 0 = never.",
        metavar="S",
        check=_not_negative,
    )
    reload: bool = setting(
        False,
        "Development: reload the workers when a *.py file under the current directory "
        "changes (watchfiles when installed, polling otherwise).",
        restart=True,
    )
    pid: str | None = setting(
        None, "Write the master's process id to FILE.", metavar="FILE", restart=True
    )
    user: str | None = setting(
        None,
        "Switch to this user (name or id) after binding the listeners.",
        metavar="USER",
        restart=True,
    )
    group: str | None = setting(
        None,
        "Switch to this group (name or id) after binding the listeners.",
        metavar="GROUP",
        restart=True,
    )
    chdir: str | None = setting(
        None, "Change to this directory before loading the app.", metavar="DIR", restart=True
    )
    # -- runtime -----------------------------------------------------------
    loop: str = setting(
        "auto", "Event loop: auto (uvloop if installed), asyncio or uvloop.", metavar="NAME"
    )
    log_level: str = setting("info", "debug, info, warning or error.", metavar="LEVEL")
    error_log: str | None = setting(
        None,
        "Write the server's log to FILE instead of standard error.",
        metavar="FILE",
    )
    access_log: str | None = setting(
        None,
        "Write one line per response to FILE ('-': standard output).",
        metavar="FILE",
    )
    hooks: str | None = setting(
        None,
        "A module of server hooks: its on_starting, post_fork, pre_request ... functions "
        "(gunicorn's names and arguments) are called at those points (docs/configuration.md).",
        metavar="MODULE",
    )
    access_log_format: str = setting(
        "combined",
        "common, combined, json, or a template of {fields} (docs/operations.md lists them).",
        metavar="FORMAT",
        check=_log_format,
    )

    def limits(self) -> Limits:
        """The protocol-level view of the size settings."""
        return Limits(
            max_header_bytes=self.max_header_bytes,
            max_header_count=self.max_header_count,
            max_request_line=self.max_request_line,
            max_body=self.max_body,
            max_streams=self.max_streams,
        )

    def validate(self) -> Config:
        """Check every value; raise :class:`ConfigError` naming the first bad one."""
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            if check is not None:
                try:
                    check(getattr(self, f.name))
                except ConfigError as exc:
                    raise ConfigError(f"{flag_of(f)}: {exc}") from None
        if self.interface not in ("auto", "wsgi", "asgi", "asgi2"):
            raise ConfigError(f"--interface: {self.interface!r} is not auto, wsgi, asgi or asgi2")
        if self.lifespan not in ("auto", "on", "off"):
            raise ConfigError(f"--lifespan: {self.lifespan!r} is not auto, on or off")
        if self.loop not in ("auto", "asyncio", "uvloop"):
            raise ConfigError(f"--loop: unknown event loop {self.loop!r}")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"--log-level: unknown level {self.log_level!r}")
        if self.script_name not in (None, "") and (
            not self.script_name.startswith("/") or self.script_name.endswith("/")
        ):
            raise ConfigError("--script-name: must start with '/' and not end with one")
        if self.gzip and self.gzip_types:
            from .middleware.mediatypes import MediaTypes

            try:
                MediaTypes(self.gzip_types)
            except ValueError as exc:
                raise ConfigError(f"--gzip-types: {exc}") from None
        for name in ("metrics", "status"):
            if getattr(self, name) and self.no_master:
                raise ConfigError(f"--{name} is served by the master: not with --no-master")
        if self.metrics and self.metrics == self.status:
            raise ConfigError("--status serves /metrics too: give --metrics another address")
        if self.direct and self.loop_only:
            raise ConfigError("--direct and --loop-only: choose one (--direct is the default)")
        if self.no_master and (self.workers > 1 or self.max_workers):
            raise ConfigError("--no-master serves in one process: --workers must be 1")
        if self.max_workers and self.max_workers < self.workers:
            raise ConfigError(f"--max-workers {self.max_workers} is under --workers {self.workers}")
        if self.reload and (self.no_master or self.preload):
            raise ConfigError(
                "--reload needs the master to load new code in new workers: "
                "not with --no-master or --preload"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Config:
        """Settings from ``DUMBWAITER_<NAME>`` variables, then ``overrides``."""
        values: dict[str, Any] = {}
        for f in settings():
            raw = environ.get(env_name(f))
            if raw is not None:
                values[f.name] = parse_value(f, raw, env_name(f))
        values.update(overrides)
        return cls(**values)


def settings() -> tuple[dataclasses.Field[Any], ...]:
    """The declared settings, in declaration order."""
    return dataclasses.fields(Config)


def type_name(f: dataclasses.Field[Any]) -> str:
    """The field's type as written: ``"int"``, ``"list[str] | None"`` ..."""
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")


def flag_of(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def env_name(f: dataclasses.Field[Any]) -> str:
    """The setting's environment variable."""
    return "DUMBWAITER_" + f.name.upper()


def check_value(f: dataclasses.Field[Any], value: Any, where: str) -> None:
    """The setting's own check of ``value``; its error names ``where`` it
    was set (an option, a variable, a file's key)."""
    check = f.metadata.get("check")
    if check is not None:
        try:
            check(value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc} (got {value!r})") from None


def parse_value(f: dataclasses.Field[Any], raw: str, where: str | None = None) -> Any:
    """Turn one textual value (command line, environment or a string in the
    file) into the field's type; an error names ``where`` (the option by
    default)."""
    where = where or flag_of(f)
    parse = f.metadata.get("parse")
    kind = type_name(f)
    try:
        if parse is not None:
            return parse(raw)
        if kind == "bool":
            word = raw.strip().lower()
            if word not in BOOLEAN_WORDS:
                raise ConfigError(f"not a yes or no: {raw!r} (use 1/0, true/false, yes/no, on/off)")
            return BOOLEAN_WORDS[word]
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("list"):
            return [item for item in raw.split(",") if item]
        return raw
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ValueError:
        expected = f" (expected {KINDS[kind]})" if kind in KINDS else ""
        raise ConfigError(f"{where}: bad value {raw!r}{expected}") from None


#: The words a yes-or-no setting takes in the environment ("": no).
BOOLEAN_WORDS = {
    **dict.fromkeys(("1", "true", "yes", "on"), True),
    **dict.fromkeys(("0", "false", "no", "off", ""), False),
}

#: What a value of each plain type looks like, for error messages.
KINDS = {"int": "a whole number", "float": "a number of seconds"}
