"""A connection an application thread serves itself (the default for the
gateway listeners, see :mod:`.direct`): the blocking socket under its
session, the exchange the application answers through, and the turn the
threads take to accept.

:class:`DirectLink` is the session's :class:`~.exchange.Wire` over a blocking
socket: writes are ``sendall`` (the loop's tick shuts a send that stalls
past ``--write-timeout``), a linger reads and drops for a moment, a close is
done by the thread once the application has returned.
:class:`DirectExchange` is what the gateway writes to, in the same thread.
:class:`Turn` lets one thread at a time accept and read, and
:class:`Waiting` is where the threads wait for a connection (see
:mod:`.direct` for the whole path).
"""

from __future__ import annotations

import _socket
import contextlib
import os
import select
import socket
import struct
import threading
import time
from typing import IO, TYPE_CHECKING, Any, Final

from ..request import Request
from .deadlines import LINGER_SECONDS
from .exchange import ExchangeBase
from .session import Session
from .sockets import reset_on_close

if TYPE_CHECKING:
    from .listeners import Listener
    from .pool import ThreadPool

__all__ = [
    "OWNER",
    "RECV_SIZE",
    "TAKE_OVER_AFTER",
    "WATCHER",
    "WATCH_PAUSE",
    "DirectExchange",
    "DirectLink",
    "Sock",
    "Turn",
    "Waiting",
    "readable",
    "timeval",
]

#: A connection's socket: the C type under socket.socket, whose methods are
#: the system calls without the Python-level wrappers (accept() building a
#: socket.socket costs a fifth of a request).
Sock = _socket.socket

RECV_SIZE: Final = 256 * 1024
#: How long the turn's owner may be held (in the app, or by its peer) while a
#: connection waits before the watcher takes the turn (:class:`Turn`).
TAKE_OVER_AFTER: Final = 0.001
#: How long the watcher sleeps after a look that found the owner working
#: (free to accept, or held only since a moment).  Under load a connection
#: nearly always waits, so each look is a wake-up that finds nothing to do;
#: an owner held from just after a look is relieved within about this long.
WATCH_PAUSE: Final = 0.004


def timeval(seconds: float) -> bytes:
    """``struct timeval`` for SO_RCVTIMEO (0: wait forever)."""
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


def readable(sock: Sock, seconds: float) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(int(seconds * 1000)))


class DirectLink:
    """A thread's side of the connection it serves: its session's
    :class:`~dumbwaiter.server.session.Wire` over a blocking socket.  A
    thread keeps one, from one connection to the next (:meth:`attach`).

    The thread owns it; the loop's tick may read ``sock`` then ``sending``
    and shut that socket (a send stalled past ``--write-timeout``), and
    ``exchange`` under ``lock`` (``--timeout``).
    """

    __slots__ = (
        "closing",
        "exchange",
        "lock",
        "me",
        "more",
        "ready",
        "sending",
        "session",
        "sock",
        "turn",
    )

    def __init__(self, sock: Sock, turn: Turn, me: int, lock: threading.Lock | None) -> None:
        self.sock = sock
        self.turn = turn
        #: The serving thread's number in its turn (from 1).
        self.me = me
        #: Orders a response's start against --timeout's 504 (None without it).
        self.lock = lock
        self.session: Session | None = None
        #: The exchange the session handed over to run, and the one running.
        self.ready: DirectExchange | None = None
        #: Requests complete in the same read after ``ready`` (a front that
        #: multiplexes): left with it to the loop.
        self.more: list[DirectExchange] = []
        self.exchange: DirectExchange | None = None
        #: Since when a send has been blocked (time.monotonic(); 0: none is).
        self.sending = 0.0
        #: The session asked for the connection's end.
        self.closing = False

    def attach(self, sock: Sock) -> None:
        """Serve the connection of ``sock`` now (the last one is closed)."""
        self.sock = sock
        self.closing = False
        self.ready = None
        if self.more:
            self.more = []

    # -- the session's wire -----------------------------------------------------------
    def write(self, data: bytes) -> None:
        self.sending = time.monotonic()  # watched by DirectServer.sweep
        try:
            self.sock.sendall(data)
        except OSError:  # the peer left, or took nothing for --write-timeout
            if self.session is not None:
                self.session.lost()
        self.sending = 0.0

    def pause_reading(self) -> None:
        """Nothing to do: the thread reads only when it wants a request."""

    def resume_reading(self) -> None:
        """(As pause_reading.)"""

    def close(self) -> None:
        self.closing = True  # the thread closes once the app has returned

    def linger(self) -> None:
        """Read and drop what the peer still sends after our answer, for
        LINGER_SECONDS at most (the watcher may take the accept turn meanwhile)."""
        self.closing = True
        self.turn.hold(self.me)
        sock = self.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(LINGER_SECONDS))
            deadline = time.monotonic() + LINGER_SECONDS
            while time.monotonic() < deadline and sock.recv(RECV_SIZE):
                pass
        except OSError:
            pass

    def reset(self) -> None:
        reset_on_close(self.sock)
        self.closing = True

    def dispatch(self, request: Request) -> ExchangeBase | None:
        session = self.session
        assert session is not None
        exchange = DirectExchange(request, session.peer, session.listener)
        exchange.link = self
        exchange.session = session
        if self.ready is None:
            self.ready = exchange
        else:
            self.more.append(exchange)
        return exchange

    # -- the loop's (tick) -------------------------------------------------------------
    @staticmethod
    def shut(sock: Sock) -> None:
        """End a connection under its thread's feet: the blocked send or
        read fails, and the thread closes the socket (a reset on TCP); a
        socket the thread has closed already is left alone."""
        reset_on_close(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class DirectExchange(ExchangeBase):
    """A request served by the thread that read it: the application's
    :class:`~dumbwaiter.typing.Exchange`, writing with blocking sends."""

    __slots__ = ("link", "session")
    # Set by DirectLink.dispatch, which makes it (no __init__ of its own: a
    # call fewer per request).
    link: DirectLink
    session: Session

    def start(self, status: str, headers: list[tuple[str, str]], body: bytes, end: bool) -> None:
        lock = self.link.lock
        if lock is not None:
            with lock:
                if self.expired:  # --timeout answered for us
                    self.cancelled = True
                    return
                self.started = True
        self.session.send_head(self, status, headers, body, end)

    def write(self, data: bytes) -> bool:
        if self.cancelled:
            return False
        self.session.send_body(self, data)
        return not self.cancelled

    def end(self) -> None:
        self.session.send_end(self)

    def abort(self) -> None:
        self.session.send_abort(self)

    def sendfile(self, file: IO[bytes], offset: int, count: int) -> bool:
        if not self.session.raw_body_ok(self):
            return False
        link = self.link
        fd = link.sock.fileno()
        try:
            infd = file.fileno()
            while count > 0:
                link.sending = time.monotonic()
                sent = os.sendfile(fd, infd, offset, count)
                if sent == 0:  # the file is shorter than it was
                    raise OSError("the file ended early")
                offset += sent
                count -= sent
                self.sent += sent
        except OSError:
            self.cancel()  # the caller sees it and ends the response
        link.sending = 0.0
        return True


class Turn:
    """The right to accept on the listeners and read the request: one thread
    at a time, the *owner*.  Why one: under load the backlog is never empty,
    and threads that each accepted a connection would contend for the GIL
    (the thread holding it takes it back after each short system call, the
    others get it only at the interpreter's forced switch, 5 ms: a p99 of
    50-90 ms at 8 threads).

    The owner keeps the turn from one connection to the next, through the
    application: giving it to another thread for every request woke that
    thread every time (0.75 context switches per request behind nginx,
    where uWSGI's one thread makes 0.1).  So that an application (or a
    peer) that blocks does not stop the accepting, the owner says when it
    goes into such a wait (:meth:`hold`), and one other thread, the
    *watcher*, waits in ``poll()`` on the listeners: when a connection
    waits while the owner has been held for ``after``, the watcher takes
    the turn (:meth:`take_over`); the old owner finds it gone when it comes
    back (:meth:`resume`).  The other threads wait to watch, off the GIL.
    """

    __slots__ = ("held", "lock", "mutex", "owner", "watching")

    def __init__(self) -> None:
        #: Held while a thread owns the turn (released by whichever owns it last).
        self.lock = threading.Lock()
        #: Held by the watcher.
        self.watching = threading.Lock()
        #: Orders a take-over against the owner's resume and give.
        self.mutex = threading.Lock()
        self.owner = 0
        #: Since when the owner is held (0.0: it accepts and reads).
        self.held = 0.0

    def take(self, me: int, timeout: float) -> bool:
        """Own the turn, thread ``me`` (its number, from 1), waiting up to
        ``timeout`` for it."""
        # (A free turn is taken without the timed wait's set-up.)
        if self.lock.acquire(False) or self.lock.acquire(True, timeout):
            self.owned(me)
            return True
        return False

    def owned(self, me: int) -> None:
        """``me`` owns the turn now, and is not held."""
        self.owner = me
        self.held = 0.0

    def enter(self, me: int, timeout: float) -> int:
        """:data:`OWNER` if the turn was free (now ``me``'s), :data:`WATCHER`
        if ``me`` watches now, 0 if neither came within ``timeout``."""
        if self.lock.acquire(False):
            self.owned(me)
            return OWNER
        if self.watching.acquire(False) or self.watching.acquire(True, timeout):
            return WATCHER
        return 0

    def leave_watch(self) -> None:
        self.watching.release()

    def hold(self, me: int) -> None:
        """The owner goes into what may block (the application, a wait for
        its peer): from now on the watcher may take the turn."""
        if self.owner == me:
            self.held = time.monotonic()

    def resume(self, me: int) -> bool:
        """Back from it: whether ``me`` still owns the turn."""
        with self.mutex:
            if self.owner != me:
                return False
            self.held = 0.0
            return True

    def take_over(self, me: int, after: float) -> bool:
        """The watcher's: own the turn if it is free, or if its owner has
        been held for ``after`` seconds."""
        if self.lock.acquire(False):
            self.owned(me)
            return True
        with self.mutex:
            held = self.held
            if not held or time.monotonic() - held < after:
                return False
            self.owned(me)
            return True

    def pause(self, after: float, longest: float) -> float:
        """How long the watcher may sleep before it looks again: until the
        owner will have been held for ``after``, if it has been held for
        half of that already (a long wait, likely to be taken over);
        else ``longest``."""
        held = self.held
        if held:
            left = held + after - time.monotonic()
            if left <= after / 2:
                return max(0.0, left)
        return longest

    def give(self, me: int) -> None:
        """Give the turn back, if thread ``me`` owns it."""
        with self.mutex:
            if self.owner != me:
                return
            self.owner = 0
            self.held = 0.0
        self.lock.release()


#: What :meth:`Turn.enter` made of a thread.
OWNER: Final = 1
WATCHER: Final = 2


class Waiting:
    """Where the threads wait for a connection: the shared listeners and the
    pool's wake-up (an eventfd written when a request is queued, or when the
    worker stops), in ``poll()``; one poll object for the turn's owner and
    one for its watcher (a poll object is not for two threads at once)."""

    __slots__ = ("by_fd", "listeners", "pollers", "pool", "stopping")

    def __init__(self, pool: ThreadPool[Any], listeners: list[Listener]) -> None:
        self.pool = pool
        self.listeners = listeners
        self.by_fd = {listener.sock.fileno(): listener for listener in listeners}
        #: The owner's and the watcher's.
        self.pollers = (select.poll(), select.poll())
        #: The worker stops: the wake-up is left unread, for every thread to see.
        self.stopping = False

    def start(self) -> None:
        pool = self.pool
        pool.wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        for poller in self.pollers:
            poller.register(pool.wake, select.POLLIN)
        for listener in self.listeners:
            # Non-blocking: the loop accepts on it too, when no thread is free.
            listener.sock.setblocking(False)
            for poller in self.pollers:
                poller.register(listener.sock.fileno(), select.POLLIN)

    def wait(self, role: int, seconds: float) -> list[Listener]:
        """Wait as the turn's :data:`OWNER` or its :data:`WATCHER`: the
        listeners with a connection waiting; none for the pool's wake-up, or
        once ``seconds`` have passed."""
        pool = self.pool
        slot = role - OWNER
        pool.polling[slot] = True
        ready: list[Listener] = []
        if not pool.queued:  # (looked at after saying so: see try_submit)
            for fd, _ in self.pollers[slot].poll(seconds * 1000):
                if fd == pool.wake:
                    self.woken()
                    ready = []
                    break
                ready.append(self.by_fd[fd])
        pool.polling[slot] = False
        return ready

    def woken(self) -> None:
        """The pool's wake-up was seen: taken, unless it says the worker
        stops (then it stays, for every thread that waits to see)."""
        if not self.stopping:
            with contextlib.suppress(OSError):
                os.eventfd_read(self.pool.wake)
