"""Server hooks (--hooks MODULE): each called at its point, in the right
process, with gunicorn's arguments; failures at start-up stop it, later
ones are logged; and the recipes written for gunicorn work unchanged
(prometheus_client's multiprocess mode, a per-worker exporter thread)."""

from __future__ import annotations

import http.client
import os
import pathlib
import signal
import time

from prometheus_client.parser import text_string_to_metric_families

from serving import Server, children, free_port, run_cli, short_tmpdir, until

APP = """\
import os

def app(environ, start_response):
    if environ["PATH_INFO"] == "/fail":
        raise RuntimeError("the app failed")
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""

RECORDING = """\
import os

def _note(*words):
    with open(os.path.join(os.environ["DW_TEST_DIR"], "calls"), "a") as out:
        out.write(" ".join(str(word) for word in (os.getpid(), *words)) + "\\n")

def on_starting(server):
    _note("on_starting", server.pid, server.num_workers)

def when_ready(server):
    _note("when_ready", len(server.workers))

def on_reload(server):
    _note("on_reload")

def pre_fork(server, worker):
    _note("pre_fork", worker.age, worker.pid)

def post_fork(server, worker):
    _note("post_fork", worker.age, worker.pid, worker.ppid, server.pid)

def post_worker_init(worker):
    _note("post_worker_init", worker.pid)

def worker_int(worker):
    _note("worker_int", worker.pid)

def worker_abort(worker):
    _note("worker_abort", worker.pid)

def pre_request(worker, req):
    _note("pre_request", worker.pid, req.method, req.path, req.query)

def post_request(worker, req, environ, resp):
    _note("post_request", worker.pid, req.path, resp.status_code, environ["REQUEST_METHOD"])

def child_exit(server, worker):
    _note("child_exit", worker.pid)

def worker_exit(server, worker):
    _note("worker_exit", worker.pid)

def nworkers_changed(server, new_value, old_value):
    _note("nworkers_changed", new_value, old_value)

def on_exit(server):
    _note("on_exit")
"""


def project(hooks: str, app: str = APP) -> pathlib.Path:
    folder = pathlib.Path(short_tmpdir())
    (folder / "hooked.py").write_text(app)
    (folder / "dw_hooks.py").write_text(hooks)
    return folder


def get(port: int, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def calls(folder: pathlib.Path) -> list[list[str]]:
    try:
        return [line.split() for line in (folder / "calls").read_text().splitlines()]
    except FileNotFoundError:
        return []


def named(folder: pathlib.Path, name: str) -> list[list[str]]:
    return [call for call in calls(folder) if call[1] == name]


def start(folder: pathlib.Path, *args: str) -> tuple[Server, int]:
    port = free_port()
    server = Server(
        ["--http", f"127.0.0.1:{port}", "--hooks", "dw_hooks", *args],
        "hooked:app",
        workdir=str(folder),
    )
    return server, port


def test_each_hook_is_called_at_its_point_in_its_process() -> None:
    folder = project(RECORDING)
    server, port = start(folder, "--workers", "2")
    master = server.proc.pid
    try:
        assert until(lambda: named(folder, "when_ready")), server.log()
        first = set(children(master))
        assert len(first) == 2
        status, body = get(port, "/page?x=1")
        assert status == 200
        served = body
        assert until(lambda: named(folder, "post_request"))
        assert get(port, "/fail")[0] == 500
        assert until(lambda: len(named(folder, "post_request")) == 2)
        server.send_signal(signal.SIGTTIN)
        assert until(lambda: len(children(master)) == 3)
        assert until(lambda: len(named(folder, "post_worker_init")) == 3)
        server.send_signal(signal.SIGHUP)
        assert until(lambda: "generation 2 serves" in server.log()), server.log()
        assert until(lambda: not first & set(children(master)))
        second = children(master)
        os.kill(second[0], signal.SIGINT)  # a fast stop of that one worker
        assert until(lambda: named(folder, "worker_int")), server.log()
        assert until(lambda: len(children(master)) == 3)  # replaced
        server.send_signal(signal.SIGTERM)  # to the master alone: each worker drains
        server.proc.wait(30)
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log()
    m = str(master)
    record = calls(folder)
    assert record[0] == [m, "on_starting", m, "2"]
    assert record[-1] == [m, "on_exit"]
    assert [m, "when_ready", "2"] in record
    assert [m, "nworkers_changed", "3", "2"] in record
    assert [m, "on_reload"] in record
    forks = named(folder, "pre_fork")
    assert {call[0] for call in forks} == {m}
    assert [call[2] for call in forks] == [str(age) for age in range(1, len(forks) + 1)]
    assert all(call[3] == "0" for call in forks)  # no pid yet
    workers = {call[0] for call in named(folder, "post_fork")}
    assert len(workers) == len(forks) >= 7  # 2, +1, 3 on reload, 1 replacing the one stopped
    for call in named(folder, "post_fork"):
        assert call[0] == call[3]  # its own pid
        assert call[4] == call[5] == m  # ppid, and the master's pid
    assert {call[0] for call in named(folder, "post_worker_init")} == workers
    assert {call[2] for call in named(folder, "child_exit")} == workers
    assert {call[0] for call in named(folder, "child_exit")} == {m}
    assert {call[0] for call in named(folder, "worker_exit")} == workers
    assert named(folder, "worker_int")[0][0] == str(second[0])
    assert [call[1:] for call in named(folder, "pre_request")] == [
        ["pre_request", served, "GET", "/page", "x=1"],
        ["pre_request", named(folder, "pre_request")[1][2], "GET", "/fail"],
    ]
    assert [call[3:] for call in named(folder, "post_request")] == [
        ["/page", "200", "GET"],
        ["/fail", "500", "GET"],
    ]


def test_worker_abort_is_called_before_the_stacks_and_the_end() -> None:
    folder = project(RECORDING)
    server, port = start(folder)
    try:
        assert until(lambda: named(folder, "when_ready")), server.log()
        worker = children(server.proc.pid)[0]
        os.kill(worker, signal.SIGABRT)
        assert until(lambda: named(folder, "worker_abort")), server.log()
        assert until(lambda: f"worker {worker} died" in server.log()), server.log()
        assert "(signal SIGABRT)" in server.log()
        assert "Current thread" in server.log() or "Thread 0x" in server.log()  # the stacks
        assert until(lambda: get(port)[0] == 200)
    finally:
        server.stop()


def test_a_hook_that_raises_at_start_stops_the_start_with_one_line() -> None:
    for hook, arguments in (
        ("on_starting", "server"),
        ("when_ready", "server"),
        ("post_fork", "server, worker"),
        ("post_worker_init", "worker"),
    ):
        folder = project(f"def {hook}({arguments}):\n    raise ValueError('no {hook}')\n")
        done = run_cli(
            ["--hooks", "dw_hooks", "--http", f"127.0.0.1:{free_port()}", "hooked:app"],
            cwd=folder,
        )
        assert done.returncode == 1, (hook, done.stderr)
        errors = [line for line in done.stderr.splitlines() if "error:" in line]
        assert errors == [f"dumbwaiter: error: hook {hook} raised ValueError: no {hook}"], (
            hook,
            done.stderr,
        )


def test_a_hook_that_raises_later_is_logged_and_the_request_served() -> None:
    folder = project(
        "def pre_request(worker, req):\n    raise KeyError('pre')\n"
        "def post_request(worker, req, environ, resp):\n    raise KeyError('post')\n"
    )
    server, port = start(folder)
    try:
        assert get(port)[0] == 200
        assert until(lambda: "hook post_request raised" in server.log()), server.log()
        assert "hook pre_request raised" in server.log()
    finally:
        server.stop()


def test_a_hook_module_that_cannot_be_imported() -> None:
    folder = project("import no_such_module_here\n")
    done = run_cli(["--hooks", "dw_hooks", "--check-config", "hooked:app"], cwd=folder)
    assert done.returncode == 2
    assert done.stderr.startswith("dumbwaiter: error: --hooks dw_hooks: cannot import it: ")
    done = run_cli(["--hooks", "dw_hooks", "hooked:app"], cwd=folder)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1


PROMETHEUS_APP = """\
import os
from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess

REQUESTS = Counter("app_requests", "Requests answered")

def app(environ, start_response):
    if environ["PATH_INFO"] == "/metrics":
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        REQUESTS.inc()
        body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""

PROMETHEUS_HOOKS = """\
from prometheus_client import Gauge, multiprocess

WORKERS = Gauge("app_workers", "Workers alive", multiprocess_mode="livesum")

def post_worker_init(worker):
    WORKERS.inc()

def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
"""


def scrape(port: int) -> dict[str, float]:
    status, text = get(port, "/metrics")
    assert status == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_prometheus_client_multiprocess_mode() -> None:
    """Counters summed across the workers; child_exit marks a dead worker
    so that its live gauge goes (the recipe of prometheus_client's docs)."""
    folder = project(PROMETHEUS_HOOKS, PROMETHEUS_APP)
    (folder / "prom").mkdir()
    port = free_port()
    server = Server(
        ["--http", f"127.0.0.1:{port}", "--hooks", "dw_hooks", "--workers", "2"],
        "hooked:app",
        workdir=str(folder),
        env={"PROMETHEUS_MULTIPROC_DIR": str(folder / "prom")},
    )
    try:
        assert until(lambda: "2 worker(s) ready" in server.log()), server.log()
        pids: set[str] = set()
        sent = 0
        while len(pids) < 2 and sent < 400:  # until both workers have answered
            pids.add(get(port)[1])
            sent += 1
        assert len(pids) == 2, "both workers answered"
        metrics = scrape(port)
        assert metrics["app_requests_total"] == sent
        assert metrics["app_workers"] == 2
        server.send_signal(signal.SIGTTOU)
        assert until(lambda: len(children(server.proc.pid)) == 1), server.log()
        assert until(lambda: scrape(port)["app_workers"] == 1), scrape(port)
        assert scrape(port)["app_requests_total"] == sent  # the dead worker's count stays
    finally:
        server.stop()


EXPORTER_HOOKS = """\
import os, threading, time

def post_fork(server, worker):
    # As an OpenTelemetry exporter is started: a thread per worker, after the fork.
    def export():
        path = os.path.join(os.environ["DW_TEST_DIR"], f"exported-{os.getpid()}")
        count = 0
        while True:
            count += 1
            with open(path, "w") as out:
                out.write(str(count))
            time.sleep(0.05)
    threading.Thread(target=export, name="exporter", daemon=True).start()
"""


def test_a_post_fork_hook_starts_a_thread_in_each_worker() -> None:
    folder = project(EXPORTER_HOOKS)
    server, port = start(folder, "--workers", "2")
    try:
        assert until(lambda: "2 worker(s) ready" in server.log()), server.log()
        workers = children(server.proc.pid)

        def exported(pid: int) -> int:
            try:
                return int((folder / f"exported-{pid}").read_text() or 0)
            except (FileNotFoundError, ValueError):
                return 0

        for pid in workers:
            assert until(lambda pid=pid: exported(pid) > 0), pid
            seen = exported(pid)
            assert until(lambda pid=pid, seen=seen: exported(pid) > seen + 2), "still exporting"
        time.sleep(0.2)
        assert not (folder / f"exported-{server.proc.pid}").exists()  # not in the master
        assert get(port)[0] == 200
    finally:
        server.stop()
