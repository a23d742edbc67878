"""Pid file, privilege drop and working directory, in-process: what needs no
other process (a live one to refuse, a forked child to drop privileges in)
and changes nothing that cannot be undone.  The rest is in
tests/functional/test_process.py.
"""

from __future__ import annotations

import os
import pathlib
import pwd

import pytest

from dumbwaiter.process.chores import (
    PidFile,
    ProcessError,
    change_directory,
    drop_privileges,
    write_pidfile,
)

# pid files ---------------------------------------------------------------------


def test_written_and_removed(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dw.pid"
    with write_pidfile(str(path)) as pidfile:
        assert isinstance(pidfile, PidFile)
        assert path.read_text() == f"{os.getpid()}\n"
        assert path.stat().st_mode & 0o777 == 0o644
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_our_own_pid_is_rewritten(tmp_path: pathlib.Path) -> None:
    # A master that re-executed itself in place finds its own pid there.
    path = tmp_path / "dw.pid"
    path.write_text(f"{os.getpid()}\n")
    with write_pidfile(str(path)):
        assert path.read_text() == f"{os.getpid()}\n"


def test_unwritable_location(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ProcessError, match=r"^pid file .*/missing/dw.pid: No such file"):
        write_pidfile(str(tmp_path / "missing" / "dw.pid"))


# privileges --------------------------------------------------------------------


def test_numeric_user_without_entry_needs_a_group() -> None:
    known = {entry.pw_uid for entry in pwd.getpwall()}
    unused = next(uid for uid in range(40000, 60000) if uid not in known)
    with pytest.raises(ProcessError, match=f"^user {unused} has no passwd entry: give a group"):
        drop_privileges(str(unused), None)


@pytest.mark.parametrize(
    ("user", "group", "message"),
    [
        ("no-such-user-dw", None, "unknown user 'no-such-user-dw'"),
        ("nobody", "no-such-group-dw", "unknown group 'no-such-group-dw'"),
        (None, "no-such-group-dw", "unknown group 'no-such-group-dw'"),
    ],
)
def test_unknown_names(user: str | None, group: str | None, message: str) -> None:
    # Names are resolved before anything changes: safe to run in-process.
    with pytest.raises(ProcessError) as caught:
        drop_privileges(user, group)
    assert str(caught.value) == message


def test_nothing_asked_nothing_done() -> None:
    drop_privileges(None, None)


# working directory ---------------------------------------------------------------


def test_change_directory(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(os.getcwd())  # restored after the test
    change_directory(str(tmp_path))
    assert os.getcwd() == str(tmp_path)


def test_change_directory_error(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ProcessError) as caught:
        change_directory(str(missing))
    assert str(caught.value) == f"cannot change directory to {missing}: No such file or directory"
