"""Units of the master that start no process: when a worker earns SIGABRT
and SIGKILL, the arbiter's signal handlers, the signal queue.  The master
and its workers, with real processes, are tested in
tests/functional/test_master.py."""

from __future__ import annotations

import os
import selectors
import signal

from dumbwaiter.config import Config
from dumbwaiter.process.arbiter import Arbiter
from dumbwaiter.process.child import (
    ABORT_GRACE_SECONDS,
    BOOT_SECONDS,
    HEARTBEAT_SECONDS,
    MASTER_SIGNALS,
    Setup,
    Worker,
)
from dumbwaiter.process.signals import SignalQueue


def test_a_worker_earns_sigabrt_then_sigkill() -> None:
    booting = Worker(pid=1, fd=-1, generation=1, born=100.0)
    assert booting.due(100.0 + BOOT_SECONDS) is None
    assert booting.due(100.5 + BOOT_SECONDS) == (signal.SIGABRT, "not ready after 60s")

    serving = Worker(pid=2, fd=-1, generation=1, born=100.0, ready=True, last_beat=200.0)
    assert serving.due(200.0 + HEARTBEAT_SECONDS) is None
    why = "silent for 30s (blocked event loop)"
    assert serving.due(200.5 + HEARTBEAT_SECONDS) == (signal.SIGABRT, why)

    stopping = Worker(pid=3, fd=-1, generation=1, born=100.0, ready=True, last_beat=200.0)
    stopping.stop_signal, stopping.harder_at = signal.SIGTERM, 235.0  # asked at 200
    assert stopping.stop_sent and stopping.state == "stopping"
    assert stopping.due(234.0) is None  # no heartbeat check once asked to stop
    assert stopping.due(235.0) == (signal.SIGABRT, "did not stop in time")
    stopping.stop_signal, stopping.harder_at = signal.SIGABRT, 235.0 + ABORT_GRACE_SECONDS
    assert stopping.due(235.0) is None
    assert stopping.due(235.0 + ABORT_GRACE_SECONDS) == (signal.SIGKILL, "outlived SIGABRT")
    stopping.stop_signal = signal.SIGKILL
    assert stopping.due(10_000.0) is None  # nothing harder: only reaping is left


def stub_app(environ: object, start_response: object) -> list[bytes]:
    return []


def test_every_master_signal_has_its_handler() -> None:
    arbiter = Arbiter(Setup(None, lambda: stub_app, Config().validate(), [], None, os.getpid()))
    try:
        assert set(arbiter.handlers) == set(MASTER_SIGNALS)
        assert arbiter.handlers[signal.SIGTTIN] == arbiter.handle_ttin
        arbiter.handlers[signal.SIGTTIN]()
        assert arbiter.target == 2
    finally:
        arbiter.selector.close()
        arbiter.signals.close()


def test_signal_handlers_only_enqueue_and_wake_the_loop() -> None:
    selector = selectors.DefaultSelector()
    queue = SignalQueue(selector, (signal.SIGUSR1, signal.SIGUSR2))
    before = signal.getsignal(signal.SIGUSR1)
    queue.install()
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGUSR1)
        [(key, _)] = selector.select(5)
        assert key.data is queue
        queue.clear_wakeup()
        assert list(queue.take()) == [signal.SIGUSR2, signal.SIGUSR1]
        assert list(queue.take()) == []
        assert selector.select(0) == []
    finally:
        queue.restore()
        queue.close()
        selector.close()
    assert signal.getsignal(signal.SIGUSR1) == before
