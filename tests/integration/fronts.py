"""Real front servers for the integration tests: config generators and runners.

Each generator returns the text of a complete config for one deployment, with
a comment on every directive that matters for a WSGI backend.  A later issue
turns these into ``dumbwaiter config FRONTEND``; until then they live here.

Runners start the front server in the foreground in its own process group,
with every path (logs, pid, temp files) inside the test's folder, wait until
it accepts, and stop it by its pid.  A missing binary skips the test, or
fails it when ``DUMBWAITER_REQUIRE_FRONTENDS=1`` (as in CI).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

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


def lighttpd_fastcgi(
    root: str,
    port: int,
    prefix: str,
    backend: str,
    *,
    mode: str = "responder",
    module: str = "fastcgi",
) -> str:
    """lighttpd in front of dumbwaiter on a unix socket.

    ``prefix`` is where the app is mounted (``/`` or ``/app``); ``backend`` is
    the lighttpd fastcgi.server host entry (``"socket" => ...`` or
    ``"bin-path" => ...``).  ``module="scgi"`` makes it mod_scgi's
    ``scgi.server`` (with ``scgi.protocol = "uwsgi"`` added, the uwsgi
    protocol)."""
    # lighttpd splits SCRIPT_NAME/PATH_INFO at the prefix; for "/" it makes the
    # first path segment SCRIPT_NAME unless fix-root-scriptname is on.
    fix_root = '"fix-root-scriptname" => "enable",' if prefix == "/" else ""
    mode_line = f'"mode" => "{mode}", "docroot" => "{root}",' if mode != "responder" else ""
    return f"""
server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{root}/lighttpd-error.log"
server.upload-dirs = ("{root}")
server.max-keep-alive-requests = 1000
# Stream the app's response as it comes instead of buffering it whole.
server.stream-response-body = 2
server.modules += ("mod_{module}")
# With several backend processes (max-procs), spread requests over all of
# them; the default ("fair") sends sequential requests to the first one.
{module}.balance = "round-robin"
{module}.server = (
    "{prefix}" => ((
        {backend},
        # The app handles every URL under the prefix: no file must exist.
        "check-local" => "disable",
        {fix_root}
        {mode_line}
    ))
)
"""


def nginx_fastcgi(
    root: str, port: int, backend_socket: str, *, prefix: str = "/", stock_params: bool = False
) -> str:
    """nginx ``fastcgi_pass`` with kept-alive backend connections.

    ``stock_params`` leaves Debian's ``fastcgi_params`` as they are (SCRIPT_NAME
    is the whole path, no PATH_INFO), which dumbwaiter must repair itself."""
    split = (
        ""
        if stock_params
        else f"""
            fastcgi_split_path_info ^({prefix.rstrip("/")})(/.*)$;
            fastcgi_param SCRIPT_NAME $fastcgi_script_name;
            fastcgi_param PATH_INFO $fastcgi_path_info;"""
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
    client_body_temp_path {root}/body;
    fastcgi_temp_path {root}/fastcgi;
    proxy_temp_path {root}/proxy;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    client_max_body_size 20m;
    upstream dumbwaiter {{
        server unix:{backend_socket};
        # An idle pool of backend connections; needs fastcgi_keep_conn on.
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location {prefix} {{
            include /etc/nginx/fastcgi_params;
            # fastcgi_params sets SCRIPT_NAME to the whole path; a WSGI app
            # wants the mount point there and the rest in PATH_INFO.{split}
            # Ask the backend to keep the connection (FCGI_KEEP_CONN).
            fastcgi_keep_conn on;
            # Relay the response as it is produced (streaming).
            fastcgi_buffering off;
            fastcgi_pass dumbwaiter;
        }}
    }}
}}
"""


def nginx_gateway(root: str, port: int, kind: str, backend_socket: str) -> str:
    """nginx ``scgi_pass`` or ``uwsgi_pass`` (``kind``), with Debian's stock
    params: neither sends SCRIPT_NAME, SCGI sends no PATH_INFO either, so
    dumbwaiter derives the path from REQUEST_URI."""
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
    client_body_temp_path {root}/body;
    fastcgi_temp_path {root}/fastcgi;
    proxy_temp_path {root}/proxy;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    client_max_body_size 20m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            include /etc/nginx/{kind}_params;
            # Relay the response as it is produced (streaming).
            {kind}_buffering off;
            {kind}_pass unix:{backend_socket};
        }}
    }}
}}
"""


def nginx_proxy(root: str, port: int, backend: str) -> str:
    """nginx ``proxy_pass`` over HTTP/1.1 with an upstream keep-alive pool."""
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
    client_body_temp_path {root}/body;
    fastcgi_temp_path {root}/fastcgi;
    proxy_temp_path {root}/proxy;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    client_max_body_size 20m;
    upstream dumbwaiter {{
        server {backend};
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            # Upstream keep-alive needs HTTP/1.1 and no "Connection: close".
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_pass http://dumbwaiter;
        }}
    }}
}}
"""


class Front:
    """A running front server (lighttpd or nginx)."""

    def __init__(self, argv: list[str], root: str, port: int, logs: list[str]) -> None:
        self.root = root
        self.port = port
        self.logs = logs
        out = open(os.path.join(root, "front.out"), "wb")  # noqa: SIM115 - closed below
        self.proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
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
def lighttpd(root: str, port: int, config: str) -> Iterator[Front]:
    path = os.path.join(root, "lighttpd.conf")
    pathlib.Path(path).write_text(config)
    front = Front([binary("lighttpd"), "-D", "-f", path], root, port, ["lighttpd-error.log"])
    try:
        yield front
    finally:
        front.stop()


@contextlib.contextmanager
def nginx(root: str, port: int, config: str) -> Iterator[Front]:
    path = os.path.join(root, "nginx.conf")
    pathlib.Path(path).write_text(config)
    front = Front([binary("nginx"), "-c", path, "-p", root], root, port, ["nginx-error.log"])
    try:
        yield front
    finally:
        front.stop()
