"""Start serving: choose the mode, bind the listeners, run, clean up.

The modes, decided once here:

* listeners given (``--fastcgi``/``--http``): bind them and serve;
* none given, and fd 0 is a listening socket: a web server spawned us
  (lighttpd ``bin-path``, mod_fcgid, FastCGI's ``FCGI_LISTENSOCK_FILENO``):
  serve FastCGI on it, admitting only ``FCGI_WEB_SERVER_ADDRS`` on TCP, in
  this one process unless ``--workers`` asks for more (the web server
  already supervises us);
* none given, fd 0 is not a socket, and CGI variables are set: serve that one
  request as CGI;
* none given, and systemd passed sockets (``LISTEN_FDS``): serve each with
  the protocol its ``FileDescriptorName=`` names (``fastcgi``, ``http`` ...);
* otherwise: HTTP on 127.0.0.1:8000, so a newcomer sees a page at once.

Start-up runs in this order: read the activated sockets, ``--chdir``, bind,
write ``--pid``, drop to ``--user``/``--group``, and only then load the app
(here, or in each worker).

Then either this process serves (``--no-master``, and the web-server-spawned
case) or an :class:`~dumbwaiter.process.arbiter.Arbiter` forks the workers.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .access import AddressList
from .accesslog import AccessLog
from .config import Config
from .hooks import Hooks, WorkerInfo
from .process.arbiter import Arbiter
from .process.child import Setup
from .process.chores import (
    PidFile,
    ProcessError,
    change_directory,
    drop_privileges,
    gid_of,
    group_name,
    uid_of,
    user_name,
    write_pidfile,
)
from .process.reconfigure import Reread
from .process.upgrade import Inheritance
from .server import systemd
from .server.listeners import PROTOCOLS, Listener, import_ahead
from .server.malloc import keep_freed_memory
from .server.sockets import (
    Address,
    ListenError,
    bind,
    close_all,
    inherited_listener,
    parse_address,
)
from .server.worker import run_worker
from .typing import WSGIApp

__all__ = ["DEFAULT_HTTP", "run", "serve"]

log = logging.getLogger("dumbwaiter")

DEFAULT_HTTP = "127.0.0.1:8000"

#: How this process serves: one CGI request, alone, or as the master.
Mode = Literal["cgi", "alone", "arbiter"]


def serve(
    app: WSGIApp,
    *,
    fastcgi: str | list[str] | None = None,
    http: str | list[str] | None = None,
    **options: Any,
) -> None:
    """Serve ``app`` until stopped (SIGTERM, SIGINT); the Python API.

    ``fastcgi`` and ``http`` take one address or a list; ``options`` are the
    settings of :class:`~dumbwaiter.config.Config` by name (``threads=4``,
    ``socket_mode=0o666`` ...).  One process serves unless ``workers`` is
    more than 1 (or ``no_master=False``).  Raises
    :class:`~dumbwaiter.config.ConfigError` or
    :class:`~dumbwaiter.server.sockets.ListenError` when it cannot start, and
    ``SystemExit`` when its workers failed.
    """
    options.setdefault("no_master", options.get("workers", 1) == 1)
    config = Config(fastcgi=_as_list(fastcgi), http=_as_list(http), **options).validate()
    setup_logging(config.log_level, config.error_log)
    code = run(config, lambda: app)
    if code:
        raise SystemExit(code)


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def setup_logging(level: str, path: str | None = None) -> None:
    """Log to stderr (or ``path``), unless the embedding program configured
    logging itself.  A file is opened now, before privileges are dropped,
    and reopened on SIGUSR1."""
    logger = logging.getLogger("dumbwaiter")
    logger.setLevel(level.upper())
    if not logger.handlers and not logging.getLogger().handlers:
        handler: logging.Handler
        try:
            handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
        except OSError as exc:
            raise ProcessError(f"--error-log {path}: {exc.strerror}") from None
        handler.setFormatter(
            logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
        )
        logger.addHandler(handler)
        logger.propagate = False


def run(
    config: Config,
    load: Callable[[], WSGIApp],
    argv: list[str] | None = None,
    *,
    reread: Reread | None = None,
) -> int:
    """Serve with a validated ``config``; returns the exit status.

    ``load`` returns the app.  It is called here, after binding and dropping
    privileges, when one process serves (``--no-master``, CGI, a web
    server's fd 0 with one worker) or with ``--preload``; otherwise in each
    worker, so a reload (SIGHUP) loads new code.  ``argv`` starts this
    server again, for an upgrade in place (SIGUSR2); ``reread`` reads the
    settings again, for a reload (SIGHUP).  ``load`` raises
    :class:`~dumbwaiter.process.child.AppLoadFailed` with a one-line reason.
    """
    hooks = Hooks.load(config.hooks)  # (a HookError says why not, in one line)
    activated = systemd.activated()  # read once, before anything forks
    inherited = Inheritance.from_environ(os.environ)
    if config.chdir:
        change_directory(config.chdir)
    addresses = _listener_addresses(config) or inherited.addresses()
    fd0 = inherited_listener() if not addresses and not activated else None
    mode = choose_mode(config, bool(addresses or activated), fd0)
    if mode == "cgi":
        from .cgi import run_cgi

        return run_cgi(load())
    bound = Bound()
    pidfile: PidFile | None = None
    # Until the event loop takes the signals over, a stop request must still
    # unwind through the finally below (which removes our socket files).
    previous = signal.signal(signal.SIGTERM, _exit_now)
    try:
        bind_listeners(bound, config, addresses, activated, fd0, inherited)
        if mode == "arbiter":
            bind_admin(bound, config, inherited)
        inherited.close_rest()
        if config.pid:
            pidfile = write_pidfile(config.pid, replacing=inherited.old_master or None)
        access_log = _open_access_log(config)  # as root, like the listeners
        if config.user or config.group:
            import_ahead(config, {listener.protocol for listener in bound.listeners})
        keep_freed_memory()  # before the user may no longer read ctypes; workers inherit it
        drop_privileges(config.user, config.group)  # bound as root, serve as the user
        if mode == "alone":
            serve_alone(config, load, bound.listeners, access_log, hooks)
            return 0
        return serve_under_arbiter(
            config, load, bound, access_log, argv, inherited.old_master, reread, hooks
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        bound.close()
        if pidfile is not None:
            pidfile.remove()


def serve_alone(
    config: Config,
    load: Callable[[], WSGIApp],
    listeners: list[Listener],
    access_log: AccessLog | None,
    hooks: Hooks,
) -> None:
    """Serve in this one process (no master: the master's hooks are not
    called, the worker's are)."""
    info = WorkerInfo(os.getpid(), os.getppid(), 1, 1)
    app = load()
    hooks.call_at_start("post_worker_init", info)
    interrupted = functools.partial(hooks.call, "worker_int", info)
    try:
        run_worker(hooks.wrap(app, info), config, listeners, None, access_log, interrupted)
    finally:
        hooks.call("worker_exit", None, info)


def choose_mode(config: Config, listening: bool, fd0: socket.socket | None) -> Mode:
    """CGI (asked for, or no socket anywhere and CGI variables set), alone
    (``--no-master``, or a web server's fd 0 and one worker), or a master
    over workers.  ``listening``: listener addresses or systemd sockets."""
    cgi_environ = "GATEWAY_INTERFACE" in os.environ and "REQUEST_METHOD" in os.environ
    if config.cgi or (not listening and fd0 is None and cgi_environ):
        return "cgi"
    if config.no_master or (fd0 is not None and config.workers == 1):
        return "alone"
    return "arbiter"


@dataclass
class Bound:
    """What start-up bound, closed when :func:`run` returns: the listeners,
    the master's own sockets, and the unix socket files we created (removed
    too, unless a new master took them over)."""

    listeners: list[Listener] = field(default_factory=list)
    admin: dict[str, socket.socket] = field(default_factory=dict)
    files: list[tuple[Address, socket.socket]] = field(default_factory=list)

    def close(self) -> None:
        for listener in self.listeners:
            listener.sock.close()
        for sock in self.admin.values():
            sock.close()
        close_all(self.files)


def bind_listeners(
    bound: Bound,
    config: Config,
    addresses: list[tuple[str, str]],
    activated: list[tuple[str, socket.socket]],
    fd0: socket.socket | None,
    inherited: Inheritance,
) -> None:
    """Into ``bound``: the listener ``addresses`` (handed over by an old
    master, or bound now); else systemd's sockets; else a web server's fd 0;
    else HTTP on :data:`DEFAULT_HTTP`."""
    owner = uid_of(config.socket_owner) if config.socket_owner else -1
    group = gid_of(config.socket_group) if config.socket_group else -1
    made: list[Address] = []
    for protocol, text in addresses:
        address = parse_address(text)
        sock = inherited.take(text, admin=False)
        if sock is None:
            sock = bind(address, config.backlog, config.socket_mode, owner=owner, group=group)
            made.append(address)
        if address.kind == "unix":
            bound.files.append((address, sock))
        bound.listeners.append(_listener(protocol, address, sock, config))
    if not config.socket_group:  # (once all are bound: a failed start says one thing)
        for address in made:
            if address.kind == "unix":
                say_who_may_connect(address, config.socket_mode)
    if not addresses and activated:
        bound.listeners += _activated_listeners(activated, config)
    elif fd0 is not None:
        # A web server spawned us and handed us its socket on fd 0.
        address = Address("fd:0", "fd", fd=0)
        bound.listeners.append(_listener("fastcgi", address, fd0, config))
    elif not bound.listeners:
        address = parse_address(DEFAULT_HTTP)
        sock = bind(address, config.backlog, config.socket_mode)
        bound.listeners.append(_listener("http", address, sock, config))
        print(f"dumbwaiter: serving on http://{DEFAULT_HTTP}/", file=sys.stderr)


def say_who_may_connect(address: Address, mode: int) -> None:
    """One line when only our own user and group may connect to a unix
    socket we made: a front server running as another user (Debian's
    lighttpd, nginx and Apache run as www-data) gets "Permission denied"."""
    if mode & 0o002 or address.path is None:
        return
    try:
        made = os.stat(address.path)
    except OSError:
        return
    user, group = user_name(made.st_uid), group_name(made.st_gid)
    log.info(
        "%s: only %s and group %s may connect (mode %03o): a front server running as "
        "another user (www-data on Debian) needs --socket-group (e.g. www-data)",
        address.text,
        user,
        group,
        mode,
    )


def bind_admin(bound: Bound, config: Config, inherited: Inheritance) -> None:
    """Into ``bound``: the master's own HTTP addresses, ``--metrics`` and
    ``--status`` (:mod:`dumbwaiter.process.status`)."""
    for kind, text in (("metrics", config.metrics), ("status", config.status)):
        if not text:
            continue
        address = parse_address(text)
        sock = inherited.take(text, admin=True)
        if sock is None:
            sock = bind(address, 16, config.socket_mode)
        bound.admin[kind] = sock
        if address.kind == "unix":
            bound.files.append((address, sock))
        log.info("%s: http://%s%s", kind, text, "/metrics" if kind == "metrics" else "/")


def serve_under_arbiter(
    config: Config,
    load: Callable[[], WSGIApp],
    bound: Bound,
    access_log: AccessLog | None,
    argv: list[str] | None,
    upgrade_from: int,
    reread: Reread | None = None,
    hooks: Hooks | None = None,
) -> int:
    """Fork the workers and watch them until stopped; the exit status."""
    app = load() if config.preload else None
    setup = Setup(app, load, config, bound.listeners, access_log, os.getpid(), hooks or Hooks())
    arbiter = Arbiter(setup, argv=argv, upgrade_from=upgrade_from, admin=bound.admin, reread=reread)
    code = arbiter.run()
    if arbiter.handed_over:
        bound.files.clear()  # the socket files are the new master's now
    return code


def _activated_listeners(
    activated: list[tuple[str, socket.socket]], config: Config
) -> list[Listener]:
    """No listener options, and systemd passed sockets: each socket's name
    (``FileDescriptorName=``) says its protocol."""
    listeners = []
    for name, sock in activated:
        if name not in PROTOCOLS:
            raise ListenError(
                f"systemd passed fd {sock.fileno()} named {name!r}: name it "
                f"{', '.join(PROTOCOLS)} (FileDescriptorName=), or pass --fastcgi systemd:{name}"
            )
        address = Address(f"systemd:{name}", "systemd", path=name)
        listeners.append(_listener(name, address, sock, config))
    return listeners


def _open_access_log(config: Config) -> AccessLog | None:
    if not config.access_log:
        return None
    try:
        return AccessLog(config.access_log, config.access_log_format)
    except OSError as exc:
        raise ProcessError(f"--access-log {config.access_log}: {exc.strerror}") from None


def _listener_addresses(config: Config) -> list[tuple[str, str]]:
    return [(protocol, text) for protocol in PROTOCOLS for text in getattr(config, protocol)]


def _exit_now(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _listener(protocol: str, address: Address, sock: socket.socket, config: Config) -> Listener:
    """A listener with its access rules: ``--allow-from`` on TCP (for FastCGI,
    else ``FCGI_WEB_SERVER_ADDRS``, FastCGI 1.0 section 3.2) and, for HTTP,
    whose forwarding headers to believe."""
    allowed = config.allow_from
    tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
    if allowed is None and protocol == "fastcgi" and tcp:
        listed = os.environ.get("FCGI_WEB_SERVER_ADDRS", "")
        allowed = [a.strip() for a in listed.split(",") if a.strip()] or None
    if allowed is None and tcp and protocol != "http" and not _loopback(sock):
        log.warning(
            "%s %s: reachable from other machines and anyone may connect; these peers "
            "are trusted for REMOTE_ADDR, HTTPS ... (use --allow-from)",
            protocol,
            address.text,
        )
    return Listener(
        protocol,
        address,
        sock,
        allowed=AddressList(allowed) if allowed is not None else None,
        trusted=AddressList(config.forwarded_allow_ips) if protocol == "http" else None,
    )


def _loopback(sock: socket.socket) -> bool:
    try:
        return ipaddress.ip_address(sock.getsockname()[0]).is_loopback
    except ValueError:
        return False
