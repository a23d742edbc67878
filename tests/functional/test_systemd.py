"""systemd socket activation against real listening sockets and processes.

Activation runs in a child started the way systemd starts a service: the
listening sockets moved to fds 3, 4, ..., then ``LISTEN_PID`` set to the
child's own pid right before exec (``ACTIVATE`` below does both); then
``activated_socket()`` resolves names to real listening sockets.  The
environment's parsing and sd_notify, in-process, are in
tests/unit/test_systemd.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from dumbwaiter.server.systemd import ActivationError, activated_socket
from serving import short_tmpdir

# argv: the fds to pass, in order, then "--", then the command.  Moves them
# above the range first, so that a source fd that is also a target survives.
ACTIVATE = """
import fcntl, os, sys
split = sys.argv.index("--")
sources, command = [int(a) for a in sys.argv[1:split]], sys.argv[split + 1:]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in sources]
for target, fd in enumerate(high, 3):
    os.dup2(fd, target)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(command[0], command)
"""


# The activated service: takes the sockets, answers one connection on each
# with its name, and reports what it saw as JSON on stdout.
SERVICE = """
import fcntl, json, os, sys
from dumbwaiter.server import systemd
unset = sys.argv[1] == "unset"
fds = systemd.listen_fds(unset_environment=unset)
report = {
    "names": [name for name, _ in fds],
    "fds": [sock.fileno() for _, sock in fds],
    "cloexec": [bool(fcntl.fcntl(s.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC) for _, s in fds],
    "env": {k: os.environ.get(k) for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")},
}
again = systemd.listen_fds(unset_environment=False)
report["again"] = len(again)
for _, sock in again:
    sock.detach()  # the same fds: leave them to the first wrappers
if len(sys.argv) > 2:
    report["resolved"] = systemd.activated_socket(sys.argv[2], fds).fileno()
for name, sock in fds:
    conn, _ = sock.accept()
    conn.sendall(name.encode())
    conn.close()
print(json.dumps(report))
"""


@pytest.fixture
def listeners() -> Iterator[list[tuple[str, socket.socket]]]:
    """A listening unix socket and a listening TCP socket, with their addresses."""
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = os.path.join(short_tmpdir(), "a.sock")
    unix.bind(path)
    unix.listen()
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    yield [(path, unix), (f"127.0.0.1:{tcp.getsockname()[1]}", tcp)]
    unix.close()
    tcp.close()
    os.unlink(path)
    os.rmdir(os.path.dirname(path))


def activate(
    listeners: list[tuple[str, socket.socket]], env: dict[str, str], *args: str
) -> tuple[dict[str, object], list[str]]:
    """Run SERVICE socket-activated; connect to each listener; its report and answers."""
    fds = [sock.fileno() for _, sock in listeners]
    command = [sys.executable, "-c", SERVICE, *(args or ("unset",))]
    child = subprocess.Popen(
        [sys.executable, "-c", ACTIVATE, *map(str, fds), "--", *command],
        pass_fds=fds,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    answers = []
    try:
        for address, _ in listeners:
            answers.append(_ask(address))
        out, err = child.communicate(timeout=10)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err.decode()
    report: dict[str, object] = json.loads(out)
    return report, answers


def _ask(address: str) -> str:
    if address.startswith("/"):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(10)
        conn.connect(address)
    else:
        host, _, port = address.rpartition(":")
        conn = socket.create_connection((host, int(port)), timeout=10)
    with conn:
        return conn.recv(100).decode()


def test_named_sockets_are_taken_and_served(listeners: list[tuple[str, socket.socket]]) -> None:
    report, answers = activate(
        listeners, {"LISTEN_FDS": "2", "LISTEN_FDNAMES": "fastcgi:http"}, "unset", "systemd:http"
    )
    assert report["names"] == ["fastcgi", "http"]
    assert report["fds"] == [3, 4]
    assert report["cloexec"] == [True, True]
    assert report["env"] == {"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}
    assert report["again"] == 0  # the variables are gone: nothing a second time
    assert report["resolved"] == 4
    assert answers == ["fastcgi", "http"]


def test_without_names_every_fd_is_unknown(listeners: list[tuple[str, socket.socket]]) -> None:
    report, answers = activate(listeners, {"LISTEN_FDS": "2"})
    assert report["names"] == ["unknown", "unknown"]
    assert answers == ["unknown", "unknown"]


def test_environment_kept_when_asked(listeners: list[tuple[str, socket.socket]]) -> None:
    report, _ = activate(listeners, {"LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}, "keep")
    env = report["env"]
    assert isinstance(env, dict)
    assert env["LISTEN_FDS"] == "2" and env["LISTEN_FDNAMES"] == "a:b"
    assert env["LISTEN_PID"] is not None
    assert report["again"] == 2


def test_activated_socket_by_name_and_number(
    listeners: list[tuple[str, socket.socket]],
) -> None:
    (_, unix), (_, tcp) = listeners
    fds = [("fastcgi", unix), ("http", tcp)]
    assert activated_socket("systemd:http", fds) is tcp
    assert activated_socket("systemd:fastcgi", fds) is unix
    assert activated_socket(f"fd:{tcp.fileno()}", fds) is tcp  # one owner per fd
    assert activated_socket("fd:999", fds) is None  # not activated: sockets.py wraps it
    assert activated_socket("unix:/run/x.sock", fds) is None
    assert activated_socket("127.0.0.1:9000", fds) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("systemd:api", "systemd:api: systemd passed no socket named 'api' (names: fastcgi, idle,"),
        ("systemd:web", "systemd:web: 2 sockets are named 'web'"),
        ("systemd:", "systemd:: write systemd:NAME"),
        ("systemd:idle", "is not a listening socket"),
    ],
)
def test_activated_socket_errors(
    listeners: list[tuple[str, socket.socket]], spec: str, message: str
) -> None:
    (_, unix), (_, tcp) = listeners
    with socket.socket() as idle:
        fds = [("fastcgi", unix), ("web", tcp), ("web", unix), ("idle", idle)]
        with pytest.raises(ActivationError) as caught:
            activated_socket(spec, fds)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
