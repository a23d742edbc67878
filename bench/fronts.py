"""The front servers' configs: one lighttpd and one nginx template for every target.

Each point gets a fresh directory (under /dev/shm) holding the config, the
logs, the pid file and the temp directories; the front listens on a loopback
port and talks to the backend over a unix socket.  Settings that are not
defaults, and why:

- keep-alive requests per client connection: 1,000,000 (both default to 1000,
  which would reconnect wrk's connections during a run);
- nginx: one worker, ``user root`` (the run's directory is root's),
  ``worker_rlimit_nofile 16384`` and 8192 connections (c1000 needs two fds a
  client), a 2 MiB ``client_body_buffer_size`` (1 MiB uploads stay in memory),
  16 x 16k response buffers (120 KiB responses never spill to disk), an upstream
  ``keepalive 64`` pool for the kept-alive protocols (FastCGI keep-conn, HTTP);
- lighttpd: 16384 fds, request bodies spooled to the run's tmpfs directory;
- ``nginx-proxy-ws``: proxy_pass with the WebSocket upgrade passed on (the
  client's ``Upgrade`` header and ``Connection: upgrade``, which nginx does
  not forward by itself: hop-by-hop), no upstream keepalive (an upgraded
  connection is never reused); nginx then relays the frames both ways.

``direct`` is no front at all: the backend listens on a loopback TCP port
(``{port}`` in its argv) and the client connects to it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

BIG = b"0123456789abcdef" * 7680


@dataclasses.dataclass(frozen=True)
class Front:
    server: str  # "lighttpd", "nginx" or "none" (direct: no front)
    protocol: str  # "fastcgi", "scgi", "uwsgi", "http", "ws", "static" or "direct"
    keep_conn: bool = False


FRONTS = {
    "lighttpd-fastcgi": Front("lighttpd", "fastcgi"),
    "lighttpd-static": Front("lighttpd", "static"),
    "nginx-fastcgi": Front("nginx", "fastcgi"),
    "nginx-fastcgi-keepconn": Front("nginx", "fastcgi", keep_conn=True),
    "nginx-uwsgi": Front("nginx", "uwsgi"),
    "nginx-scgi": Front("nginx", "scgi"),
    "nginx-proxy": Front("nginx", "http", keep_conn=True),
    "nginx-proxy-ws": Front("nginx", "ws"),
    "direct": Front("none", "direct"),
}

LIGHTTPD = """\
server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{dir}/error.log"
server.pid-file = "{dir}/front.pid"
server.upload-dirs = ("{dir}/tmp")
server.max-keep-alive-requests = 1000000
server.max-fds = 16384
server.max-connections = 8192
{backend}
"""

LIGHTTPD_FASTCGI = """\
server.modules += ("mod_fastcgi")
fastcgi.server = ("/" => (("socket" => "{sock}",
                           "check-local" => "disable",
                           "fix-root-scriptname" => "enable")))
"""

NGINX = """\
daemon off;
master_process on;
worker_processes 1;
user root;
worker_rlimit_nofile 16384;
pid {dir}/front.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    keepalive_requests 1000000;
    client_body_buffer_size 2m;
    client_max_body_size 16m;
    fastcgi_buffers 16 16k;
    uwsgi_buffers 16 16k;
    scgi_buffers 16 16k;
    proxy_buffers 16 16k;
{maps}    upstream backend {{
        server unix:{sock};
{keepalive}    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
{location}        }}
    }}
}}
"""

NGINX_LOCATIONS = {
    "fastcgi": """\
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_NAME "";
            fastcgi_param PATH_INFO $fastcgi_script_name;
{keep}            fastcgi_pass backend;
""",
    "uwsgi": """\
            include /etc/nginx/uwsgi_params;
            uwsgi_pass backend;
""",
    "scgi": """\
            include /etc/nginx/scgi_params;
            scgi_pass backend;
""",
    "http": """\
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_pass http://backend;
""",
    "ws": """\
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_pass http://backend;
""",
}

#: For the WebSocket location: "upgrade" when the client asks for one, else
#: no Connection header (nginx's own documented recipe).
NGINX_WS_MAP = """\
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      '';
    }
"""


def write_config(kind: str, directory: Path, port: int, sock: str) -> list[str]:
    """Write the config of front ``kind`` into ``directory``; return its command.

    The command runs in the foreground (``-D`` / ``daemon off``) and is stopped
    with SIGTERM.  For ``lighttpd-static`` the document root holds ``hello``
    and ``big`` with the bodies the backends answer.  ``direct``: no front,
    no command (empty).
    """
    front = FRONTS[kind]
    if front.server == "none":
        return []
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    root = directory / "www"
    root.mkdir(exist_ok=True)
    config = directory / f"{front.server}.conf"
    if front.server == "lighttpd":
        if front.protocol == "static":
            (root / "hello").write_bytes(b"Hello world\n")
            (root / "big").write_bytes(BIG)
            backend = ""
        else:
            backend = LIGHTTPD_FASTCGI.format(sock=sock)
        config.write_text(LIGHTTPD.format(root=root, port=port, dir=directory, backend=backend))
        return ["lighttpd", "-D", "-f", str(config)]
    keep = "            fastcgi_keep_conn on;\n" if front.keep_conn else ""
    location = NGINX_LOCATIONS[front.protocol].format(keep=keep)
    keepalive = "        keepalive 64;\n" if front.keep_conn else ""
    maps = NGINX_WS_MAP if front.protocol == "ws" else ""
    config.write_text(
        NGINX.format(
            dir=directory,
            port=port,
            sock=sock,
            keepalive=keepalive,
            location=location,
            maps=maps,
        )
    )
    return ["nginx", "-p", str(directory), "-c", str(config)]
