"""Process-level chores at start-up: working directory, pid file, privileges.

Each is done once, by the process that becomes the master (or serves
alone), before any worker is forked: ``--chdir`` before the listeners are
bound, the pid file and the privilege drop after (binding a port below 1024
or a socket in ``/run`` may need root).  Each failure is one
:class:`ProcessError` line for the command line to print.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import tempfile
from types import TracebackType

__all__ = [
    "PidFile",
    "ProcessError",
    "change_directory",
    "drop_privileges",
    "gid_of",
    "group_name",
    "uid_of",
    "user_name",
    "write_pidfile",
]


class ProcessError(Exception):
    """A process set-up step failed; the message says which and why."""


class PidFile:
    """A pid file that this process wrote and removes when it leaves.

    Use :func:`write_pidfile` to create one.  As a context manager it removes
    the file on exit; :meth:`remove` does so explicitly.  Removal only
    happens while the file still holds the pid of the calling process, so a
    forked worker exiting, or an old master whose file a new master took
    over (USR2), leaves it alone.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, pid: int | None = None) -> None:
        """(Re)write the file to hold ``pid`` (default: ours), atomically.

        Readers see the old content or the new, never a partial file: the
        text goes to a temporary file in the same directory, renamed over.
        Raises :class:`ProcessError`.
        """
        directory = os.path.dirname(os.path.abspath(self.path))
        text = f"{os.getpid() if pid is None else pid}\n"
        try:
            fd, temp = tempfile.mkstemp(dir=directory, prefix=".dumbwaiter-pid-")
        except OSError as exc:
            raise ProcessError(f"pid file {self.path}: {_reason(exc)}") from None
        try:
            with os.fdopen(fd, "w") as file:
                file.write(text)
            os.chmod(temp, 0o644)  # mkstemp makes it 0600; pid files are for everyone
            os.replace(temp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise ProcessError(f"pid file {self.path}: {_reason(exc)}") from None

    def read(self) -> int | None:
        """The pid the file holds now, or None (missing, empty, not a pid)."""
        try:
            with open(self.path) as file:
                text = file.read(64).strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ProcessError(f"pid file {self.path}: {_reason(exc)}") from None
        return int(text) if _is_id(text) and int(text) > 0 else None

    def remove(self) -> None:
        """Delete the file if it still holds our pid; never raises."""
        with contextlib.suppress(OSError, ProcessError):
            if self.read() == os.getpid():
                os.unlink(self.path)

    def __enter__(self) -> PidFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"PidFile({self.path!r})"


def write_pidfile(path: str, *, replacing: int | None = None) -> PidFile:
    """Write our pid to ``path`` and return the :class:`PidFile` that owns it.

    A file naming a process that no longer exists (or holding no pid at all)
    is stale and replaced.  A file naming another live process means another
    server is running: :class:`ProcessError`, the file untouched.  The one
    exception is ``replacing``, the pid of the master this process replaces
    in an upgrade in place (USR2), whose file is taken over.

    The check and the write are not one atomic step; two servers started at
    the same instant with the same pid file could both pass the check, which
    a supervisor that starts one instance never does.
    """
    pidfile = PidFile(path)
    other = pidfile.read()
    if other is not None and other not in (os.getpid(), replacing) and _alive(other):
        raise ProcessError(
            f"pid file {path}: process {other} is running "
            "(another server? if not, the file is stale: remove it)"
        )
    pidfile.write()
    return pidfile


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence and permission check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    return True


def drop_privileges(user: str | None, group: str | None) -> None:
    """Become ``user`` and ``group`` (names or numeric ids) for good.

    Order matters: supplementary groups (those of ``user`` in the group
    database, plus the new group, via initgroups), then the group id, then
    the user id, since a process that is no longer root can change neither.
    ``group`` defaults to the primary group of ``user``; with only ``group``
    the user stays as it is.  Only root can change ids: otherwise asking for
    the ids we already have is accepted and anything else is an error.
    Raises :class:`ProcessError` for an unknown user or group or a failed
    change.
    """
    if user is None and group is None:
        return
    uid, name, primary = _user(user) if user is not None else (os.getuid(), None, None)
    if group is not None:
        gid = _group(group)
    elif primary is not None:
        gid = primary
    else:
        raise ProcessError(f"user {user} has no passwd entry: give a group as well")
    wanted = f"user {user}" if user is not None else f"group {group}"
    if os.geteuid() != 0:
        if uid != os.getuid() or gid != os.getgid():
            raise ProcessError(f"cannot switch to {wanted}: not running as root")
        return
    try:
        if name is not None:
            os.initgroups(name, gid)
        else:
            os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise ProcessError(f"cannot switch to {wanted}: {_reason(exc)}") from None


def uid_of(text: str) -> int:
    """A user name or id -> its uid; :class:`ProcessError` if unknown."""
    return _user(text)[0]


def gid_of(text: str) -> int:
    """A group name or id -> its gid; :class:`ProcessError` if unknown."""
    return _group(text)


def user_name(uid: int) -> str:
    """A uid's name (its number when it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    """A gid's name (its number when it has none)."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _user(text: str) -> tuple[int, str | None, int | None]:
    """``(uid, name, primary gid)``; a numeric id may have no passwd entry."""
    try:
        entry = pwd.getpwuid(int(text)) if _is_id(text) else pwd.getpwnam(text)
    except KeyError:
        if _is_id(text):
            return int(text), None, None
        raise ProcessError(f"unknown user {text!r}") from None
    return entry.pw_uid, entry.pw_name, entry.pw_gid


def _group(text: str) -> int:
    if _is_id(text):
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ProcessError(f"unknown group {text!r}") from None


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit()


def change_directory(path: str) -> None:
    """``chdir`` to ``path``; raises :class:`ProcessError` saying why not."""
    try:
        os.chdir(path)
    except OSError as exc:
        raise ProcessError(f"cannot change directory to {path}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
