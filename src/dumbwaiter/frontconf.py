"""``dumbwaiter config FRONTEND``: the front server's config for a deployment.

Each generator returns the part of the front server's configuration that
concerns dumbwaiter, commented with why each directive is there; the
integration tests wrap exactly this output in a minimal server config, so
what is printed is what is tested.  lighttpd and nginx with FastCGI, SCGI,
the uwsgi protocol and HTTP; Apache's mod_proxy with all four; Caddy, h2o and
HAProxy with FastCGI and HTTP.  An HTTP upstream's config also passes
WebSocket upgrades on (for an ASGI app; a WSGI app never accepts one).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .config import ConfigError, split_static
from .server.sockets import Address, ListenError, parse_address

__all__ = ["NginxSnippet", "lighttpd", "main", "nginx"]

PROTOCOLS = ("fastcgi", "scgi", "uwsgi", "http")


def _address(text: str) -> Address:
    address = parse_address(text)
    if address.kind == "fd":
        raise ListenError(f"{text}: the front server needs HOST:PORT or unix:/path")
    return address


def _mount(mount: str) -> str:
    if mount != "/" and (not mount.startswith("/") or mount.endswith("/")):
        raise ValueError(f"--mount {mount!r}: '/' or a prefix like /app (no trailing slash)")
    return mount


def lighttpd(
    protocol: str,
    address: str,
    *,
    mount: str = "/",
    spawn: str | None = None,
    processes: int = 2,
    python: str = sys.executable,
    environment: Mapping[str, str] | None = None,
    authorizer: str | None = None,
) -> str:
    """lighttpd (mod_fastcgi, mod_scgi or mod_proxy) for an app at ``mount``.

    ``spawn`` (an app spec) makes lighttpd start ``processes`` dumbwaiters
    itself (``bin-path``, socket on fd 0; FastCGI only).  ``authorizer`` is a
    document root whose requests an authorizer at ``address`` must allow
    (FastCGI ``"mode" => "authorizer"``)."""
    where = _address(address)
    mount = _mount(mount)
    if protocol == "http":
        host = "127.0.0.1" if where.host == "0.0.0.0" else where.host
        if where.kind != "tcp":
            raise ValueError("lighttpd's mod_proxy needs HOST:PORT")
        note = ""
        if mount != "/":
            note = f"# The path goes on unchanged: start dumbwaiter with --script-name {mount}.\n"
        return (
            f'{note}server.modules += ("mod_proxy")\n'
            f'proxy.server = ("{mount}" => (("host" => "{host}", "port" => {where.port})))\n'
            "# The client's address and scheme, as X-Forwarded-For and X-Forwarded-Proto.\n"
            'proxy.forwarded = ("for" => 1, "proto" => 1)\n'
            "# Pass WebSocket upgrades on (lighttpd 1.4.46+).\n"
            'proxy.header = ("upgrade" => "enable")\n'
        )
    module = "fastcgi" if protocol == "fastcgi" else "scgi"
    if spawn is not None and (protocol != "fastcgi" or where.kind != "unix"):
        raise ValueError("spawning is for FastCGI on a unix socket")
    entry = (
        [f'"socket" => "{where.path}"']
        if where.kind == "unix"
        else [f'"host" => "{where.host}"', f'"port" => {where.port}']
    )
    if spawn is not None:
        command = f"{python} -m dumbwaiter {spawn}"
        entry += [f'"bin-path" => "{command}"', f'"max-procs" => {processes}']
        if environment:
            pairs = ", ".join(f'"{k}" => "{v}"' for k, v in environment.items())
            entry.append(f'"bin-environment" => ({pairs})')
    lines = [f'server.modules += ("mod_{module}")']
    if protocol == "uwsgi":
        lines.append("# mod_scgi speaks the uwsgi protocol too (lighttpd >= 1.4.42).")
        lines.append('scgi.protocol = "uwsgi"')
    if spawn is not None:
        lines.append("# lighttpd gives each request to its least loaded process (the first")
        lines.append("# when all are idle): concurrent requests spread, sequential ones do not.")
        lines.append("# Or max-procs 1 and dumbwaiter --workers N: the kernel spreads them.")
    if authorizer is not None:
        entry += ['"mode" => "authorizer"', f'"docroot" => "{authorizer}"']
    else:
        entry.append('"check-local" => "disable"')  # no file behind the app's URLs
        if mount == "/":
            # Without it lighttpd makes the first path segment SCRIPT_NAME.
            entry.append('"fix-root-scriptname" => "enable"')
    body = ",\n        ".join(entry)
    prefix = mount if authorizer is None else mount.rstrip("/") + "/"
    lines.append(f'{module}.server = (\n    "{prefix}" => ((\n        {body},\n    ))\n)')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class NginxSnippet:
    """nginx's two parts: one for the ``http {}`` block, one for ``server {}``."""

    http: str
    server: str

    def __str__(self) -> str:
        return (
            "# --- in the http { } block\n"
            + self.http
            + "# --- in the server { } block\n"
            + self.server
        )


def nginx(
    protocol: str,
    address: str | Sequence[str],
    *,
    mount: str = "/",
    keepalive: int = 8,
    stream: bool = True,
) -> NginxSnippet:
    """nginx ``fastcgi_pass``/``scgi_pass``/``uwsgi_pass``/``proxy_pass``.

    Several addresses (dumbwaiters on several machines) make an upstream that
    nginx balances, and a 503 from a full instance is retried on the next one
    (idempotent requests only, as nginx does by default).  ``keepalive``: idle
    FastCGI or HTTP connections kept for reuse; 0 opens one per request (SCGI
    and uwsgi always do: their responses end with the connection)."""
    addresses = [address] if isinstance(address, str) else list(address)
    mount = _mount(mount)
    servers = ""
    for text in addresses:
        where = _address(text)
        target = f"unix:{where.path}" if where.kind == "unix" else f"{where.host}:{where.port}"
        servers += f"    server {target};\n"
    reuse = keepalive > 0 and protocol in ("fastcgi", "http")
    keep = (
        f"    # Idle backend connections kept open for reuse.\n    keepalive {keepalive};\n"
        if reuse
        else ""
    )
    http = f"upstream dumbwaiter {{\n{servers}{keep}}}\n"
    if protocol == "http":
        # (a map belongs to the http {} block, hence here)
        http = (
            "# WebSockets: 'Connection: upgrade' when the client asks to upgrade, else\n"
            "# none (an empty value is not sent), which keeps upstream keep-alive.\n"
            "map $http_upgrade $dumbwaiter_connection {\n"
            "    default upgrade;\n"
            "    '' '';\n"
            "}\n" + http
        )
    location = mount if mount == "/" else mount + "/"
    lines = [f"location {location} {{"]
    if protocol == "fastcgi":
        lines += [
            "    include fastcgi_params;",
            "    # fastcgi_params sets SCRIPT_NAME to the whole path; a WSGI app wants the",
            "    # mount point there and the rest in PATH_INFO.",
            f"    fastcgi_split_path_info ^({mount.rstrip('/')})(/.*)$;",
            "    fastcgi_param SCRIPT_NAME $fastcgi_script_name;",
            "    fastcgi_param PATH_INFO $fastcgi_path_info;",
        ]
        if reuse:
            lines += [
                "    # Reuse backend connections (FCGI_KEEP_CONN); needs the upstream keepalive.",
                "    fastcgi_keep_conn on;",
            ]
    elif protocol in ("scgi", "uwsgi"):
        lines.append(f"    include {protocol}_params;")
        if mount != "/":
            lines.append(f"    # The prefix: start dumbwaiter with --script-name {mount}.")
    elif protocol == "http":
        lines += [
            "    # HTTP/1.1 for upstream keep-alive and WebSocket upgrades (the map above).",
            "    proxy_http_version 1.1;",
            "    proxy_set_header Upgrade $http_upgrade;",
            "    proxy_set_header Connection $dumbwaiter_connection;",
            "    proxy_set_header Host $http_host;",
            "    # The client's address and scheme, which HTTP does not carry otherwise.",
            "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "    proxy_set_header X-Forwarded-Proto $scheme;",
        ]
        lines += [
            "    # An open WebSocket may be idle longer than the default 60 s (dumbwaiter",
            "    # pings a silent one every --ws-ping-interval, 20 s).",
            "    proxy_read_timeout 300s;",
        ]
        if mount != "/":
            lines.append(f"    # The prefix: start dumbwaiter with --script-name {mount}.")
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    directive = "proxy" if protocol == "http" else protocol
    if len(addresses) > 1:
        lines.append("    # A full instance answers 503 at once: try the next one.")
        lines.append(f"    {directive}_next_upstream error timeout http_503;")
    if stream:
        lines.append("    # Relay the response as the app produces it.")
        lines.append(f"    {directive}_buffering off;")
    pass_to = "http://dumbwaiter" if protocol == "http" else "dumbwaiter"
    lines.append(f"    {directive}_pass {pass_to};")
    lines.append("}")
    return NginxSnippet(http, "\n".join(lines) + "\n")


def caddy(protocol: str, address: str, *, mount: str = "/") -> str:
    """Caddy 2: the body of a site block (``reverse_proxy``).

    Caddy's FastCGI transport sends SCRIPT_NAME "" and PATH_INFO = the whole
    path when no ``split_path`` is given, which is what a WSGI app wants.
    Under a prefix Caddy passes the path unchanged, and dumbwaiter's
    ``--script-name`` splits it."""
    where = _address(address)
    mount = _mount(mount)
    target = f"unix/{where.path}" if where.kind == "unix" else f"{where.host}:{where.port}"
    if protocol == "fastcgi":
        body = (
            f"reverse_proxy {target} {{\n\ttransport fastcgi\n"
            "\t# Relay the response as the app produces it.\n\tflush_interval -1\n}\n"
        )
    elif protocol == "http":
        body = (
            "# reverse_proxy passes WebSocket upgrades on by itself.\n"
            f"reverse_proxy {target} {{\n\tflush_interval -1\n}}\n"
        )
    else:
        raise ValueError("Caddy speaks FastCGI and HTTP to backends (no SCGI or uwsgi)")
    if mount == "/":
        return body
    inner = "".join("\t" + line + "\n" for line in body.splitlines())
    return (
        f"# The path goes on unchanged: start dumbwaiter with --script-name {mount}.\n"
        f"handle {mount}/* {{\n{inner}}}\n"
    )


def h2o(
    protocol: str,
    address: str,
    *,
    mount: str = "/",
    spawn: str | None = None,
    python: str = sys.executable,
) -> str:
    """h2o: one ``paths:`` entry (YAML, indented for ``hosts: NAME: paths:``).

    h2o sets SERVER_NAME to the ``hosts:`` key: name the host as clients do
    (``example.org:80``), not ``default``.  Under a prefix h2o passes the
    whole path (FastCGI: in PATH_INFO, with SCRIPT_NAME ""), and dumbwaiter's
    ``--script-name`` splits it."""
    mount = _mount(mount)
    split = "" if mount == "/" else f"--script-name {mount} "
    note = ""
    if mount != "/" and spawn is None:
        note = f"# The path goes on whole: start dumbwaiter with --script-name {mount}.\n"
    # h2o closes each FastCGI connection unless given an idle timeout.
    keep = "  # Keep FastCGI connections for reuse (idle milliseconds).\n"
    keep += "  fastcgi.timeout.keepalive: 10000\n"
    if spawn is not None:
        # h2o starts dumbwaiter itself and hands it the socket on fd 0.
        command = f"exec {python} -m dumbwaiter {split}{spawn}"
        return f'{mount}:\n  fastcgi.spawn:\n    command: "{command}"\n{keep}'
    where = _address(address)
    if protocol == "fastcgi":
        port = where.path if where.kind == "unix" else str(where.port)
        host = "" if where.kind == "unix" else f"\n    host: {where.host}"
        kind = "unix" if where.kind == "unix" else "tcp"
        return (
            f"{note}{mount}:\n  fastcgi.connect:\n    port: {port}\n    type: {kind}{host}\n{keep}"
        )
    if protocol == "http":
        host = f"[unix:{where.path}]" if where.kind == "unix" else f"{where.host}:{where.port}"
        return (
            f"{note}{mount}:\n  proxy.reverse.url: http://{host}{mount}\n"
            "  # Pass the client's Host on, not the backend's address.\n"
            "  proxy.preserve-host: ON\n"
            "  # Pass WebSocket upgrades on (h2o 2.2; from 2.3: proxy.tunnel: ON).\n"
            "  proxy.websocket: ON\n"
        )
    raise ValueError("h2o speaks FastCGI and HTTP to backends (no SCGI or uwsgi)")


def apache(
    protocol: str,
    address: str,
    *,
    mount: str = "/",
    authorizer: bool = False,
    spawn: str | None = None,
    python: str = sys.executable,
    environment: Mapping[str, str] | None = None,
    script: str = "/usr/local/lib/myapp-authorizer",
) -> str:
    """Apache 2.4 mod_proxy_fcgi / mod_proxy_scgi / mod_proxy_uwsgi /
    mod_proxy_http: the ``ProxyPass`` for an app at ``mount``.

    ``authorizer``: instead, protect ``mount`` with a FastCGI authorizer at
    ``address`` (mod_authnz_fcgi, TCP only): a 200 allows, with the user
    taken from its ``Variable-X-User`` header; anything else is the answer.
    ``spawn`` (an app spec): instead, mod_fcgid starts dumbwaiter itself
    (``address`` is unused), with ``environment`` set for it; with
    ``authorizer`` too, as the access checker of ``mount``, from the
    executable script ``script`` (mod_fcgid runs files, not command lines)."""
    mount = _mount(mount)
    if spawn is not None:
        if protocol != "fastcgi":
            raise ValueError("mod_fcgid spawns FastCGI applications")
        env = "".join(f"FcgidInitialEnv {k} {v}\n" for k, v in (environment or {}).items())
        command = f"{python} -m dumbwaiter {spawn}"
        if authorizer:
            return _apache_fcgid_authorizer(command, mount, env, script)
        return _apache_fcgid(command, mount, env)
    where = _address(address)
    if authorizer:
        if protocol != "fastcgi" or where.kind != "tcp":
            raise ValueError("mod_authnz_fcgi needs --fastcgi HOST:PORT")
        prefix = "/" if mount == "/" else mount + "/"
        return (
            "# a2enmod authnz_fcgi\n"
            f"AuthnzFcgiDefineProvider authnz dumbwaiter fcgi://{where.host}:{where.port}/\n"
            f'<Location "{prefix}">\n'
            "    AuthType dumbwaiter\n"
            '    AuthName "dumbwaiter"\n'
            "    # Apache keeps Authorization from FastCGI unless told otherwise.\n"
            "    CGIPassAuth On\n"
            "    AuthnzFcgiCheckAuthnProvider dumbwaiter Authoritative On RequireBasicAuth Off "
            '\\\n        UserExpr "%{reqenv:X-User}"\n'
            "    Require valid-user\n"
            "</Location>\n"
        )
    scheme = {"fastcgi": "fcgi", "scgi": "scgi", "uwsgi": "uwsgi", "http": "http"}[protocol]
    module = {
        "fastcgi": "proxy_fcgi",
        "scgi": "proxy_scgi",
        "uwsgi": "proxy_uwsgi",
        "http": "proxy_http",
    }[protocol]
    prefix = "/" if mount == "/" else mount + "/"
    # mod_proxy_http strips the prefix, so the app would not know its mount
    # point (links made with it would miss the prefix): pass the whole path,
    # and dumbwaiter's --script-name splits it.
    path = prefix if protocol == "http" else "/"
    if where.kind == "unix":
        target = f'"unix:{where.path}|{scheme}://localhost{path}"'
    else:
        target = f"{scheme}://{where.host}:{where.port}{path}"
    # Reuse backend connections: FastCGI keep-conn, HTTP keep-alive.
    # flushpackets: relay the response as the app produces it (streaming).
    # upgrade=websocket: mod_proxy_http passes WebSocket upgrades on (2.4.47+).
    reuse = {
        "fastcgi": " enablereuse=on flushpackets=on",
        "http": " keepalive=On upgrade=websocket",
    }.get(protocol, " flushpackets=on")
    text = f"# a2enmod proxy {module}\n"
    if protocol == "http":
        text = f"# a2enmod proxy {module} headers\n"
        text += "# The client's Host header, not the backend's address.\nProxyPreserveHost On\n"
        text += (
            "# The scheme (mod_proxy_http sends X-Forwarded-For itself); dumbwaiter believes\n"
            "# them from --forwarded-allow-ips (default: this machine).\n"
            'RequestHeader set X-Forwarded-Proto "expr=%{REQUEST_SCHEME}"\n'
        )
        if mount != "/":
            text += f"# Start dumbwaiter with --script-name {mount}.\n"
        text += (
            "# upgrade=websocket passes WebSocket upgrades on (Apache 2.4.47+; before:\n"
            "# mod_proxy_wstunnel and a RewriteRule to ws:// on the Upgrade header).\n"
        )
    return text + f"ProxyPass {prefix} {target}{reuse}\n"


def _apache_fcgid(command: str, mount: str, env: str) -> str:
    # mod_fcgid runs a "virtual" wrapper for every URL under the mount point;
    # the Alias target need not exist: Apache stops its path walk at the first
    # missing directory, and the rest of the URL becomes PATH_INFO.
    target = "/dumbwaiter-app/" if mount == "/" else "/dumbwaiter-app"
    return (
        "# a2enmod alias fcgid\n"
        "# mod_fcgid starts dumbwaiter itself (as the Apache user, socket on fd 0).\n"
        f'FcgidWrapper "{command}" virtual\n'
        f"{env}"
        "# mod_fcgid refuses request bodies over 128 KiB unless told otherwise,\n"
        "# and holds back 64 KiB of each response before sending any.\n"
        "FcgidMaxRequestLen 1073741824\n"
        "FcgidOutputBufferSize 0\n"
        f'Alias "{mount}" "{target}"\n'
        f'<Location "{mount}">\n'
        "    SetHandler fcgid-script\n"
        "    Options +ExecCGI\n"
        "    Require all granted\n"
        "</Location>\n"
    )


def _apache_fcgid_authorizer(command: str, mount: str, env: str, script: str) -> str:
    prefix = "/" if mount == "/" else mount + "/"
    return (
        "# a2enmod fcgid\n"
        f"# mod_fcgid starts the authorizer itself from {script}, an executable:\n"
        f"#     #!/bin/sh\n#     exec {command}\n"
        f"{env}"
        f'<Location "{prefix}">\n'
        "    # Apache keeps Authorization from FastCGI unless told otherwise.\n"
        "    CGIPassAuth On\n"
        f"    FcgidAccessChecker {script}\n"
        "</Location>\n"
    )


def haproxy(protocol: str, address: str | Sequence[str], *, mount: str = "/") -> str:
    """HAProxy 2.x: a backend named ``dumbwaiter`` (plus the ``fcgi-app``
    section for FastCGI); point a frontend at it with ``default_backend``.
    Several addresses are balanced, and a refused connection or a full
    instance's 503 is retried on another (idempotent requests).  Under a
    prefix the path goes on unchanged, and dumbwaiter's ``--script-name``
    splits it."""
    addresses = [address] if isinstance(address, str) else list(address)
    mount = _mount(mount)
    fcgi = " proto fcgi" if protocol == "fastcgi" else ""
    servers = ""
    for number, text in enumerate(addresses, 1):
        where = _address(text)
        target = f"unix@{where.path}" if where.kind == "unix" else f"{where.host}:{where.port}"
        servers += f"    server app{number} {target}{fcgi}\n"
    retry = ""
    if len(addresses) > 1:
        retry = (
            "    # A full instance answers 503 at once: try another one.\n"
            "    retry-on conn-failure empty-response 503\n"
            "    option redispatch 1\n"
            "    retries 3\n"
        )
    head = ""
    if mount != "/":
        head = (
            f"# In the frontend: use_backend dumbwaiter if {{ path_beg {mount}/ }}\n"
            f"# and start dumbwaiter with --script-name {mount}.\n"
        )
    if protocol == "fastcgi":
        return (
            f"{head}fcgi-app dumbwaiter\n"
            "    # Required by HAProxy; dumbwaiter serves no files from it.\n"
            "    docroot /\n"
            "    # Keep backend connections open across requests (FCGI_KEEP_CONN).\n"
            "    option keep-conn\n"
            "    log-stderr global\n"
            "backend dumbwaiter\n"
            "    use-fcgi-app dumbwaiter\n"
            "    http-reuse always\n"
            f"{retry}{servers}"
        )
    if protocol == "http":
        return (
            f"{head}backend dumbwaiter\n"
            "    # Keep backend connections open across client requests.\n"
            "    http-reuse always\n"
            "    # The client's address and scheme, which HTTP does not carry otherwise;\n"
            "    # dumbwaiter believes them from --forwarded-allow-ips (default: this machine).\n"
            "    option forwardfor\n"
            "    http-request set-header X-Forwarded-Proto https if { ssl_fc }\n"
            "    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }\n"
            "    # HTTP mode passes WebSocket upgrades on; an open one may be idle this long\n"
            "    # (instead of timeout client/server; dumbwaiter pings a silent one every\n"
            "    # --ws-ping-interval, 20 s).\n"
            "    timeout tunnel 1h\n"
            f"{retry}{servers}"
        )
    raise ValueError("HAProxy speaks FastCGI and HTTP to backends (no SCGI or uwsgi)")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dumbwaiter config",
        description="Print the front server's configuration for a dumbwaiter deployment.",
    )
    parser.add_argument(
        "frontend", choices=("lighttpd", "nginx", "apache", "caddy", "h2o", "haproxy")
    )
    listener = parser.add_mutually_exclusive_group(required=True)
    for kind in PROTOCOLS:
        listener.add_argument(
            f"--{kind}",
            metavar="ADDR",
            action="append",
            help=f"dumbwaiter's {kind} address (nginx: repeat for several)",
        )
    parser.add_argument("--mount", default="/", metavar="PREFIX", help="where the app lives")
    parser.add_argument(
        "--spawn",
        metavar="MODULE:APP",
        help="the front server starts dumbwaiter itself (lighttpd bin-path, h2o, Apache mod_fcgid)",
    )
    parser.add_argument("--processes", type=int, default=2, metavar="N")
    parser.add_argument(
        "--keepalive",
        type=int,
        default=8,
        metavar="N",
        help="nginx: idle backend connections kept for reuse (0: one per request)",
    )
    parser.add_argument(
        "--static",
        metavar="URL=DIR",
        action="append",
        default=[],
        help="the front server serves the files of DIR at URL itself (repeatable): "
        "those URLs never reach the app",
    )
    parser.add_argument(
        "--front-group",
        metavar="GROUP",
        help="the group the front server's processes run as, for the start command's "
        "--socket-group (default: as Debian packages it: www-data; caddy, debian-h2o, haproxy)",
    )
    parser.add_argument(
        "--authorizer",
        action="store_true",
        help="Apache: protect --mount with a FastCGI authorizer (mod_authnz_fcgi)",
    )
    args = parser.parse_args(argv)
    protocol = next(kind for kind in PROTOCOLS if getattr(args, kind))
    addresses: list[str] = getattr(args, protocol)
    address = addresses[0]
    if len(addresses) > 1 and args.frontend not in ("nginx", "haproxy"):
        print(
            "dumbwaiter config: error: several addresses: nginx and haproxy only", file=sys.stderr
        )
        return 2
    try:
        if args.frontend == "lighttpd":
            text = lighttpd(
                protocol, address, mount=args.mount, spawn=args.spawn, processes=args.processes
            )
        elif args.spawn and args.frontend not in ("h2o", "apache"):
            raise ValueError(
                f"{args.frontend} does not start backends; use lighttpd, h2o or apache"
            )
        elif args.frontend == "nginx":
            text = str(nginx(protocol, addresses, mount=args.mount, keepalive=args.keepalive))
        elif args.frontend == "haproxy":
            text = haproxy(protocol, addresses, mount=args.mount)
        elif args.frontend == "apache":
            text = apache(
                protocol, address, mount=args.mount, authorizer=args.authorizer, spawn=args.spawn
            )
        elif args.frontend == "caddy":
            text = caddy(protocol, address, mount=args.mount)
        else:
            text = h2o(protocol, address, mount=args.mount, spawn=args.spawn)
        text = with_static(args.frontend, text, [static_map(item) for item in args.static])
    except (ValueError, ListenError) as exc:
        print(f"dumbwaiter config: error: {exc}", file=sys.stderr)
        return 2
    print(f"# dumbwaiter config {shlex.join(argv)}")
    print(text, end="")
    if not args.spawn:
        # (a front that passes the path on whole said so: the app needs the mount)
        mount = args.mount if f"--script-name {args.mount}" in text else None
        print(start_line(args.frontend, protocol, addresses, args.front_group, mount), end="")
    return 0


def static_map(text: str) -> tuple[str, str]:
    """``--static /static/=/srv/app/static`` -> ("/static/", "/srv/app/static/")."""
    try:
        url, folder = split_static(text)
    except ConfigError as exc:
        raise ValueError(f"--static {exc}") from None
    if not os.path.isabs(folder):
        raise ValueError(f"--static {text!r}: DIR must be absolute (the front server reads it)")
    if any(char in url + folder for char in "\"'{};$ \n"):
        raise ValueError(f"--static {text!r}: quotes, braces, spaces and $ are not allowed")
    return url, folder.rstrip("/") + "/"


def with_static(front: str, text: str, maps: Sequence[tuple[str, str]]) -> str:
    """``text`` (the app's part of ``front``'s config) with each of ``maps``
    (URL prefix, folder) served by the front server itself, placed so that
    those URLs never reach the app."""
    if not maps:
        return text
    said = "".join(
        f"# {url} is served by {front} from {folder}: it never reaches the app.\n"
        for url, folder in maps
    )
    if front == "nginx":
        blocks = "".join(f"location {url} {{\n    alias {folder};\n}}\n" for url, folder in maps)
        return text + said + blocks
    if front == "lighttpd":
        lines = text.splitlines(keepends=True)
        start = next(
            i for i, line in enumerate(lines) if re.match(r"(fastcgi|scgi|proxy)\.server", line)
        )
        urls = "|".join(re.escape(url) for url, _ in maps)
        aliases = ", ".join(f'"{url}" => "{folder}"' for url, folder in maps)
        app = "".join("    " + line for line in lines[start:])
        return (
            'server.modules += ("mod_alias")\n'
            + "".join(lines[:start])
            + said
            + f"alias.url += ({aliases})\n"
            + f'$HTTP["url"] !~ "^({urls})" {{\n{app}}}\n'
        )
    if front == "apache":
        blocks = "".join(
            f"ProxyPass {url} !\nAlias {url} {folder}\n"
            f"<Directory {folder}>\n    Require all granted\n</Directory>\n"
            for url, folder in maps
        )
        return "# a2enmod alias\n" + said + blocks + text
    if front == "caddy":
        blocks = "".join(
            f"handle_path {url}* {{\n\troot * {folder}\n\tfile_server\n}}\n" for url, folder in maps
        )
        if not text.lstrip().startswith(("handle ", "#")):
            text = "handle {\n" + "".join("\t" + line + "\n" for line in text.splitlines()) + "}\n"
        return said + blocks + text
    if front == "h2o":
        blocks = "".join(f"{url.rstrip('/')}:\n  file.dir: {folder}\n" for url, folder in maps)
        return said + blocks + text
    urls = " ".join(url for url, _ in maps)
    return text + (
        f"# HAProxy serves no files: {urls} would reach the app. Serve them from a web\n"
        "# server beside it (nginx: dumbwaiter config nginx --static URL=DIR) and send\n"
        f"# them there in the frontend: use_backend static if {{ path_beg {maps[0][0]} }}\n"
    )


#: The group each front server's processes run as, as Debian packages it.
FRONT_GROUPS = {
    "lighttpd": "www-data",
    "nginx": "www-data",
    "apache": "www-data",
    "caddy": "caddy",
    "h2o": "debian-h2o",
    "haproxy": "haproxy",
}


def start_line(
    front: str,
    protocol: str,
    addresses: Sequence[str],
    group: str | None,
    mount: str | None = None,
) -> str:
    """The command that starts dumbwaiter for this config: with a unix
    socket, one the front server's user may open (the default mode, 660,
    lets in the socket's group only); with ``--script-name`` when the front
    passes the mount point on in the path."""
    listeners = " ".join(f"--{protocol} {address}" for address in addresses)
    if mount:
        listeners += f" --script-name {mount}"
    if not any(address.startswith("unix:") for address in addresses):
        return f"# Start: dumbwaiter {listeners} MODULE:APP\n"
    group = group or FRONT_GROUPS[front]
    return (
        f"# {front}'s processes run as group {group} (Debian's package; else --front-group):\n"
        f"# the socket must be theirs to open.\n"
        f"# Start: dumbwaiter {listeners} --socket-group {group} MODULE:APP\n"
    )
