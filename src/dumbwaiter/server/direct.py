"""``--direct``: application threads serve gateway connections themselves.

Why
---
Behind a front server, a FastCGI (without keep-conn), SCGI or uwsgi
connection carries one request, sent whole, and the front reads the answer as
fast as we write it.  For such a connection the event loop only relays: it
accepts, reads, hands the request to a thread and back, writes and closes, and
that relay (transport bookkeeping, two thread wake-ups, the loop's own system
calls) costs as much CPU as the request itself.  Here a thread does it all in
blocking calls, the way uWSGI serves, with the same sans-IO protocol objects
and the same gateway as the loop.

Theory of operation
-------------------
Each listener served directly gets ``--threads`` threads of its own, which
take turns (:class:`Turn`) to accept and read: the thread holding the turn
blocks in ``accept()`` (``SO_RCVTIMEO`` on the listener wakes it every
:data:`ACCEPT_WAKE` seconds to see whether the worker is stopping), reads the
request with the same sans-IO protocol object the loop uses, and gives the
turn back before it runs the application, or before any read that must wait.
Then it:

1. reads on until the protocol object reports a complete request: the head
   due within ``--header-timeout`` of the accept, the body at
   ``--min-body-rate``, no read silent for more than ``--read-timeout``
   (``SO_RCVTIMEO``, set per read off the common path, where a front server's
   request is there at the first read), and the protocol's size limits;
2. runs the gateway with a :class:`DirectStream`, whose writes are blocking
   sends; the loop's tick shuts a connection whose send has taken nothing for
   ``--write-timeout``;
3. closes, or, when the front keeps a FastCGI connection (``FCGI_KEEP_CONN``),
   hands the socket and its protocol object to the event loop, which serves it
   from then on like any kept connection.

What it gives up, which is why it is opt-in and meant for a front server's
socket: a slow peer holds a thread for as long as the timeouts allow; a busy
worker answers no 503 (it accepts nothing, and connections wait in the
kernel's backlog, or go to a worker with a free thread); and a client that
leaves (or a FastCGI abort) is noticed at the next write, not while the app
runs.  Everything else holds as on the loop: the access log and metrics,
``--timeout`` (answered from the loop: 504, or the connection shut if the
response began), ``--max-requests``, ``--status`` and a graceful stop.
"""

from __future__ import annotations

import _socket
import contextlib
import fcntl
import itertools
import logging
import math
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Final

from ..protocols import (
    BodyReceived,
    FilterDataReceived,
    RemoteProtocolError,
    RequestAborted,
    RequestComplete,
    RequestReceived,
    ServerProtocol,
)
from ..protocols.scgi import SCGIServerProtocol
from ..protocols.uwsgi import UwsgiServerProtocol
from ..request import Request, SocketBody
from .connection import TIMEOUT_BODY, TIMEOUT_HEADERS, Connection, peer_name, reset_on_close
from .pool import batch_scheduling

if TYPE_CHECKING:
    from ..typing import Exchange
    from .listeners import Listener
    from .worker import ServerContext

__all__ = ["DIRECT_PROTOCOLS", "DirectServer", "DirectStream"]

log = logging.getLogger("dumbwaiter")

#: The listener kinds a thread can serve directly (HTTP stays on the loop:
#: its clients may be anyone, at any pace).
DIRECT_PROTOCOLS = ("fastcgi", "scgi", "uwsgi")

#: A connection's socket: the C type under socket.socket, whose methods are
#: the system calls without the Python-level wrappers (accept() building a
#: socket.socket costs a fifth of a request).
Sock = _socket.socket

#: The protocols whose body the app reads from the socket (SocketBody).
STREAMED: Final = (SCGIServerProtocol, UwsgiServerProtocol)

#: How long the first read of a connection may wait while its thread holds
#: the accept turn (a front server writes its request as it connects; one
#: that is slower gives the turn to the next thread after this).
FIRST_WAIT: Final = 0.02
#: How often an idle thread wakes from accept() to see a stop.
ACCEPT_WAKE: Final = 0.5
RECV_SIZE: Final = 256 * 1024
#: (an int once: the flag is an enum member)
MSG_DONTWAIT: Final = int(socket.MSG_DONTWAIT)
#: After a protocol error: how long we read and drop what the peer still
#: sends, so that it sees our answer rather than a reset (as the loop does).
LINGER_SECONDS: Final = 2.0


def timeval(seconds: float) -> bytes:
    """``struct timeval`` for SO_RCVTIMEO/SO_SNDTIMEO (0: wait forever)."""
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


class DirectStream:
    """One request served by its own thread: :class:`~dumbwaiter.typing.Exchange`
    over a blocking socket.  ``lock`` orders the response's start against
    ``--timeout``'s 504, the one thing another thread (the loop) may do
    (None without ``--timeout``)."""

    __slots__ = (
        "began",
        "cancelled",
        "expired",
        "listener",
        "lock",
        "logged",
        "peer",
        "proto",
        "queued",
        "request",
        "sending",
        "sent",
        "sock",
        "started",
        "status",
        "thread",
    )

    def __init__(
        self,
        sock: Sock,
        proto: ServerProtocol,
        request: Request,
        peer: dict[str, str],
        lock: threading.Lock | None,
        listener: Listener,
    ) -> None:
        self.sock = sock
        self.listener = listener
        self.proto = proto
        self.request = request
        self.peer = peer
        self.lock = lock
        self.cancelled = False
        self.started = False
        self.expired = False
        self.status = ""
        self.sent = 0
        #: Since when a send has been blocked (time.monotonic()), 0: none is.
        self.sending = 0.0
        self.began = 0.0
        self.queued = 0.0
        self.thread = ""
        self.logged = False

    def start(self, status: str, headers: list[tuple[str, str]], body: bytes, end: bool) -> None:
        lock = self.lock
        if lock is not None:
            with lock:
                if self.expired:  # --timeout answered for us
                    self.cancelled = True
                    return
                self.started = True
        self.status = status
        self.sent += len(body)
        self.send(self.proto.start_response(self.request.stream_id, status, headers, body, end))

    def write(self, data: bytes) -> bool:
        if self.cancelled:
            return False
        self.sent += len(data)
        self.send(self.proto.send_body(self.request.stream_id, data))
        return not self.cancelled

    def end(self) -> None:
        if not self.cancelled:
            self.send(self.proto.end_response(self.request.stream_id))

    def abort(self) -> None:
        if not self.cancelled:
            self.send(self.proto.abort_response(self.request.stream_id))
            self.cancelled = True
            reset_on_close(self.sock)

    def sendfile(self, file: IO[bytes], offset: int, count: int) -> bool:
        check: Callable[[int], bool] | None = getattr(self.proto, "raw_body_ok", None)
        if self.cancelled or check is None or not check(self.request.stream_id):
            return False
        fd = self.sock.fileno()
        try:
            infd = file.fileno()
            while count > 0:
                self.sending = time.monotonic()
                sent = os.sendfile(fd, infd, offset, count)
                if sent == 0:  # the file is shorter than it was
                    raise OSError("the file ended early")
                offset += sent
                count -= sent
                self.sent += sent
        except OSError:
            self.cancel()  # the caller sees it and ends the response
        self.sending = 0.0
        return True

    def send(self, data: bytes) -> None:
        if data and not self.cancelled:
            self.sending = time.monotonic()  # watched by DirectServer.check_writes
            try:
                self.sock.sendall(data)
            except OSError:  # the peer left, or took nothing for --write-timeout
                self.cancel()
            self.sending = 0.0

    def cancel(self) -> None:
        self.cancelled = True
        self.request.abort_input()


class Turn:
    """The right to accept on a listener and read the request: one thread at
    a time.  Why: under load the backlog is never empty, and threads that each
    accepted a connection would contend for the GIL.  The thread holding it
    takes it back after each short system call, and the others get it only at
    the interpreter's forced switch (5 ms), request after request (a p99 of
    50-90 ms at 8 threads).  With the turn, a thread that is not in the
    application waits for the turn, off the GIL, and at most one thread has a
    connection it has not read; while the application blocks, another thread
    accepts."""

    __slots__ = ("lock", "owner")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner = 0

    def take(self, me: int, timeout: float) -> bool:
        """Take the turn for thread ``me`` (its number, from 1), waiting up
        to ``timeout``."""
        # (A free turn is taken without the timed wait's set-up.)
        if self.lock.acquire(False) or self.lock.acquire(True, timeout):
            self.owner = me
            return True
        return False

    def give(self, me: int) -> None:
        """Give the turn back, if thread ``me`` holds it."""
        if self.owner == me:
            self.owner = 0
            self.lock.release()


def readable(sock: Sock, seconds: float) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(int(seconds * 1000)))


class DirectServer:
    """The threads serving the direct listeners of one worker."""

    def __init__(
        self,
        ctx: ServerContext,
        listeners: list[Listener],
        target: Callable[[Exchange], None],
        factories: dict[str, Callable[[], ServerProtocol]],
    ) -> None:
        self.ctx = ctx
        self.listeners = listeners
        self.target = target
        self.factories = factories
        self.stopping = False
        #: Requests in flight (added and removed by their threads; read by the loop).
        self.inflight: set[DirectStream] = set()
        #: Requests served, per thread (each thread adds to its own slot only).
        self.counts: list[int] = []
        self.threads: list[threading.Thread] = []
        self.turns = {listener.address.text: Turn() for listener in listeners}
        #: Orders a response's start against --timeout's 504 (see DirectStream).
        self.timeout_lock = threading.Lock() if ctx.config.timeout else None
        #: The next connection's number (for the access log's connection id).
        self.next_number: Callable[[], int] = itertools.count(1).__next__
        # When the app took a request up, and which thread: for --timeout
        # and --status (no queue wait to log: the thread that accepted runs it).
        self.timed = bool(ctx.config.timeout) or bool(ctx.config.status)
        config = ctx.config
        # Read per request: kept here, where compiled code reads them as
        # plain attributes (Config is a Python object).
        self.header_timeout = config.header_timeout
        self.read_timeout = config.read_timeout
        self.min_body_rate = config.min_body_rate
        self.spool_threshold = config.spool_threshold
        self.write_wait = timeval(config.write_timeout)
        self.read_wait = timeval(config.read_timeout)
        #: What a request that timed out was still owed, for its log line.
        self.head_due = f"the whole head within {config.header_timeout:g}s"
        self.body_due = f"the body at {config.min_body_rate} bytes/s"

    @property
    def completed(self) -> int:
        return sum(self.counts)

    def start(self) -> None:
        wake = timeval(ACCEPT_WAKE)
        for listener in self.listeners:
            # Blocking accept; the listener's timeout bounds each wait.
            listener.sock.setblocking(True)
            listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, wake)
            for _ in range(self.ctx.config.threads):
                number = len(self.threads)
                self.counts.append(0)
                thread = threading.Thread(
                    target=self.serve,
                    args=(listener, number),
                    name=f"dumbwaiter-direct-{number}",
                    daemon=True,
                )
                thread.start()
                self.threads.append(thread)

    def stop(self) -> None:
        """Accept no more; each thread ends after its connection."""
        self.stopping = True

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every thread to end; whether they did."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not self.alive()

    # -- one thread ------------------------------------------------------------
    def serve(self, listener: Listener, number: int) -> None:
        if not self.ctx.config.no_batch_threads:
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
        proto = self.factories[listener.protocol]()
        request = self.receive(sock, proto, listener, peer, turn, number + 1)
        turn.give(number + 1)
        if request is None:
            sock.close()
            return
        stream = self.run(sock, proto, request, peer, listener)
        self.counts[number] += 1
        rest = request.socket_body
        if rest is not None and rest.left and not stream.cancelled:
            rest.skip_rest()  # what the app left unread: the front sent it all
        ctx = self.ctx
        if ctx.request_limit and not ctx.retiring:
            served = ctx.served()
            if served >= ctx.request_limit:
                ctx.loop.call_soon_threadsafe(
                    ctx.retire, f"served {served} requests (--max-requests)"
                )
        if proto.closing or stream.cancelled or self.stopping:
            sock.close()
        else:  # a kept FastCGI connection: the loop waits for its next request
            ctx.loop.call_soon_threadsafe(self.adopt, sock, proto, listener)

    def receive(
        self,
        sock: Sock,
        proto: ServerProtocol,
        listener: Listener,
        peer: dict[str, str],
        turn: Turn,
        me: int,
    ) -> Request | None:
        """Read one whole request; None when there is none to answer.  The
        turn is given back before any read that may wait (a front sends its
        request at once: usually it is all there when we accept)."""
        request: Request | None = None
        # The head is due within --header-timeout of the accept (a front
        # sends at once), the body at --min-body-rate after a grace.  The
        # deadline is set when a read must first wait (microseconds after
        # the accept, or after the head): most requests never wait.
        grace = self.header_timeout
        due = 0.0
        what_is_due = waiting_for = self.head_due
        # The first read does not wait (a front writes its request as it
        # connects); if it must, FIRST_WAIT at most while holding the turn.
        # Later reads wait with SO_RCVTIMEO for no longer than is due (set
        # per read: it costs two system calls, only off the common path).
        first = True
        flags = MSG_DONTWAIT
        while True:
            if not first:
                now = time.monotonic()
                if not due:
                    due = now + grace
                left = due - now
                if request is not None and self.min_body_rate:
                    left += request.body.size / self.min_body_rate
                if left <= 0:
                    break
                waiting_for = what_is_due
                if self.read_timeout and self.read_timeout < left:
                    left = self.read_timeout
                    waiting_for = "more of the request"
                # (a timeval of zero waits for ever)
                wait = timeval(0.0) if left == math.inf else timeval(max(left, 0.001))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, wait)
            try:
                data = sock.recv(RECV_SIZE, flags)
            except (BlockingIOError, TimeoutError):
                if first:  # not there yet
                    first = False
                    flags = 0
                    due = time.monotonic() + grace
                    if not readable(sock, FIRST_WAIT):
                        turn.give(me)  # wait on, but let another thread accept
                    continue
                break
            except OSError:
                return None
            try:
                events = proto.receive_data(data)
            except RemoteProtocolError as exc:
                self.refuse(sock, proto, exc, listener, peer)
                return None
            if not data:
                if request is not None or not proto.idle:
                    log.info(
                        "%s: %s: closed in the middle of a request", listener.name, peer_name(peer)
                    )
                return None
            complete = False
            for event in events:
                kind = type(event)
                if kind is RequestReceived:
                    assert isinstance(event, RequestReceived)
                    request = Request(
                        event.stream_id, event.environ, event.role, self.spool_threshold
                    )
                    if self.ctx.recording:
                        request.arrived = time.monotonic()
                    due = 0.0  # (from the next wait)
                    if self.min_body_rate:
                        grace = self.read_timeout
                        what_is_due = self.body_due
                    else:  # only --read-timeout's silence bounds the body
                        grace = math.inf
                elif kind is BodyReceived:
                    assert isinstance(event, BodyReceived) and request is not None
                    request.body.write(event.data)
                elif kind is FilterDataReceived:
                    assert isinstance(event, FilterDataReceived) and request is not None
                    assert request.filter_data is not None
                    request.filter_data.write(event.data)
                elif kind is RequestComplete:
                    complete = True
                elif kind is RequestAborted:
                    if request is not None:
                        request.discard()
                        request = None
                    with contextlib.suppress(OSError):
                        sock.sendall(proto.end_response(event.stream_id))
            reply = proto.data_to_send()
            if reply:
                try:
                    sock.sendall(reply)
                except OSError:
                    return None
            if complete and request is not None:
                request.finish()
                return request
            if request is not None and type(proto) in STREAMED:
                # SCGI, uwsgi: the rest of the body is read by the app from
                # the socket, as it asks (see SocketBody).
                self.stream_body(sock, request, f"{listener.name}: {peer_name(peer)}")
                return request
            first = False
            flags = 0
            turn.give(me)
        if request is not None or not proto.idle:  # (nothing sent at all: a probe)
            log.info(
                "%s: %s: closing: still waiting for %s", listener.name, peer_name(peer), waiting_for
            )
        if request is not None:
            request.discard()
        return None

    def stream_body(self, sock: Sock, request: Request, where: str) -> None:
        """Make ``wsgi.input`` read the rest of a one-shot body from the socket."""
        declared = int(request.environ.get("CONTENT_LENGTH") or 0)  # checked by the protocol
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, self.read_wait)
        request.read_rest_from(SocketBody(sock, declared - request.body.size, where))

    def run(
        self,
        sock: Sock,
        proto: ServerProtocol,
        request: Request,
        peer: dict[str, str],
        listener: Listener,
    ) -> DirectStream:
        """The application's turn, then the access log and metrics."""
        stream = DirectStream(sock, proto, request, peer, self.timeout_lock, listener)
        if self.timed:
            stream.began = stream.queued = time.monotonic()
            stream.thread = threading.current_thread().name
        self.inflight.add(stream)
        try:
            self.target(stream)
        finally:
            self.inflight.discard(stream)
            request.input.close()
        if self.ctx.recording and not stream.logged:
            self.record(stream)
        return stream

    def record(self, stream: DirectStream) -> None:
        stream.logged = True
        self.ctx.record(
            stream.listener,
            stream.request,
            stream.status,
            stream.cancelled,
            stream.sent,
            stream.peer.get("dumbwaiter.connection", ""),
            0.0,  # no queue: the thread that accepted runs it
        )

    def refuse(
        self,
        sock: Sock,
        proto: ServerProtocol,
        exc: RemoteProtocolError,
        listener: Listener,
        peer: dict[str, str],
    ) -> None:
        """A protocol error: answer it, then linger so the peer reads the answer."""
        log.info("%s: %s: %s", listener.name, peer_name(peer), exc)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, self.write_wait)
            sock.sendall(proto.error_response(exc))
            sock.shutdown(socket.SHUT_WR)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(LINGER_SECONDS))
            deadline = time.monotonic() + LINGER_SECONDS
            while time.monotonic() < deadline and sock.recv(RECV_SIZE):
                pass
        except OSError:
            pass

    # -- the loop's side ---------------------------------------------------------
    def adopt(self, sock: Sock, proto: ServerProtocol, listener: Listener) -> None:
        """Serve a kept connection from the loop from now on (loop thread)."""
        ctx = self.ctx
        if ctx.draining:
            sock.close()
            return
        conn_sock = socket.socket(sock.family, sock.type, sock.proto, sock.detach())
        conn_sock.setblocking(False)

        def made() -> Connection:
            conn = Connection(ctx, listener)
            conn.proto = proto
            conn.fresh = False
            return conn

        ctx.loop.create_task(ctx.loop.connect_accepted_socket(made, conn_sock))

    def check_writes(self, now: float) -> None:
        """Shut the connections whose peer took nothing of a send for
        ``--write-timeout`` (loop thread, once a tick): their thread's send
        fails, and it goes back to accepting."""
        limit = self.ctx.config.write_timeout
        for stream in list(self.inflight):
            since = stream.sending
            if since and now - since > limit and not stream.cancelled:
                log.info(
                    "%s: %s: the peer read nothing for %gs, dropping the connection",
                    stream.listener.name,
                    peer_name(stream.peer),
                    limit,
                )
                stream.cancel()
                reset_on_close(stream.sock)
                with contextlib.suppress(OSError):
                    stream.sock.shutdown(socket.SHUT_RDWR)

    def expire(self, stream: DirectStream) -> None:
        """``--timeout`` passed (loop thread): 504 if the response has not
        begun, else the connection is shut so the front sees it broken."""
        assert stream.lock is not None  # (set with --timeout)
        with stream.lock:
            if stream.expired:
                return
            stream.expired = True
            started = stream.started
        if not started:
            request_id = stream.request.stream_id
            body = stream.proto.reject(
                request_id, "504 Gateway Timeout", TIMEOUT_HEADERS, TIMEOUT_BODY
            )
            with contextlib.suppress(OSError):
                stream.sock.send(body, MSG_DONTWAIT)
            stream.status, stream.sent = "504", len(TIMEOUT_BODY)
            if self.ctx.recording and not stream.logged:
                self.record(stream)
        stream.cancel()
        # The thread owns the socket (it closes it once the app returns):
        # shut it, which the front sees as the end of the response (after a
        # started one on TCP, a FIN before the reset of the close).
        reset_on_close(stream.sock)
        with contextlib.suppress(OSError):
            stream.sock.shutdown(socket.SHUT_RDWR)
