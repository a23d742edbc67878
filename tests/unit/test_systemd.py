"""systemd socket activation's environment (LISTEN_PID, LISTEN_FDS,
LISTEN_FDNAMES) and sd_notify, in-process: the service manager's end is a
datagram socket the test reads itself.  Activation of real listening sockets
in a child process is tested in tests/functional/test_systemd.py.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from dumbwaiter.server import systemd
from dumbwaiter.server.systemd import ActivationError, activated_socket, listen_fds
from serving import short_tmpdir


def test_variables_for_another_process_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # Our parent's pid: what a child sees when it inherits its parent's activation.
    monkeypatch.setenv("LISTEN_PID", str(os.getppid()))
    monkeypatch.setenv("LISTEN_FDS", "2")
    assert listen_fds() == []
    assert "LISTEN_PID" not in os.environ and "LISTEN_FDS" not in os.environ


def test_not_activated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LISTEN_PID", raising=False)
    assert listen_fds() == []


@pytest.mark.parametrize(
    ("pid", "fds", "names", "message"),
    [
        ("me", "1", None, "LISTEN_PID='me' is not a number"),
        ("self", "two", None, "LISTEN_FDS='two' is not a number"),
        ("self", "-1", None, "LISTEN_FDS='-1' is not a number"),
        ("self", "2", "one", "LISTEN_FDNAMES='one' has 1 names for LISTEN_FDS=2"),
        ("self", "1", "a:b", "LISTEN_FDNAMES='a:b' has 2 names for LISTEN_FDS=1"),
    ],
)
def test_malformed_variables(
    monkeypatch: pytest.MonkeyPatch, pid: str, fds: str, names: str | None, message: str
) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()) if pid == "self" else pid)
    monkeypatch.setenv("LISTEN_FDS", fds)
    if names is not None:
        monkeypatch.setenv("LISTEN_FDNAMES", names)
    with pytest.raises(ActivationError) as caught:
        listen_fds()
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "LISTEN_PID" not in os.environ  # unset even on failure, as sd_listen_fds does


def test_activated_socket_without_activation() -> None:
    with pytest.raises(ActivationError, match="not socket-activated"):
        activated_socket("systemd:web", [])


# sd_notify -------------------------------------------------------------------


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket playing the service manager, named by NOTIFY_SOCKET."""
    directory = short_tmpdir()
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()
    os.unlink(path)
    os.rmdir(directory)


def test_notify_messages(manager: socket.socket) -> None:
    assert systemd.ready("serving on fd:3")
    assert manager.recv(4096) == b"READY=1\nSTATUS=serving on fd:3"
    assert systemd.ready()
    assert manager.recv(4096) == b"READY=1"
    assert systemd.stopping()
    assert manager.recv(4096) == b"STOPPING=1"
    assert systemd.status("4 workers\nidle")
    assert manager.recv(4096) == b"STATUS=4 workers idle"
    assert systemd.mainpid(4321)
    assert manager.recv(4096) == b"MAINPID=4321"
    assert systemd.notify("WATCHDOG=1")
    assert manager.recv(4096) == b"WATCHDOG=1"


def test_reloading_carries_monotonic_time(manager: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert systemd.reloading("reloading")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = manager.recv(4096).decode().split("\n")
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=")
    assert before <= int(lines[1].partition("=")[2]) <= after
    assert lines[2:] == ["STATUS=reloading"]


def test_notify_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"dumbwaiter-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.ready()
        assert sock.recv(4096) == b"READY=1"


def test_notify_without_manager_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.ready() is False


@pytest.mark.parametrize("target", ["/nonexistent/notify", "relative/notify", "vsock:2:999"])
def test_notify_send_failure_does_not_raise(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", target)
    assert systemd.stopping() is False
