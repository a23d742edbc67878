"""--reload's watcher with the watchfiles helper process (when watchfiles is
installed), on real files in a temporary folder.  Polling, in-process, is in
tests/unit/test_reloader.py; the server end to end in test_reload_e2e.py."""

from __future__ import annotations

import os
import pathlib
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from dumbwaiter.process.reloader import SourceWatcher
from watching import INTERVAL, reports


def gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


# -- with watchfiles ----------------------------------------------------------
@pytest.fixture
def helped(tree: pathlib.Path) -> Iterator[SourceWatcher]:
    pytest.importorskip("watchfiles")
    with SourceWatcher([str(tree)], interval=INTERVAL) as watcher:
        assert watcher.pid is not None
        yield watcher


def test_watchfiles_makes_the_descriptor_readable_on_a_change(
    tree: pathlib.Path, helped: SourceWatcher
) -> None:
    fd = helped.fileno()
    assert fd is not None
    assert helped.changes() == []
    (tree / "__pycache__").mkdir()
    (tree / "__pycache__" / "app.py").write_text("")
    (tree / "notes.txt").write_text("")
    (tree / "app.py").write_text("VERSION = 2\n")
    (tree / "pkg" / "new.py").write_text("")
    (tree / "old.py").unlink()
    started = time.monotonic()
    assert select.select([fd], [], [], 2.0)[0] == [fd]
    assert time.monotonic() - started < 2.0
    expected = sorted(str(tree / name) for name in ("app.py", "pkg/new.py", "old.py"))
    assert reports(helped) == [expected]


def test_close_ends_the_helper(helped: SourceWatcher) -> None:
    pid = helped.pid
    assert pid is not None and not gone(pid)
    helped.close()
    assert gone(pid)
    assert helped.fileno() is None and helped.changes() == []
    helped.close()  # again: nothing


def test_the_helper_ends_with_its_parent(tree: pathlib.Path) -> None:
    pytest.importorskip("watchfiles")
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from dumbwaiter.process.reloader import SourceWatcher
                watcher = SourceWatcher([{str(tree)!r}])
                print(watcher.pid, flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    try:
        helper = int(parent.stdout.readline())
    finally:
        parent.send_signal(signal.SIGKILL)  # no chance to close() the watcher
        parent.wait()
        parent.stdout.close()
    deadline = time.monotonic() + 2.0
    while not gone(helper) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone(helper)


def test_a_watcher_falls_back_to_polling_when_its_helper_dies(
    tree: pathlib.Path, helped: SourceWatcher
) -> None:
    pid = helped.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    fd = helped.fileno()
    assert fd is not None
    assert select.select([fd], [], [], 2.0)[0] == [fd]  # EOF
    assert helped.changes() == []
    assert helped.fileno() is None and helped.pid is None
    (tree / "app.py").write_text("VERSION = 3\n")
    assert reports(helped, within=3.0) == [[str(tree / "app.py")]]
