"""The ws-echo workload's client: WebSocket echo round trips over N connections.

    .venv/bin/python bench/ws_echo.py --port 8000 --connections 50 --seconds 8
    .venv/bin/python bench/ws_echo.py --port 8000 --check

Each of ``--connections`` connections does the RFC 6455 handshake (no
extension offered: no permessage-deflate), then, all starting together,
sends one ``--size``-byte text message, waits for its echo, checks it byte
for byte and sends the next, until ``--seconds`` have passed or
``--max-round-trips`` echoes came back in all; then each sends a close
(1000) and waits for the server's close and its end of the connection
(at most ``CLOSE_WAIT`` s).  Bounded in count and time, it stops by
itself; the harness kills it 30 s past its duration anyway.  It prints one
line, ``BENCH-JSON {...}``: round trips, the window they took, echo
latencies (p50/p90/p99/max), and what went wrong (connections refused or
not upgraded, echoes that were not the message, connections that ended
before their close, closes not answered).

Why a client of our own: wrk speaks HTTP only.  Its Lua ``request()`` may
return any bytes, so it could send an upgrade request, but it parses every
answer with its HTTP parser: the 101 would count as a response and the
frames after it as a broken next one (a read error, and the connection
made again).  So this client is built to cost little per round trip, to
stay off the critical path like wrk: uvloop (the repo's .venv has it; plain
asyncio otherwise) with a bare ``asyncio.Protocol``, no WebSocket library.
Client frames must be masked (RFC 6455 5.3), so the one masked frame is
built once, with a fixed mask (the mask protects proxies from a hostile
script in a browser, which is no concern here); the server's echo, unmasked,
has exactly known bytes, so the usual echo is recognised by one comparison
of the bytes received with those expected (a general frame parser takes
anything else: split reads, pings, closes).  A round trip costs the client
two system calls and a little Python, about 7 µs of CPU in all (kernel
included) on the 2-core VM of docs/performance.md, against 13-20 µs for the
fastest servers' side: direct, the client's core stays about half idle.  It
is pinned to CPU 0 with the front server, like wrk, and its CPU time goes
into the record (``client_us_per_rt``) to show how far it is from being the
limit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import sys
import time
from typing import Any, cast

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
MASK = b"\x5a\x17\xc3\x3e"
CLOSE_NORMAL = b"\x03\xe8"  # 1000
#: Bounds: how long the handshakes may take, how long a close is waited for.
CONNECT_WAIT = 15.0
CLOSE_WAIT = 5.0
#: Latencies kept for the percentiles (the count goes on past them).
MAX_SAMPLES = 4_000_000
PATTERN = b"0123456789abcdef"


def message(size: int) -> bytes:
    """The text message every connection sends: ASCII, ``size`` bytes."""
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def _length(n: int, masked: bool) -> bytes:
    bit = 0x80 if masked else 0
    if n < 126:
        return bytes([bit | n])
    if n < 65536:
        return bytes([bit | 126]) + n.to_bytes(2, "big")
    return bytes([bit | 127]) + n.to_bytes(8, "big")


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final frame as a client must send it: masked."""
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode]) + _length(len(payload), True) + MASK + body


def server_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final frame as the server sends it: unmasked (the echo expected)."""
    return bytes([0x80 | opcode]) + _length(len(payload), False) + payload


def accept_token(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())  # (the RFC's digest)


def handshake(host: str, path: str) -> tuple[bytes, bytes]:
    """(the upgrade request, the Sec-WebSocket-Accept it must get)."""
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    return request, accept_token(key)


def head_problem(head: bytes, token: bytes) -> str | None:
    """None if ``head`` (up to its blank line) is a valid 101 for ``token``."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or parts[1] != b"101":
        return f"not upgraded: {lines[0][:80]!r}"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-accept":
            return None if value.strip() == token else "wrong Sec-WebSocket-Accept"
    return "no Sec-WebSocket-Accept"


def parse_frame(buf: bytes) -> tuple[int, bool, bytes, int] | None:
    """(opcode, fin, payload, bytes used) of the first whole frame, or None."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n, pos = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = int.from_bytes(buf[2:10], "big"), 10
    mask = b""
    if b1 & 0x80:  # (a server must not mask: unmasked here all the same)
        if len(buf) < pos + 4:
            return None
        mask, pos = buf[pos : pos + 4], pos + 4
    if len(buf) < pos + n:
        return None
    payload = buf[pos : pos + n]
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0F, bool(b0 & 0x80), payload, pos + n


class Run:
    """What the connections share: the frames, the clock, the counts."""

    def __init__(self, size: int, seconds: float, max_round_trips: int) -> None:
        self.message = message(size)
        self.frame = client_frame(self.message)
        self.expected = server_frame(self.message)
        self.close = client_frame(CLOSE_NORMAL, 0x8)
        self.seconds = seconds
        self.limit = max_round_trips
        self.deadline = 0  # perf_counter_ns, set at the start
        self.count = 0
        self.latencies: list[int] = []
        self.mismatches = 0
        self.closed_early = 0
        self.clean_closes = 0
        self.unanswered_closes = 0
        self.not_ended = 0  # close answered, the connection not ended by the server
        self.pings = 0
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(text)


HANDSHAKE, OPEN, CLOSING, DONE = range(4)


class EchoClient(asyncio.Protocol):
    def __init__(self, run: Run, request: bytes, token: bytes) -> None:
        self.run = run
        self.request = request
        self.token = token
        self.state = HANDSHAKE
        self.buf = b""
        self.sent = 0
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.upgraded: asyncio.Future[None] = loop.create_future()
        self.stopped: asyncio.Future[int] = loop.create_future()  # when it stopped sending
        self.done: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's is not a subclass)
        self.transport.write(self.request)

    def start(self) -> None:
        assert self.transport is not None
        self.sent = time.perf_counter_ns()
        self.transport.write(self.run.frame)

    def data_received(self, data: bytes) -> None:
        run = self.run
        if self.state == OPEN and not self.buf and data == run.expected:
            # The usual case: exactly one echo, exactly as sent.
            self.echoed(time.perf_counter_ns())
            return
        self.buf += data
        if self.state == HANDSHAKE:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            problem = head_problem(self.buf[:end], self.token)
            self.buf = self.buf[end + 4 :]
            if problem is not None:
                self.fail(problem)
                return
            self.state = OPEN
            self.upgraded.set_result(None)
            if not self.buf:
                return
        self.frames()

    def frames(self) -> None:
        run = self.run
        transport = self.transport
        assert transport is not None
        while self.buf and self.state != DONE:
            frame = parse_frame(self.buf)
            if frame is None:
                return
            opcode, fin, payload, used = frame
            self.buf = self.buf[used:]
            if opcode == 0x9:  # ping
                run.pings += 1
                transport.write(client_frame(payload, 0xA))
            elif opcode == 0x8:  # close: the server ends the connection next (RFC 6455 7.1.1)
                if self.state == CLOSING:
                    run.clean_closes += 1
                else:
                    run.closed_early += 1
                    run.problem(f"server closed: {payload[:2].hex()} {payload[2:60]!r}")
                    transport.write(client_frame(payload[:2], 0x8))
                self.state = DONE
                self.settle()
            elif opcode == 0xA or self.state != OPEN:
                pass  # (a pong; an echo still coming after our close)
            elif opcode == 0x1 and fin and payload == run.message:
                self.echoed(time.perf_counter_ns())
            else:
                run.mismatches += 1
                run.problem(f"echo: opcode {opcode} fin {fin} {payload[:40]!r}")
                self.stop()

    def echoed(self, now: int) -> None:
        run = self.run
        run.count += 1
        if len(run.latencies) < MAX_SAMPLES:
            run.latencies.append(now - self.sent)
        if now < run.deadline and run.count < run.limit:
            self.sent = now
            assert self.transport is not None
            self.transport.write(run.frame)
        else:
            self.stop(now)

    def stop(self, now: int = 0) -> None:
        """No more messages: send the close."""
        if not self.stopped.done():
            self.stopped.set_result(now or time.perf_counter_ns())
        if self.state == OPEN:
            self.state = CLOSING
            assert self.transport is not None
            self.transport.write(self.run.close)

    def fail(self, problem: str) -> None:
        self.run.problem(problem)
        self.state = DONE
        assert self.transport is not None
        self.transport.abort()
        self.settle()

    def settle(self, ended: bool = False) -> None:
        """Resolve what waits on this connection: the handshake, the stop and,
        once the connection has ``ended``, its end."""
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("not upgraded"))
        if not self.stopped.done():
            self.stopped.set_result(time.perf_counter_ns())
        if ended and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        run = self.run
        if self.state == HANDSHAKE:
            run.problem(f"connection lost in the handshake: {exc or 'EOF'}")
        elif self.state == OPEN:
            run.closed_early += 1
            run.problem(f"connection lost: {exc or 'EOF'}")
        elif self.state == CLOSING:
            run.unanswered_closes += 1
        self.state = DONE
        self.settle(ended=True)


def percentile(ordered: list[int], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] / 1e6


async def _open(
    run: Run, host: str, port: int | None, unix: str | None, path: str
) -> EchoClient | None:
    loop = asyncio.get_running_loop()
    request, token = handshake(f"{host}:{port}" if port else "localhost", path)
    client: EchoClient | None = None

    def factory() -> EchoClient:
        nonlocal client
        client = EchoClient(run, request, token)
        return client

    async def connect() -> None:
        if unix:
            await loop.create_unix_connection(factory, unix)
        else:
            await loop.create_connection(factory, host, port)
        assert client is not None
        await client.upgraded

    try:
        await asyncio.wait_for(connect(), CONNECT_WAIT)
    except (OSError, ConnectionError) as exc:  # (TimeoutError too)
        run.problem(f"connect: {exc}")
        if client is not None and client.transport is not None:
            client.transport.abort()
        return None
    return client


async def echo_load(
    host: str,
    port: int | None,
    unix: str | None,
    path: str,
    connections: int,
    seconds: float,
    size: int,
    max_round_trips: int,
) -> dict[str, Any]:
    """Open the connections, run the echoes, close; the summary."""
    run = Run(size, seconds, max_round_trips)
    opened = await asyncio.gather(*[_open(run, host, port, unix, path) for _ in range(connections)])
    clients = [c for c in opened if c is not None]
    cpu0 = time.process_time()
    started = time.perf_counter_ns()
    run.deadline = started + int(seconds * 1e9)
    for client in clients:
        client.start()
    ended = started
    if clients:
        stops = [c.stopped for c in clients]
        finished, late = await asyncio.wait(stops, timeout=seconds + 10)
        ended = max([f.result() for f in finished], default=time.perf_counter_ns())
        for client in clients:  # (a connection whose echo never came)
            if client.stopped in late:
                run.problem("no echo within the run's time + 10 s")
                client.stop()
        cpu1 = time.process_time()
        await asyncio.wait([c.done for c in clients], timeout=CLOSE_WAIT)
        for client in clients:
            if not client.done.done():
                if client.state == CLOSING:
                    run.unanswered_closes += 1
                else:
                    run.not_ended += 1
                client.state = DONE  # (not counted again when the abort lands)
                assert client.transport is not None
                client.transport.abort()
    else:
        cpu1 = cpu0
    window = (ended - started) / 1e9
    run.latencies.sort()
    return {
        "round_trips": run.count,
        "duration_s": window,
        "round_trips_per_s": run.count / window if window > 0 else 0.0,
        "connections": connections,
        "connected": len(clients),
        "size": size,
        "mismatches": run.mismatches,
        "closed_early": run.closed_early,
        "not_connected": connections - len(clients),
        "clean_closes": run.clean_closes,
        "unanswered_closes": run.unanswered_closes,
        "not_ended": run.not_ended,
        "pings": run.pings,
        "p50_ms": percentile(run.latencies, 50),
        "p90_ms": percentile(run.latencies, 90),
        "p99_ms": percentile(run.latencies, 99),
        "max_ms": run.latencies[-1] / 1e6 if run.latencies else None,
        "client_cpu_s": cpu1 - cpu0,
        "problems": run.problems,
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }


async def check(
    host: str, port: int | None, unix: str | None = None, path: str = "/ws", size: int = 32
) -> str | None:
    """The byte-exact check: one connection, a text and a binary message each
    echoed exactly, then a clean close (the server answers 1000 and ends the
    connection).  None if all went so, else what did not."""
    request, token = handshake(f"{host}:{port}" if port else "localhost", path)
    text, data = message(size), os.urandom(size)
    try:
        if unix:
            reader, writer = await asyncio.open_unix_connection(unix)
        else:
            reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        return f"connect: {exc}"
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        problem = head_problem(head[:-4], token)
        if problem is not None:
            return problem
        for payload, opcode in ((text, 0x1), (data, 0x2)):
            writer.write(client_frame(payload, opcode))
            expected = server_frame(payload, opcode)
            got = await asyncio.wait_for(reader.readexactly(len(expected)), 10)
            if got != expected:
                return f"echo of {len(payload)} bytes (opcode {opcode}): {got[:60]!r}"
        writer.write(client_frame(CLOSE_NORMAL, 0x8))
        got = await asyncio.wait_for(reader.readexactly(4), 10)
        if got != server_frame(CLOSE_NORMAL, 0x8):
            return f"close answered with {got!r}"
        rest = await asyncio.wait_for(reader.read(100), CLOSE_WAIT)
        if rest:
            return f"bytes after the close: {rest[:60]!r}"
    except (
        OSError,
        asyncio.IncompleteReadError,
        asyncio.TimeoutError,
        asyncio.LimitOverrunError,
    ) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        writer.close()
    return None


def run_loop(coroutine: Any, loop: str) -> Any:
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback only")
    parser.add_argument("--port", type=int, help="TCP port on --host")
    parser.add_argument("--unix", help="or a unix socket's path")
    parser.add_argument("--path", default="/ws")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--size", type=int, default=32, help="message bytes")
    parser.add_argument("--max-round-trips", type=int, default=50_000_000)
    parser.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto")
    parser.add_argument("--check", action="store_true", help="the byte-exact check only")
    args = parser.parse_args(argv)
    if (args.port is None) == (args.unix is None):
        parser.error("give --port or --unix")
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        parser.error("--host: loopback addresses only")
    if not 0 < args.seconds <= 3600 or not 0 < args.connections <= 10_000:
        parser.error("--seconds in (0, 3600], --connections in (0, 10000]")
    if args.check:
        problem = run_loop(check(args.host, args.port, args.unix, args.path, args.size), args.loop)
        print(problem or "ok")
        return 1 if problem else 0
    summary = run_loop(
        echo_load(
            args.host,
            args.port,
            args.unix,
            args.path,
            args.connections,
            args.seconds,
            args.size,
            args.max_round_trips,
        ),
        args.loop,
    )
    print("BENCH-JSON " + json.dumps(summary), flush=True)
    return 0 if summary["connected"] else 1


if __name__ == "__main__":
    sys.exit(main())
