"""One point: a target under one workload, from start to stop, as a JSON record.

The sequence (``run_point``):

1. start the backend on CPU 1 (``taskset -c 1``, its own session) and wait for
   its socket; start the front server on CPU 0 and wait for its port;
2. the byte-exact check: two requests on one connection through the whole
   chain must both answer 200 with exactly the expected body;
3. idle RSS; warm-up (wrk, ``warmup`` s); a 1 s pause, then wait for the
   backend's accept queue to be empty (what the warm-up left in it would
   otherwise land in the measured run);
4. the measured run: CPU counters of both cores and of the backend's and the
   front's process trees before and after, RSS sampled meanwhile;
5. the check again, and the backend must still be alive;
6. stop both, by process group.

A failed check makes the point *invalid*; more than ``FOREIGN_LIMIT`` of a
core used by processes not ours makes it *disturbed* (run.py reruns it).

The ws-echo workload follows the same sequence with bench/ws_echo.py in
wrk's place (pinned to CPU 0 as wrk is): its check is a WebSocket handshake,
a text and a binary message echoed byte for byte and a clean close; a
request is one echo round trip.  A target on the ``direct`` front has no
front server: its backend listens on a loopback TCP port, which the client
connects to.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fronts
import measure
import overload
import ws_echo
from targets import Target, source_fingerprint

FOREIGN_LIMIT = 0.10  # of one core
BIG = b"0123456789abcdef" * 7680
UPLOAD_SIZE = 1024 * 1024
WS_MESSAGE = 32  # bytes of each echoed text message


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    path: str
    connections: int
    method: str = "GET"
    body_size: int = 0
    expect: bytes = b"Hello world\n"
    what: str = ""
    kind: str = "http"  # "http" (wrk), "overload" or "ws" (bench/ws_echo.py)


WORKLOADS = {
    w.name: w
    for w in [
        Workload("hello", "/hello", 50, what="GET, 12-byte body, 50 connections"),
        Workload("big", "/big", 50, expect=BIG, what="GET, 120 KiB body, 50 connections"),
        Workload(
            "upload",
            "/upload",
            50,
            method="POST",
            body_size=UPLOAD_SIZE,
            expect=str(UPLOAD_SIZE).encode(),
            what="POST 1 MiB, the app reads it all, 50 connections",
        ),
        Workload("c1000", "/hello", 1000, what="hello over 1000 keep-alive connections"),
        Workload("sweep1", "/hello", 1, what="hello, 1 connection"),
        Workload("sweep10", "/hello", 10, what="hello, 10 connections"),
        Workload("sweep100", "/hello", 100, what="hello, 100 connections"),
        Workload(
            "overload",
            "/slow",
            0,
            expect=b"slow\n",
            what="open-loop at 10x capacity",
            kind="overload",
        ),
        Workload(
            "ws-echo",
            "/ws",
            50,
            body_size=WS_MESSAGE,
            expect=b"",
            what=f"WebSocket echo, {WS_MESSAGE}-byte text messages, 50 connections, one"
            " message in flight on each; a request is a round trip",
            kind="ws",
        ),
    ]
}


@dataclasses.dataclass(frozen=True)
class Settings:
    seconds: float  # measured
    warmup: float
    pause: float  # after the warm-up, before waiting for the accept queue


def disturbed(record: dict[str, Any], has_backend: bool) -> bool:
    """Foreign load above the limit on CPU 0, or on CPU 1 if a backend runs there."""
    cores = [record["foreign0"], record["foreign1"]] if has_backend else [record["foreign0"]]
    return any(value > FOREIGN_LIMIT for value in cores)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_connect(family: int, address: Any, proc: subprocess.Popen[bytes], limit: float) -> None:
    """Wait until ``address`` accepts a connection; raise if ``proc`` dies first."""
    deadline = time.monotonic() + limit
    while True:
        try:
            with socket.socket(family) as s:
                s.connect(address)
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode} before listening") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"not listening after {limit} s") from None
            time.sleep(0.05)


@contextlib.contextmanager
def started(
    argv: list[str], cpu: int, log: Path, env: dict[str, str], stop: signal.Signals
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` pinned to ``cpu`` in a new session; stop its process group after."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop_group(proc, stop)


def stop_group(proc: subprocess.Popen[bytes], stop: signal.Signals) -> None:
    """``stop`` to the process group, SIGKILL after 10 s; only our own group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, stop)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # Workers that outlived their parent are still in the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def check(port: int, workload: Workload) -> str | None:
    """Two requests on one connection; None if both are 200 with the exact body."""
    body = b"x" * workload.body_size if workload.body_size else None
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(2):
            conn.request(workload.method, workload.path, body=body)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200 or data != workload.expect:
                return f"{response.status}, {len(data)} B: {data[:60]!r}"
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    return None


def tail(path: Path, lines: int = 5) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def chain(target: Target, directory: Path, app_dir: Path) -> Iterator[dict[str, Any]]:
    """Start backend and front for one point; yield what the measurement needs."""
    directory.mkdir(parents=True)
    sock = str(directory / "backend.sock")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(app_dir), BENCH_COUNT_FILE=str(directory / "calls"))
    direct = fronts.FRONTS[target.front].server == "none"
    argv = target.command(sock, app_dir, port if direct else None)
    front_argv = fronts.write_config(target.front, directory, port, sock)
    info: dict[str, Any] = {"argv": argv, "front_argv": front_argv, "port": port, "sock": sock}
    with contextlib.ExitStack() as stack:
        if argv:
            backend = stack.enter_context(
                started(argv, 1, directory / "backend.log", env, target.stop)
            )
            if direct:  # (the client talks to the backend's own port)
                wait_connect(socket.AF_INET, ("127.0.0.1", port), backend, 60)
            else:
                wait_connect(socket.AF_UNIX, sock, backend, 60)
            info["backend"] = backend
        if front_argv:
            front = stack.enter_context(
                started(front_argv, 0, directory / "front.log", env, signal.SIGTERM)
            )
            wait_connect(socket.AF_INET, ("127.0.0.1", port), front, 30)
            info["front"] = front
        yield info


def run_point(
    target: Target, workload: Workload, settings: Settings, directory: Path, app_dir: Path
) -> dict[str, Any]:
    """Measure ``target`` under ``workload``; the JSON record (never raises for the target)."""
    record: dict[str, Any] = {
        "target": target.name,
        "front": target.front,
        "workload": workload.name,
        "connections": workload.connections,
        "seconds": settings.seconds,
        "valid": False,
        "disturbed": False,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dumbwaiter_source": source_fingerprint(),
    }
    try:
        with chain(target, directory, app_dir) as info:
            record["argv"] = info["argv"]
            record["front_argv"] = info["front_argv"]
            if workload.kind == "overload":
                _measure_overload(record, info, workload, settings, directory)
            elif workload.kind == "ws":
                _measure_ws(record, info, workload, settings)
            else:
                _measure(record, info, workload, settings, directory)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    if not record["valid"]:  # the servers' last words, for the report's invalid list
        record["backend_log"] = tail(directory / "backend.log")
        record["front_log"] = tail(directory / "error.log")
    return record


def _measure(
    record: dict[str, Any],
    info: dict[str, Any],
    workload: Workload,
    settings: Settings,
    directory: Path,
) -> None:
    port, sock = info["port"], info["sock"]
    backend: subprocess.Popen[bytes] | None = info.get("backend")
    front: subprocess.Popen[bytes] | None = info.get("front")  # (None: direct)
    record["check_before"] = check(port, workload)
    if record["check_before"] is not None:
        return
    sid = backend.pid if backend else None
    if sid is not None:
        record["rss_idle_sum"], record["rss_idle_max"] = measure.tree_rss(sid)
    url = f"http://127.0.0.1:{port}{workload.path}"
    script = measure.wrk_script(directory / "wrk.lua", workload.method, workload.body_size)
    if settings.warmup > 0:
        measure.run_wrk(url, workload.connections, settings.warmup, script)
    time.sleep(settings.pause)
    if backend is not None:
        record["queue_drained"] = measure.wait_queue_empty(sock)

    # CPU shares are over the wall-clock window of the counters, wrk's own
    # duration (slightly shorter: it excludes its start-up) only for req/s.
    wall0 = time.monotonic()
    busy0, own0 = measure.core_busy(), measure.own_cpu()
    backend0 = measure.tree_cpu(sid) if sid else 0.0
    front0 = measure.tree_cpu(front.pid) if front else 0.0
    sample: dict[str, int] = {}
    wrk = measure.run_wrk(url, workload.connections, settings.seconds, script, sample, sid)
    busy1, own1 = measure.core_busy(), measure.own_cpu()
    backend_cpu = (measure.tree_cpu(sid) - backend0) if sid else 0.0
    front_cpu = (measure.tree_cpu(front.pid) - front0) if front else 0.0
    wall = time.monotonic() - wall0

    window = wrk.seconds
    ours0 = front_cpu + wrk.wrk_cpu + (own1 - own0)
    record.update(
        {
            "requests": wrk.requests,
            "duration": window,
            "rps_2xx": wrk.ok_requests / window,
            "non_2xx": wrk.non_2xx,
            "socket_errors": wrk.socket_errors,
            "p50_ms": wrk.p50_ms,
            "p90_ms": wrk.p90_ms,
            "p99_ms": wrk.p99_ms,
            "max_ms": wrk.max_ms,
            "mb_per_s": wrk.bytes / window / 1e6,
            "bytes_per_req": wrk.bytes / max(wrk.requests, 1),
            "backend_cpu_s": backend_cpu,
            "backend_us_per_req": backend_cpu / max(wrk.requests, 1) * 1e6 if sid else None,
            "front_us_per_req": front_cpu / max(wrk.requests, 1) * 1e6 if front else None,
            "cpu0_busy": (busy1[0] - busy0[0]) / wall,
            "cpu1_busy": (busy1[1] - busy0[1]) / wall,
            "foreign0": (busy1[0] - busy0[0] - ours0) / wall,
            "foreign1": (busy1[1] - busy0[1] - backend_cpu) / wall,
            "rss_peak_sum": sample.get("peak_sum"),
            "rss_peak_max": sample.get("peak_max"),
        }
    )
    record["check_after"] = check(port, workload)
    record["backend_alive"] = backend is None or backend.poll() is None
    record["valid"] = record["check_after"] is None and record["backend_alive"]
    record["disturbed"] = disturbed(record, backend is not None)


def ws_check(port: int, workload: Workload) -> str | None:
    """bench/ws_echo.py's check through the whole chain; None if it passed."""
    try:
        return asyncio.run(
            ws_echo.check("127.0.0.1", port, None, workload.path, workload.body_size)
        )
    except (OSError, RuntimeError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _measure_ws(
    record: dict[str, Any], info: dict[str, Any], workload: Workload, settings: Settings
) -> None:
    """The ws-echo workload: bench/ws_echo.py where _measure runs wrk."""
    port = info["port"]
    backend: subprocess.Popen[bytes] = info["backend"]
    front: subprocess.Popen[bytes] | None = info.get("front")
    record["check_before"] = ws_check(port, workload)
    if record["check_before"] is not None:
        return
    sid = backend.pid
    record["rss_idle_sum"], record["rss_idle_max"] = measure.tree_rss(sid)
    load = (port, workload.path, workload.connections)
    if settings.warmup > 0:
        measure.run_ws_echo(*load, settings.warmup, workload.body_size)
    time.sleep(settings.pause)

    wall0 = time.monotonic()
    busy0, own0 = measure.core_busy(), measure.own_cpu()
    backend0 = measure.tree_cpu(sid)
    front0 = measure.tree_cpu(front.pid) if front else 0.0
    sample: dict[str, int] = {}
    ws = measure.run_ws_echo(*load, settings.seconds, workload.body_size, sample, sid)
    busy1, own1 = measure.core_busy(), measure.own_cpu()
    backend_cpu = measure.tree_cpu(sid) - backend0
    front_cpu = (measure.tree_cpu(front.pid) - front0) if front else 0.0
    wall = time.monotonic() - wall0

    # The backend's CPU is over the client's whole life (its handshakes and
    # closes too: 50 of each against some 10^5 round trips); the rate over the
    # round trips' own window.
    trips = max(ws["round_trips"], 1)
    window = ws["duration_s"] or wall
    ours0 = front_cpu + ws["client_cpu"] + (own1 - own0)
    record.update(
        {
            "requests": ws["round_trips"],
            "duration": window,
            "rps_2xx": ws["round_trips"] / window,
            "non_2xx": ws["mismatches"],
            "socket_errors": ws["not_connected"]
            + ws["closed_early"]
            + ws["unanswered_closes"]
            + ws["not_ended"],
            "ws": {k: v for k, v in ws.items() if not k.endswith("_ms")},
            "p50_ms": ws["p50_ms"],
            "p90_ms": ws["p90_ms"],
            "p99_ms": ws["p99_ms"],
            "max_ms": ws["max_ms"],
            "mb_per_s": ws["round_trips"] * workload.body_size * 2 / window / 1e6,
            "backend_cpu_s": backend_cpu,
            "backend_us_per_req": backend_cpu / trips * 1e6,
            "front_us_per_req": front_cpu / trips * 1e6 if front else None,
            "client_us_per_rt": ws["client_cpu_s"] / trips * 1e6,
            "cpu0_busy": (busy1[0] - busy0[0]) / wall,
            "cpu1_busy": (busy1[1] - busy0[1]) / wall,
            "foreign0": (busy1[0] - busy0[0] - ours0) / wall,
            "foreign1": (busy1[1] - busy0[1] - backend_cpu) / wall,
            "rss_peak_sum": sample.get("peak_sum"),
            "rss_peak_max": sample.get("peak_max"),
        }
    )
    record["check_after"] = ws_check(port, workload)
    record["backend_alive"] = backend.poll() is None
    record["valid"] = (
        record["check_after"] is None and record["backend_alive"] and ws["connected"] > 0
    )
    record["disturbed"] = disturbed(record, True)


def _measure_overload(
    record: dict[str, Any],
    info: dict[str, Any],
    workload: Workload,
    settings: Settings,
    directory: Path,
) -> None:
    """Open-loop load at ``overload.RATE``; 503 latency and the app's call count."""
    port, backend, front = info["port"], info["backend"], info["front"]
    record["check_before"] = check(port, workload)
    if record["check_before"] is not None:
        return
    calls = directory / "calls"
    calls_before = calls.stat().st_size
    busy0, own0 = measure.core_busy(), measure.own_cpu()
    backend0, front0 = measure.tree_cpu(backend.pid), measure.tree_cpu(front.pid)
    started = time.monotonic()
    tally = asyncio.run(overload.open_loop(port, workload.path, overload.RATE, settings.seconds))
    window = time.monotonic() - started
    busy1, own1 = measure.core_busy(), measure.own_cpu()
    backend_cpu = measure.tree_cpu(backend.pid) - backend0
    front_cpu = measure.tree_cpu(front.pid) - front0
    record.update(overload.summarize(tally, calls.stat().st_size - calls_before))
    record.update(
        {
            "rate": overload.RATE,
            "duration": window,
            "backend_cpu_s": backend_cpu,
            "cpu0_busy": (busy1[0] - busy0[0]) / window,
            "cpu1_busy": (busy1[1] - busy0[1]) / window,
            "foreign0": (busy1[0] - busy0[0] - front_cpu - (own1 - own0)) / window,
            "foreign1": (busy1[1] - busy0[1] - backend_cpu) / window,
        }
    )
    record["check_after"] = check(port, workload)
    record["backend_alive"] = backend.poll() is None
    record["valid"] = record["check_after"] is None and record["backend_alive"]
    record["disturbed"] = disturbed(record, backend is not None)
