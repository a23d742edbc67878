"""Pid file and privilege drop, with real processes: a live process whose
pid file is refused or taken over, a dead one's replaced, a forked worker.

Privilege changes cannot be undone, so they run in a forked child that
reports what it became through a pipe and leaves with ``os._exit``.  What
needs no other process (and the working directory) is in
tests/unit/test_process.py.
"""

from __future__ import annotations

import grp
import json
import os
import pathlib
import pwd
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from dumbwaiter.process.chores import (
    ProcessError,
    drop_privileges,
    write_pidfile,
)

# pid files ---------------------------------------------------------------------


@pytest.fixture
def sleeper() -> Iterator[int]:
    """The pid of a live process that is not us."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_live_foreign_pid_is_refused(tmp_path: pathlib.Path, sleeper: int) -> None:
    path = tmp_path / "dw.pid"
    path.write_text(f"{sleeper}\n")
    with pytest.raises(ProcessError) as caught:
        write_pidfile(str(path))
    message = str(caught.value)
    assert message.startswith(f"pid file {path}: process {sleeper} is running")
    assert "\n" not in message
    assert path.read_text() == f"{sleeper}\n"  # untouched


@pytest.mark.parametrize("content", ["stale", "", "garbage\n", "0\n"])
def test_stale_file_is_replaced(tmp_path: pathlib.Path, content: str) -> None:
    path = tmp_path / "dw.pid"
    path.write_text(f"{dead_pid()}\n" if content == "stale" else content)
    with write_pidfile(str(path)):
        assert path.read_text() == f"{os.getpid()}\n"
    assert not path.exists()


def test_takeover_from_the_replaced_master(tmp_path: pathlib.Path, sleeper: int) -> None:
    path = tmp_path / "dw.pid"
    path.write_text(f"{sleeper}\n")
    with write_pidfile(str(path), replacing=sleeper):
        assert path.read_text() == f"{os.getpid()}\n"


def test_not_removed_once_it_names_someone_else(tmp_path: pathlib.Path, sleeper: int) -> None:
    path = tmp_path / "dw.pid"
    with write_pidfile(str(path)) as pidfile:
        pidfile.write(sleeper)  # handed over to a new master
        assert pidfile.read() == sleeper
    assert path.read_text() == f"{sleeper}\n"


def test_forked_child_leaves_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dw.pid"
    with write_pidfile(str(path)) as pidfile:
        pid = os.fork()
        if pid == 0:  # a worker exiting through the same code path
            pidfile.remove()
            os._exit(0)
        os.waitpid(pid, 0)
        assert path.read_text() == f"{os.getpid()}\n"


# privileges --------------------------------------------------------------------


def in_child(action: Callable[[], None]) -> dict[str, object]:
    """Run ``action`` in a forked child; what it became, or its error."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            try:
                action()
                result: dict[str, object] = {
                    "uid": os.getuid(),
                    "euid": os.geteuid(),
                    "gid": os.getgid(),
                    "egid": os.getegid(),
                    "groups": sorted(os.getgroups()),
                }
            except ProcessError as exc:
                result = {"error": str(exc)}
            except Exception as exc:  # reported, so the test fails saying why
                result = {"unexpected": repr(exc)}
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    report: dict[str, object] = json.loads(data)
    return report


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="changing ids needs root")
NOBODY = pwd.getpwnam("nobody")
GROUPS = {g.gr_name: g.gr_gid for g in grp.getgrall()}
NOGROUP = GROUPS.get("nogroup")


def nobody_groups(gid: int) -> list[int]:
    """What initgroups("nobody", gid) gives: nobody's groups plus gid."""
    member = {g.gr_gid for g in grp.getgrall() if "nobody" in g.gr_mem}
    return sorted(member | {gid})


@root_only
@pytest.mark.parametrize(
    ("user", "group"),
    [("nobody", "nogroup"), ("nobody", None), (str(NOBODY.pw_uid), str(NOBODY.pw_gid))],
)
def test_drop_to_nobody(user: str, group: str | None) -> None:
    gid = NOBODY.pw_gid
    if group == "nogroup":
        if NOGROUP is None:
            pytest.skip("no group named nogroup here")
        gid = NOGROUP
    report = in_child(lambda: drop_privileges(user, group))
    assert report == {
        "uid": NOBODY.pw_uid,
        "euid": NOBODY.pw_uid,
        "gid": gid,
        "egid": gid,
        "groups": nobody_groups(gid),  # root's supplementary groups are gone
    }


@root_only
def test_group_only_keeps_the_user() -> None:
    report = in_child(lambda: drop_privileges(None, str(NOBODY.pw_gid)))
    assert report["uid"] == 0
    assert report["gid"] == report["egid"] == NOBODY.pw_gid
    assert report["groups"] == [NOBODY.pw_gid]


@root_only
def test_unprivileged_process_cannot_switch_back() -> None:
    def drop_then_climb() -> None:
        drop_privileges("nobody", None)
        drop_privileges("nobody", None)  # what we already are: accepted
        drop_privileges("root", None)

    report = in_child(drop_then_climb)
    assert report == {"error": "cannot switch to user root: not running as root"}
