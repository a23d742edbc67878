"""The master and its workers with real processes behind real front servers:
reload under load through nginx and lighttpd, a worker killed with SIGKILL,
``--max-requests`` recycling, a hung request's 504, socket activation with
Debian's ``systemd-socket-activate`` and sd_notify, and lighttpd spawning
four dumbwaiters itself (``bin-path``, ``max-procs 4``).

The app under load (``versioned.py``) lives in the server's own folder, so a
test can rewrite it and reload; it answers ``VERSION PID``, which the load
generator (``loadgen.py``) checks on every answer.  Bytecode caching is off
so that a rewrite within the same second is seen.

The measured figures (requests and failures under load, how long a killed
worker takes to be replaced) are printed on lines starting ``figures:``;
run with ``-s`` to see them.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from dumbwaiter import frontconf
from integration.fronts import (
    SEARCH_PATH,
    Front,
    fetch,
    get,
    lighttpd,
    lighttpd_conf,
    nginx,
    nginx_conf,
    required,
)
from integration.loadgen import Load
from serving import TESTS, Server, alive, children, free_port, parent_of, short_tmpdir, until

pytestmark = pytest.mark.integration

APP = """\
import os, time
VERSION = "{version}"

def app(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        with open(os.path.join(os.environ["DW_TEST_DIR"], "hung"), "w") as out:
            out.write(str(os.getpid()))
        time.sleep(float(environ["QUERY_STRING"]))
    body = f"{{VERSION}} {{os.getpid()}}\\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""
FRONTS = ["nginx", "lighttpd"]
THREADS = 4
RELOAD_SECONDS = 20.0
RELOAD_EVERY = 2.0
#: After a reload's SIGHUP, by when every answer must come from the new code.
RELOAD_SETTLES = 1.0
#: The master takes a death this soon after the fork for a failure to start
#: (master.QUICK_DEATH_SECONDS); the kill -9 test kills an older worker.
QUICK_DEATH_SECONDS = 5.0
#: What dumbwaiter answers for a request past --timeout (server/session.py).
TIMEOUT_BODY = b"504 Gateway Timeout: the application did not answer in time\n"


def figures(text: str) -> None:
    print(f"\nfigures: {text}", flush=True)


def write_app(folder: str, version: str) -> None:
    path = os.path.join(folder, "versioned.py")
    with open(path + ".tmp", "w") as out:
        out.write(APP.format(version=version))
    os.replace(path + ".tmp", path)


@contextlib.contextmanager
def behind(front_name: str, *args: str) -> Iterator[tuple[Server, Front]]:
    """dumbwaiter serving ``versioned:app`` (version ``v1``) with ``args``
    behind ``front_name``, configured as ``dumbwaiter config`` prints it:
    nginx over TCP with its keep-alive upstream, lighttpd over a unix socket."""
    folder = short_tmpdir()
    write_app(folder, "v1")
    tcp = front_name == "nginx"
    address = f"127.0.0.1:{free_port()}" if tcp else f"unix:{folder}/dw.sock"
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    with Server(["--fastcgi", address, *args], "versioned:app", workdir=folder, env=env) as server:
        root = short_tmpdir()
        port = free_port()
        if front_name == "nginx":
            running = nginx(root, port, nginx_conf(root, port, frontconf.nginx("fastcgi", address)))
        else:
            snippet = frontconf.lighttpd("fastcgi", address)
            running = lighttpd(root, port, lighttpd_conf(root, port, snippet))
        with running as front:
            status, body = fetch(front, "/")
            assert status == 200 and body.startswith(b"v1 "), (status, body, front.log())
            yield server, front


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def burst(front: Front, path: str, count: int) -> set[int]:
    """The pids that answer ``count`` concurrent requests for ``path``
    through ``front`` (the last word of a body is the pid; an answer other
    than 200 adds minus its status)."""
    pids: set[int] = set()

    def one() -> None:
        status, body = fetch(front, path)
        pids.add(int(body.split()[-1]) if status == 200 else -status)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return pids


def failed(load: Load, server: Server, front: Front) -> str:
    shown = "\n".join(f"  {f.sent - load.started:.3f}s: {f.what}" for f in load.failures[:10])
    return f"{load.summary()}\n{shown}\n{server.log()[-6000:]}\n{front.log()[-4000:]}"


# -- reload ------------------------------------------------------------------
@pytest.mark.parametrize("front_name", FRONTS)
def test_reload_under_load_fails_no_request(front_name: str) -> None:
    """20 s of load; every 2 s the app is rewritten (v2, v3 ...) and the
    master gets SIGHUP.  Not one request fails, every version answers, and
    a second after the last reload only the last version does."""
    with behind(front_name, "--workers", "2") as (server, front):
        hups: list[tuple[float, str]] = []
        with Load(front.port, threads=THREADS, seconds=RELOAD_SECONDS) as load:
            last = int(RELOAD_SECONDS / RELOAD_EVERY)
            for number in range(2, last + 1):  # at 2 s, 4 s ... 18 s
                sleep_until(load.started + (number - 1) * RELOAD_EVERY)
                write_app(server.dir, f"v{number}")
                server.send_signal(signal.SIGHUP)
                hups.append((time.monotonic(), f"v{number}"))
            load.wait()
        versions = [f"v{n}" for n in range(1, last + 1)]
        switches = []
        for moment, version in hups:
            first = min((a.done for a in load.answers if a.version == version), default=0.0)
            switches.append(first - moment)
        figures(
            f"reload through {front_name}: {load.summary()}; {len(hups)} reloads; "
            f"first answer of the new code {min(switches):.2f}-{max(switches):.2f}s after SIGHUP"
        )
        assert load.failures == [], failed(load, server, front)
        assert load.requests >= 400, load.summary()
        assert sorted(load.versions(), key=lambda v: int(v[1:])) == versions
        last_hup, newest = hups[-1]
        late = [a for a in load.answers if a.sent >= last_hup + RELOAD_SETTLES]
        assert len(late) >= 20, load.summary()
        assert {a.version for a in late} == {newest}
        assert server.log().count("reloaded: generation") == len(hups), server.log()
        assert "reload failed" not in server.log()
        # Only the last generation's two workers are left.
        serving = {a.pid for a in late}

        def only_the_last() -> bool:
            workers = set(children(server.proc.pid))
            return len(workers) == 2 and serving <= workers

        assert until(only_the_last), server.log()


# -- a worker killed ---------------------------------------------------------
def test_a_worker_killed_under_load_is_replaced() -> None:
    """SIGKILL to one of three workers under load through nginx: only the
    requests in flight on it may fail (at most one per client thread, all
    sent before it died), the others go on with 200, and a new worker is
    forked, comes up and serves."""
    with behind("nginx", "--workers", "3") as (server, front):
        master = server.proc.pid
        assert until(lambda: "3 worker(s) ready" in server.log()), server.log()
        workers_ready = time.monotonic()
        with Load(front.port, threads=THREADS, seconds=10.0) as load:
            # A death soon after the fork counts as a failure to start (backoff).
            sleep_until(workers_ready + QUICK_DEATH_SECONDS + 0.5)
            before = set(children(master))
            serving = before & load.pids()
            assert serving, (before, load.pids())
            victim = min(serving)
            killed_wall = time.time()
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            assert until(lambda: not alive(victim), 5, step=0.001)
            dead = time.monotonic()
            assert until(lambda: bool(set(children(master)) - before), 10, step=0.001)
            forked = time.monotonic()
            (replacement,) = set(children(master)) - before
            load.wait()
        # Forty at once: nginx keeps eight connections, so each burst opens new
        # ones, which every worker's waiting threads race to accept (a burst of
        # a few lets the worker that accepted last, first in poll()'s wake-up
        # order, take them all).
        assert until(lambda: replacement in burst(front, "/", 40), 10), server.log()
        ready = ready_time(server.log(), replacement) - killed_wall
        first = min((a.done for a in load.answers if a.pid == replacement), default=0.0)
        through = f"{first - killed:.3f}s" if first else "not within the load"
        figures(
            f"kill -9 of 1 of 3 workers through nginx: {load.summary()}; "
            f"new worker forked {forked - killed:.3f}s after the kill, ready "
            f"{ready:.3f}s after, first answer from it through nginx: {through}"
        )
        assert len(load.failures) <= THREADS, failed(load, server, front)
        assert all(f.sent <= dead for f in load.failures), failed(load, server, front)
        after = [a for a in load.answers if a.sent > dead]
        assert len(after) >= 50, load.summary()
        assert len({a.pid for a in after}) >= 2
        assert victim not in {a.pid for a in after}
        assert f"worker {victim} died (signal SIGKILL); replacing it" in server.log()
        assert ready < 5.0
        assert len(children(master)) == 3


def ready_time(log: str, pid: int) -> float:
    """The wall-clock time at which worker ``pid`` logged that it is ready."""
    pattern = rf"^(\S+ \S+),(\d+) \[{pid}\] INFO dumbwaiter: ready:"
    found = re.search(pattern, log, re.MULTILINE)
    assert found, log
    stamp = datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S")
    return stamp.timestamp() + int(found.group(2)) / 1000


# -- recycling -----------------------------------------------------------------
def test_max_requests_recycles_workers_under_load_without_a_failure() -> None:
    """``--max-requests 50 --max-requests-jitter 10`` with two workers, 10 s
    of load through nginx: workers come and go, not one request fails."""
    args = ["--workers", "2", "--max-requests", "50", "--max-requests-jitter", "10"]
    with behind("nginx", *args) as (server, front):
        with Load(front.port, threads=THREADS, seconds=10.0) as load:
            load.wait()
        served = {pid: sum(1 for a in load.answers if a.pid == pid) for pid in load.pids()}
        retired = [pid for pid in served if not alive(pid)]
        log = server.log()
        replaced = len(re.findall(r"master: replacing worker \d+: served", log))
        figures(
            f"--max-requests 50 (+0..10) through nginx: {load.summary()}; "
            f"{len(served)} worker pids served, {replaced} replaced for --max-requests"
        )
        assert load.failures == [], failed(load, server, front)
        assert len(served) >= 3, served
        # A worker retires at its limit (50 to 60 requests), not before; it
        # serves on until its replacement is ready, so it may serve more.
        assert retired and all(served[pid] >= 50 for pid in retired), served
        assert replaced >= len(retired)
        assert until(lambda: len(children(server.proc.pid)) == 2), server.log()


# -- a hung request --------------------------------------------------------------
def test_a_hung_request_gets_504_through_nginx_and_its_worker_is_replaced() -> None:
    """``--timeout 2``: a request that sleeps 60 s in the app gets
    dumbwaiter's 504 through nginx after 2 to 3 s (nginx relays it: its own
    fastcgi_read_timeout is 60 s), requests beside it get 200 throughout,
    and the worker that holds the stuck thread is replaced."""
    with behind("nginx", "--workers", "2", "--timeout", "2") as (server, front):
        master = server.proc.pid
        with Load(front.port, threads=3, seconds=30.0) as load:
            started = time.monotonic()
            status, headers, body = get(front, "/sleep?60")
            answered = time.monotonic() - started
            hung = int(server.path("hung").read_text())
            assert until(lambda: not alive(hung), 20), server.log()
            gone = time.monotonic() - started
            time.sleep(0.5)
            load.stop()
        beside = [a for a in load.answers if started < a.sent and a.done < started + answered]
        same = sum(1 for a in beside if a.pid == hung)
        figures(
            f"hung request through nginx: 504 after {answered:.2f}s, its worker gone "
            f"{gone:.2f}s after the request; {load.summary()}, "
            f"{len(beside)} answered while it hung ({same} by its worker)"
        )
        assert status == 504, (body, front.log())
        assert body == TIMEOUT_BODY
        assert headers["content-type"] == "text/plain; charset=utf-8"
        assert 2.0 <= answered < 4.0
        assert load.failures == [], failed(load, server, front)
        assert len(beside) >= 10
        assert "GET /sleep?60 still in the app after 2s: answered 504" in server.log()
        assert until(lambda: len(children(master)) == 2)
        assert hung not in children(master)


# -- systemd ---------------------------------------------------------------------
class Notifications:
    """The datagram socket a test passes as ``NOTIFY_SOCKET``."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.received: list[dict[str, str]] = []

    def expect(self, key: str, seconds: float = 15.0) -> dict[str, str]:
        """The next message; it must set ``key=1``."""
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            pytest.fail(f"no {key}=1 within {seconds}s; received {self.received}")
        message = dict(line.partition("=")[::2] for line in data.decode().splitlines())
        self.received.append(message)
        assert message.get(key) == "1", self.received
        return message

    def close(self) -> None:
        self.sock.close()


def socket_activate() -> str:
    path = shutil.which("systemd-socket-activate", path=SEARCH_PATH)
    if path is None:
        required("systemd-socket-activate", "systemd")
    assert path is not None
    return path


@contextlib.contextmanager
def activated(
    listen: str, fdname: str, args: list[str]
) -> Iterator[tuple[subprocess.Popen[bytes], Notifications, str]]:
    """``systemd-socket-activate -l LISTEN --fdname=FDNAME -- python -m
    dumbwaiter ARGS server_apps:app``, with ``NOTIFY_SOCKET`` set; it binds
    the socket, and execs dumbwaiter (in its own pid) at the first connection."""
    folder = short_tmpdir()
    listen = listen.replace("{folder}", folder)
    notifications = Notifications(folder)
    env = {
        **os.environ,
        "PYTHONPATH": str(TESTS),
        "DW_TEST_DIR": folder,
        "NOTIFY_SOCKET": notifications.path,
    }
    # systemd-socket-activate passes on PATH, HOME, USER, TERM and its -E names only.
    passed = [
        arg for name in ("PYTHONPATH", "DW_TEST_DIR", "NOTIFY_SOCKET") for arg in ("-E", name)
    ]
    command = [sys.executable, "-m", "dumbwaiter", *args, "server_apps:app"]
    argv = [socket_activate(), "-l", listen, f"--fdname={fdname}", *passed, "--", *command]
    log_path = os.path.join(folder, "server.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=folder,
            start_new_session=True,
        )
    try:
        yield proc, notifications, log_path
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        notifications.close()


def test_socket_activation_http_and_notify() -> None:
    """No listener options: the activated socket named ``http`` is served
    over HTTP.  READY=1 comes once both workers are up, RELOADING=1 then
    READY=1 on SIGHUP, STOPPING=1 on SIGTERM, and the master exits 0."""
    port = free_port()
    with activated(f"127.0.0.1:{port}", "http", ["--workers", "2"]) as (proc, notify, log_path):
        log = pathlib.Path(log_path)
        assert until(lambda: "Listening on" in log.read_text(), 10)
        # The first connection makes systemd-socket-activate exec dumbwaiter.
        with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
            conn.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            reply = b"".join(iter(lambda: conn.recv(4096), b""))
        assert reply.startswith(b"HTTP/1.1 200 "), (reply, log.read_text())
        served = int(reply.partition(b"\r\n\r\n")[2])
        assert parent_of(served) == proc.pid  # one of the master's workers
        ready = notify.expect("READY")
        assert log.read_text().count("INFO dumbwaiter: ready:") == 2, log.read_text()
        assert "2 worker(s)" in ready.get("STATUS", ""), ready
        workers = set(children(proc.pid))
        assert len(workers) == 2
        proc.send_signal(signal.SIGHUP)
        reloading = notify.expect("RELOADING")
        assert reloading.get("MONOTONIC_USEC", "").isdigit(), reloading
        notify.expect("READY")
        assert until(lambda: len(set(children(proc.pid)) - workers) == 2)
        assert until(lambda: len(children(proc.pid)) == 2), log.read_text()
        proc.send_signal(signal.SIGTERM)
        notify.expect("STOPPING")
        assert proc.wait(15) == 0, log.read_text()
        keys = [next(iter(m)) for m in notify.received]
        assert keys == ["READY", "RELOADING", "READY", "STOPPING"], notify.received


def test_socket_activation_by_name_behind_lighttpd() -> None:
    """``--fastcgi systemd:web``: the unix socket systemd-socket-activate
    bound, named ``web``, serves FastCGI to lighttpd."""
    listen = "{folder}/web.sock"
    with activated(listen, "web", ["--fastcgi", "systemd:web"]) as (proc, notify, log_path):
        sock = os.path.join(os.path.dirname(log_path), "web.sock")
        assert until(lambda: os.path.exists(sock), 10), pathlib.Path(log_path).read_text()
        root = short_tmpdir()
        port = free_port()
        config = lighttpd_conf(root, port, frontconf.lighttpd("fastcgi", f"unix:{sock}"))
        with lighttpd(root, port, config) as front:
            assert fetch(front, "/hello") == (200, b"Hello world\n"), front.log()
            notify.expect("READY")
            status, body = fetch(front, "/pid")
            assert status == 200
            assert parent_of(int(body)) == proc.pid
            proc.send_signal(signal.SIGTERM)
            notify.expect("STOPPING")
            assert proc.wait(15) == 0, pathlib.Path(log_path).read_text()


# -- lighttpd spawns the processes ---------------------------------------------
def test_lighttpd_bin_path_four_processes_all_serve() -> None:
    """``bin-path`` with ``max-procs 4`` (what failed with flup): lighttpd
    starts four dumbwaiters, each on its own socket on fd 0, and gives each
    request to the least loaded one: with four requests held in the app,
    each is in a different process, and a fifth is still answered."""
    root = short_tmpdir()
    port = free_port()
    snippet = frontconf.lighttpd(
        "fastcgi",
        f"unix:{root}/spawn.sock",
        spawn="server_apps:app",
        processes=4,
        environment={"PYTHONPATH": str(TESTS), "DW_TEST_DIR": root},
    )
    spawned: list[int] = []
    try:
        with lighttpd(root, port, lighttpd_conf(root, port, snippet)) as front:
            assert until(lambda: len(children(front.proc.pid)) == 4), front.log()
            spawned = children(front.proc.pid)
            held: list[tuple[int, bytes]] = []
            holders = [
                threading.Thread(target=lambda: held.append(fetch(front, "/block?go-all")))
                for _ in spawned
            ]
            # lighttpd counts a request against its process as it picks it.
            for holder in holders:
                holder.start()
            started = pathlib.Path(root, "started")
            assert until(lambda: len(lines(started)) == 4), front.log()
            holding = {int(line.split()[1]) for line in lines(started)}
            status, body = fetch(front, "/pid")
            pathlib.Path(root, "go-all").write_text("go")
            for holder in holders:
                holder.join(30)
            assert holding == set(spawned), (holding, spawned)
            assert status == 200 and int(body) in spawned
            assert held == [(200, b"released\n")] * 4
            assert burst(front, "/pid", 16) <= set(spawned)
    finally:
        for pid in spawned:  # lighttpd stops them; make sure of it
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def lines(path: pathlib.Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
