"""Development reload: which source files of the app changed.

With ``--reload`` the master starts a new generation of workers (what SIGHUP
does) when a source file under the watched roots changes.  A generation that
cannot load the app (a syntax error in a half-typed file) is abandoned and
the old workers serve on, so an edit never takes the server down.

The master is one thread around ``select`` that forks workers, so watching
adds no thread to it.  :class:`SourceWatcher` watches in one of two ways:

watchfiles (``pip install dumbwaiter[reload]``)
    A helper process (``python -m dumbwaiter.process.reloader``) runs
    watchfiles (inotify, FSEvents, kqueue, through Rust's notify), which
    groups a burst of events into one batch (a batch ends after 50 ms without
    a new event, or at the latest after 1.6 s); the helper writes each batch
    to a pipe whose read end the master selects on (:meth:`~SourceWatcher.fileno`).
polling (otherwise, or ``poll=True``)
    :meth:`~SourceWatcher.changes` stats the files under the roots at most once
    per ``interval`` (1 s; further apart when a scan is slow, so that polling
    takes at most a tenth of the master's time), skipping hidden folders,
    caches and virtual environments, at most ``MAX_FILES`` files.  A burst is
    held until a scan finds nothing new (at most ``HOLD_SCANS`` scans), so a
    change is reported once, one or two intervals after it happened.

The helper and the master's ``waitpid(-1)``
    The helper is a :class:`subprocess.Popen` child of the master, which reaps
    every child with ``waitpid(-1, WNOHANG)`` and ignores pids that are not
    its workers.  So the master may reap the helper behind Popen's back.  That
    is harmless: Popen then gets ECHILD, takes the helper as ended, and does
    not signal it (``send_signal`` polls first, bpo-38630), so a recycled pid
    is never hit; and the helper's end shows as EOF on the pipe, after which
    the watcher polls.  :attr:`SourceWatcher.pid` tells the master which child
    it is.

Ending with the master
    The helper checks ``os.getppid()`` every ``HELPER_TICK_MS`` and exits when
    its parent changed: the master is gone, even by SIGKILL.  (A pipe from the
    master would not do: forked workers hold copies of it.)  It ignores
    SIGINT: Ctrl-C in a terminal reaches the whole process group, and the
    master decides what happens.

What the helper writes
    Each changed path (``os.fsencode``) followed by NUL; an empty record ends
    a batch.  The first, empty, batch says that the helper watches.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import importlib.util
import logging
import os
import select
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

__all__ = ["SourceWatcher", "Watching", "default_roots"]

log = logging.getLogger("dumbwaiter")

#: Seconds between two scans when polling.
POLL_INTERVAL = 1.0
#: A burst still going on after this many scans is reported anyway.
HOLD_SCANS = 3
#: Polling watches this many files at most (more: a warning, the rest unwatched) ...
MAX_FILES = 10_000
#: ... and looks at this many names at most in one scan.
MAX_ENTRIES = 100_000
#: Directory (and file) names never watched, besides hidden ones (".venv", ".git").
SKIPPED_NAMES = frozenset({"__pycache__", "venv", "site-packages", "node_modules"})
#: How long the helper may take to watch; then the watcher polls instead.
HELPER_START_SECONDS = 10.0
#: How long :meth:`SourceWatcher.close` waits for the helper before SIGKILL.
HELPER_STOP_SECONDS = 2.0
#: How often the helper looks whether its parent is still there.
HELPER_TICK_MS = 100
HELPER_MODULE = "dumbwaiter.process.reloader"

#: What polling compares: a file replaced by rename has a new inode.
Stamp = tuple[int, int, int]  # (st_mtime_ns, st_size, st_ino)


def default_roots(app_spec: str) -> list[str]:
    """The directories ``--reload`` watches for ``app_spec`` (``MODULE[:CALLABLE]``).

    The answer is the current directory, whatever the spec.  The app is
    imported from it (:func:`dumbwaiter.cli.load_app` puts it first on
    ``sys.path``, as ``python -m`` does; ``--chdir`` has already moved there),
    so the module named on the command line and the project's modules beside
    it live under it.  The master cannot ask the app which files it uses:
    without ``--preload`` it never imports the app, the workers do.  Watching
    the directory also sees modules the app imports only later, and new files.
    uvicorn's ``--reload`` watches the current directory too unless given
    ``--reload-dir``; gunicorn's watches the files of the modules each worker
    has imported (``sys.modules``).  Installed packages are not watched:
    virtual environments and ``site-packages`` are skipped.
    """
    return [os.getcwd()]


def _skipped(name: str) -> bool:
    """Whether a directory or file of this name is never watched."""
    return name.startswith(".") or name in SKIPPED_NAMES


def _wanted(path: str, roots: Sequence[str], patterns: Sequence[str]) -> bool:
    """Whether ``path`` is a source file to watch: under one of the (absolute)
    ``roots``, no skipped name on the way, its name matching a pattern."""
    for root in roots:
        relative = os.path.relpath(path, root)
        if relative == os.pardir or relative.startswith(os.pardir + os.sep):
            continue
        *folders, name = relative.split(os.sep)
        return not any(map(_skipped, folders)) and _matches(name, patterns)
    return False


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return not _skipped(name) and any(fnmatch.fnmatchcase(name, p) for p in patterns)


class SourceWatcher:
    """Tells which source files under ``roots`` changed.

    ``roots`` are directories (made absolute); ``patterns`` are shell patterns
    for file names (:mod:`fnmatch`).  Hidden names and :data:`SKIPPED_NAMES`
    are skipped.  With watchfiles importable (and ``poll`` false) a helper
    process watches, started here, and the constructor returns once it
    watches (at most :data:`HELPER_START_SECONDS`); otherwise, or if the
    helper fails, the files are polled, the first scan done here.  Changes
    after the constructor returns are reported.

    The watcher owns the helper and its pipe until :meth:`close`.  It is
    meant for one thread of the process that made it; a process forked from
    that one (a worker) calls :meth:`close` only to drop its copy of the pipe.
    """

    def __init__(
        self,
        roots: Sequence[str],
        patterns: Sequence[str] = ("*.py",),
        *,
        interval: float = POLL_INTERVAL,
        max_files: int = MAX_FILES,
        poll: bool = False,
    ) -> None:
        self.roots = [os.path.abspath(root) for root in roots]
        self.patterns = list(patterns)
        self.interval = interval
        self.max_files = max_files
        self._owner = os.getpid()
        self._closed = False
        # the helper
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd = -1
        self._polling = True  # until the helper watches, and after it ended
        self._buffer = bytearray()
        self._batch: set[str] = set()
        self._changed: set[str] = set()
        # polling
        self._files: dict[str, Stamp] = {}
        self._pending: set[str] = set()
        self._held = 0
        self._next_scan = 0.0
        self._warned = False
        if not poll and importlib.util.find_spec("watchfiles") is not None:
            self._start_helper()
        how = "polling" if self._polling else "watchfiles"
        roots, patterns = ", ".join(self.roots), " ".join(self.patterns)
        log.info("reload: watching %s for %s (%s)", roots, patterns, how)
        if self._polling:
            self._files = self._scan()
            self._next_scan = time.monotonic() + interval

    @property
    def pid(self) -> int | None:
        """The helper's process id; None when polling."""
        return self._proc.pid if self._proc is not None and not self._polling else None

    def fileno(self) -> int | None:
        """A descriptor that becomes readable when something changed (then
        call :meth:`changes`), or None: call :meth:`changes` at least every
        ``interval``.  It turns to None, once, if the helper ends; the old
        descriptor stays open until :meth:`close`, so a caller can still
        unregister it from its selector."""
        return None if self._polling or self._closed else self._fd

    def changes(self) -> list[str]:
        """The paths changed (modified, created or removed) since the last
        call, sorted; never blocks.  Reads the helper's pipe dry, or scans
        when polling and ``interval`` has passed since the last scan."""
        if self._closed:
            return []
        if self._polling:
            return self._poll()
        if not self._read():
            self._fall_back("the watchfiles helper ended")
        changed, self._changed = self._changed, set()
        return sorted(changed)

    def close(self) -> None:
        """Stop watching: SIGTERM to the helper, SIGKILL after
        :data:`HELPER_STOP_SECONDS`, and close the pipe.  Idempotent.  In a
        forked process only this process's copy of the pipe is closed."""
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        if proc is None:
            return
        if os.getpid() == self._owner:
            proc.terminate()  # not if already reaped (see the module doc)
            try:
                proc.wait(HELPER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> SourceWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the helper ---------------------------------------------------------
    def _start_helper(self) -> None:
        here = os.path.dirname(os.path.abspath(__file__))
        package_parent = os.path.dirname(os.path.dirname(here))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        argv = [sys.executable, "-m", HELPER_MODULE, "--parent", str(os.getpid())]
        for pattern in self.patterns:
            argv += ["--pattern", pattern]
        proc = subprocess.Popen(
            [*argv, "--", *self.roots], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env
        )
        assert proc.stdout is not None
        self._proc, self._fd = proc, proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        deadline = time.monotonic() + HELPER_START_SECONDS
        while self._polling:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.kill()
                log.warning("reload: the watchfiles helper did not start in time; polling")
                return
            select.select([self._fd], [], [], remaining)
            if not self._read():
                self._polling = True
                log.warning("reload: the watchfiles helper failed (its error is above); polling")
                return

    def _read(self) -> bool:
        """Take what the helper wrote; False at EOF (it ended)."""
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                return False
            self._buffer += data
            *records, rest = self._buffer.split(b"\0")
            self._buffer = bytearray(rest)
            for record in records:
                if record:
                    self._batch.add(os.fsdecode(bytes(record)))
                else:  # the end of a batch; the first one says the helper watches
                    self._changed |= self._batch
                    self._batch = set()
                    self._polling = False

    def _fall_back(self, why: str) -> None:
        log.warning("reload: %s; polling from now on", why)
        self._polling = True
        self._files = self._scan()
        self._next_scan = time.monotonic() + self.interval
        if self._proc is not None:
            self._proc.poll()  # reap it, unless the master did

    # -- polling -------------------------------------------------------------
    def _poll(self) -> list[str]:
        started = time.monotonic()
        if started < self._next_scan:
            return []
        files = self._scan()
        # A slow scan (a big tree, a loaded disk) is spaced out: polling
        # takes at most a tenth of the master's time.
        took = time.monotonic() - started
        self._next_scan = started + max(self.interval, 10 * took)
        new = {
            path
            for path in files.keys() | self._files.keys()
            if files.get(path) != self._files.get(path)
        }
        self._files = files
        if new:
            self._pending |= new
            self._held += 1
            if self._held < HOLD_SCANS:
                return []  # maybe a burst: wait for a quiet scan
        changed = sorted(self._pending)
        self._pending, self._held = set(), 0
        return changed

    def _scan(self) -> dict[str, Stamp]:
        """Stamp every watched file, depth first in name order, symbolic
        links to directories not followed; at most ``max_files`` files, and
        :data:`MAX_ENTRIES` names looked at (a big data folder costs no more)."""
        found: dict[str, Stamp] = {}
        looked = 0
        folders = list(reversed(self.roots))
        while folders:
            folder = folders.pop()
            try:
                with os.scandir(folder) as scan:
                    entries = sorted(scan, key=lambda entry: entry.name)
            except OSError:
                continue
            looked += len(entries)
            if looked > MAX_ENTRIES:
                self._too_many(f"{MAX_ENTRIES} files and folders")
                return found
            below = []
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not _skipped(entry.name):
                            below.append(entry.path)
                        continue
                    if not _matches(entry.name, self.patterns):
                        continue
                    if len(found) >= self.max_files:
                        self._too_many(f"{self.max_files} source files")
                        return found
                    stat = entry.stat()
                except OSError:  # gone meanwhile
                    continue
                found[entry.path] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            folders.extend(reversed(below))
        return found

    def _too_many(self, what: str) -> None:
        if not self._warned:
            self._warned = True
            roots = ", ".join(self.roots)
            log.warning(
                "reload: more than %s under %s; only those found first are watched", what, roots
            )


def _helper_main(argv: Sequence[str] | None = None) -> int:
    """The helper process: watch with watchfiles, write batches to stdout."""
    parser = argparse.ArgumentParser(prog=f"python -m {HELPER_MODULE}")
    parser.add_argument("--parent", type=int, required=True, help="exit when it is gone")
    parser.add_argument("--pattern", action="append", default=[], help="file names to watch")
    parser.add_argument("roots", nargs="+")
    args = parser.parse_args(argv)
    patterns: list[str] = args.pattern or ["*.py"]
    roots = [os.path.abspath(root) for root in args.roots]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.dup(1)
    os.dup2(2, 1)  # only batches go to the pipe; anything printed goes to stderr
    watch = importlib.import_module("watchfiles").watch  # the one import outside the stdlib

    def keep(change: object, path: str) -> bool:
        return _wanted(path, roots, patterns)

    started = False
    try:
        for batch in watch(
            *roots,
            watch_filter=keep,
            rust_timeout=HELPER_TICK_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
            debug=False,
        ):
            if os.getppid() != args.parent:
                return 0
            paths = sorted({path for _, path in batch})
            if paths or not started:  # the first yield: the watches are in place
                started = True
                _write_all(out, b"".join(os.fsencode(path) + b"\0" for path in paths) + b"\0")
    except BrokenPipeError:
        pass
    return 0


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


if __name__ == "__main__":
    sys.exit(_helper_main())


class Watching:
    """``--reload`` in the master's ``select`` loop: the watcher of the
    working directory's sources, its pipe registered in ``selector`` while
    the helper runs (polled from the loop's wake-ups otherwise)."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector
        self.watcher = SourceWatcher(default_roots(""))
        if (fd := self.watcher.fileno()) is not None:
            selector.register(fd, selectors.EVENT_READ, self)

    def timeout(self) -> float:
        """How long the loop may wait: shorter while polling."""
        return 1.0 if self.watcher.fileno() is not None else 0.5

    def readable(self, fd: int) -> None:
        """Its pipe was readable (what changed is taken by :meth:`changes`)."""
        if self.watcher.fileno() is None:  # the helper ended: polled from now on
            self.selector.unregister(fd)

    def changes(self) -> list[str]:
        return self.watcher.changes()

    def close(self) -> None:
        self.watcher.close()
