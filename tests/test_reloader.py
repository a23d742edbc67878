"""--reload's watcher, on real files in a temporary folder: polling (a short
interval), and the watchfiles helper process when watchfiles is installed.
The server end to end is in test_reload_e2e.py."""

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

from dumbwaiter.process.reloader import SourceWatcher, default_roots

INTERVAL = 0.05


def gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def reports(watcher: SourceWatcher, within: float = 2.0, quiet: float = 0.15) -> list[list[str]]:
    """Every non-empty ``changes()`` from now until ``quiet`` seconds after the
    first one (or ``within`` seconds without any)."""
    found: list[list[str]] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        changed = watcher.changes()
        if changed:
            found.append(changed)
            deadline = min(deadline, time.monotonic() + quiet)
        time.sleep(0.01)
    return found


@pytest.fixture
def tree(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "app.py").write_text("VERSION = 1\n")
    (tmp_path / "old.py").write_text("gone = True\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "views.py").write_text("")
    return tmp_path


@pytest.fixture
def polled(tree: pathlib.Path) -> Iterator[SourceWatcher]:
    with SourceWatcher([str(tree)], interval=INTERVAL, poll=True) as watcher:
        assert watcher.fileno() is None and watcher.pid is None
        yield watcher


def test_polling_sees_a_modified_a_new_and_a_removed_file(
    tree: pathlib.Path, polled: SourceWatcher
) -> None:
    (tree / "app.py").write_text("VERSION = 22\n")
    (tree / "pkg" / "new.py").write_text("")
    (tree / "old.py").unlink()
    expected = sorted(str(tree / name) for name in ("app.py", "pkg/new.py", "old.py"))
    assert reports(polled) == [expected]
    assert reports(polled, within=0.2) == []


def test_polling_ignores_caches_hidden_files_and_other_names(
    tree: pathlib.Path, polled: SourceWatcher
) -> None:
    for folder in ("__pycache__", ".git", "venv", ".venv", "node_modules", "lib/site-packages"):
        (tree / folder).mkdir(parents=True)
        (tree / folder / "mod.py").write_text("")
    (tree / "notes.txt").write_text("")
    (tree / "app.pyc").write_text("")
    (tree / ".#app.py").write_text("")  # an editor's lock file
    assert reports(polled, within=0.3) == []
    (tree / "pkg" / "views.py").write_text("changed = True\n")
    assert reports(polled) == [[str(tree / "pkg" / "views.py")]]


def test_polling_reports_a_burst_once(tree: pathlib.Path) -> None:
    names = [f"m{i}.py" for i in range(5)]
    seen: list[list[str]] = []
    with SourceWatcher([str(tree)], interval=0.2, poll=True) as watcher:
        time.sleep(0.15)
        for name in names:  # likely across a scan: one file before it, the others after
            (tree / name).write_text("x = 1\n")
            if changed := watcher.changes():
                seen.append(changed)
            time.sleep(0.02)
        seen += reports(watcher)
    assert seen == [sorted(str(tree / name) for name in names)]


def test_polling_watches_a_bounded_number_of_files(
    tree: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    with SourceWatcher([str(tree)], interval=INTERVAL, max_files=2, poll=True) as watcher:
        # the first two in name order, depth first: app.py and old.py
        (tree / "pkg" / "views.py").write_text("unwatched = True\n")
        assert reports(watcher, within=0.3) == []
        (tree / "app.py").write_text("VERSION = 2\n")
        assert reports(watcher) == [[str(tree / "app.py")]]
    assert sum("more than 2 source files" in r.getMessage() for r in caplog.records) == 1


def test_the_roots_are_the_current_directory() -> None:
    assert default_roots("app:application") == [os.getcwd()]


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
