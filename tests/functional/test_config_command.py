"""`dumbwaiter config FRONTEND`: what it prints (the integration tests run
the same output through real lighttpd and nginx)."""

from __future__ import annotations

from serving import run_cli


def test_lighttpd_fastcgi_at_the_root() -> None:
    result = run_cli(["config", "lighttpd", "--fastcgi", "unix:/run/app.sock"])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("# dumbwaiter config lighttpd --fastcgi unix:/run/app.sock\n")
    assert 'server.modules += ("mod_fastcgi")' in text
    assert '"socket" => "/run/app.sock"' in text
    assert '"fix-root-scriptname" => "enable"' in text
    assert '"check-local" => "disable"' in text


def test_lighttpd_spawn_and_uwsgi() -> None:
    spawn = run_cli(
        [
            "config",
            "lighttpd",
            "--fastcgi",
            "unix:/run/a.sock",
            "--spawn",
            "myapp:app",
            "--processes",
            "4",
        ]
    ).stdout
    assert '"max-procs" => 4' in spawn and "-m dumbwaiter myapp:app" in spawn
    assert "balance" not in spawn  # lighttpd balances between hosts only, not processes
    text = run_cli(["config", "lighttpd", "--uwsgi", "127.0.0.1:3031"]).stdout
    assert 'scgi.protocol = "uwsgi"' in text and '"port" => 3031' in text


def test_nginx_parts_and_mount() -> None:
    text = run_cli(["config", "nginx", "--fastcgi", "unix:/run/a.sock", "--mount", "/app"]).stdout
    assert "# --- in the http { } block\nupstream dumbwaiter {" in text
    assert "location /app/ {" in text
    assert "fastcgi_split_path_info ^(/app)(/.*)$;" in text
    assert "fastcgi_keep_conn on;" in text
    http = run_cli(["config", "nginx", "--http", "127.0.0.1:8080"]).stdout
    assert "proxy_pass http://dumbwaiter;" in http and "proxy_http_version 1.1;" in http


def test_bad_requests_exit_2_with_one_line() -> None:
    for argv in (
        ["config", "nginx", "--fastcgi", "fd:3"],
        ["config", "nginx", "--fastcgi", "unix:/a", "--spawn", "m:app"],
        ["config", "lighttpd", "--scgi", "unix:/a", "--mount", "app/"],
        ["config", "nginx", "--fastcgi", "unix:/a", "--static", "static=/srv/static"],
        ["config", "nginx", "--fastcgi", "unix:/a", "--static", "/static/=relative"],
        ["config", "nginx", "--fastcgi", "unix:/a", "--static", "/s/=/srv/a b"],
    ):
        result = run_cli(argv)
        assert result.returncode == 2
        assert result.stderr.startswith("dumbwaiter config: error: ")
        assert result.stderr.count("\n") == 1


def test_http_upstreams_pass_websocket_upgrades() -> None:
    def config(front: str, address: str = "127.0.0.1:8080") -> str:
        result = run_cli(["config", front, "--http", address])
        assert result.returncode == 0, result.stderr
        return result.stdout

    nginx = config("nginx")
    http, server = nginx.split("# --- in the server { } block\n")
    # The map belongs to the http {} block; no Connection header keeps keep-alive.
    assert "map $http_upgrade $dumbwaiter_connection {" in http
    assert "    default upgrade;\n    '' '';\n" in http
    assert "proxy_set_header Upgrade $http_upgrade;" in server
    assert "proxy_set_header Connection $dumbwaiter_connection;" in server
    assert 'proxy_set_header Connection "";' not in server
    assert "proxy_read_timeout 300s;" in server
    assert "    timeout tunnel 1h\n" in config("haproxy")
    assert "passes WebSocket upgrades on by itself" in config("caddy")
    h2o = config("h2o")
    assert "  proxy.websocket: ON\n" in h2o and "proxy.tunnel: ON" in h2o
    h2o_unix = config("h2o", "unix:/run/app.sock")
    assert "proxy.reverse.url: http://[unix:/run/app.sock]/" in h2o_unix
    apache = config("apache")
    assert "ProxyPass / http://127.0.0.1:8080/ keepalive=On upgrade=websocket\n" in apache
    assert "# a2enmod proxy proxy_http headers\n" in apache
    assert 'proxy.header = ("upgrade" => "enable")' in config("lighttpd")
    # FastCGI carries no WebSockets: nothing of it there.
    fastcgi = run_cli(["config", "nginx", "--fastcgi", "unix:/run/a.sock"]).stdout
    assert "upgrade" not in fastcgi.lower()
