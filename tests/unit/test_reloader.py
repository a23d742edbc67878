"""--reload's watcher, on real files in a temporary folder: polling (a short
interval), in-process.  The watchfiles helper process is tested in
tests/functional/test_reloader.py, the server end to end in
tests/functional/test_reload_e2e.py."""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Iterator

import pytest

from dumbwaiter.process.reloader import SourceWatcher, default_roots
from watching import INTERVAL, reports


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
