"""Front-server checks that are not cells of the interop matrix
(``test_matrix.py``): lighttpd's bin-path process balance, a full queue's 503
through lighttpd, and nginx's stock fastcgi_params.

Every request here goes through the front server over real sockets; the
backend is the real ``python -m dumbwaiter`` process.
"""

from __future__ import annotations

import os
import pathlib
import threading
import time

import pytest

from dumbwaiter import frontconf
from dumbwaiter.frontconf import NginxSnippet
from integration.fronts import (
    echo,
    get,
    lighttpd,
    lighttpd_conf,
    nginx,
    nginx_conf,
)
from serving import TESTS, Server, free_port, short_tmpdir

pytestmark = pytest.mark.integration


def test_lighttpd_bin_path_spawns_and_balances() -> None:
    """lighttpd starts dumbwaiter itself (socket on fd 0), two processes."""
    root = short_tmpdir()
    port = free_port()
    snippet = frontconf.lighttpd(
        "fastcgi",
        f"unix:{root}/spawn.sock",
        spawn="server_apps:app",
        processes=2,
        environment={"PYTHONPATH": str(TESTS), "DW_TEST_DIR": root},
    )
    with lighttpd(root, port, lighttpd_conf(root, port, snippet)) as front:
        status, _, body = get(front, "/hello")
        assert (status, body) == (200, b"Hello world\n"), front.log()
        # lighttpd gives a request to the least loaded process, the first one
        # when all are idle; while one request is held there, the next must be
        # served by the other process.
        holder = threading.Thread(target=get, args=(front, "/block?go-spawn"))
        holder.start()
        started = pathlib.Path(root, "started")
        deadline = time.monotonic() + 10
        while not started.exists():
            assert time.monotonic() < deadline, front.log()
            time.sleep(0.01)
        held_pid = int(started.read_text().split()[1])
        status, _, body = get(front, "/pid")
        assert status == 200
        assert int(body) != held_pid, "both requests went to one process"
        pathlib.Path(root, "go-spawn").write_text("go")
        holder.join(30)


def test_lighttpd_overload_gives_503() -> None:
    root = short_tmpdir()
    sock = os.path.join(root, "busy.sock")
    with Server(
        ["--fastcgi", f"unix:{sock}", "--threads", "1", "--queue-size", "1"], workdir=root
    ) as backend:
        port = free_port()
        config = lighttpd_conf(root, port, frontconf.lighttpd("fastcgi", f"unix:{sock}"))
        with lighttpd(root, port, config) as front:
            held: list[int] = []

            def hold() -> None:
                held.append(get(front, "/block?go-busy")[0])

            threads = [threading.Thread(target=hold) for _ in range(2)]
            threads[0].start()
            deadline = time.monotonic() + 10
            while not backend.path("started").exists():
                assert time.monotonic() < deadline
                time.sleep(0.01)
            threads[1].start()
            time.sleep(0.3)
            started = time.monotonic()
            status, headers, _ = get(front, "/count")
            assert time.monotonic() - started < 1.0
            assert status == 503, front.log()
            assert headers.get("retry-after") == "1"
            assert all(line.startswith("block") for line in backend.calls())
            backend.release("go-busy")
            for thread in threads:
                thread.join(30)
            assert held == [200, 200]


def test_nginx_stock_fastcgi_params_are_repaired() -> None:
    """With Debian's fastcgi_params untouched nginx sends SCRIPT_NAME = the
    whole path and no PATH_INFO; the app must still see itself at the root."""
    root = short_tmpdir()
    sock = os.path.join(root, "dw.sock")
    with Server(["--fastcgi", f"unix:{sock}"], workdir=root):
        port = free_port()
        # Not our generated config: Debian's fastcgi_params as they come.
        stock = NginxSnippet(
            f"upstream dumbwaiter {{ server unix:{sock}; }}\n",
            "location / { include fastcgi_params; fastcgi_pass dumbwaiter; }\n",
        )
        with nginx(root, port, nginx_conf(root, port, stock)) as front:
            info = echo(front, "/echo/deep/path?q=1")
            assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("", "/echo/deep/path")
            assert info["QUERY_STRING"] == "q=1"
