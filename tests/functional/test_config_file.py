"""The config file from the command line: --print-config, --check-config,
a server started from the file alone, and SIGHUP reading it again."""

from __future__ import annotations

import http.client
import pathlib
import signal

from serving import Server, free_port, run_cli, short_tmpdir, until

APP = """\
import os, threading

def app(environ, start_response):
    threads = sum(1 for t in threading.enumerate() if t.name.startswith("dumbwaiter-app"))
    body = f"{threads} {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


def project(toml: str) -> pathlib.Path:
    folder = pathlib.Path(short_tmpdir())
    (folder / "counting.py").write_text(APP)
    (folder / "dumbwaiter.toml").write_text(toml)
    return folder


def get(port: int) -> tuple[int, int]:
    """(app threads, worker pid) of the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        response = conn.getresponse()
        assert response.status == 200
        threads, pid = response.read().split()
        return int(threads), int(pid)
    finally:
        conn.close()


def test_print_config_shows_all_four_sources() -> None:
    folder = project('app = "counting:app"\nthreads = 3\nqueue_size = 7\n')
    done = run_cli(
        ["--print-config", "--read-timeout", "9"],
        cwd=folder,
        env_extra={"DUMBWAITER_QUEUE_SIZE": "20"},
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split(" = ")[0]: line for line in done.stdout.splitlines() if " = " in line}
    assert lines["app"].startswith('app = "counting:app"')
    assert lines["app"].endswith("# dumbwaiter.toml:1")
    assert lines["threads"].startswith("threads = 3 ")
    assert lines["threads"].endswith("# dumbwaiter.toml:2")
    assert lines["queue_size"].startswith("queue_size = 20 ")
    assert lines["queue_size"].endswith("# DUMBWAITER_QUEUE_SIZE")
    assert lines["read_timeout"].startswith("read_timeout = 9.0 ")
    assert lines["read_timeout"].endswith("# --read-timeout")
    assert lines["write_timeout"].endswith("# default")


def test_check_config_imports_the_app_and_says_what_is_wrong() -> None:
    folder = project('app = "counting:app"\nfastcgi = ["unix:/tmp/x.sock"]\n')
    done = run_cli(["--check-config"], cwd=folder)
    assert (done.returncode, done.stderr) == (0, "")
    assert "OK" in done.stdout
    assert not (folder / "x.sock").exists()

    (folder / "dumbwaiter.toml").write_text('app = "counting:app"\nthread = 2\n')
    done = run_cli(["--check-config"], cwd=folder)
    assert done.returncode == 2
    assert done.stderr == (
        "dumbwaiter: error: dumbwaiter.toml:2: unknown key 'thread' (did you mean 'threads'?)\n"
    )

    (folder / "dumbwaiter.toml").write_text('app = "missing:app"\n')
    done = run_cli(["--check-config"], cwd=folder)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "cannot import module 'missing'" in done.stderr

    (folder / "dumbwaiter.toml").write_text('app = "counting:app"\nhttp = ["nohost:port"]\n')
    done = run_cli(["--check-config"], cwd=folder)
    assert done.returncode == 2
    assert done.stderr.startswith("dumbwaiter: error: --http: ")

    (folder / "dumbwaiter.toml").write_text("threads = 2\n")
    done = run_cli(["--check-config"], cwd=folder)
    assert done.returncode == 2
    assert "no application given" in done.stderr


def test_hup_reads_the_file_again() -> None:
    """A new thread count and a new access log apply with the next
    generation; a new listener needs a restart and is kept; a file that no
    longer parses keeps the settings; the server serves throughout."""
    port, other = free_port(), free_port()
    folder = project(
        f'app = "counting:app"\nhttp = ["127.0.0.1:{port}"]\nthreads = 2\naccess_log = "a.log"\n'
    )
    with Server([], None, workdir=str(folder), wait=[f"127.0.0.1:{port}"]) as server:
        assert until(lambda: "1 worker(s) ready" in server.log()), server.log()
        threads, first = get(port)
        assert threads == 2
        assert until(lambda: (folder / "a.log").read_text().count("GET / ") == 1)
        (folder / "dumbwaiter.toml").write_text(
            f'app = "counting:app"\nhttp = ["127.0.0.1:{other}"]\nthreads = 5\n'
            'access-log = "b.log"\naccess-log-format = "{method} {uri} {status}"\n'
        )
        server.send_signal(signal.SIGHUP)
        assert until(lambda: get(port)[0] == 5), server.log()
        log = server.log()
        assert "--threads = 5 (was 2)" in log
        assert "--http changed to" in log and "needs a restart (or USR2)" in log
        assert get(port)[1] != first
        assert until(
            lambda: (folder / "b.log").exists() and "GET / 200" in (folder / "b.log").read_text()
        )

        (folder / "dumbwaiter.toml").write_text("threads = [\n")
        server.send_signal(signal.SIGHUP)
        assert until(lambda: "settings kept as they were" in server.log()), server.log()
        assert until(lambda: server.log().count("generation 3 serves") == 1), server.log()
        assert get(port)[0] == 5
