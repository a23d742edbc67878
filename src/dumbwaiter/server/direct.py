"""Application threads that serve gateway connections themselves: the
default for FastCGI, SCGI and uwsgi listeners.

Why
---
Behind a front server, a FastCGI (without keep-conn), SCGI or uwsgi
connection carries one request, sent whole, and the front reads the answer as
fast as we write it.  For such a connection the event loop only relays: it
accepts, reads, hands the request to a thread and back, writes and closes, and
that relay (transport bookkeeping, two thread wake-ups, the loop's own system
calls) costs as much CPU as the request itself.  Here a thread does it all in
blocking calls, the way uWSGI serves, over the same
:class:`~dumbwaiter.server.session.Session` as the loop (so the same
decisions: deadlines, answers, reports) and the same gateway.

Theory of operation
-------------------
The pool's threads (:class:`~.pool.ThreadPool`) take the loop's queued
requests first; with none queued, a thread calls :meth:`DirectServer.idle`.
The threads take turns (:class:`~.blocking.Turn`) to accept and read: the
one owning the turn accepts on the shared listeners (non-blocking), or waits
in ``poll()`` for a connection or for the pool's wake-up (something was
queued, or the worker stops), for :data:`ACCEPT_WAKE` at most.  It keeps the
turn from one connection to the next, through the application; one other
thread watches, and takes the turn over when a connection waits while the
owner has been held (in the application, or by a peer slow to send) for
:data:`~.blocking.TAKE_OVER_AFTER` (it looks every
:data:`~.blocking.WATCH_PAUSE` while the owner works: each look is a
wake-up).  With a connection, the owner reads the request into the
connection's session, and then:

1. reads on until the session hands it a complete request (head and body).
   A peer that has not sent it all within :data:`HANDOFF_AFTER` is handed
   to the event loop with its session, which reads the rest under the
   usual timeouts and queues the request: a slow client holds no thread;
2. hands a request after which the connection stays open (FastCGI's
   ``FCGI_KEEP_CONN``) to the loop as well, which serves kept connections;
3. otherwise runs the gateway with a :class:`~.blocking.DirectExchange`,
   whose writes are blocking sends (the loop's tick shuts a connection whose
   send has taken nothing for ``--write-timeout``), and closes.

When no thread is free to accept (each runs an application or serves a
connection), the pool says so (``ThreadPool.full``) and the event loop
accepts on the same listeners until one is (:meth:`.loop.LoopServer.take_over`):
it reads the requests and queues them, and past ``--threads +
--queue-size`` answers 503 (``FCGI_OVERLOADED``'s equivalent) at once,
without calling the application.  So the loop's guarantees hold, and a
request costs a thread's blocking calls while threads are free.

What the loop sees that a thread does not: a client that leaves (or a
FastCGI abort) while the application runs is noticed at its next write.
``--timeout`` is answered from the loop (504, or the connection shut if the
response began), under a lock that orders it against the response's start.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from .blocking import (
    OWNER,
    RECV_SIZE,
    TAKE_OVER_AFTER,
    WATCH_PAUSE,
    WATCHER,
    DirectExchange,
    DirectLink,
    Sock,
    Turn,
    Waiting,
    readable,
)
from .exchange import ExchangeBase
from .pool import FREE, OWN, QUEUED
from .session import Session

if TYPE_CHECKING:
    from ..request import Request
    from ..typing import Exchange
    from .context import ServerContext
    from .listeners import Listener

__all__ = ["DIRECT_PROTOCOLS", "DirectServer"]

log = logging.getLogger("dumbwaiter")

#: The listener kinds a thread can serve directly (HTTP stays on the loop:
#: its clients may be anyone, at any pace, and keep their connections).
DIRECT_PROTOCOLS = ("fastcgi", "scgi", "uwsgi")

#: How long the first wait for a connection's bytes may last while its
#: thread holds the accept turn (a front server writes its request as it
#: connects; one that is slower lets the next thread accept).
FIRST_WAIT: Final = 0.002
#: How long a thread waits for a connection's whole request before handing
#: the connection to the event loop.
HANDOFF_AFTER: Final = 0.02
#: How often a thread waiting for a connection looks whether the worker stops.
ACCEPT_WAKE: Final = 0.5
#: (an int once: the flag is an enum member)
MSG_DONTWAIT: Final = int(socket.MSG_DONTWAIT)

#: Hands a connection to the loop: the socket, its session, its listener,
#: the requests the loop is to run (called on the loop thread).
Adopt = Callable[[socket.socket, Session, "Listener", "list[Request]"], None]


class DirectServer:
    """What the pool's threads do when its queue is empty (see the module
    doc); a :class:`~.context.Driver` for the tick."""

    def __init__(
        self,
        ctx: ServerContext,
        listeners: list[Listener],
        target: Callable[[Exchange], None],
        adopt: Adopt,
    ) -> None:
        self.ctx = ctx
        self.pool = ctx.pool
        self.listeners = listeners
        self.target = target
        self.settings = ctx.settings
        self.adopt = adopt
        #: The listeners' protocol objects (the loop's: a thread runs one
        #: request per connection, and hands the others to the loop).
        self.factories = {
            kind: ctx.factories[kind] for kind in {listener.protocol for listener in listeners}
        }
        self.stopping = False
        threads = self.pool.threads
        #: Per thread: its link while it serves a connection (set and cleared
        #: by the thread, read by the loop), the link it keeps, and its
        #: session, kept for the next connection (a new one when the last
        #: went on to the loop).
        self.links: list[DirectLink | None] = [None] * threads
        self.kept: list[DirectLink | None] = [None] * threads
        self.sessions: list[Session | None] = [None] * threads
        #: Requests served, per thread (each thread adds to its own slot only).
        self.counts = [0] * threads
        #: Per thread: it saw the stop and accepts no more; its request ran
        #: past --timeout (answered for: a graceful stop does not wait for it).
        self.stopped = [False] * threads
        self.abandoned = [False] * threads
        self.turn = Turn()
        self.waits = Waiting(self.pool, listeners)
        #: Orders a response's start against --timeout's 504 (see DirectExchange).
        self.timeout_lock = threading.Lock() if ctx.config.timeout else None
        #: The next connection's number (for the access log's connection id).
        self.next_number: Callable[[], int] = itertools.count(1).__next__
        #: When the app took a request up, and which thread.
        self.timed = ctx.timed

    def start(self) -> None:
        """Before the pool starts: its threads call :meth:`idle` from then on."""
        self.waits.start()
        self.pool.idle = self.idle

    # -- the Driver interface (the loop thread's) ---------------------------------------
    def served(self) -> int:
        return sum(self.counts)

    def owed(self) -> int:
        return len(self.in_flight())

    def in_flight(self) -> list[ExchangeBase]:
        return [link.exchange for link in list(self.links) if link and link.exchange]

    def gauges(self) -> tuple[int, int, int, int]:
        """(queued, busy, threads, connections): the threads are the pool's,
        counted by the loop's driver."""
        return 0, self.owed(), 0, sum(1 for link in self.links if link)

    def sweep(self) -> None:
        """Shut the connections whose peer took nothing of a send for
        ``--write-timeout``: the thread's send fails, and it goes back to
        accepting."""
        now = time.monotonic()
        for link in list(self.links):
            if link is None:
                continue
            sock = link.sock  # (first: the thread clears sending before moving on)
            since = link.sending
            session = link.session
            if since and session is not None and session.write_stalled(since, now):
                link.shut(sock)

    def expire(self, exchange: ExchangeBase) -> None:
        """``--timeout`` passed: 504 if the response has not begun, else the
        connection is shut so the front sees it broken.  The thread owns the
        socket (it closes it once the app returns): it is only shut here,
        which the front sees as the end of the response."""
        assert isinstance(exchange, DirectExchange)
        link = exchange.link
        assert link.lock is not None  # (made with --timeout)
        with link.lock:
            # (The thread may be done with it, its session serving the next
            # connection: it lets go of the exchange under the same lock.)
            if exchange.expired or link.exchange is not exchange:
                return
            answer = exchange.session.timeout_answer(exchange)
            sock = link.sock
        if answer:
            with contextlib.suppress(OSError):
                sock.send(answer, MSG_DONTWAIT)
        exchange.cancel()
        link.shut(sock)
        self.abandoned[link.me - 1] = True

    def stop(self) -> None:
        """Accept no more; each thread ends after its connection."""
        self.stopping = self.waits.stopping = True
        if self.pool.wake >= 0:
            self.pool.nudge()

    def drain(self) -> None:
        """Nothing more to do: each thread finishes its connection."""

    def finished(self) -> bool:
        """Every thread saw the stop, or runs a request of the loop's (the
        loop's to wait for), or is stuck in one answered for."""
        states = self.pool.state
        return all(
            self.abandoned[number]
            or states[number] == QUEUED
            or (self.stopped[number] and states[number] == FREE)
            for number in range(len(states))
        )

    def busy(self) -> int:
        return self.owed()

    def abort(self) -> None:
        """Stop now: the threads are daemons, left to the process's end."""
        self.stopping = self.waits.stopping = True

    # -- a thread's -------------------------------------------------------------------------
    def idle(self, number: int) -> bool:
        """Accept and serve connections while this thread owns the turn, or
        watch the owner, or wait to; False once the worker stops (see
        ThreadPool._work).  After the stop, each thread accepts once more:
        a connection that was in the backlog as the stop came is served,
        not cut off."""
        me = number + 1
        turn = self.turn
        if self.stopping:
            return self.last_round(number)
        role = turn.enter(me, ACCEPT_WAKE)
        if not role or (role == WATCHER and not self.watch(me)):
            return True
        pool = self.pool
        try:
            # Wait first, then accept what poll() found: a failed accept and
            # its exception cost more than the poll(), and every worker's
            # waiting thread is woken, so that connections spread over the
            # workers (one whose threads accepted first whenever they could
            # took nearly all of a burst).
            while not pool.queued and not self.stopping:
                ready = self.waits.wait(OWNER, ACCEPT_WAKE)
                if not ready:  # the queue, the stop, or ACCEPT_WAKE passed
                    return True
                for listener in ready:
                    if self.accept(listener, number, False) and not turn.resume(me):
                        return True  # the watcher took the turn meanwhile
            return True
        finally:
            turn.give(me)

    def last_round(self, number: int) -> bool:
        """The worker stops: accept what waits, once, and end."""
        me = number + 1
        turn = self.turn
        if not turn.take(me, ACCEPT_WAKE):
            return True
        try:
            for listener in self.listeners:
                if self.accept(listener, number, True):
                    return False
            self.stopped[number] = True
            return False
        finally:
            turn.give(me)

    def watch(self, me: int) -> bool:
        """Wait for a connection while another thread owns the turn; True
        once this one owns it (its owner gave it up, or was held past
        ``TAKE_OVER_AFTER`` with a connection waiting), False for the
        queue, the stop, or ACCEPT_WAKE passed."""
        turn = self.turn
        try:
            while not self.stopping:
                if not self.waits.wait(WATCHER, ACCEPT_WAKE):
                    return False
                if turn.take_over(me, TAKE_OVER_AFTER):
                    return True
                time.sleep(turn.pause(TAKE_OVER_AFTER, WATCH_PAUSE))
            return False
        finally:
            turn.leave_watch()

    def accept(self, listener: Listener, number: int, stopping: bool) -> bool:
        """Accept a connection on ``listener`` and serve it; False if there
        was none."""
        sock = listener.sock
        try:
            # (C accept: socket.accept() would wrap the fd in Python code)
            fd, _ = sock._accept()  # type: ignore[attr-defined]
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            log.error("%s: accept failed: %s", listener.name, exc)
            time.sleep(0.1)  # EMFILE and the like: do not spin
            return False
        pool = self.pool
        pool.busy(number, OWN)
        family, kind, proto = listener.kind
        try:
            self.connection(Sock(family, kind, proto, fd), listener, number)
        except Exception:  # the gateway handles app errors; this is our bug
            log.exception("internal error serving %s directly", listener.name)
        finally:
            pool.state[number] = FREE
            self.stopped[number] = stopping
        return True

    def connection(self, sock: Sock, listener: Listener, number: int) -> None:
        """Serve one accepted connection; closes it, or hands it to the loop.
        The thread holds the turn until the request is read."""
        try:
            address = None if listener.unix else sock.getpeername()
            peer = listener.peer_environ(address, sock.getsockname)
        except OSError:  # gone already (ENOTCONN): nothing to answer
            sock.close()
            return
        if peer is None:  # (logged)
            sock.close()
            return
        peer["dumbwaiter.connection"] = f"d{self.next_number()}"
        me = number + 1
        turn = self.turn
        link = self.kept[number]
        if link is None:
            link = self.kept[number] = DirectLink(sock, turn, me, self.timeout_lock)
        else:
            link.attach(sock)
        ctx = self.ctx
        proto = self.factories[listener.protocol]()
        session = self.sessions[number]
        if session is None:
            session = Session(
                proto, link, listener.name, listener.protocol, peer, self.settings, ctx.reporter
            )
            self.sessions[number] = session
        else:
            session.renew(proto, link, listener.name, listener.protocol, peer)
        link.session = session
        self.links[number] = link
        try:
            got = self.receive(link, session, me)
            turn.hold(me)
            handed: list[Request] = []
            if got is False:  # closed, or nothing to run
                return
            if isinstance(got, DirectExchange):
                if link.more or session.proto.keeps_connection(got.request.stream_id):
                    # Kept (or multiplexed): the loop's.
                    handed = [session.take_back(each) for each in (got, *link.more)]
                    link.more = []
                else:
                    request = got.request
                    held = request.body.in_memory
                    if request.filter_data is not None:
                        held += request.filter_data.in_memory
                    self.pool.held[number] = held
                    try:
                        self.run(link, got)
                    finally:
                        self.pool.held[number] = 0
                    self.counts[number] += 1
                    if ctx.request_limit and (reason := ctx.past_request_limit()):
                        ctx.loop.call_soon_threadsafe(ctx.retire, reason)
                    if link.closing or session.closed or got.cancelled or self.stopping:
                        return
            # Kept, or slow to send its request: the loop serves it on.
            self.links[number] = self.sessions[number] = None
            kept = socket.socket(sock.family, sock.type, sock.proto, sock.detach())
            ctx.loop.call_soon_threadsafe(self.adopt, kept, session, listener, handed)
        finally:
            self.links[number] = None
            self.abandoned[number] = False
            if sock.fileno() >= 0:  # (not handed over)
                sock.close()
                if session.receiving or session.waiting:  # (their spool files closed now)
                    session.lost()

    def receive(self, link: DirectLink, session: Session, me: int) -> DirectExchange | bool:
        """Read until the session hands over a request; False when there is
        none to run (the connection is done), True when the peer is slow to
        send it (for the loop).  The turn is given back before any read that
        may wait longer than :data:`FIRST_WAIT` (a front sends its request at
        once: usually it is all there when we accept)."""
        sock = link.sock
        until = 0.0
        while True:
            try:
                data = sock.recv(RECV_SIZE, MSG_DONTWAIT)
            except BlockingIOError:  # not there yet
                if not until:
                    until = time.monotonic() + HANDOFF_AFTER
                    if readable(sock, FIRST_WAIT):
                        continue
                self.turn.hold(me)  # wait on; the watcher may take the turn
                if not readable(sock, max(0.0, until - time.monotonic())):
                    return True
                continue
            except OSError:
                session.lost()
                return False
            if not data:
                session.eof()
                return False
            session.receive(data)
            exchange = link.ready
            if exchange is not None:
                link.ready = None
                return exchange
            if link.closing or session.closed:
                return False

    def run(self, link: DirectLink, exchange: DirectExchange) -> None:
        """The application's turn (the session reports the response)."""
        if self.timed:
            exchange.began = exchange.queued = time.monotonic()
            exchange.thread = threading.current_thread().name
        link.exchange = exchange
        try:
            self.target(exchange)  # (which ends the exchange, and its input)
        finally:
            if link.lock is None:
                link.exchange = None
            else:
                with link.lock:  # see expire
                    link.exchange = None
