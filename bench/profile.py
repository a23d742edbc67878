"""Backend CPU time per request, without a front server: dumbwaiter driven directly.

Run from the repository root::

    .venv/bin/python bench/profile.py                  # every scenario, 3 repeats
    .venv/bin/python bench/profile.py -s fcgi-keep -n 50000
    .venv/bin/python bench/profile.py --profile py-spy -s fcgi-new
    .venv/bin/python bench/profile.py --profile cprofile -s uwsgi-new
    .venv/bin/python bench/profile.py -c 1 --src /tmp/old/src -- --threads 2

One ``dumbwaiter --no-master`` process serves bench/app.py (as ``benchapp``) on
a FastCGI and a uwsgi unix socket and an HTTP loopback port, pinned with
``taskset`` to ``--server-cpu``; this process is the client, pinned to
``--client-cpu``.  Scenarios:

- ``fcgi-new``: FastCGI, a new connection per request (lighttpd's way)
- ``fcgi-keep``: FastCGI with FCGI_KEEP_CONN, kept connections (nginx's
  ``fastcgi_keep_conn on``)
- ``uwsgi-new``: the uwsgi protocol, a new connection per request
- ``http-keep``: HTTP/1.1 keep-alive (wrk with ``--wrk``, else this client)
- ``fcgi-big``: FastCGI, a new connection per request, ``GET /big`` (the
  120 KiB answer)
- ``fcgi-upload``, ``uwsgi-upload``: ``POST /upload`` of 1 MiB on a new
  connection, which the app reads whole (FastCGI in lighttpd's 65535-byte
  STDIN records); the figure is then also µs per MiB

Each run sends ``--requests`` ``GET /hello`` requests (12 bytes of answer)
over ``--concurrency`` connections at once, after a warm-up, and stops early
at ``--seconds``.  The figure is the server's CPU time (user + system, every
thread, from /proc/PID/stat) over the run divided by the requests answered;
each scenario reports the median of ``--repeats`` runs and their spread, the
kernel's share, the server's context switches per request, the rate and the
client's load on its core.  The client's own CPU does not count, so it may be
Python.  Concurrency changes the figure a lot (with 1 request in flight every
request pays every wake-up; with 16, the loop batches): compare like with like.
``--src`` serves another copy of the sources (before/after comparisons);
arguments after ``--`` go to dumbwaiter.

``--profile py-spy`` samples the server with py-spy (``pip install py-spy``
into the venv; needs ptrace) during one run per scenario and prints the
functions with the most samples of their own; ``--profile cprofile`` runs
the server under cProfile, every thread, and prints the top by tottime
(cProfile's own overhead inflates call-heavy code: compare, don't add up).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from dumbwaiter.protocols.fastcgi_client import FastCGIClientProtocol  # noqa: E402
from dumbwaiter.protocols.fastcgi_records import END_REQUEST, HEADER, VERSION_1  # noqa: E402
from dumbwaiter.protocols.uwsgi import encode_request as uwsgi_request  # noqa: E402

CLOCK_TICK = os.sysconf("SC_CLK_TCK")
SCENARIOS = (
    "fcgi-new",
    "fcgi-keep",
    "uwsgi-new",
    "http-keep",
    "fcgi-big",
    "fcgi-upload",
    "uwsgi-upload",
)
HELLO = b"Hello world\n"
#: bench/app.py's /big answer.
BIG = b"0123456789abcdef" * 7680
#: The upload scenarios' body: 1 MiB, which the app reads whole.
UPLOAD = bytes(range(256)) * 4096
UPLOAD_ANSWER = str(len(UPLOAD)).encode()

#: The parameters nginx's fastcgi_params (and uwsgi_params) send, roughly.
PARAMS = {
    "QUERY_STRING": "",
    "REQUEST_METHOD": "GET",
    "CONTENT_TYPE": "",
    "CONTENT_LENGTH": "",
    "SCRIPT_NAME": "/hello",
    "REQUEST_URI": "/hello",
    "DOCUMENT_URI": "/hello",
    "DOCUMENT_ROOT": "/usr/share/nginx/html",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REQUEST_SCHEME": "http",
    "GATEWAY_INTERFACE": "CGI/1.1",
    "SERVER_SOFTWARE": "nginx/1.22.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "51234",
    "SERVER_ADDR": "127.0.0.1",
    "SERVER_PORT": "8080",
    "SERVER_NAME": "localhost",
    "REDIRECT_STATUS": "200",
    "HTTP_HOST": "localhost:8080",
    "HTTP_USER_AGENT": "wrk",
    "HTTP_ACCEPT": "*/*",
}

#: Runs the server under cProfile in every thread (``python -c``, so that this
#: file, named like the stdlib's ``profile``, is not what cProfile imports).
CPROFILE_BOOT = """
import cProfile, pstats, sys, threading
out = sys.argv.pop(1)
profiles = []
run = threading.Thread.run
def profiled_run(self):
    profile = cProfile.Profile()
    profiles.append(profile)
    profile.runcall(run, self)
threading.Thread.run = profiled_run
main = cProfile.Profile()
profiles.append(main)
from dumbwaiter.cli import main as dumbwaiter_main
try:
    main.runcall(dumbwaiter_main, sys.argv[1:])
finally:
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        stats.add(profile)
    stats.dump_stats(out)
"""


def upload_params() -> dict[str, str]:
    path = {"SCRIPT_NAME": "/upload", "REQUEST_URI": "/upload", "DOCUMENT_URI": "/upload"}
    length = {"CONTENT_LENGTH": str(len(UPLOAD))}
    return PARAMS | path | length | {"REQUEST_METHOD": "POST"}


def fcgi_request(keep_conn: bool, body: bytes = b"", path: str = "/hello") -> bytes:
    client = FastCGIClientProtocol()
    request_id = client.begin_request(keep_conn=keep_conn)
    if body:
        params = upload_params()
    else:
        params = PARAMS | {"SCRIPT_NAME": path, "REQUEST_URI": path, "DOCUMENT_URI": path}
    return b"".join(
        (
            client.send_begin(request_id),
            client.send_params(request_id, params),
            client.send_params(request_id, {}),
            client.send_stdin(request_id, body),
            client.send_stdin(request_id, b"") if body else b"",
        )
    )


FCGI_END = HEADER.pack(VERSION_1, END_REQUEST, 1, 8, 0) + bytes(8)
HTTP_REQUEST = (
    b"GET /hello HTTP/1.1\r\nHost: localhost\r\nUser-Agent: profile\r\nAccept: */*\r\n\r\n"
)


# -- the client -----------------------------------------------------------------


class OneShot(asyncio.Protocol):
    """One request on a new connection; done when the server closes it."""

    def __init__(self, request: bytes, done: asyncio.Future[bytes]) -> None:
        self.request = request
        self.done = done
        self.received: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.received.append(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(b"".join(self.received))


class Kept(asyncio.Protocol):
    """Requests one after the other on one connection; a response is
    complete when what arrived ends with ``suffix``."""

    def __init__(self, suffix: bytes) -> None:
        self.suffix = suffix
        self.buffer = b""
        self.done: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.buffer.endswith(self.suffix) and self.done is not None:
            self.done.set_result(self.buffer)
            self.buffer = b""

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("the server closed the connection"))


Connect = Callable[[Callable[[], asyncio.Protocol]], object]


async def drive(
    scenario: str, paths: dict[str, str], port: int, count: int, seconds: float, concurrency: int
) -> tuple[int, bytes]:
    """Send ``count`` requests (or as many as fit in ``seconds``); returns how
    many were answered and the last response."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    remaining = count
    last = b""

    def connect(factory: Callable[[], asyncio.Protocol]):  # type: ignore[no-untyped-def]
        if scenario.startswith("fcgi"):
            return loop.create_unix_connection(factory, paths["fastcgi"])
        if scenario.startswith("uwsgi"):
            return loop.create_unix_connection(factory, paths["uwsgi"])
        return loop.create_connection(factory, "127.0.0.1", port)

    async def one_shot(request: bytes) -> int:
        nonlocal remaining, last
        done = 0
        while remaining > 0 and loop.time() < deadline:
            remaining -= 1
            future: asyncio.Future[bytes] = loop.create_future()
            await connect(lambda future=future: OneShot(request, future))
            last = await future
            done += 1
        return done

    async def kept(request: bytes, suffix: bytes) -> int:
        nonlocal remaining, last
        protocol = Kept(suffix)
        transport, _ = await connect(lambda: protocol)
        done = 0
        while remaining > 0 and loop.time() < deadline:
            remaining -= 1
            protocol.done = loop.create_future()
            transport.write(request)
            last = await protocol.done
            done += 1
        transport.close()
        return done

    if scenario == "fcgi-new":
        workers = [one_shot(fcgi_request(False)) for _ in range(concurrency)]
    elif scenario == "uwsgi-new":
        workers = [one_shot(uwsgi_request(PARAMS)) for _ in range(concurrency)]
    elif scenario == "fcgi-big":
        workers = [one_shot(fcgi_request(False, path="/big")) for _ in range(concurrency)]
    elif scenario == "fcgi-upload":
        workers = [one_shot(fcgi_request(False, UPLOAD)) for _ in range(concurrency)]
    elif scenario == "uwsgi-upload":
        workers = [one_shot(uwsgi_request(upload_params(), UPLOAD)) for _ in range(concurrency)]
    elif scenario == "fcgi-keep":
        workers = [kept(fcgi_request(True), FCGI_END) for _ in range(concurrency)]
    else:
        workers = [kept(HTTP_REQUEST, HELLO) for _ in range(concurrency)]
    answered = sum(await asyncio.gather(*workers))
    return answered, last


def run_client(*args: object) -> tuple[int, bytes]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(drive(*args))  # type: ignore[arg-type]
    return uvloop.run(drive(*args))  # type: ignore[arg-type,no-any-return]


def run_wrk(port: int, seconds: float, concurrency: int, cpu: int) -> int:
    """wrk for a fixed time (it cannot count requests); returns how many it sent."""
    output = subprocess.run(
        [
            "taskset",
            "-c",
            str(cpu),
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds:g}s",
            f"http://127.0.0.1:{port}/hello",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    match = re.search(r"(\d+) requests in", output)
    if match is None or "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk failed:\n{output}")
    return int(match.group(1))


# -- the server -----------------------------------------------------------------


def cpu_times(pid: int) -> tuple[float, float, int]:
    """User and system CPU seconds of the process, every thread, and its minor
    page faults (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) / CLOCK_TICK, int(fields[12]) / CLOCK_TICK, int(fields[7])


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of every live thread."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.endswith("ctxt_switches:\t" + line.rpartition("\t")[2]):
                        total += int(line.rpartition("\t")[2])
        except FileNotFoundError:
            pass
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(paths: dict[str, str], port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            for path in paths.values():
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.connect(path)
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start listening within 30s")


def start_server(
    src: Path, workdir: Path, port: int, cpu: int, extra: list[str], cprofile_out: Path | None
) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    shutil.copy(ROOT / "bench" / "app.py", workdir / "benchapp.py")
    paths = {"fastcgi": str(workdir / "fcgi.sock"), "uwsgi": str(workdir / "uwsgi.sock")}
    args = [
        "--no-master",
        "--fastcgi",
        f"unix:{paths['fastcgi']}",
        "--uwsgi",
        f"unix:{paths['uwsgi']}",
        "--http",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        *extra,
        "benchapp:app",
    ]
    if cprofile_out is None:
        command = [sys.executable, "-m", "dumbwaiter", *args]
    else:
        command = [sys.executable, "-c", CPROFILE_BOOT, str(cprofile_out), *args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(workdir), str(src))))
    process = subprocess.Popen(["taskset", "-c", str(cpu), *command], cwd=workdir, env=env)
    try:
        wait_ready(paths, port, process)
    except BaseException:
        stop_server(process)
        raise
    return process, paths


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- profiles -------------------------------------------------------------------


FRAME = re.compile(r" \((?:[^()]*/)?([^/():]+)(?::\d+)?\)$")


def print_pyspy(raw: Path, top: int) -> None:
    """Aggregate py-spy's collapsed stacks: samples per function, own and total."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        # "func (/path/to/file.py:LINE)" -> "func (file.py)": per function, not line
        frames = [FRAME.sub(r" (\1)", frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    print(f"  {samples} samples; own% (total%) function")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / samples:5.1f} ({100 * total[frame] / samples:5.1f})  {frame}")


def print_cprofile(out: Path, top: int, sort: str) -> None:
    import pstats

    stats = pstats.Stats(str(out))
    stats.strip_dirs().sort_stats(sort).print_stats(top)


# -- main -----------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    per_request: float  # server CPU µs per request
    system: float  # the share of it in the kernel
    switches: float  # context switches per request
    faults: float  # minor page faults per request
    client: float  # the client's CPU share of its core (1.0: it is the bottleneck)
    answered: int
    rate: float  # requests per second (wall clock)


def measure(
    scenario: str, pid: int, paths: dict[str, str], port: int, args: argparse.Namespace
) -> Run:
    """One run of ``scenario`` against the server ``pid``."""
    user, system, faults = cpu_times(pid)
    switches = context_switches(pid)
    started = time.monotonic()
    client = os.times()
    if scenario == "http-keep" and args.wrk:
        seconds = args.requests / 10000  # about the requests asked, at ~10k/s
        answered = run_wrk(port, min(seconds, args.seconds), args.concurrency, args.client_cpu)
    else:
        answered, last = run_client(
            scenario, paths, port, args.requests, args.seconds, args.concurrency
        )
        answers = {
            "fcgi-big": BIG[-64:],
            "fcgi-upload": UPLOAD_ANSWER,
            "uwsgi-upload": UPLOAD_ANSWER,
        }
        expected = answers.get(scenario, HELLO)
        if expected not in last:
            raise RuntimeError(f"{scenario}: unexpected response {last[:200]!r}")
    elapsed = time.monotonic() - started
    client_after = os.times()
    client_cpu = sum(client_after[:4]) - sum(client[:4])
    user_after, system_after, faults_after = cpu_times(pid)
    used = user_after - user + system_after - system
    count = max(answered, 1)
    return Run(
        1e6 * used / count,
        (system_after - system) / used if used else 0.0,
        (context_switches(pid) - switches) / count,
        (faults_after - faults) / count,
        client_cpu / elapsed,
        answered,
        answered / elapsed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument(
        "-s", "--scenario", action="append", choices=SCENARIOS, help="repeatable; default: all"
    )
    parser.add_argument("-n", "--requests", type=int, default=20000)
    parser.add_argument("-r", "--repeats", type=int, default=3)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0, help="bound on one run")
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument(
        "--src",
        type=lambda text: Path(text).resolve(),
        default=ROOT / "src",
        help="the dumbwaiter sources to serve with",
    )
    parser.add_argument("--wrk", action="store_true", help="http-keep with wrk")
    parser.add_argument("--profile", choices=("py-spy", "cprofile"))
    parser.add_argument("--keep", type=Path, help="py-spy: keep its stacks in this directory")
    parser.add_argument("--native", action="store_true", help="py-spy: C frames too")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="cprofile: pstats sort key (ncalls ...)")
    parser.add_argument("server_args", nargs="*", help="more dumbwaiter options (after --)")
    args = parser.parse_args()
    scenarios = args.scenario or list(SCENARIOS)
    os.sched_setaffinity(0, {args.client_cpu})
    with tempfile.TemporaryDirectory(prefix="dw-profile-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        cprofile_out = workdir / "cprofile.out" if args.profile == "cprofile" else None
        process, paths = start_server(
            args.src, workdir, port, args.server_cpu, args.server_args, cprofile_out
        )
        try:
            print(
                f"server pid {process.pid} on CPU {args.server_cpu}, client on CPU "
                f"{args.client_cpu}, {args.requests} requests x {args.repeats}, "
                f"concurrency {args.concurrency}"
            )
            for scenario in scenarios:
                run_client(scenario, paths, port, args.warmup, args.seconds, args.concurrency)
                if args.profile == "py-spy":
                    raw = (args.keep or workdir) / f"{scenario}.txt"
                    spy = subprocess.Popen(
                        [
                            shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                            "record",
                            "--pid",
                            str(process.pid),
                            "--format",
                            "raw",
                            "--rate",
                            "500",
                            "--output",
                            str(raw),
                            # --native must stop the process to unwind its C stacks
                            *(["--native"] if args.native else ["--nonblocking"]),
                        ],
                        stdout=subprocess.DEVNULL,
                    )
                    time.sleep(1.0)
                figures = [
                    measure(scenario, process.pid, paths, port, args) for _ in range(args.repeats)
                ]
                if args.profile == "py-spy":
                    spy.send_signal(signal.SIGINT)
                    spy.wait(timeout=30)
                per_request = [run.per_request for run in figures]
                print(
                    f"{scenario:10} {statistics.median(per_request):6.1f} µs/req  (min "
                    f"{min(per_request):.1f}, max {max(per_request):.1f}; kernel "
                    f"{100 * statistics.median(run.system for run in figures):.0f}%, "
                    f"{statistics.median(run.switches for run in figures):.2f} switches/req, "
                    f"{statistics.median(run.faults for run in figures):.1f} faults/req, "
                    f"{statistics.median(run.rate for run in figures):.0f} req/s, client "
                    f"{100 * statistics.median(run.client for run in figures):.0f}%, "
                    f">= {min(run.answered for run in figures)} req/run)",
                    flush=True,
                )
                if args.profile == "py-spy":
                    print_pyspy(raw, args.top)
        finally:
            stop_server(process)
        if cprofile_out is not None:
            print_cprofile(cprofile_out, args.top, args.sort)


if __name__ == "__main__":
    main()
