"""A first, rough comparison: hello-world req/s through lighttpd FastCGI.

Runs dumbwaiter and flup (each behind the same lighttpd, on a unix socket),
interleaved A B A B ..., with wrk, the backend pinned to CPU 1 and lighttpd +
wrk to CPU 0, and prints the median req/s and backend CPU per request of each
and their ratio.  The performance issue grows this into the full harness;
this script exists so the first figure can be rerun:

    .venv/bin/python bench/hello_lighttpd.py --rounds 3 --seconds 10

Needs lighttpd, wrk and taskset (Debian: lighttpd wrk util-linux) and flup in
the venv (``pip install flup``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

HELLO_APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])
    return [b"Hello world\\n"]
"""

FLUP_MAIN = """
import sys
from flup.server.fcgi import WSGIServer
from hello import app
WSGIServer(app, bindAddress=sys.argv[1]).run()
"""

LIGHTTPD_CONF = """
server.document-root = "{root}"
server.port = {port}
server.bind = "127.0.0.1"
server.errorlog = "{root}/lighttpd.err"
server.pid-file = "{root}/lighttpd.pid"
server.max-keep-alive-requests = 1000000
server.modules += ("mod_fastcgi")
fastcgi.server = ("/" => (("socket" => "{sock}", "check-local" => "disable",
                           "fix-root-scriptname" => "enable")))
"""

TARGETS = {
    "dumbwaiter": [
        sys.executable,
        "-m",
        "dumbwaiter",
        "--fastcgi",
        "unix:{sock}",
        "--socket-mode",
        "666",
        "--log-level",
        "warning",
        "hello:app",
    ],
    "flup": [sys.executable, "flup_main.py", "{sock}"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_connect(family: int, address: object, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            with socket.socket(family) as s:
                s.connect(address)
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def process(argv: list[str], cpu: str, cwd: str, log: str) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", cpu, *argv],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its threads, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_point(name: str, work: str, seconds: int, connections: int) -> tuple[float, float]:
    sock = os.path.join(work, f"{name}.sock")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)
    port = free_port()
    conf = os.path.join(work, "lighttpd.conf")
    with open(conf, "w") as f:
        f.write(LIGHTTPD_CONF.format(root=work, port=port, sock=sock))
    argv = [part.format(sock=sock) for part in TARGETS[name]]
    with process(argv, "1", work, os.path.join(work, f"{name}.log")) as backend:
        wait_connect(socket.AF_UNIX, sock)
        with process(["lighttpd", "-D", "-f", conf], "0", work, os.path.join(work, "l.log")):
            wait_connect(socket.AF_INET, ("127.0.0.1", port))
            url = f"http://127.0.0.1:{port}/hello"
            check = subprocess.run(["curl", "-s", url], capture_output=True, timeout=10)
            if check.stdout != b"Hello world\n":
                raise SystemExit(f"{name}: wrong answer before the run: {check.stdout!r}")
            subprocess.run(
                ["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", "-d2s", url],
                capture_output=True,
                timeout=60,
            )
            before = cpu_seconds(backend.pid)
            out = subprocess.run(
                ["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
                capture_output=True,
                text=True,
                timeout=seconds + 60,
            ).stdout
            used = cpu_seconds(backend.pid) - before
            check = subprocess.run(["curl", "-s", url], capture_output=True, timeout=10)
            if check.stdout != b"Hello world\n":
                raise SystemExit(f"{name}: wrong answer after the run: {check.stdout!r}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = rate * seconds
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"  {name}: {errors.group(1)} non-2xx responses", file=sys.stderr)
    return rate, used / total * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    for tool in ("lighttpd", "wrk", "taskset", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool}")
    work = tempfile.mkdtemp(prefix="dwbench", dir="/tmp")
    with open(os.path.join(work, "hello.py"), "w") as f:
        f.write(HELLO_APP)
    with open(os.path.join(work, "flup_main.py"), "w") as f:
        f.write(FLUP_MAIN)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in TARGETS}
    for round_number in range(args.rounds):
        for name in TARGETS:
            point = one_point(name, work, args.seconds, args.connections)
            results[name].append(point)
            print(
                f"round {round_number + 1} {name}: {point[0]:.0f} req/s, "
                f"{point[1]:.0f} us backend CPU/req",
                flush=True,
            )
    print(
        f"\nhello via lighttpd FastCGI, c={args.connections}, {args.seconds}s x {args.rounds}, "
        "medians:"
    )
    medians = {}
    for name, points in results.items():
        rate = statistics.median(p[0] for p in points)
        cost = statistics.median(p[1] for p in points)
        medians[name] = rate
        print(f"  {name:<11} {rate:>8.0f} req/s  {cost:>5.0f} us/req")
    print(f"  ratio dumbwaiter / flup: {medians['dumbwaiter'] / medians['flup']:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
