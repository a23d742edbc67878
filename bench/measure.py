"""What one point measures: processes, CPU time, memory, wrk (or the WebSocket
echo client, bench/ws_echo.py), the accept queue.

Everything comes from /proc and from the tools' own output; nothing here starts
a server.  CPU time is in seconds, memory in bytes, latency in milliseconds.

- A *process tree* is every process in one session: each server is started
  with ``start_new_session=True``, so its session id is its pid, and whatever it
  forks (a master's workers, granian's worker) stays in it.
- *Foreign load* on a core is its busy time (/proc/stat) minus the CPU time our
  own processes pinned there used in the same window.  It is tick-based: a few
  percent of noise either way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1024 * 1024


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 is index 0)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def session_pids(sid: int) -> list[int]:
    """Every live process whose session id is ``sid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry))
    return pids


def tree_cpu(sid: int) -> float:
    """User + system CPU seconds of the session's live processes (all threads)."""
    total = 0
    for pid in session_pids(sid):
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICK


def tree_rss(sid: int) -> tuple[int, int]:
    """(sum, largest) resident set size over the session's processes, bytes."""
    sizes = []
    for pid in session_pids(sid):
        try:
            with open(f"/proc/{pid}/statm") as f:
                sizes.append(int(f.read().split()[1]) * PAGE)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return sum(sizes), max(sizes, default=0)


def core_busy() -> dict[int, float]:
    """Busy seconds per CPU since boot: everything but idle and iowait.

    Interrupt time counts: without CONFIG_IRQ_TIME_ACCOUNTING the kernel also
    charges softirq work (most of loopback networking) to the task it
    interrupted, so our processes' CPU times include it too.
    """
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, values[:8])
                busy[int(name[3:])] = (user + nice + system + irq + softirq + steal) / CLOCK_TICK
    return busy


def own_cpu() -> float:
    """CPU seconds of this (harness) process."""
    t = os.times()
    return t.user + t.system


def children_cpu() -> float:
    """CPU seconds of this process's reaped children (wrk, once it has exited)."""
    t = os.times()
    return t.children_user + t.children_system


def accept_queue(sock_path: str) -> int | None:
    """Connections waiting in the accept queue of a listening unix socket."""
    out = subprocess.run(
        ["ss", "-xlnH"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if sock_path in fields:
            # u_str LISTEN Recv-Q Send-Q path inode * 0  (Netid may be absent)
            i = fields.index("LISTEN")
            return int(fields[i + 1])
    return None


def wait_queue_empty(sock_path: str, limit: float = 10.0) -> bool:
    """Wait (at most ``limit`` s) until nothing waits to be accepted."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not accept_queue(sock_path):
            return True
        time.sleep(0.1)
    return False


# --- wrk ---------------------------------------------------------------------------

# wrk calls done() once at the end; printing JSON avoids parsing its prose.
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, '
    .. '"read": %d, "write": %d, "status": %d, "timeout": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def wrk_script(path: Path, method: str = "GET", body_size: int = 0) -> Path:
    """Write a wrk Lua script (request method/body + the JSON summary)."""
    lines = [f'wrk.method = "{method}"']
    if body_size:
        lines.append(f'wrk.body = string.rep("x", {body_size})')
        lines.append('wrk.headers["Content-Type"] = "application/octet-stream"')
    path.write_text("\n".join(lines) + "\n" + WRK_DONE)
    return path


@dataclasses.dataclass
class WrkResult:
    requests: int
    seconds: float
    bytes: int
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    wrk_cpu: float  # CPU seconds wrk itself used

    @property
    def ok_requests(self) -> int:
        return self.requests - self.non_2xx


def wrk_argv(url: str, connections: int, seconds: float, script: Path) -> list[str]:
    """wrk pinned to CPU 0, one thread; its durations are whole seconds."""
    return [
        "taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "--timeout", "5s", "--latency", "-s", str(script), url,
    ]  # fmt: skip


def run_wrk(
    url: str,
    connections: int,
    seconds: float,
    script: Path,
    sample: dict[str, int] | None = None,
    sample_sid: int | None = None,
) -> WrkResult:
    """Run wrk; meanwhile sample the RSS of session ``sample_sid`` into ``sample``.

    ``sample`` gets ``peak_sum`` and ``peak_max`` (bytes).  wrk is killed if it
    overruns its duration by 30 s.
    """
    output, cpu = run_sampled(
        wrk_argv(url, connections, seconds, script), seconds, sample, sample_sid
    )
    match = re.search(r"^BENCH-JSON (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk gave no summary: {output[-500:]!r}")
    s = json.loads(match.group(1))
    return WrkResult(
        requests=s["requests"],
        seconds=s["duration_us"] / 1e6,
        bytes=s["bytes"],
        non_2xx=s["status"],
        socket_errors=s["connect"] + s["read"] + s["write"] + s["timeout"],
        p50_ms=s["p50_us"] / 1000,
        p90_ms=s["p90_us"] / 1000,
        p99_ms=s["p99_us"] / 1000,
        max_ms=s["max_us"] / 1000,
        wrk_cpu=cpu,
    )


def run_sampled(
    argv: list[str],
    seconds: float,
    sample: dict[str, int] | None = None,
    sample_sid: int | None = None,
) -> tuple[str, float]:
    """Run a load generator that stops by itself after ``seconds``; (its output,
    its CPU seconds).  Meanwhile the RSS of session ``sample_sid`` is sampled
    into ``sample``; the generator is killed if it overruns by 30 s."""
    cpu_before = children_cpu()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + seconds + 30
    while proc.poll() is None:
        if sample is not None and sample_sid is not None:
            total, largest = tree_rss(sample_sid)
            sample["peak_sum"] = max(sample.get("peak_sum", 0), total)
            sample["peak_max"] = max(sample.get("peak_max", 0), largest)
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.25)
    output = proc.communicate()[0]
    return output, children_cpu() - cpu_before


# --- the WebSocket echo client (bench/ws_echo.py) -----------------------------------

#: The client runs on this repo's .venv (uvloop; plain asyncio without it).
WS_CLIENT = [str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"),
             str(Path(__file__).resolve().parent / "ws_echo.py")]  # fmt: skip


def ws_echo_argv(port: int, path: str, connections: int, seconds: float, size: int) -> list[str]:
    """The client pinned to CPU 0, like wrk."""
    return [
        "taskset", "-c", "0", *WS_CLIENT, "--port", str(port), "--path", path,
        "--connections", str(connections), "--seconds", str(seconds), "--size", str(size),
    ]  # fmt: skip


def run_ws_echo(
    port: int,
    path: str,
    connections: int,
    seconds: float,
    size: int,
    sample: dict[str, int] | None = None,
    sample_sid: int | None = None,
) -> dict[str, Any]:
    """Run the echo client; its summary (bench/ws_echo.py) with ``client_cpu``,
    the CPU seconds of the whole client process (start-up and handshakes too)."""
    argv = ws_echo_argv(port, path, connections, seconds, size)
    output, cpu = run_sampled(argv, seconds, sample, sample_sid)
    match = re.search(r"^BENCH-JSON (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"ws_echo gave no summary: {output[-500:]!r}")
    summary: dict[str, Any] = json.loads(match.group(1))
    summary["client_cpu"] = cpu
    return summary
