"""Run a real dumbwaiter process for a test, and talk to it.

``Server`` starts ``python -m dumbwaiter`` in its own process group, waits
until every listener accepts, and stops it by its pid (SIGTERM, then SIGKILL
after a bound).  Its stderr goes to a file the test can read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

TESTS = pathlib.Path(__file__).parent
START_SECONDS = 15.0


#: Ports for listeners, below the kernel's ephemeral range (32768 and up on
#: Linux): a port the kernel hands out for 0 can be taken a moment later as
#: the source port of one of the tests' own connections, and a front server
#: binding it fails ("address already in use").
LISTEN_PORTS = (20000, 32000)


def free_port() -> int:
    """A TCP port nothing listens on or connects from now, outside the range
    the kernel picks source ports from."""
    for _ in range(200):
        port = random.randint(*LISTEN_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            with socket.socket(socket.AF_INET6) as s6:  # (fronts may bind [::] too)
                try:
                    s6.bind(("::1", port))
                except OSError as exc:
                    if exc.errno != errno.EADDRNOTAVAIL:  # (no IPv6 here: fine)
                        continue
            return port
    raise RuntimeError(f"no free port between {LISTEN_PORTS[0]} and {LISTEN_PORTS[1]}")


def short_tmpdir() -> str:
    """A private directory with a short path (unix socket paths are limited)."""
    return tempfile.mkdtemp(prefix="dw", dir="/tmp")


def connect(address: str, timeout: float = 10.0) -> socket.socket:
    """Connect to ``unix:/path`` or ``HOST:PORT``."""
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address[5:])
        return sock
    host, _, port = address.rpartition(":")
    return socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout)


def children(pid: int) -> list[int]:
    """A process's children (Linux /proc), [] once it is gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Running, and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):  # gone, even between open() and read()
        return False


def until(check: Callable[[], bool], seconds: float = 15.0, step: float = 0.05) -> bool:
    """Poll ``check`` until it is true or ``seconds`` passed; its last answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


def parent_of(pid: int) -> int:
    """The parent of a live process (Linux /proc); 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


class Server:
    """One dumbwaiter process for a test (use as a context manager)."""

    def __init__(
        self,
        args: list[str],
        app: str | None = "server_apps:app",
        *,
        env: dict[str, str] | None = None,
        workdir: str | None = None,
        stdin: int | None = None,
        wait: list[str] | None = None,
    ) -> None:
        self.dir = workdir or short_tmpdir()
        self.log_path = os.path.join(self.dir, "server.log")
        self.args = args
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join([str(TESTS), full_env.get("PYTHONPATH", "")])
        full_env["DW_TEST_DIR"] = self.dir
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dumbwaiter", *args, *([app] if app else [])],
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
            cwd=self.dir,
        )
        self.wait_ready(wait if wait is not None else self.listeners())

    def listeners(self) -> list[str]:
        found = []
        for flag, value in zip(self.args, self.args[1:], strict=False):
            if flag in ("--fastcgi", "--http", "--scgi", "--uwsgi"):
                found.append(value if not value.startswith(":") else "127.0.0.1" + value)
        return found

    def wait_ready(self, addresses: list[str]) -> None:
        deadline = time.monotonic() + START_SECONDS
        for address in addresses:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"dumbwaiter exited {self.proc.returncode}:\n{self.log()}")
                try:
                    connect(address, timeout=1.0).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        message = f"dumbwaiter not ready on {address}:\n{self.log()}"
                        raise RuntimeError(message) from None
                    time.sleep(0.02)

    def log(self) -> str:
        return pathlib.Path(self.log_path).read_text(errors="replace")

    def path(self, name: str) -> pathlib.Path:
        return pathlib.Path(self.dir) / name

    def release(self, name: str) -> None:
        self.path(name).write_text("go\n")

    def calls(self) -> list[str]:
        try:
            return self.path("calls").read_text().splitlines()
        except FileNotFoundError:
            return []

    def serves(self, pid: int) -> bool:
        """Whether ``pid`` (an app's ``os.getpid()``) is this server: its
        process, or one of its master's workers."""
        return pid == self.proc.pid or parent_of(pid) == self.proc.pid

    def send_signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(args: list[str], app: str = "server_apps:app", **kw: object) -> Iterator[Server]:
    server = Server(args, app, **kw)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


def run_cli(
    args: list[str],
    timeout: float = 20.0,
    env_extra: dict[str, str] | None = None,
    **kw: object,
) -> subprocess.CompletedProcess[str]:
    """Run the command line to completion (for start-up errors)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "dumbwaiter", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        **kw,  # type: ignore[call-overload]
    )
