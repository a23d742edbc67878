"""A unix socket the front server can open, the first time: what a new user
does, with nginx's workers running as www-data (as Debian packages it) and
dumbwaiter started as root, exactly as ``dumbwaiter config``'s Start line
says; and what went wrong before that line said so (a 502, "Permission
denied")."""

from __future__ import annotations

import os
import shlex

import pytest

from dumbwaiter.frontconf import NginxSnippet
from integration.fronts import get, nginx, nginx_conf
from serving import Server, free_port, run_cli, short_tmpdir

pytestmark = pytest.mark.integration

HTTP_PART = "# --- in the http { } block\n"
SERVER_PART = "# --- in the server { } block\n"


def generated(address: str) -> tuple[NginxSnippet, list[str]]:
    """``dumbwaiter config nginx``'s two parts, and its Start line's options."""
    done = run_cli(["config", "nginx", "--fastcgi", address, "--mount", "/app"])
    assert done.returncode == 0, done.stderr
    text = done.stdout
    http = text.split(HTTP_PART)[1].split(SERVER_PART)[0]
    server = text.split(SERVER_PART)[1]
    start = [line for line in text.splitlines() if line.startswith("# Start: dumbwaiter ")]
    assert len(start) == 1, text
    words = shlex.split(start[0].removeprefix("# Start: dumbwaiter "))
    assert words[-1] == "MODULE:APP"
    return NginxSnippet(http, server), words[:-1]


def as_packaged(config: str) -> str:
    """nginx as Debian runs it: a root master, workers as www-data."""
    return config.replace("master_process off;", "master_process on;").replace(
        "user root;", "user www-data;"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to run nginx's workers as www-data")
def test_the_generated_start_command_makes_a_socket_nginx_can_open() -> None:
    root = short_tmpdir()
    os.chmod(root, 0o755)  # as /tmp/nc would be: www-data may reach the socket
    address = f"unix:{root}/app.sock"
    snippet, options = generated(address)
    assert options == ["--fastcgi", address, "--socket-group", "www-data"]
    port = free_port()
    config = as_packaged(nginx_conf(root, port, snippet))
    with nginx(root, port, config) as front:
        # As a new user did before: the default 0660 root:root socket.
        with Server(["--fastcgi", address, "--script-name", "/app"], workdir=root) as backend:
            status, _, _ = get(front, "/app/hello")
            assert status == 502
            assert "(13: Permission denied)" in front.log()
            assert "only root and group root may connect (mode 660)" in backend.log()
            assert "--socket-group (e.g. www-data)" in backend.log()
        # As the Start line says.
        with Server([*options, "--script-name", "/app"], workdir=root) as backend:
            status, _, body = get(front, "/app/hello")
            assert (status, body) == (200, b"Hello world\n"), front.log() + backend.log()
            assert "may connect" not in backend.log()
