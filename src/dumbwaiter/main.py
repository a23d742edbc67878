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
case) or a :class:`~dumbwaiter.server.master.Master` forks the workers.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from .access import AddressList
from .accesslog import AccessLog
from .config import Config
from .server import systemd
from .server.listeners import PROTOCOLS, Listener, import_ahead
from .server.malloc import keep_freed_memory
from .server.master import INHERIT_VARIABLE, UPGRADE_VARIABLE, Master
from .server.process import (
    ProcessError,
    change_directory,
    drop_privileges,
    gid_of,
    uid_of,
    write_pidfile,
)
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
#: The master's own HTTP addresses (:mod:`dumbwaiter.server.status`).
ADMIN_KINDS = ("metrics", "status")


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


def run(config: Config, load: Callable[[], WSGIApp], argv: list[str] | None = None) -> int:
    """Serve with a validated ``config``; returns the exit status.

    ``load`` returns the app.  It is called here, after binding and dropping
    privileges, when one process serves (``--no-master``, CGI, a web
    server's fd 0 with one worker) or with ``--preload``; otherwise in each
    worker, so a reload (SIGHUP) loads new code.  ``argv`` starts this
    server again, for an upgrade in place (SIGUSR2).  ``load`` raises
    :class:`~dumbwaiter.server.master.AppLoadFailed` with a one-line reason.
    """
    activated = systemd.activated()  # read once, before anything forks
    handed, upgrade_from = _upgrade_inheritance()
    # The old master's --metrics and --status sockets, if it had them.
    handed_admin = {text: fd for text, (kind, fd) in list(handed.items()) if kind in ADMIN_KINDS}
    for text in handed_admin:
        del handed[text]
    if config.chdir:
        change_directory(config.chdir)
    addresses = _listener_addresses(config)
    if handed and not addresses:
        addresses = [(protocol, text) for text, (protocol, _) in handed.items()]
    inherited = inherited_listener() if not addresses and not activated else None
    if config.cgi or (
        not addresses
        and not activated
        and inherited is None
        and "GATEWAY_INTERFACE" in os.environ
        and "REQUEST_METHOD" in os.environ
    ):
        from .cgi import run_cgi

        return run_cgi(load())
    single = config.no_master or (inherited is not None and config.workers == 1)
    bound: list[tuple[Address, socket.socket]] = []
    listeners: list[Listener] = []
    pidfile = None
    # Until the event loop takes the signals over, a stop request must still
    # unwind through the finally below (which removes our socket files).
    previous = signal.signal(signal.SIGTERM, _exit_now)
    try:
        owner = uid_of(config.socket_owner) if config.socket_owner else -1
        group = gid_of(config.socket_group) if config.socket_group else -1
        for protocol, text in addresses:
            address = parse_address(text)
            if text in handed:
                sock = socket.socket(fileno=handed.pop(text)[1])
                sock.set_inheritable(False)
            else:
                sock = bind(address, config.backlog, config.socket_mode, owner=owner, group=group)
            if address.kind == "unix":
                bound.append((address, sock))
            listeners.append(_listener(protocol, address, sock, config))
        if not addresses and activated:
            listeners += _activated_listeners(activated, config)
        elif inherited is not None:
            # A web server spawned us and handed us its socket on fd 0.
            listeners.append(_listener("fastcgi", Address("fd:0", "fd", fd=0), inherited, config))
        elif not listeners:
            address = parse_address(DEFAULT_HTTP)
            sock = bind(address, config.backlog, config.socket_mode)
            listeners.append(_listener("http", address, sock, config))
            print(f"dumbwaiter: serving on http://{DEFAULT_HTTP}/", file=sys.stderr)
        for text, (_, fd) in handed.items():  # listeners the new command line dropped
            os.close(fd)
            log.info("upgrade: no longer serving %s", text)
        if config.pid:
            pidfile = write_pidfile(config.pid, replacing=upgrade_from or None)
        access_log = _open_access_log(config)  # as root, like the listeners
        admin: dict[str, socket.socket] = {}
        for kind in ADMIN_KINDS if not single else ():
            text = getattr(config, kind)
            if not text:
                continue
            address = parse_address(text)
            if text in handed_admin:
                admin[kind] = socket.socket(fileno=handed_admin.pop(text))
                admin[kind].set_inheritable(False)
            else:
                admin[kind] = bind(address, 16, config.socket_mode)
            if address.kind == "unix":
                bound.append((address, admin[kind]))
            log.info("%s: http://%s%s", kind, text, "/metrics" if kind == "metrics" else "/")
        for fd in handed_admin.values():
            os.close(fd)
        if config.user or config.group:
            import_ahead(config, {listener.protocol for listener in listeners})
        keep_freed_memory()  # before the user may no longer read ctypes; workers inherit it
        drop_privileges(config.user, config.group)  # bound as root, serve as the user
        app = load() if single or config.preload else None
        if single:
            assert app is not None
            run_worker(app, config, listeners, access_log=access_log)
            return 0
        master = Master(
            config,
            listeners,
            load,
            app,
            argv=argv,
            upgrade_from=upgrade_from,
            access_log=access_log,
            admin=admin,
        )
        code = master.run()
        if master.handed_over:
            bound.clear()  # the socket files are the new master's now
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)
        for listener in listeners:
            listener.sock.close()
        close_all(bound)
        if pidfile is not None:
            pidfile.remove()


def _upgrade_inheritance() -> tuple[dict[str, tuple[str, int]], int]:
    """What an old master handed us in an upgrade in place (SIGUSR2):
    address text -> (protocol, fd), and its pid; the variables are removed
    so that our own workers and successors do not see them."""
    lines = os.environ.pop(INHERIT_VARIABLE, "")
    old = os.environ.pop(UPGRADE_VARIABLE, "")
    handed: dict[str, tuple[str, int]] = {}
    for line in lines.splitlines():
        protocol, fd, text = line.split(" ", 2)
        handed[text] = (protocol, int(fd))
    return handed, int(old) if old.isdigit() else 0


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
