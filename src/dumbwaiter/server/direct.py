"""The blocking-socket driver (``--direct``): application threads serve
gateway connections themselves.

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
Each listener served directly gets ``--threads`` threads of its own, which
take turns (:class:`~.blocking.Turn`) to accept and read: the thread holding
the turn blocks in ``accept()`` (``SO_RCVTIMEO`` on the listener wakes it every
:data:`ACCEPT_WAKE` seconds to see whether the worker is stopping), reads the
request into the connection's session, and gives the turn back before it
runs the application, or before any read that must wait.  Then it:

1. reads on until the session hands it a complete request, within the
   session's deadline (``SO_RCVTIMEO``, set per read off the common path,
   where a front server's request is there at the first read); an SCGI or
   uwsgi body past the first read is left in the socket for the app to read
   as it asks (:class:`~dumbwaiter.request.SocketBody`);
2. runs the gateway with a :class:`~.blocking.DirectExchange`, whose
   writes are blocking sends (:mod:`.blocking` has the connection's side);
   the loop's tick shuts a connection whose send has taken nothing for
   ``--write-timeout``;
3. closes, or, when the front keeps a FastCGI connection
   (``FCGI_KEEP_CONN``), hands the socket and its session to the event loop, which serves it from
   then on like any kept connection.

What it gives up, which is why it is opt-in and meant for a front server's
socket: a slow peer holds a thread for as long as the timeouts allow (a new
connection may stay silent for ``--header-timeout``, not the keep-alive
timeout); a busy worker answers no 503 (it accepts nothing, and connections
wait in the kernel's backlog, or go to a worker with a free thread); and a
client that leaves (or a FastCGI abort) is noticed at the next write, not
while the app runs.  ``--timeout`` is answered from the loop (504, or the
connection shut if the response began), under a lock that orders it against
the response's start.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from .blocking import RECV_SIZE, DirectExchange, DirectLink, Sock, Turn, readable, timeval
from .deadlines import SessionSettings
from .exchange import ExchangeBase
from .pool import batch_scheduling
from .session import Session

if TYPE_CHECKING:
    from ..typing import Exchange
    from .context import ServerContext
    from .listeners import Listener

__all__ = ["DIRECT_PROTOCOLS", "DirectServer"]

log = logging.getLogger("dumbwaiter")

#: The listener kinds a thread can serve directly (HTTP stays on the loop:
#: its clients may be anyone, at any pace).
DIRECT_PROTOCOLS = ("fastcgi", "scgi", "uwsgi")

#: How long the first read of a connection may wait while its thread holds
#: the accept turn (a front server writes its request as it connects; one
#: that is slower gives the turn to the next thread after this).
FIRST_WAIT: Final = 0.02
#: How often an idle thread wakes from accept() to see a stop.
ACCEPT_WAKE: Final = 0.5
#: (an int once: the flag is an enum member)
MSG_DONTWAIT: Final = int(socket.MSG_DONTWAIT)


class DirectServer:
    """The threads serving the direct listeners of one worker; a
    :class:`~.context.Driver` for the tick."""

    def __init__(
        self,
        ctx: ServerContext,
        listeners: list[Listener],
        target: Callable[[Exchange], None],
        settings: SessionSettings,
        adopt: Callable[[socket.socket, Session, Listener], None],
    ) -> None:
        self.ctx = ctx
        self.listeners = listeners
        self.target = target
        self.settings = settings
        #: Hands a kept connection to the loop (called on the loop thread).
        self.adopt = adopt
        #: The listeners' protocol objects (made without multiplexing: a
        #: thread serves one request at a time; see worker.build).
        self.factories = {
            kind: ctx.factories[kind] for kind in {listener.protocol for listener in listeners}
        }
        self.batch = not ctx.config.no_batch_threads
        self.threads_per_listener = ctx.config.threads
        self.stopping = False
        #: Per thread: its link while it serves a connection (set and cleared
        #: by the thread, read by the loop), the link it keeps, and its
        #: session, kept for the next connection (a new one when the last
        #: went on to the loop).
        self.links: list[DirectLink | None] = []
        self.kept: list[DirectLink | None] = []
        self.sessions: list[Session | None] = []
        #: Requests served, per thread (each thread adds to its own slot only).
        self.counts: list[int] = []
        self.threads: list[threading.Thread] = []
        self.turns = {listener.address.text: Turn() for listener in listeners}
        #: Orders a response's start against --timeout's 504 (see DirectExchange).
        self.timeout_lock = threading.Lock() if ctx.config.timeout else None
        #: The next connection's number (for the access log's connection id).
        self.next_number: Callable[[], int] = itertools.count(1).__next__
        #: When the app took a request up, and which thread.
        self.timed = ctx.timed
        self.read_wait = timeval(settings.read_timeout)

    def start(self) -> None:
        wake = timeval(ACCEPT_WAKE)
        for listener in self.listeners:
            # Blocking accept; the listener's timeout bounds each wait.
            listener.sock.setblocking(True)
            listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, wake)
            for _ in range(self.threads_per_listener):
                number = len(self.threads)
                self.counts.append(0)
                self.links.append(None)
                self.kept.append(None)
                self.sessions.append(None)
                thread = threading.Thread(
                    target=self.serve,
                    args=(listener, number),
                    name=f"dumbwaiter-direct-{number}",
                    daemon=True,
                )
                thread.start()
                self.threads.append(thread)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every thread to end; whether they did
        (then no thread waits in accept() on the listeners any more)."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self.threads)

    # -- the Driver interface (the loop thread's) ---------------------------------------
    def served(self) -> int:
        return sum(self.counts)

    def owed(self) -> int:
        return len(self.in_flight())

    def in_flight(self) -> list[ExchangeBase]:
        return [link.exchange for link in list(self.links) if link and link.exchange]

    def gauges(self) -> tuple[int, int, int, int]:
        return 0, self.owed(), len(self.threads), sum(1 for link in self.links if link)

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

    def stop(self) -> None:
        """Accept no more; each thread ends after its connection."""
        self.stopping = True

    def drain(self) -> None:
        """Nothing more to do: each thread finishes its connection."""

    def finished(self) -> bool:
        return not any(thread.is_alive() for thread in self.threads)

    def busy(self) -> int:
        return self.owed()

    def abort(self) -> None:
        """Stop now: the threads are daemons, left to the process's end."""
        self.stopping = True

    # -- one thread ------------------------------------------------------------------------
    def serve(self, listener: Listener, number: int) -> None:
        if self.batch:
            batch_scheduling()
        # The C accept, (fd, address): socket.accept() would wrap the fd in
        # a socket.socket, through Python code.
        accept: Callable[[], tuple[int, object]] = getattr(listener.sock, "_accept")  # noqa: B009
        family, kind, proto = listener.sock.family, listener.sock.type, listener.sock.proto
        turn = self.turns[listener.address.text]
        me = number + 1
        while not self.stopping:
            if not turn.take(me, ACCEPT_WAKE):
                continue
            try:
                fd, _ = accept()
            except (BlockingIOError, TimeoutError, InterruptedError):
                turn.give(me)
                # The wake-up: see whether we stop.  Or the socket was made
                # non-blocking by another process sharing it (a worker of
                # another generation serving it from its loop): wait here.
                if fcntl.fcntl(listener.sock.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK:
                    with contextlib.suppress(OSError):
                        select.select([listener.sock], [], [], ACCEPT_WAKE)
                continue
            except OSError as exc:
                turn.give(me)
                if self.stopping:
                    break
                log.error("%s: accept failed: %s", listener.name, exc)
                time.sleep(0.1)  # EMFILE and the like: do not spin
                continue
            sock = Sock(family, kind, proto, fd)
            try:
                self.connection(sock, listener, number, turn)
            except Exception:  # the gateway handles app errors; this is our bug
                log.exception("internal error serving %s directly", listener.name)
                sock.close()
            finally:
                turn.give(me)

    def connection(self, sock: Sock, listener: Listener, number: int, turn: Turn) -> None:
        """Serve one accepted connection; closes it, or hands it to the loop.
        The thread holds ``turn`` until the request is read."""
        try:
            address = None if listener.unix else sock.getpeername()
            peer = listener.peer_environ(address, sock.getsockname)
        except OSError:  # gone already (ENOTCONN): nothing to answer
            sock.close()
            return
        if peer is None:
            log.warning(
                "%s: refused connection from %s (not an allowed web server)",
                listener.name,
                address[0] if isinstance(address, tuple) else address,
            )
            sock.close()
            return
        peer["dumbwaiter.connection"] = f"d{self.next_number()}"
        me = number + 1
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
            session.renew(proto, link, peer)
        link.session = session
        self.links[number] = link
        try:
            exchange = self.receive(link, session, turn, me)
            turn.give(me)
            if exchange is None:
                return
            self.run(link, exchange)
            self.counts[number] += 1
            rest = exchange.request.socket_body
            if rest is not None and rest.left and not exchange.cancelled:
                rest.skip_rest()  # what the app left unread: the front sent it all
            if ctx.request_limit and (reason := ctx.past_request_limit()):
                ctx.loop.call_soon_threadsafe(ctx.retire, reason)
            if link.closing or session.closed or exchange.cancelled or self.stopping:
                return
            # A kept FastCGI connection: the loop waits for its next request.
            self.links[number] = self.sessions[number] = None
            kept = socket.socket(sock.family, sock.type, sock.proto, sock.detach())
            ctx.loop.call_soon_threadsafe(self.adopt, kept, session, listener)
        finally:
            self.links[number] = None
            if sock.fileno() >= 0:  # (not handed over)
                sock.close()

    def receive(
        self, link: DirectLink, session: Session, turn: Turn, me: int
    ) -> DirectExchange | None:
        """Read until the session hands over a request; None when there is
        none to answer.  The turn is given back before any read that may
        wait (a front sends its request at once: usually it is all there
        when we accept)."""
        sock = link.sock
        # The first read does not wait; if it must, FIRST_WAIT at most while
        # holding the turn.  Later reads wait with SO_RCVTIMEO for no longer
        # than the session's deadline (set per read: it costs two system
        # calls, only off the common path).
        first = True
        flags = MSG_DONTWAIT
        while True:
            if not first:
                now = time.monotonic()
                if not session.deadline:  # (none yet: a new connection's)
                    session.arm(now)
                left = session.deadline - now
                if left <= 0:
                    session.timed_out()
                    return None
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(max(left, 0.001)))
            try:
                data = sock.recv(RECV_SIZE, flags)
            except (BlockingIOError, TimeoutError):  # not there yet, or silent till the deadline
                if first:
                    first = False
                    flags = 0
                    if not readable(sock, FIRST_WAIT):
                        turn.give(me)  # wait on, but let another thread accept
                continue
            except OSError:
                session.lost()
                return None
            if not data:
                session.eof()
                return None
            session.receive(data)
            exchange = link.ready
            if exchange is not None:
                link.ready = None
                return exchange
            if link.closing or session.closed:
                return None
            if session.receiving and session.read_body_from(sock):
                # SCGI, uwsgi: the app reads the rest of the body as it asks.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, self.read_wait)
                exchange = link.ready
                link.ready = None
                return exchange
            first = False
            flags = 0
            turn.give(me)

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
