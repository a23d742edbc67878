"""Real front servers for the integration tests: configs and runners.

The part of each config that concerns dumbwaiter is exactly what
``dumbwaiter config FRONTEND`` prints (``dumbwaiter.frontconf``); these
functions only wrap it in a minimal server with every path in a temp folder.

Runners start the front server in the foreground in its own process group,
with every path (logs, pid, temp files) inside the test's folder, wait until
it accepts, and stop it by its pid.  A missing binary skips the test, or
fails it when ``DUMBWAITER_REQUIRE_FRONTENDS=1`` (as in CI).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from dumbwaiter.frontconf import NginxSnippet

SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
READY_SECONDS = 15.0


def binary(name: str) -> str:
    """The path of a front server binary; skip (or fail in CI) without it."""
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        message = f"{name} is not installed (Debian package: {name}; see .ci/run)"
        if os.environ.get("DUMBWAITER_REQUIRE_FRONTENDS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def required(what: str, package: str) -> None:
    """Skip for a missing front server part (fail in CI), like :func:`binary`."""
    message = f"{what} is not installed (Debian package: {package}; see .ci/run)"
    if os.environ.get("DUMBWAITER_REQUIRE_FRONTENDS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Tls:
    """A second, TLS listener for a front server: a self-signed certificate
    for 127.0.0.1 (``pem``: certificate and key in one file, for HAProxy)."""

    port: int
    cert: str
    key: str
    pem: str


def self_signed(folder: str) -> tuple[str, str, str] | None:
    """A certificate and key for 127.0.0.1 made by ``openssl`` in ``folder``
    (certificate, key, both in one file); None without openssl."""
    openssl = shutil.which("openssl", path=SEARCH_PATH)
    if openssl is None:
        return None
    cert, key, pem = (os.path.join(folder, name) for name in ("cert.pem", "key.pem", "both.pem"))
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    names = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", key, "-out", cert]
    subprocess.run(
        [openssl, "req", "-x509", *curve, *names, *files, "-nodes", "-days", "2"],
        check=True,
        capture_output=True,
    )
    pathlib.Path(pem).write_text(pathlib.Path(cert).read_text() + pathlib.Path(key).read_text())
    return cert, key, pem


LIGHTTPD_MODULES = "/usr/lib/lighttpd"


def lighttpd_conf(root: str, port: int, snippet: str, tls: Tls | None = None) -> str:
    """A minimal lighttpd config around ``snippet`` (the output of
    ``dumbwaiter config lighttpd``), with every path in ``root``."""
    secure = ""
    if tls is not None:
        secure = f"""server.modules += ("mod_openssl")
$SERVER["socket"] == "127.0.0.1:{tls.port}" {{
    ssl.engine = "enable"
    ssl.pemfile = "{tls.cert}"
    ssl.privkey = "{tls.key}"
}}
"""
    return f"""{secure}
server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{root}/lighttpd-error.log"
server.upload-dirs = ("{root}")
server.max-keep-alive-requests = 1000
# Stream the app's response as it comes instead of buffering it whole.
server.stream-response-body = 2
{snippet}
"""


def nginx_conf(root: str, port: int, snippet: NginxSnippet, tls: Tls | None = None) -> str:
    """A minimal foreground nginx config around ``snippet`` (the output of
    ``dumbwaiter config nginx``), with every path in ``root``."""
    secure = ""
    if tls is not None:
        secure = (
            f"        listen 127.0.0.1:{tls.port} ssl;\n"
            f"        ssl_certificate {tls.cert};\n        ssl_certificate_key {tls.key};\n"
        )
    return f"""
daemon off;
master_process off;
worker_processes 1;
user root;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    include /etc/nginx/mime.types;
    client_body_temp_path {root}/body;
    fastcgi_temp_path {root}/fastcgi;
    proxy_temp_path {root}/proxy;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    client_max_body_size 20m;
{snippet.http}
    server {{
        listen 127.0.0.1:{port};
{secure}{snippet.server}
    }}
}}
"""


def caddy_conf(root: str, port: int, site: str, tls: Tls | None = None) -> str:
    """A Caddyfile around ``site`` (``dumbwaiter config caddy``): plain HTTP on
    loopback, no admin endpoint, storage in ``root``."""
    body = "\n".join("\t" + line for line in site.splitlines())
    text = (
        f"{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {root}/caddy\n}}\n"
        f"http://127.0.0.1:{port} {{\n{body}\n}}\n"
    )
    if tls is not None:
        text += f"https://127.0.0.1:{tls.port} {{\n\ttls {tls.cert} {tls.key}\n{body}\n}}\n"
    return text


def h2o_conf(root: str, port: int, path: str, tls: Tls | None = None) -> str:
    """An h2o config around one ``paths:`` entry (``dumbwaiter config h2o``)."""
    entry = "\n".join("      " + line for line in path.splitlines())
    listen = f"listen:\n  host: 127.0.0.1\n  port: {port}\n"
    if tls is not None:
        listen = (
            f"listen:\n  host: 127.0.0.1\n  port: {port}\n"
            f"listen:\n  host: 127.0.0.1\n  port: {tls.port}\n  ssl:\n"
            f"    certificate-file: {tls.cert}\n    key-file: {tls.key}\n"
        )
    return (
        f"{listen}pid-file: {root}/h2o.pid\n"
        f"error-log: {root}/h2o-error.log\nuser: root\n"
        f'hosts:\n  "127.0.0.1:{port}":\n    paths:\n{entry}\n'
    )


APACHE_MODULES = "/usr/lib/apache2/modules"


def apache_conf(root: str, port: int, snippet: str, tls: Tls | None = None) -> str:
    """A minimal Apache 2.4 config around ``snippet`` (``dumbwaiter config
    apache``), loading by path (no a2enmod needed) the modules its
    ``# a2enmod`` lines name."""
    modules = ["mpm_event", "authz_core", "authn_core", "authz_user"]
    for line in snippet.splitlines():
        if line.startswith("# a2enmod "):
            modules += line.split()[2:]
    secure = ""
    if tls is not None:
        modules += ["socache_shmcb", "ssl"]
        secure = (
            f"Listen 127.0.0.1:{tls.port}\n<VirtualHost 127.0.0.1:{tls.port}>\n"
            f'    SSLEngine on\n    SSLCertificateFile "{tls.cert}"\n'
            f'    SSLCertificateKeyFile "{tls.key}"\n</VirtualHost>\n'
        )
    loads = "\n".join(
        f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in dict.fromkeys(modules)
    )
    return (
        f'ServerRoot "{root}"\nPidFile "{root}/httpd.pid"\nErrorLog "{root}/error.log"\n'
        f"LogLevel warn\nListen 127.0.0.1:{port}\nServerName 127.0.0.1\n{loads}\n"
        f"User www-data\nGroup www-data\n{secure}{snippet}"
    )


def haproxy_conf(root: str, port: int, snippet: str, tls: Tls | None = None) -> str:
    """A minimal HAProxy config whose frontend uses the ``dumbwaiter``
    backend that ``dumbwaiter config haproxy`` prints."""
    secure = f"    bind 127.0.0.1:{tls.port} ssl crt {tls.pem}\n" if tls is not None else ""
    return (
        "global\n    log stderr format raw local0 warning\n"
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n"
        "    timeout server 30s\n"
        f"frontend web\n    bind 127.0.0.1:{port}\n{secure}    default_backend dumbwaiter\n"
        f"{snippet}"
    )


class Front:
    """A running front server, plain HTTP on ``port`` (and TLS on ``tls_port``)."""

    def __init__(
        self,
        argv: list[str],
        root: str,
        port: int,
        logs: list[str],
        env: dict[str, str] | None = None,
        tls_port: int | None = None,
    ) -> None:
        self.root = root
        self.port = port
        self.tls_port = tls_port
        self.logs = logs
        out = open(os.path.join(root, "front.out"), "wb")  # noqa: SIM115 - closed below
        self.proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=root,
        )
        out.close()
        deadline = time.monotonic() + READY_SECONDS
        for ready in [port] if tls_port is None else [port, tls_port]:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited {self.proc.returncode}:\n{self.log()}")
                try:
                    socket.create_connection(("127.0.0.1", ready), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"{argv[0]} not ready:\n{self.log()}") from None
                    time.sleep(0.02)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        text = []
        for name in ["front.out", *self.logs]:
            path = pathlib.Path(self.root) / name
            if path.exists():
                text.append(f"--- {name}\n{path.read_text(errors='replace')}")
        return "\n".join(text)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@contextlib.contextmanager
def _running(
    root: str,
    port: int,
    filename: str,
    config: str,
    argv: list[str],
    logs: list[str],
    env: dict[str, str] | None = None,
    tls_port: int | None = None,
) -> Iterator[Front]:
    """Write ``config`` to ``root/filename`` and run ``argv`` (which names it)."""
    pathlib.Path(root, filename).write_text(config)
    front = Front(argv, root, port, logs, env=env, tls_port=tls_port)
    try:
        yield front
    finally:
        front.stop()


def lighttpd(
    root: str, port: int, config: str, tls_port: int | None = None
) -> AbstractContextManager[Front]:
    path = os.path.join(root, "lighttpd.conf")
    argv = [binary("lighttpd"), "-D", "-f", path]
    return _running(
        root, port, "lighttpd.conf", config, argv, ["lighttpd-error.log"], tls_port=tls_port
    )


def nginx(
    root: str, port: int, config: str, tls_port: int | None = None
) -> AbstractContextManager[Front]:
    # The generated snippets include Debian's params files by relative name,
    # as they would from /etc/nginx; they resolve beside the config file.
    for params in ("fastcgi_params", "scgi_params", "uwsgi_params"):
        with contextlib.suppress(FileExistsError):
            os.symlink(f"/etc/nginx/{params}", os.path.join(root, params))
    path = os.path.join(root, "nginx.conf")
    argv = [binary("nginx"), "-c", path, "-p", root]
    return _running(root, port, "nginx.conf", config, argv, ["nginx-error.log"], tls_port=tls_port)


def caddy(
    root: str, port: int, config: str, tls_port: int | None = None
) -> AbstractContextManager[Front]:
    path = os.path.join(root, "Caddyfile")
    argv = [binary("caddy"), "run", "--config", path, "--adapter", "caddyfile"]
    home = {"HOME": root, "XDG_DATA_HOME": root, "XDG_CONFIG_HOME": root}
    return _running(root, port, "Caddyfile", config, argv, [], env=home, tls_port=tls_port)


def h2o(
    root: str,
    port: int,
    config: str,
    tls_port: int | None = None,
    env: dict[str, str] | None = None,
) -> AbstractContextManager[Front]:
    """``env``: for the processes h2o spawns (fastcgi.spawn)."""
    path = os.path.join(root, "h2o.conf")
    argv = [binary("h2o"), "-c", path]
    return _running(
        root, port, "h2o.conf", config, argv, ["h2o-error.log"], env=env, tls_port=tls_port
    )


def apache(
    root: str, port: int, config: str, tls_port: int | None = None
) -> AbstractContextManager[Front]:
    path = os.path.join(root, "httpd.conf")
    # -X: one process in the foreground, as a test fixture wants.
    argv = [binary("apache2"), "-X", "-f", path]
    return _running(root, port, "httpd.conf", config, argv, ["error.log"], tls_port=tls_port)


def haproxy(
    root: str, port: int, config: str, tls_port: int | None = None
) -> AbstractContextManager[Front]:
    path = os.path.join(root, "haproxy.cfg")
    argv = [binary("haproxy"), "-db", "-f", path]
    return _running(root, port, "haproxy.cfg", config, argv, [], tls_port=tls_port)


def get(
    front: Front,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    tls: bool = False,
    source: str = "",
) -> tuple[int, dict[str, str], bytes]:
    """One request through ``front``: status, headers (lower-case names), body.
    ``tls``: to its TLS port (the certificate is not checked); ``source``: the
    client's address (another loopback address, such as 127.0.0.2)."""
    conn = connect(front, tls=tls, source=source)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def connect(front: Front, *, tls: bool = False, source: str = "") -> http.client.HTTPConnection:
    """An HTTP client connection to ``front`` (see :func:`get`)."""
    bind = (source, 0) if source else None
    if not tls:
        return http.client.HTTPConnection("127.0.0.1", front.port, timeout=30, source_address=bind)
    assert front.tls_port is not None, "this front server has no TLS listener"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection(
        "127.0.0.1", front.tls_port, timeout=30, source_address=bind, context=context
    )


def fetch(
    front: Front,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """Like :func:`get`, without the response headers."""
    status, _, data = get(front, path, method, body, headers)
    return status, data


def echo(front: Front, path: str, **kw: Any) -> dict[str, Any]:
    """The JSON the test apps' /echo route returns."""
    status, _, data = get(front, path, **kw)
    assert status == 200, (status, data, front.log())
    result: dict[str, Any] = json.loads(data)
    return result


class Releases(Protocol):
    """What holds the test app's markers (a :class:`serving.Server`, or the
    folder a front server's spawned processes watch)."""

    def release(self, name: str) -> None: ...


def check_streaming(front: Front, backend: Releases, path: str) -> None:
    """GET ``path`` + a fresh marker name: the app sends "first", then holds
    until the marker file exists, then sends "last".  The first chunk must
    arrive through the front server while the app still holds the last."""
    marker = f"go-{time.monotonic_ns()}"
    started = time.monotonic()
    conn = connect(front)
    conn.request("GET", path + marker)
    response = conn.getresponse()
    assert response.status == 200, front.log()
    first = response.read1(100)
    # The app holds "last" until the marker exists (or 20 s pass): a front
    # that buffered would deliver both together, late.
    assert first.startswith(b"first") and b"last" not in first, first
    assert time.monotonic() - started < 10, "the first chunk came only with the last"
    backend.release(marker)
    assert response.read().endswith(b"last\n")
    conn.close()
