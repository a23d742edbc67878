"""The master and its workers, with real processes: forking, replacing the
dead, reload without a failed request, recycling, hung requests and hung
workers, signals; and, at the end, an upgrade handing over real listening
sockets.  The master's units that start no process are in
tests/unit/test_master.py.

The app lives in the server's own folder (``versioned.py``) so a test can
change its code and reload; bytecode caching is off so a rewrite within the
same second is seen.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator

import pytest

from dumbwaiter.process.upgrade import INHERIT_VARIABLE, UPGRADE_VARIABLE, Inheritance
from serving import Server, alive, children, connect, free_port, run_cli, short_tmpdir, until

APP = """\
import ctypes, os, time
VERSION = "{version}"
HOG = []
{extra}

def hold_the_gil(seconds, ignore_abort):
    # As a C extension may: a call that keeps the GIL, so the worker's event
    # loop stops too (no heartbeat); ctypes.PyDLL does not release it.
    if ignore_abort:
        libc = ctypes.CDLL(None)
        libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.signal(6, 1)  # SIGABRT: SIG_IGN, as C code might
    ctypes.PyDLL(None).sleep(seconds)

def app(environ, start_response):
    path, query = environ["PATH_INFO"], environ.get("QUERY_STRING", "")
    if path == "/sleep":
        time.sleep(float(query))
    elif path == "/hog":
        HOG.append(b"x" * (int(query) << 20))
    elif path == "/exit":
        os._exit(7)
    elif path == "/hold-gil":
        hold_the_gil(60, query == "ignore-abort")
    body = f"{{VERSION}} {{os.getpid()}}\\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def write_app(folder: str, version: str, extra: str = "") -> None:
    path = os.path.join(folder, "versioned.py")
    with open(path + ".tmp", "w") as out:
        out.write(APP.format(version=version, extra=extra))
    os.replace(path + ".tmp", path)


@contextlib.contextmanager
def master(*args: str, version: str = "1", extra: str = "") -> Iterator[tuple[Server, int]]:
    folder = short_tmpdir()
    write_app(folder, version, extra)
    port = free_port()
    server = Server(
        ["--http", f"127.0.0.1:{port}", *(arg.replace("{dir}", folder) for arg in args)],
        "versioned:app",
        workdir=folder,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )
    try:
        yield server, port
    finally:
        server.stop()


def get(port: int, path: str = "/", timeout: float = 10.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def answer(port: int, path: str = "/") -> tuple[str, int]:
    """(version, pid) of a 200 answer."""
    status, body = get(port, path)
    assert status == 200, body
    version, pid = body.split()
    return version, int(pid)


class Load:
    """A bounded load generator: requests back to back from a few threads,
    each on a new connection, recording every answer and every failure."""

    def __init__(self, port: int, threads: int = 3, seconds: float = 30.0) -> None:
        self.port = port
        self.answers: list[tuple[float, str, int]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + seconds
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                status, body = get(self.port, "/")
            except OSError as exc:
                self.failures.append(repr(exc))
                continue
            if status != 200:
                self.failures.append(f"{status} {body!r}")
                continue
            version, pid = body.split()
            self.answers.append((time.monotonic(), version, int(pid)))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def versions(self) -> list[str]:
        return [version for _, version, _ in self.answers]


def test_workers_are_forked_children_that_share_the_listeners() -> None:
    with master("--workers", "2") as (server, port):
        assert until(lambda: len(children(server.proc.pid)) == 2)
        seen: set[int] = set()
        for _ in range(50):  # the kernel picks the worker; try until both answered
            with_threads = [threading.Thread(target=lambda: seen.add(answer(port)[1]))]
            for _ in range(7):
                with_threads.append(threading.Thread(target=lambda: seen.add(answer(port)[1])))
            for thread in with_threads:
                thread.start()
            for thread in with_threads:
                thread.join(10)
            if len(seen) == 2:
                break
        assert seen == set(children(server.proc.pid))
        assert server.proc.pid not in seen


def test_a_dead_worker_is_replaced() -> None:
    with master("--workers", "1") as (server, port):
        _, first = answer(port)
        os.kill(first, signal.SIGKILL)
        assert until(lambda: children(server.proc.pid) not in ([], [first]))
        _, second = answer(port)
        assert second != first
        assert f"worker {first} died" in server.log()


def test_a_worker_that_exits_in_a_request_is_replaced() -> None:
    with master("--workers", "1") as (_server, port):
        _, first = answer(port)
        with pytest.raises(http.client.RemoteDisconnected):
            get(port, "/exit")
        assert until(lambda: answer(port)[1] != first)


def test_hup_reloads_new_code_without_failing_a_request() -> None:
    with master("--workers", "2") as (server, port):
        load = Load(port)
        try:
            for version in "234":
                time.sleep(0.5)
                write_app(server.dir, version)
                server.send_signal(signal.SIGHUP)
                assert until(lambda v=version: load.answers[-1][1] == v, 15), server.log()
            time.sleep(0.5)
        finally:
            load.stop()
        assert load.failures == []
        assert set(load.versions()) == set("1234")
        assert load.versions()[-5:] == ["4"] * 5
        last = {pid for _, version, pid in load.answers if version == "4"}
        assert until(lambda: set(children(server.proc.pid)) == last), server.log()


def test_a_reload_that_cannot_load_keeps_the_old_workers() -> None:
    with master("--workers", "2") as (server, port):
        assert until(lambda: "2 worker(s) ready" in server.log())
        before = set(children(server.proc.pid))
        write_app(server.dir, "2", extra="def broken(:")
        server.send_signal(signal.SIGHUP)
        assert until(lambda: "reload failed" in server.log()), server.log()
        assert "SyntaxError" in server.log()
        for _ in range(10):
            assert answer(port)[0] == "1"
        assert until(lambda: set(children(server.proc.pid)) == before)
        write_app(server.dir, "3")
        server.send_signal(signal.SIGHUP)
        assert until(lambda: answer(port)[0] == "3"), server.log()


def test_ttin_and_ttou_change_the_number_of_workers() -> None:
    with master("--workers", "1") as (server, port):
        assert until(lambda: len(children(server.proc.pid)) == 1)
        server.send_signal(signal.SIGTTIN)  # one at a time: signals coalesce
        assert until(lambda: len(children(server.proc.pid)) == 2), server.log()
        server.send_signal(signal.SIGTTIN)
        assert until(lambda: len(children(server.proc.pid)) == 3), server.log()
        server.send_signal(signal.SIGTTOU)
        assert until(lambda: len(children(server.proc.pid)) == 2), server.log()
        answer(port)


def test_max_requests_recycles_the_worker_without_failing_a_request() -> None:
    with master("--workers", "1", "--max-requests", "20") as (server, port):
        pids: list[int] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(set(pids)) < 3:
            pids.append(answer(port)[1])
        first, _second = sorted(set(pids), key=pids.index)[:2]
        assert pids.count(first) >= 20
        assert "served 20 requests (--max-requests)" in server.log()
        assert until(lambda: not alive(first))


def test_max_lifetime_recycles_the_workers_without_failing_a_request() -> None:
    with master("--workers", "2", "--max-lifetime", "2", "--max-lifetime-jitter", "1") as (
        server,
        port,
    ):
        assert until(lambda: "2 worker(s) ready" in server.log())
        first = set(children(server.proc.pid))
        load = Load(port, seconds=20)
        try:
            assert until(lambda: not first & set(children(server.proc.pid)), 15), server.log()
        finally:
            load.stop()
        assert load.failures == []
        assert len(load.answers) > 10
        log = server.log()
        for pid in first:
            assert f"master: replacing worker {pid}: it has run " in log
        assert "(--max-lifetime)" in log
        assert len(children(server.proc.pid)) == 2


def test_max_rss_recycles_the_worker() -> None:
    with master("--workers", "1", "--max-rss", "80") as (server, port):
        _, first = answer(port, "/hog?120")
        assert until(lambda: answer(port)[1] != first), server.log()
        assert "past --max-rss 80" in server.log()
        assert until(lambda: not alive(first))


def test_a_request_past_timeout_gets_504_and_its_worker_goes() -> None:
    with master("--workers", "1", "--threads", "4", "--timeout", "1") as (server, port):
        _, first = answer(port)
        results: dict[str, tuple[int, str]] = {}

        def call(name: str, path: str) -> None:
            results[name] = get(port, path, timeout=20)

        hung = threading.Thread(target=call, args=("hung", "/sleep?60"))
        fine = threading.Thread(target=call, args=("fine", "/sleep?0.5"))
        started = time.monotonic()
        hung.start()
        fine.start()
        hung.join(20)
        assert results["hung"][0] == 504
        assert time.monotonic() - started < 5
        fine.join(20)
        assert results["fine"][0] == 200
        assert results["fine"][1].split()[1] == str(first)
        assert until(lambda: not alive(first), 20), server.log()
        assert answer(port)[1] != first
        assert "still in the app after 1s" in server.log()


def test_a_broken_app_ends_the_master_with_its_error_once() -> None:
    folder = short_tmpdir()
    with open(os.path.join(folder, "broken.py"), "w") as out:
        out.write("raise RuntimeError('no database')\n")
    started = time.monotonic()
    args = ["--http", f"127.0.0.1:{free_port()}", "--workers", "3", "broken:app"]
    result = run_cli(args, cwd=folder)
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    error = "dumbwaiter: error: importing 'broken:app' raised RuntimeError: no database"
    assert result.stderr.splitlines() == [error]


def test_workers_that_keep_dying_at_start_end_the_master() -> None:
    folder = short_tmpdir()
    with open(os.path.join(folder, "dying.py"), "w") as out:
        out.write("import os\nos._exit(9)\n")
    result = run_cli(["--http", f"127.0.0.1:{free_port()}", "dying:app"], cwd=folder)
    assert result.returncode == 1
    assert "workers keep failing to start (5 in a row)" in result.stderr
    assert result.stderr.count("ended before it was ready") == 5


def test_sigquit_stops_at_once_with_a_request_in_flight() -> None:
    with master("--workers", "2", "--graceful-timeout", "30") as (server, port):
        answer(port)

        def held() -> None:
            with contextlib.suppress(OSError, http.client.HTTPException):
                get(port, "/sleep?20", timeout=30)  # cut off: that is the point

        thread = threading.Thread(target=held)
        thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        server.send_signal(signal.SIGQUIT)
        assert server.proc.wait(10) == 0
        assert time.monotonic() - started < 5
        thread.join(30)


def test_workers_stop_when_the_master_is_killed() -> None:
    with master("--workers", "2") as (server, _port):
        assert until(lambda: len(children(server.proc.pid)) == 2)
        workers = children(server.proc.pid)
        os.kill(server.proc.pid, signal.SIGKILL)
        assert until(lambda: not any(alive(pid) for pid in workers), 10)


def test_usr1_reopens_logs_and_serves_on() -> None:
    with master("--workers", "1") as (server, port):
        _, first = answer(port)
        server.send_signal(signal.SIGUSR1)
        assert until(lambda: server.log().count("log files reopened") >= 2), server.log()
        assert answer(port)[1] == first


def test_no_master_serves_in_the_one_process() -> None:
    with master("--no-master") as (server, port):
        assert answer(port)[1] == server.proc.pid
        assert children(server.proc.pid) == []


def test_usr2_upgrades_in_place_without_failing_a_request() -> None:
    status = free_port()
    args = ("--workers", "2", "--pid", "master.pid", "--scgi", "unix:{dir}/scgi")
    args += ("--status", f"127.0.0.1:{status}", "--metrics", "unix:{dir}/metrics")
    with master(*args) as (server, port):
        assert until(lambda: "2 worker(s) ready" in server.log())
        pidfile, socket_file = server.path("master.pid"), server.path("scgi")
        assert int(pidfile.read_text()) == server.proc.pid
        load = Load(port)
        try:
            time.sleep(0.5)
            write_app(server.dir, "2")
            server.send_signal(signal.SIGUSR2)
            # The old master hands over once the new one's workers are ready.
            assert until(lambda: server.proc.poll() is not None, 20), server.log()
            assert server.proc.returncode == 0
            successor = int(pidfile.read_text())
            assert successor != server.proc.pid and alive(successor)
            assert until(lambda: load.answers[-1][1] == "2"), server.log()
            # The old master left the socket file to its successor.
            assert stat.S_ISSOCK(os.stat(socket_file).st_mode)
            connect(f"unix:{socket_file}").close()
            # ... and its --status and --metrics sockets: the new master serves them.
            status_code, body = get(status, "/status.json")
            assert status_code == 200 and json.loads(body)["pid"] == successor
            connect(f"unix:{server.path('metrics')}").close()
            time.sleep(0.5)
        finally:
            load.stop()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, signal.SIGTERM)  # the successor is in its group
        assert until(lambda: not alive(successor))
        assert load.failures == []
        assert set(load.versions()) == {"1", "2"}
        assert "taking over from master" in server.log()
        assert not socket_file.exists() and not pidfile.exists()  # removed by their owner
        assert not server.path("metrics").exists()


def test_workers_serve_as_user_and_group_after_binding() -> None:
    if os.getuid() != 0:
        pytest.skip("switching users needs root (CI runs as root)")
    folder = short_tmpdir()
    os.chmod(folder, 0o755)  # the app must be readable by the user it runs as
    write_app(folder, "1")
    os.chmod(os.path.join(folder, "versioned.py"), 0o644)
    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--user", "nobody", "--group", "nogroup"]
    with Server(args, "versioned:app", workdir=folder) as server:
        _, pid = answer(port)
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status)
        nobody = 65534
        assert fields["Uid"].split()[0] == str(nobody)
        assert fields["Gid"].split()[0] == str(nobody)
        assert fields["Groups"].split() in ([], [str(nobody)])
        assert server.serves(pid)


def test_usr1_while_a_worker_drains_spares_its_requests() -> None:
    """The master forwards USR1 (reopen the logs) to every worker, draining
    ones too: a log rotation during a reload must not kill the old worker
    and the request it is finishing."""
    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--workers", "1", "--graceful-timeout", "30"]
    with Server(args) as server:
        results: dict[str, tuple[int, bytes]] = {}

        def held() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/block?go")
            response = conn.getresponse()
            results["held"] = (response.status, response.read())

        thread = threading.Thread(target=held)
        thread.start()
        assert until(lambda: server.path("started").exists())
        old = int(server.path("started").read_text().split()[1])
        server.send_signal(signal.SIGHUP)
        assert until(lambda: "finishing requests in flight" in server.log()), server.log()
        server.send_signal(signal.SIGUSR1)
        assert until(lambda: server.log().count("log files reopened") >= 3), server.log()
        time.sleep(0.3)
        assert alive(old), server.log()
        server.path("go").write_text("")
        thread.join(15)
        assert results["held"] == (200, b"released\n")
        assert until(lambda: not alive(old))


# -- hung workers: SIGABRT (their stacks to the error log), then SIGKILL ------

#: With --preload the app is imported in the master: this makes its heartbeat
#: timeout short enough for a test (30 s in earnest).
SHORT_HEARTBEAT = (
    "import dumbwaiter.process.child\ndumbwaiter.process.child.HEARTBEAT_SECONDS = 3.0"
)


def hold_the_gil(port: int, query: str = "") -> threading.Thread:
    """A request whose app call blocks the worker's loop; it never gets an answer."""

    def call() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            get(port, f"/hold-gil?{query}", timeout=60)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("error_log", ["", "error.log"])
def test_a_blocked_worker_leaves_its_stacks_in_the_error_log(error_log: str) -> None:
    args = ["--workers", "1", "--preload"]
    args += ["--error-log", "{dir}/" + error_log] if error_log else []
    with master(*args, extra=SHORT_HEARTBEAT) as (server, port):
        _, first = answer(port)
        started = time.monotonic()
        hold_the_gil(port)
        assert until(lambda: not alive(first), 20), server.log()
        assert time.monotonic() - started < 10
        _, second = answer(port)
        assert second != first
        text = server.path(error_log).read_text() if error_log else server.log()
        assert f"worker {first} silent for 3s (blocked event loop): aborting it" in text
        assert f"worker {first} ended (signal SIGABRT)" in text
        # faulthandler's report: every thread, the app's among them, where it is stuck.
        assert "Fatal Python error: Aborted" in text
        assert "most recent call first" in text
        stuck = text[text.index("Fatal Python error: Aborted") :]
        assert 'versioned.py", line' in stuck and "in hold_the_gil" in stuck
        assert "in app" in stuck


def test_a_worker_that_outlives_sigabrt_is_killed() -> None:
    with master("--workers", "1", "--preload", extra=SHORT_HEARTBEAT) as (server, port):
        _, first = answer(port)
        hold_the_gil(port, "ignore-abort")
        # Dead is not yet reaped: the master logs the end when it reaps.
        ended = f"worker {first} ended (signal SIGKILL)"
        assert until(lambda: ended in server.log(), 20), server.log()
        assert not alive(first)
        log = server.log()
        assert f"worker {first} silent for 3s (blocked event loop): aborting it" in log
        assert f"worker {first} outlived SIGABRT: killing it" in log
        assert answer(port)[1] != first


def test_a_worker_that_does_not_stop_in_time_is_aborted() -> None:
    """A blocked worker asked to stop (here by a reload) is aborted once
    --graceful-timeout and the margin after it have passed."""
    with master("--workers", "1", "--graceful-timeout", "1") as (server, port):
        _, first = answer(port)
        hold_the_gil(port)
        time.sleep(0.5)
        server.send_signal(signal.SIGHUP)
        assert until(lambda: not alive(first), 20), server.log()
        log = server.log()
        assert f"worker {first} did not stop in time: aborting it" in log
        assert "Fatal Python error: Aborted" in log and "in hold_the_gil" in log
        assert answer(port)[1] != first


# -- an upgrade's inherited sockets (real listening sockets, no process started) --


def test_an_upgrade_hands_over_each_socket_once() -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    admin = socket.create_server(("127.0.0.1", 0))
    dropped = socket.create_server(("127.0.0.1", 0))
    environ = {
        INHERIT_VARIABLE: f"fastcgi {listening.detach()} 127.0.0.1:1\n"
        f"status {admin.detach()} 127.0.0.1:2\nhttp {dropped.detach()} 127.0.0.1:3",
        UPGRADE_VARIABLE: "4242",
        "OTHER": "kept",
    }
    inherited = Inheritance.from_environ(environ)
    assert environ == {"OTHER": "kept"}  # our workers and successors do not see them
    assert inherited.old_master == 4242
    assert inherited.addresses() == [("fastcgi", "127.0.0.1:1"), ("http", "127.0.0.1:3")]
    assert inherited.take("127.0.0.1:2", admin=False) is None  # an admin socket is not a listener
    sock = inherited.take("127.0.0.1:1", admin=False)
    assert sock is not None and not sock.get_inheritable()
    assert inherited.take("127.0.0.1:1", admin=False) is None
    status = inherited.take("127.0.0.1:2", admin=True)
    assert status is not None
    [(_, dropped_fd)] = inherited.handed.values()
    inherited.close_rest()
    with pytest.raises(OSError):
        os.fstat(dropped_fd)
    sock.close()
    status.close()
