"""A WebSocket conformance check for dumbwaiter (RFC 6455, RFC 7692), after
the case groups of the Autobahn test suite.

Autobahn itself cannot run here (PyPI's ``autobahntestsuite`` is Python 2
code, and its container image cannot be pulled), so this module rebuilds
the part of it that tests a server: each case is a small function that
opens a connection with the raw client of ``wsclient.py`` (it sends exactly
the frames it is told to, broken ones included), does what the Autobahn
case of that group does, and passes or fails with a reason.  Group 0 (the
opening handshake) has no Autobahn twin; group 9 checks ``--ws-max-size``
where Autobahn's group 9 measures speed.

The cases expect what the RFCs say.  Where the RFC leaves a choice the case
takes every answer it allows (an empty close is answered empty or with
1000).  Where Autobahn is lenient and the RFC is not (a broken frame:
Autobahn takes a dropped TCP connection, RFC 6455 7.1.7 says a close frame
SHOULD come first) the case follows the RFC.  Where Autobahn grades an
allowed answer "non-strict" (a message sent just before a broken frame or a
close is not echoed, because the server failed or closed the connection
before its application answered) the case passes, and says so: its reason
starts with ``non-strict:``.

As a library: ``run_all(address, path)`` runs every case against an echo
endpoint, ``summary(results)`` makes the per-group table.  As a script::

    python tests/wsconformance.py HOST:PORT [--through NAME] [--plain HOST:PORT]

against a dumbwaiter serving :func:`app`, this module's echo application::

    PYTHONPATH=tests dumbwaiter wsconformance:app --http 127.0.0.1:8765 --ws-max-size 2097152

(``--plain`` names a second one started with ``--ws-no-compression`` too,
for group 13's cases about it; without it they are skipped.)
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import struct
import sys
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from wsclient import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    HandshakeRefused,
    WSClient,
    build_frame,
    header,
)

__all__ = [
    "CASES",
    "GROUPS",
    "MAX_SIZE",
    "Case",
    "Result",
    "Target",
    "app",
    "report",
    "run_all",
    "run_case",
    "summary",
    "update_doc",
]

KiB = 1024
MiB = 1024 * KiB
#: The ``--ws-max-size`` the check expects of the server (groups 9 and 12).
MAX_SIZE = 2 * MiB
#: How long any one read waits for the server.
TIMEOUT = 5.0
#: The pause between the pieces of a chopped write (so that they arrive apart).
CHOP_PAUSE = 0.002
#: The most frames one message may come in, and other loops' bound.
MAX_FRAMES = 100_000
#: How a passing case's reason starts when Autobahn would call it non-strict.
NON_STRICT = "non-strict: "
NON_STRICT_NOTE = (
    "Non-strict passes (RFC 6455 allows them; Autobahn grades them non-strict): the "
    "server failed the connection, or answered the client's close, before its "
    "application echoed the message sent just before:"
)

GROUPS = {
    "0": "Opening handshake",
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 handling",
    "7": "Close handling",
    "9": "Limits and volume",
    "12": "permessage-deflate: payloads",
    "13": "permessage-deflate: parameters",
}

NAMES = {CONTINUATION: "continuation", TEXT: "text", BINARY: "binary"}
NAMES.update({CLOSE: "close", PING: "ping", PONG: "pong"})


# -- the echo application ------------------------------------------------------------
#: The subprotocols the echo application knows (it takes the first one offered).
SUBPROTOCOLS = ("chat.v2",)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI echo: accepts every WebSocket (with the first subprotocol it
    knows, of those offered), sends text back as text and bytes as bytes
    until the client leaves; a plain GET says what it is."""
    kind = scope["type"]
    if kind == "lifespan":
        for _ in range(2):
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
        return
    if kind == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"WebSocket echo\n"})
        return
    if kind != "websocket":
        return
    await receive()  # websocket.connect
    offered = scope.get("subprotocols") or []
    chosen = next((name for name in offered if name in SUBPROTOCOLS), None)
    accept: dict[str, Any] = {"type": "websocket.accept"}
    if chosen is not None:
        accept["subprotocol"] = chosen
    await send(accept)
    for _ in range(10_000_000):  # (bounded: far more than any case sends)
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        reply: dict[str, Any] = {"type": "websocket.send"}
        reply.update({"text": text} if text is not None else {"bytes": message.get("bytes")})
        try:
            await send(reply)
        except OSError:  # (ClientDisconnected: gone while we answered)
            return


# -- cases, results, reports ------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where the echo is: ``address`` and ``path``; ``max_size``: its
    ``--ws-max-size``; ``plain``: (address, path) of one started with
    ``--ws-no-compression`` (None: its cases are skipped)."""

    address: tuple[str, int]
    path: str = "/"
    max_size: int = MAX_SIZE
    plain: tuple[tuple[str, int], str] | None = None


Run = Callable[[Target], str | None]


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    run: Run

    @property
    def group(self) -> str:
        return self.id.split(".")[0]


@dataclass(frozen=True)
class Result:
    id: str
    title: str
    outcome: str  # passed, failed, skipped
    reason: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    @property
    def non_strict(self) -> bool:
        return self.passed and self.reason.startswith(NON_STRICT)

    @property
    def group(self) -> str:
        return self.id.split(".")[0]


class Fail(Exception):
    """The server did not do what the case expects; the message says what it did."""


class Skip(Exception):
    """The case cannot run against this target."""


CASES: list[Case] = []


def add(case_id: str, title: str, run: Run) -> None:
    if any(known.id == case_id for known in CASES):
        raise ValueError(f"case {case_id} twice")
    CASES.append(Case(case_id, title, run))


def case(case_id: str, title: str) -> Callable[[Run], Run]:
    """``add`` as a decorator."""

    def register(run: Run) -> Run:
        add(case_id, title, run)
        return run

    return register


def run_case(item: Case, target: Target) -> Result:
    started = time.monotonic()
    try:
        note = item.run(target)
        outcome, reason = "passed", note or ""
    except Skip as exc:
        outcome, reason = "skipped", str(exc)
    except (Fail, AssertionError) as exc:
        outcome, reason = "failed", str(exc)
    except TimeoutError:
        outcome, reason = "failed", f"no answer within {TIMEOUT:g} s"
    except Exception as exc:  # (a refused handshake, a socket error ...)
        outcome, reason = "failed", f"{type(exc).__name__}: {exc}"
    return Result(item.id, item.title, outcome, reason, time.monotonic() - started)


def run_all(
    address: tuple[str, int],
    path: str = "/",
    *,
    max_size: int = MAX_SIZE,
    plain: tuple[tuple[str, int], str] | None = None,
    only: Iterable[str] | None = None,
) -> list[Result]:
    """Every case in order (or those whose id is in ``only``, or in a
    group there: "7" and "7.7" take 7.7.1)."""
    target = Target(address, path, max_size, plain)
    chosen = list(only or [])
    return [
        run_case(item, target)
        for item in CASES
        if not chosen or any(item.id == p or item.id.startswith(p + ".") for p in chosen)
    ]


def summary(results: Sequence[Result], expected: Iterable[str] = ()) -> str:
    """The per-group markdown table; a failing case in ``expected`` (it
    fails on this path for a reason that is not the server's) is marked *."""
    skipped = any(r.outcome == "skipped" for r in results)
    head = ["group", "cases", "passed", "failed", *(["skipped"] if skipped else [])]
    head += ["failing cases", "non-strict passes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups: dict[str, list[Result]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result)
    marked = set(expected)
    for group in sorted(groups, key=int):
        label = f"{group} {GROUPS.get(group, '')}"
        lines.append(row(label, groups[group], skipped, marked))
    lines.append(row("**all**", results, skipped, marked))
    return "\n".join(lines)


def row(label: str, results: Sequence[Result], skipped: bool, marked: set[str]) -> str:
    failed = [r.id + ("*" if r.id in marked else "") for r in results if r.outcome == "failed"]
    cells = [label, str(len(results)), str(sum(r.passed for r in results)), str(len(failed))]
    if skipped:
        cells.append(str(sum(r.outcome == "skipped" for r in results)))
    cells.append(", ".join(failed))
    cells.append(", ".join(r.id for r in results if r.non_strict))
    return "| " + " | ".join(cells) + " |"


def report(results: Sequence[Result], through: str, expected: dict[str, str] | None = None) -> str:
    """The table, the run's size and time, the failures and the non-strict
    passes with their reasons (markdown, for the docs); ``expected``: case
    id -> why it fails on this path for a reason that is not the server's."""
    took = sum(r.seconds for r in results)
    expected = expected or {}
    text = [summary(results, expected), "", f"{len(results)} cases in {took:.1f} s ({through})."]
    failed = [r for r in results if r.outcome == "failed" and r.id not in expected]
    if failed:
        text += ["", "Failing cases:", ""]
        text += [f"- **{r.id}** {r.title}: {r.reason}" for r in failed]
    other = [r for r in results if r.outcome == "failed" and r.id in expected]
    if other:
        text += ["", f"Failing {through}, for a reason that is not the server's (*):", ""]
        text += [f"- **{r.id}** {r.title}: {r.reason}. Why: {expected[r.id]}." for r in other]
    lenient = [r for r in results if r.non_strict]
    if lenient:
        text += ["", NON_STRICT_NOTE, ""]
        text += [f"- **{r.id}** {r.title}: {r.reason[len(NON_STRICT) :]}" for r in lenient]
    return "\n".join(text)


def catalogue() -> str:
    """Every case, by group (markdown, for the docs)."""
    lines: list[str] = []
    group = ""
    for item in CASES:
        if item.group != group:
            group = item.group
            lines += ["", f"**{group} {GROUPS[group]}**", ""]
        lines.append(f"- {item.id} {item.title}")
    return "\n".join(lines).strip("\n")


def update_doc(path: str, label: str, text: str) -> None:
    """Put ``text`` between ``<!-- BEGIN ws-conformance LABEL -->`` and its
    END marker in the file at ``path`` (both markers must be there)."""
    with open(path, encoding="utf-8") as source:
        document = source.read()
    begin, end = f"<!-- BEGIN ws-conformance {label} -->", f"<!-- END ws-conformance {label} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(document):
        raise ValueError(f"{path} has no {begin} ... {end}")
    document = pattern.sub(lambda _: f"{begin}\n{text.strip()}\n{end}", document, count=1)
    with open(path, "w", encoding="utf-8") as out:
        out.write(document)


# -- the client side ---------------------------------------------------------------------
#: A frame to send: (opcode, payload[, fin[, rsv]]).
Spec = tuple[int, bytes] | tuple[int, bytes, bool] | tuple[int, bytes, bool, int]


def wire(specs: Iterable[Spec]) -> bytes:
    out = b""
    for spec in specs:
        opcode, payload, *rest = spec
        fin = bool(rest[0]) if rest else True
        rsv = int(rest[1]) if len(rest) > 1 else 0
        out += build_frame(opcode, payload, fin=fin, rsv=rsv)
    return out


def fragments(opcode: int, parts: Sequence[bytes]) -> list[Spec]:
    """One message in ``parts``: the first frame ``opcode``, then continuations."""
    last = len(parts) - 1
    return [(opcode if i == 0 else CONTINUATION, part, i == last) for i, part in enumerate(parts)]


class Deflate:
    """The client's permessage-deflate: raw deflate, the 00 00 ff ff tail
    taken off each message (RFC 7692 7.2.1) and put back to inflate.
    ``reset``: a fresh compressor per message (client_no_context_takeover);
    ``server_bits``: the server's window (server_max_window_bits)."""

    def __init__(self, *, reset: bool = False, server_bits: int = 15) -> None:
        self.reset = reset
        self.compressor = self.fresh()
        self.decompressor = zlib.decompressobj(-server_bits)

    @staticmethod
    def fresh() -> Any:
        return zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)

    def compress(self, data: bytes) -> bytes:
        out: bytes = self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        if self.reset:
            self.compressor = self.fresh()
        assert out.endswith(b"\x00\x00\xff\xff"), out[-8:]
        return out[:-4]

    def inflate(self, data: bytes) -> bytes:
        try:
            out: bytes = self.decompressor.decompress(data + b"\x00\x00\xff\xff")
        except zlib.error as exc:
            raise Fail(f"the server's compressed message does not inflate: {exc}") from None
        return out


def describe(opcode: int, payload: bytes) -> str:
    if opcode == CLOSE:
        if not payload:
            return "an empty close"
        if len(payload) == 1:
            return f"a close with a 1-byte payload {payload!r}"
        code = struct.unpack("!H", payload[:2])[0]
        return f"close {code} {payload[2:]!r}" if payload[2:] else f"close {code}"
    preview = payload[:24] + (b"..." if len(payload) > 24 else b"")
    return f"{NAMES.get(opcode, f'opcode {opcode:#x}')} of {len(payload)} bytes {preview!r}"


def codes_text(codes: Iterable[int | None]) -> str:
    return " or ".join(
        "an empty close" if c is None else f"close {c}" for c in sorted(codes, key=lambda c: c or 0)
    )


class Peer:
    """A client connection for one case: writes (whole or chopped), and
    reads what the server answers, checking it as it goes."""

    def __init__(self, ws: WSClient, deflate: Deflate | None = None) -> None:
        self.ws = ws
        self.deflate = deflate
        self.pending: deque[tuple[int, bytes]] = deque()
        self.write_failed = ""

    # -- writing --------------------------------------------------------------------
    def write(self, data: bytes, *, chop: int = 0) -> None:
        """Send ``data``, in pieces of ``chop`` bytes a moment apart if given.
        A server that closed meanwhile is noted, not raised: what it sent
        before is read next."""
        if self.write_failed:
            return
        try:
            if not chop:
                self.ws.sock.sendall(data)
                return
            for start in range(0, len(data), chop):
                self.ws.sock.sendall(data[start : start + chop])
                time.sleep(CHOP_PAUSE)
        except OSError as exc:
            self.write_failed = type(exc).__name__

    def send(self, *specs: Spec, chop: int = 0) -> None:
        self.write(wire(specs), chop=chop)

    def compressed(self, opcode: int, data: bytes, *, parts: int = 1) -> None:
        """One compressed message (RSV1 on its first frame), in ``parts`` frames."""
        assert self.deflate is not None
        body = self.deflate.compress(data)
        chunks = pieces(body, parts)
        last = len(chunks) - 1
        self.send(
            *[
                (opcode if i == 0 else CONTINUATION, chunk, i == last, 4 if i == 0 else 0)
                for i, chunk in enumerate(chunks)
            ]
        )

    # -- reading ------------------------------------------------------------------------
    def next_frame(self, expected: str) -> tuple[bool, int, int, bytes]:
        try:
            return self.ws.receive_frame()
        except TimeoutError:
            raise Fail(f"nothing within {TIMEOUT:g} s, expected {expected}") from None
        except ConnectionError:
            after = f" (our write failed: {self.write_failed})" if self.write_failed else ""
            raise Fail(f"the TCP connection closed, expected {expected}{after}") from None

    def message(self, expected: str) -> tuple[int, bytes]:
        """The next whole message or control frame: (opcode, payload)."""
        if self.pending:
            return self.pending.popleft()
        fin, rsv, opcode, payload = self.next_frame(expected)
        if opcode >= 8:
            if not fin:
                raise Fail(f"the server fragmented a control frame ({describe(opcode, payload)})")
            if rsv:
                raise Fail(f"the server set RSV bits {rsv:03b} on {describe(opcode, payload)}")
            return opcode, payload
        if opcode == CONTINUATION:
            raise Fail("the server sent a continuation frame with no message open")
        if rsv & (3 if self.deflate is not None else 7):
            raise Fail(f"the server set RSV bits {rsv:03b} that no agreed extension uses")
        compressed = bool(rsv & 4)
        parts = [payload]
        for _ in range(MAX_FRAMES):
            if fin:
                break
            fin, rsv, more, piece = self.next_frame(expected)
            if more >= 8:  # (a control frame between the fragments)
                self.pending.append((more, piece))
            elif more != CONTINUATION or rsv:
                raise Fail(f"the server's next fragment has opcode {more}, RSV {rsv:03b}")
            else:
                parts.append(piece)
        else:
            raise Fail(f"a message in more than {MAX_FRAMES} frames")
        data = b"".join(parts)
        if compressed:
            assert self.deflate is not None
            data = self.deflate.inflate(data)
        return opcode, data

    def expect(self, opcode: int, payload: bytes) -> None:
        wanted = describe(opcode, payload)
        got = self.message(wanted)
        if got != (opcode, payload):
            raise Fail(f"expected {wanted}, got {describe(*got)}")

    def expect_or_close(self, opcode: int, payload: bytes) -> bool:
        """The echo of a message sent just before a broken frame or a close:
        it may not come if the server closes before its application answers
        (RFC 6455 5.5.1, 7.1.7; Autobahn: non-strict).  Whether it came."""
        wanted = describe(opcode, payload)
        got = self.message(wanted)
        if got == (opcode, payload):
            return True
        if got[0] == CLOSE:
            self.pending.appendleft(got)
            return False
        raise Fail(f"expected {wanted}, got {describe(*got)}")

    def expect_close(self, codes: Iterable[int | None]) -> tuple[int | None, bytes]:
        """The server's close frame, with one of ``codes`` (None: empty)."""
        codes = set(codes)
        opcode, payload = self.message(codes_text(codes))
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        if opcode != CLOSE or len(payload) == 1 or code not in codes:
            raise Fail(f"expected {codes_text(codes)}, got {describe(opcode, payload)}")
        try:
            payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise Fail(f"the server's close reason is not UTF-8: {payload[2:]!r}") from None
        return code, payload[2:]

    def expect_tcp_close(self) -> None:
        """After the server's close frame: nothing more, and the TCP
        connection closed by the server (RFC 6455 7.1.1) within TIMEOUT."""
        extra, self.ws.buffer = self.ws.buffer, b""
        deadline = time.monotonic() + TIMEOUT
        sock = self.ws.sock
        try:
            for _ in range(MAX_FRAMES):
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                extra += chunk
        except TimeoutError:
            raise Fail(f"the TCP connection still open {TIMEOUT:g} s after the close") from None
        except ConnectionError:
            pass  # (a reset closes it too)
        if extra:
            raise Fail(f"{len(extra)} bytes after the close frame: {extra[:24]!r}")

    def expect_end(self, codes: int | Iterable[int | None]) -> str:
        """The server's close with one of ``codes``, then the TCP connection closed."""
        got, _ = self.expect_close({codes} if isinstance(codes, int) else codes)
        self.expect_tcp_close()
        return "closed empty" if got is None else f"closed with {got}"

    def finish(self) -> None:
        """A clean close from our side: answered with 1000, then TCP closed."""
        self.send((CLOSE, struct.pack("!H", 1000)))
        self.expect_end(1000)

    def shut(self) -> None:
        self.ws.shut()


def host_header(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def connect(
    target: Target,
    *,
    deflate: Deflate | None = None,
    offer: str | None = None,
    subprotocols: list[str] | None = None,
    plain: bool = False,
) -> Peer:
    """A connection to the echo; ``offer``: the Sec-WebSocket-Extensions
    sent (with ``deflate``, permessage-deflate by default); ``plain``: to the
    server without compression."""
    address, path = target.address, target.path
    if plain:
        if target.plain is None:
            raise Skip("no server with --ws-no-compression given")
        address, path = target.plain
    if deflate is not None and offer is None:
        offer = "permessage-deflate; client_max_window_bits"
    headers = [("Sec-WebSocket-Extensions", offer)] if offer else []
    ws = WSClient.connect(
        address,
        path,
        host=host_header(address),
        headers=headers,
        subprotocols=subprotocols,
        timeout=TIMEOUT,
    )
    return Peer(ws, deflate)


def run(target: Target, body: Callable[[Peer], str | None], **kw: Any) -> str | None:
    """Open a connection, run ``body`` on it, always shut the socket."""
    peer = connect(target, **kw)
    try:
        return body(peer)
    finally:
        peer.shut()


def raw_handshake(
    target: Target, fields: dict[str, str | None], tail: bytes = b"", version: str = "HTTP/1.1"
) -> tuple[int, bytes, socket.socket, bytes]:
    """A handshake with these header fields changed (None: left out), and
    ``tail`` in the same write: (status, head, socket, the bytes after the head)."""
    base: dict[str, str | None] = {
        "Host": host_header(target.address),
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",  # RFC 6455 1.3's example
        "Sec-WebSocket-Version": "13",
    }
    base.update(fields)
    lines = [f"GET {target.path} {version}"]
    lines += [f"{name}: {value}" for name, value in base.items() if value is not None]
    sock = socket.create_connection(target.address, timeout=TIMEOUT)
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + tail)
        data = b""
        for _ in range(MAX_FRAMES):
            if b"\r\n\r\n" in data:
                break
            chunk = sock.recv(65536)
            if not chunk:
                raise Fail(f"the connection closed during the handshake: {data!r}")
            data += chunk
    except BaseException:
        sock.close()
        raise
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, sock, rest


def status_line(head: bytes) -> str:
    return repr(head.split(b"\r\n", 1)[0].decode("latin-1"))


# -- payloads --------------------------------------------------------------------------------
ASCII = bytes(range(32, 127))
OCTETS = bytes((i * 167 + 13) % 256 for i in range(256))  # every byte, scrambled


def text_of(size: int) -> bytes:
    return (ASCII * (size // len(ASCII) + 1))[:size]


def binary_of(size: int) -> bytes:
    return (OCTETS * (size // len(OCTETS) + 1))[:size]


def pieces(data: bytes, count: int) -> list[bytes]:
    """``data`` cut in ``count`` pieces (the last ones empty when it is short)."""
    step = -(-len(data) // count) if data else 0
    return [data[i * step : (i + 1) * step] for i in range(count)]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def size_text(size: int) -> str:
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB} MiB"
    if size >= KiB and size % KiB == 0:
        return f"{size // KiB} KiB"
    return f"{size} bytes"


# -- the common shapes of a case ------------------------------------------------------------------
def exchange(
    specs: Sequence[Spec],
    answers: Sequence[tuple[int, bytes]] = (),
    end: int | set[int | None] | None = None,
    *,
    chop: int = 0,
) -> Run:
    """Write the frames of ``specs`` (in pieces of ``chop`` bytes; -1: one
    frame a write), expect ``answers``, then: ``end`` None, a clean close of
    ours; else the server's close with ``end`` and the TCP connection closed.
    With an ``end``, a data message's echo may be missing (non-strict)."""

    def body(peer: Peer) -> str | None:
        if chop == -1:
            for spec in specs:
                peer.send(spec)
                time.sleep(CHOP_PAUSE)
        else:
            peer.send(*specs, chop=chop)
        missing = []
        for opcode, payload in answers:
            if end is None or opcode not in (TEXT, BINARY):
                peer.expect(opcode, payload)
            elif not peer.expect_or_close(opcode, payload):
                missing.append(describe(opcode, payload))
        if end is None:
            peer.finish()
            return None
        note = peer.expect_end(end)
        if missing:
            return f"{NON_STRICT}{note}; no echo of the {', '.join(missing)} sent before"
        return note

    return lambda t: run(t, body)


def echo(opcode: int, size: int, *, chop: int = 0) -> Run:
    make = text_of if opcode == TEXT else binary_of
    return lambda t: exchange([(opcode, make(size))], [(opcode, make(size))], chop=chop)(t)


# == 0 Opening handshake (RFC 6455 section 4) ====================================================
def refused(fields: dict[str, str | None], statuses: set[int]) -> Run:
    def start(t: Target) -> str | None:
        status, head, sock, _ = raw_handshake(t, fields)
        sock.close()
        if status not in statuses:
            wanted = " or ".join(str(s) for s in sorted(statuses))
            raise Fail(f"expected {wanted}, got {status_line(head)}")
        return f"answered {status}"

    return start


@case("0.1", "Sec-WebSocket-Version: 8 -> 426 with Sec-WebSocket-Version: 13 (4.2.2, 4.4)")
def wrong_version(t: Target) -> str | None:
    status, head, sock, _ = raw_handshake(t, {"Sec-WebSocket-Version": "8"})
    sock.close()
    if status != 426:
        raise Fail(f"expected 426, got {status_line(head)}")
    versions = header(head, "sec-websocket-version") or ""
    if "13" not in [v.strip() for v in versions.split(",")]:
        raise Fail(f"426 with Sec-WebSocket-Version {versions!r}, expected 13")
    return None


add(
    "0.2",
    "no Sec-WebSocket-Version -> refused, 400 or 426 (4.2.1, 4.2.2)",
    refused({"Sec-WebSocket-Version": None}, {400, 426}),
)
add("0.3", "no Sec-WebSocket-Key -> 400 (4.2.1)", refused({"Sec-WebSocket-Key": None}, {400}))
add(
    "0.4",
    "Sec-WebSocket-Key of 15 bytes -> 400 (4.2.1: 16 bytes, base64)",
    refused({"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA"}, {400}),
)
add(
    "0.5",
    "Sec-WebSocket-Key not base64 -> 400 (4.2.1)",
    refused({"Sec-WebSocket-Key": "not base64 at all!!!!!=="}, {400}),
)


@case("0.6", "a handshake in HTTP/1.0 -> not 101 (6455 4.2.1: 400; 9110 7.8: Upgrade ignored)")
def http10(t: Target) -> str | None:
    status, head, sock, _ = raw_handshake(t, {}, version="HTTP/1.0")
    sock.close()
    if status == 101:
        raise Fail(f"upgraded: {status_line(head)} (RFC 6455 4.2.1 wants HTTP/1.1 or higher)")
    return f"answered {status}"


def subprotocol_case(offered: list[str], expected: str | None) -> Run:
    def body(peer: Peer) -> str | None:
        chosen = header(peer.ws.head, "sec-websocket-protocol")
        if chosen != expected:
            raise Fail(f"Sec-WebSocket-Protocol {chosen!r}, expected {expected!r}")
        peer.send((TEXT, b"Hello"))
        peer.expect(TEXT, b"Hello")
        peer.finish()
        return None

    return lambda t: run(t, body, subprotocols=offered)


add(
    "0.7",
    "subprotocols x-unknown, chat.v2 offered -> the app's choice, chat.v2 (4.2.2)",
    subprotocol_case(["x-unknown", "chat.v2"], "chat.v2"),
)
add(
    "0.8",
    "only a subprotocol the app does not take -> no Sec-WebSocket-Protocol (4.2.2)",
    subprotocol_case(["x-unknown"], None),
)


def handshake_then(fields: dict[str, str | None], tail: bytes, answer: bytes) -> Run:
    """A raw handshake (``tail`` in the same write) answered 101 with the
    right Sec-WebSocket-Accept, then ``answer`` echoed as text."""

    def start(t: Target) -> str | None:
        status, head, sock, rest = raw_handshake(t, fields, tail)
        peer = Peer(WSClient(sock, head, rest))
        try:
            if status != 101:
                raise Fail(f"expected 101, got {status_line(head)}")
            accept = header(head, "sec-websocket-accept")
            if accept != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=":  # (RFC 6455 1.3)
                raise Fail(f"Sec-WebSocket-Accept {accept!r}")
            if not tail:
                peer.send((TEXT, answer))
            peer.expect(TEXT, answer)
            peer.finish()
        finally:
            peer.shut()
        return None

    return start


add(
    "0.9",
    "a text frame in the same write as the handshake -> echoed (nothing lost)",
    lambda t: handshake_then({}, build_frame(TEXT, b"early bird"), b"early bird")(t),
)
add(
    "0.10",
    "Upgrade: WebSocket, Connection: keep-alive, Upgrade (as Firefox) -> 101 (4.2.1)",
    handshake_then({"Upgrade": "WebSocket", "Connection": "keep-alive, Upgrade"}, b"", b"Hi"),
)


# == 1 Framing ===================================================================================
FRAME_SIZES = [0, 125, 126, 127, 128, 65535, 65536, MiB]
for _i, _size in enumerate(FRAME_SIZES, 1):
    add(f"1.1.{_i}", f"text of {size_text(_size)} echoed", echo(TEXT, _size))
for _i, _size in enumerate(FRAME_SIZES, 1):
    add(f"1.2.{_i}", f"binary of {size_text(_size)} echoed", echo(BINARY, _size))
add(
    "1.2.9",
    "binary of 65535 bytes written in chops of 997 bytes echoed",
    echo(BINARY, 65535, chop=997),
)


@case("1.3.1", "an unmasked client frame -> 1002 (5.1: the server MUST close)")
def unmasked(t: Target) -> str | None:
    def body(peer: Peer) -> str | None:
        peer.write(bytes([0x81, 5]) + b"Hello")
        return peer.expect_end(1002)

    return run(t, body)


@case("1.3.2", "a 64-bit payload length with its top bit set -> 1002 (5.2)")
def length_top_bit(t: Target) -> str | None:
    def body(peer: Peer) -> str | None:
        head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", (1 << 63) | 70000)
        peer.write(head + os.urandom(4) + bytes(16))
        return peer.expect_end(1002)

    return run(t, body)


# == 2 Pings/Pongs ===============================================================================
def pings(payloads: list[bytes], chop: int = 0) -> Run:
    return exchange([(PING, p) for p in payloads], [(PONG, p) for p in payloads], chop=chop)


add("2.1", "ping without payload -> pong without payload (5.5.2, 5.5.3)", pings([b""]))
add("2.2", "ping with a text payload -> pong with the same", pings([b"Hello, world!"]))
add("2.3", "ping with a binary payload -> pong with the same", pings([b"\x00\xff\xfe\xfd\xfc\x00"]))
add("2.4", "ping with 125 bytes -> pong with the same", pings([binary_of(125)]))
add(
    "2.5",
    "ping with 126 bytes -> 1002 (5.5: a control payload is at most 125)",
    exchange([(PING, binary_of(126))], [], 1002),
)
add("2.6", "ping with 125 bytes written 1 byte at a time -> pong", pings([binary_of(125)], chop=1))
add(
    "2.7",
    "unsolicited pong without payload -> ignored (5.5.3)",
    exchange([(PONG, b""), (TEXT, b"after")], [(TEXT, b"after")]),
)
add(
    "2.8",
    "unsolicited pong with payload -> ignored (5.5.3)",
    exchange([(PONG, b"unsolicited"), (TEXT, b"after")], [(TEXT, b"after")]),
)
add(
    "2.9",
    "unsolicited pong, then ping -> one pong, with the ping's payload",
    exchange([(PONG, b"unsolicited"), (PING, b"solicited")], [(PONG, b"solicited")]),
)
_PAYLOADS = [f"payload-{i}".encode() for i in range(200)]
add("2.10", "10 pings in one write -> 10 pongs, in order", pings(_PAYLOADS[:10]))
add("2.11", "10 pings written 1 byte at a time -> 10 pongs, in order", pings(_PAYLOADS[:10], 1))
add("2.12", "200 pings in one write -> 200 pongs, in order", pings(_PAYLOADS))


# == 3 Reserved bits =============================================================================
# rsv: 4 = RSV1, 2 = RSV2, 1 = RSV3, as Autobahn numbers them; no extension agreed.
HELLO_THEN = [(TEXT, b"Hello")]
add("3.1", "text with RSV3 -> 1002 (5.2)", exchange([(TEXT, b"Hello", True, 1)], [], 1002))
add(
    "3.2",
    "text, then text with RSV2, then ping -> the echo, 1002, no pong",
    exchange([(TEXT, b"Hello"), (TEXT, b"Hello", True, 2), (PING, b"")], HELLO_THEN, 1002),
)
add(
    "3.3",
    "as 3.2 with RSV2+RSV3, one frame a write",
    exchange([(TEXT, b"Hello"), (TEXT, b"Hello", True, 3), (PING, b"")], HELLO_THEN, 1002, chop=-1),
)
add(
    "3.4",
    "as 3.2 with RSV1, written 1 byte at a time",
    exchange([(TEXT, b"Hello"), (TEXT, b"Hello", True, 4), (PING, b"")], HELLO_THEN, 1002, chop=1),
)
add("3.5", "binary with RSV1+RSV3 -> 1002", exchange([(BINARY, b"\x00\xff", True, 5)], [], 1002))
add("3.6", "ping with RSV1+RSV2 -> 1002", exchange([(PING, b"Hello", True, 6)], [], 1002))
add(
    "3.7",
    "close 1000 with all three RSV bits -> 1002",
    exchange([(CLOSE, b"\x03\xe8", True, 7)], [], 1002),
)


# == 4 Opcodes ===================================================================================
def opcode_case(opcode: int, payload: bytes, before: bool) -> Run:
    """A reserved opcode: 1002 (5.2).  ``before``: a valid text first
    (echoed) and a ping after (never answered)."""
    if not before:
        return exchange([(opcode, payload)], [], 1002)
    return exchange([(TEXT, b"Hello"), (opcode, payload), (PING, b"")], HELLO_THEN, 1002)


for _group, _ops in (("4.1", [3, 4, 5, 6, 7]), ("4.2", [0xB, 0xC, 0xD, 0xE, 0xF])):
    _kind = "data" if _group == "4.1" else "control"
    for _i, _op in enumerate(_ops, 1):
        _payload, _before = (b"reserved" if _i % 2 == 0 else b""), _i > 2
        _what = f"reserved {_kind} opcode {_op:#x}" + (" with a payload" if _payload else "")
        add(
            f"{_group}.{_i}",
            f"text, then {_what}, then ping -> the echo, 1002, no pong (5.2)"
            if _before
            else f"{_what} -> 1002 (5.2)",
            opcode_case(_op, _payload, _before),
        )


# == 5 Fragmentation =============================================================================
F1F2 = fragments(TEXT, [b"fragment1", b"fragment2"])
add(
    "5.1",
    "ping in 2 fragments -> 1002 (5.4: control frames are not fragmented)",
    exchange([(PING, b"frag", False), (CONTINUATION, b"ment")], [], 1002),
)
add(
    "5.2",
    "pong in 2 fragments -> 1002 (5.4)",
    exchange([(PONG, b"frag", False), (CONTINUATION, b"ment")], [], 1002),
)
add(
    "5.3",
    "close in 2 fragments -> 1002 (5.4)",
    exchange([(CLOSE, b"\x03\xe8", False), (CONTINUATION, b"")], [], 1002),
)
add(
    "5.4",
    "text in 2 fragments -> echoed whole (5.4)",
    exchange(F1F2, [(TEXT, b"fragment1fragment2")]),
)
add(
    "5.5",
    "text in 2 fragments written 1 byte at a time -> echoed whole",
    exchange(F1F2, [(TEXT, b"fragment1fragment2")], chop=1),
)
_WITH_PING: list[Spec] = [F1F2[0], (PING, b"between"), F1F2[1]]
add(
    "5.6",
    "text in 2 fragments, a ping between -> pong, then the text whole (5.4)",
    exchange(_WITH_PING, [(PONG, b"between"), (TEXT, b"fragment1fragment2")]),
)
add(
    "5.7",
    "as 5.6, written 1 byte at a time",
    exchange(_WITH_PING, [(PONG, b"between"), (TEXT, b"fragment1fragment2")], chop=1),
)


@case("5.8", "binary of 64 KiB in 1, 2, 3, 8 and 64 fragments -> each echoed whole")
def binary_pieces(t: Target) -> str | None:
    def body(peer: Peer) -> str | None:
        data = binary_of(65536)
        for count in (1, 2, 3, 8, 64):
            peer.send(*fragments(BINARY, pieces(data, count)))
            peer.expect(BINARY, data)
        peer.finish()
        return None

    return run(t, body)


add(
    "5.9",
    "continuation (FIN) with no message open -> 1002 (5.4)",
    exchange([(CONTINUATION, b"orphan")], [], 1002),
)
add(
    "5.10",
    "continuation (no FIN) with no message open -> 1002 (5.4)",
    exchange([(CONTINUATION, b"orphan", False)], [], 1002),
)
add(
    "5.11",
    "text in 2 fragments, then a continuation with nothing open -> the echo, 1002",
    exchange(
        [*F1F2, (CONTINUATION, b"orphan", False), (TEXT, b"never echoed")],
        [(TEXT, b"fragment1fragment2")],
        1002,
    ),
)
add(
    "5.12",
    "(continuation, text no FIN, continuation FIN) twice -> 1002 at the first",
    exchange(2 * [(CONTINUATION, b"orphan", False), *F1F2], [], 1002),
)
add(
    "5.13",
    "a new text frame while a fragmented text is open -> 1002 (5.4)",
    exchange([(TEXT, b"fragment1", False), (TEXT, b"fragment2")], [], 1002),
)
add(
    "5.14",
    "a new binary frame while a fragmented text is open -> 1002 (5.4)",
    exchange([(TEXT, b"fragment1", False), (BINARY, b"fragment2")], [], 1002),
)
add(
    "5.15",
    "text in 5 fragments with 2 pings between -> the pongs, then the text whole",
    exchange(
        [
            (TEXT, b"f1", False),
            (PING, b"p1"),
            (CONTINUATION, b"f2", False),
            (CONTINUATION, b"f3", False),
            (PING, b"p2"),
            (CONTINUATION, b"f4", False),
            (CONTINUATION, b"f5"),
        ],
        [(PONG, b"p1"), (PONG, b"p2"), (TEXT, b"f1f2f3f4f5")],
    ),
)
add(
    "5.16",
    "text in 3 empty fragments -> an empty text",
    exchange(fragments(TEXT, [b"", b"", b""]), [(TEXT, b"")]),
)


# == 6 UTF-8 handling ============================================================================
HELLO = "Hello-µ@ßöäüàá-UTF-8!!".encode()
KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"  # Autobahn's "κόσμε" (ό is U+1F79)
SURROGATE = b"\xed\xa0\x80"  # U+D800
#: The first and last code point of each UTF-8 length, around the surrogates, U+FFFE/F.
BOUNDARIES = [0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFE, 0xFFFF, 0x10000]
BOUNDARIES.append(0x10FFFF)


def text_echo(parts: list[bytes]) -> Run:
    """Text in ``parts`` (fragments) -> echoed whole."""
    return exchange(fragments(TEXT, parts), [(TEXT, b"".join(parts))])


def text_1007(parts: list[bytes]) -> Run:
    """Text in ``parts`` that is not UTF-8 -> 1007 (8.1)."""
    return exchange(fragments(TEXT, parts), [], 1007)


add("6.1.1", "empty text -> echoed", text_echo([b""]))
add(
    "6.1.2",
    "text: empty fragment, 'middle', empty fragment -> 'middle'",
    text_echo([b"", b"middle", b""]),
)
add("6.2.1", "text with 2-byte characters -> echoed", text_echo([HELLO]))
add(
    "6.2.2",
    "the same in 1-byte fragments (frames end inside code points) -> echoed whole",
    text_echo(bytewise(HELLO)),
)
add(
    "6.2.3", "κόσμε (2- and 3-byte) in 1-byte fragments -> echoed whole", text_echo(bytewise(KOSME))
)
add("6.3.1", "3-byte characters (€, 中文, ह) -> echoed", text_echo(["€ 中文 ह".encode()]))
add("6.3.2", "4-byte characters (𝄞, 😀, 𐍈) -> echoed", text_echo(["𝄞 😀 𐍈".encode()]))
add(
    "6.3.3",
    "boundary code points U+0000 ... U+10FFFF, U+FFFE and U+FFFF -> echoed",
    text_echo(["".join(chr(c) for c in BOUNDARIES).encode()]),
)
add(
    "6.3.4",
    "a 4-byte code point split 2|2 across fragments -> accepted joined (5.6)",
    text_echo([b"a\xf0\x9f", b"\x98\x80b"]),
)
add(
    "6.3.5",
    "a 4-byte code point split 1|1|1|1 across 4 fragments -> accepted joined",
    text_echo(bytewise(b"\xf0\x9f\x98\x80")),
)
add(
    "6.4.1",
    "κόσμε, a surrogate, 'edited' in one frame -> 1007 (8.1)",
    text_1007([KOSME + SURROGATE + b"edited"]),
)
add(
    "6.4.2",
    "the same in 1-byte fragments -> 1007",
    text_1007(bytewise(KOSME + SURROGATE + b"edited")),
)
for _i, (_bytes, _what) in enumerate(
    [
        (b"\x80", "a lone continuation byte"),
        (b"\xc0\xaf", "an overlong 2-byte '/'"),
        (b"\xe0\x80\xaf", "an overlong 3-byte '/'"),
        (SURROGATE, "a UTF-16 surrogate (U+D800)"),
        (b"\xf4\x90\x80\x80", "a code point above U+10FFFF"),
        (b"\xfe\xff", "the bytes FE FF"),
        (KOSME[:-1], "a code point cut short at the end"),
    ],
    3,
):
    add(f"6.4.{_i}", f"text with {_what} -> 1007 (8.1)", text_1007([b"ab" + _bytes]))
add(
    "6.5.1",
    "an invalid sequence split across fragments (ED | A0 80) -> 1007",
    text_1007([b"ab\xed", b"\xa0\x80cd"]),
)
add(
    "6.5.2",
    "valid fragments, then an invalid last fragment -> 1007",
    text_1007([b"valid ", b"still valid ", b"\xff"]),
)
add(
    "6.5.3",
    "the last fragment ends inside a code point (F0 9F) -> 1007",
    text_1007([b"abc", b"\xf0\x9f"]),
)


def fail_fast(one_frame: bool) -> Run:
    """Invalid UTF-8 in an unfinished message: 1007 at once (Autobahn
    6.4.x), without waiting for the rest, which never comes."""
    bad = b"\xf4\x90\x80\x80"  # U+110000

    def body(peer: Peer) -> str | None:
        if one_frame:  # the frame announces more payload than is sent
            frame = build_frame(TEXT, KOSME + bad + bytes(100))
            peer.write(frame[:-100])
        else:
            peer.send((TEXT, KOSME, False), (CONTINUATION, bad, False))
        return peer.expect_end(1007)

    return lambda t: run(t, body)


add("6.6.1", "fail fast: κόσμε, then a fragment with U+110000, no end -> 1007", fail_fast(False))
add("6.6.2", "fail fast in one frame: its invalid part sent, its rest not -> 1007", fail_fast(True))


# == 7 Close handling ============================================================================
def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def close_answered(payload: bytes, codes: set[int | None], reason: bytes | None = None) -> Run:
    """A close with ``payload`` -> answered with one of ``codes`` (and
    ``reason`` if given), then the TCP connection closed (5.5.1, 7.1.1)."""

    def body(peer: Peer) -> str | None:
        peer.send((CLOSE, payload))
        code, got = peer.expect_close(codes)
        if reason is not None and got != reason:
            raise Fail(f"close {code} answered with the reason {got!r}, expected {reason!r}")
        peer.expect_tcp_close()
        return "answered empty" if code is None else f"answered {code}"

    return lambda t: run(t, body)


CLOSE_1000 = (CLOSE, close_payload(1000))
add(
    "7.1.1",
    "text, then close 1000 -> the echo, close 1000, TCP closed",
    exchange([(TEXT, b"Hello")], [(TEXT, b"Hello")]),
)
add(
    "7.1.2",
    "close twice -> one close answered, TCP closed (5.5.1)",
    exchange([CLOSE_1000, CLOSE_1000], [], 1000),
)
add("7.1.3", "close, then ping -> no pong (5.5.1)", exchange([CLOSE_1000, (PING, b"")], [], 1000))
add(
    "7.1.4",
    "close, then text -> not echoed (5.5.1: no data after a close)",
    exchange([CLOSE_1000, (TEXT, b"after close")], [], 1000),
)
add(
    "7.1.5",
    "a fragment of a text, then close -> close 1000 (control frames may come mid-message)",
    exchange([(TEXT, b"fragment1", False), CLOSE_1000], [], 1000),
)
add(
    "7.1.6",
    "256 KiB text, close, ping in one write -> the echo, close 1000, no pong",
    exchange(
        [(TEXT, text_of(256 * KiB)), CLOSE_1000, (PING, b"")], [(TEXT, text_of(256 * KiB))], 1000
    ),
)


@case("7.1.7", "close, then our side of TCP shut -> close 1000 all the same, TCP closed")
def close_half_closed(t: Target) -> str | None:
    def body(peer: Peer) -> str | None:
        peer.send(CLOSE_1000)
        peer.ws.sock.shutdown(socket.SHUT_WR)
        return peer.expect_end(1000)

    return run(t, body)


add(
    "7.3.1",
    "close without payload -> an empty close, or 1000 (5.5.1, 7.1.5)",
    close_answered(b"", {None, 1000}),
)
add(
    "7.3.2",
    "close with a 1-byte payload -> 1002 (5.5.1: a code is 2 bytes)",
    exchange([(CLOSE, b"\x03")], [], 1002),
)
add("7.3.3", "close 1000 without reason -> close 1000", close_answered(close_payload(1000), {1000}))
add(
    "7.3.4",
    "close 1000 with a reason -> close 1000 with the reason",
    close_answered(close_payload(1000, b"Hello World!"), {1000}, b"Hello World!"),
)
add(
    "7.3.5",
    "close 1000 with a 123-byte reason (the most that fits) -> close 1000",
    close_answered(close_payload(1000, text_of(123)), {1000}),
)
add(
    "7.3.6",
    "close with a 126-byte payload -> 1002 (5.5: a control payload is at most 125)",
    exchange([(CLOSE, close_payload(1000, text_of(124)))], [], 1002),
)
add(
    "7.5.1",
    "close 1000 with a reason that is not UTF-8 -> 1007 (5.5.1, 8.1)",
    exchange([(CLOSE, close_payload(1000, KOSME + SURROGATE))], [], 1007),
)
VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
for _i, _code in enumerate(VALID_CODES, 1):
    add(
        f"7.7.{_i}",
        f"close {_code} -> answered with {_code} (7.4; 5.5.1: echoed)",
        close_answered(close_payload(_code), {_code}),
    )
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]
for _i, _code in enumerate(INVALID_CODES, 1):
    add(
        f"7.9.{_i}",
        f"close {_code} (not one a peer may send) -> 1002 (7.4.1, 7.4.2)",
        exchange([(CLOSE, close_payload(_code))], [], 1002),
    )
for _i, _code in enumerate([5000, 65535], 1):
    add(
        f"7.13.{_i}",
        f"close {_code} (above 4999, undefined) -> 1002 (7.4.2)",
        exchange([(CLOSE, close_payload(_code))], [], 1002),
    )


# == 9 Limits and volume =========================================================================
@case("9.1.1", "text of exactly --ws-max-size bytes -> echoed")
def at_limit(t: Target) -> str | None:
    return exchange([(TEXT, text_of(t.max_size))], [(TEXT, text_of(t.max_size))])(t)


def over_limit(opcode: int, parts: int, char: bytes = b"") -> Run:
    """A message of --ws-max-size + 1 bytes or more (``char``s: a text of
    those), in ``parts`` frames the last of which is 1 byte (so that the
    limit is crossed by the last byte sent): 1009 (7.4.1)."""

    def start(t: Target) -> str | None:
        if char:
            data = char * (t.max_size // len(char) + 1)
        else:
            data = (text_of if opcode == TEXT else binary_of)(t.max_size + 1)
        parts_ = [data] if parts == 1 else [*pieces(data[:-1], parts - 1), data[-1:]]

        def body(peer: Peer) -> str | None:
            peer.send(*fragments(opcode, parts_))
            try:
                return peer.expect_end(1009)
            except Fail as exc:
                raise Fail(f"{len(data)} bytes sent: {exc}") from None

        return run(t, body)

    return start


add("9.1.2", "binary of --ws-max-size + 1 bytes -> 1009 (7.4.1)", over_limit(BINARY, 1))
add("9.1.3", "text of --ws-max-size + 1 bytes -> 1009", over_limit(TEXT, 1))
add("9.1.4", "binary of --ws-max-size + 1 bytes in 33 fragments -> 1009", over_limit(BINARY, 33))
add(
    "9.1.5",
    "text of 2-byte characters, over --ws-max-size in bytes, under it in characters -> 1009",
    over_limit(TEXT, 1, "é".encode()),
)
_SMALL = [f"message {i}".encode() for i in range(1000)]
add(
    "9.2.1",
    "1000 small texts in one write -> all echoed, in order",
    exchange([(TEXT, m) for m in _SMALL], [(TEXT, m) for m in _SMALL]),
)


@case("9.2.2", "1000 round trips of a 100-byte binary")
def round_trips(t: Target) -> str | None:
    def body(peer: Peer) -> str | None:
        data = binary_of(100)
        started = time.monotonic()
        for _ in range(1000):
            peer.send((BINARY, data))
            peer.expect(BINARY, data)
        took = time.monotonic() - started
        peer.finish()
        return f"{took * 1000:.0f} µs a round trip"

    return run(t, body)


@case("9.2.3", "1 MiB binary in 1024 fragments of 1 KiB -> echoed whole")
def many_fragments(t: Target) -> str | None:
    data = binary_of(MiB)
    return exchange(fragments(BINARY, pieces(data, 1024)), [(BINARY, data)])(t)


# == 12 permessage-deflate: payloads (RFC 7692) ====================================================
def agreed(peer: Peer) -> str:
    value = header(peer.ws.head, "sec-websocket-extensions")
    if value is None or value.split(";")[0].strip() != "permessage-deflate":
        raise Fail(f"permessage-deflate offered, Sec-WebSocket-Extensions {value!r}")
    return value


def deflate_echo(
    messages: Callable[[], list[tuple[int, bytes]]],
    *,
    parts: int = 1,
    offer: str | None = None,
    reset: bool = False,
) -> Run:
    """Compressed messages -> each echoed (compressed or not: the server's choice)."""

    def body(peer: Peer) -> str | None:
        value = agreed(peer)
        for opcode, data in messages():
            peer.compressed(opcode, data, parts=parts)
            peer.expect(opcode, data)
        peer.finish()
        return value

    return lambda t: run(t, body, deflate=Deflate(reset=reset), offer=offer)


def deflate_end(make: Callable[[Deflate], list[Spec]], codes: set[int | None]) -> Run:
    """On a deflate connection, frames ``make`` builds -> a close with ``codes``."""

    def body(peer: Peer) -> str | None:
        agreed(peer)
        assert peer.deflate is not None
        peer.send(*make(peer.deflate))
        return peer.expect_end(codes)

    return lambda t: run(t, body, deflate=Deflate())


add(
    "12.1.1",
    "permessage-deflate offered -> agreed; a compressed text echoed (7.2)",
    deflate_echo(lambda: [(TEXT, b"Hello, compressed world! " * 4)]),
)
add(
    "12.1.2",
    "a compressed binary of 64 KiB, barely compressible -> echoed",
    deflate_echo(lambda: [(BINARY, os.urandom(65536))]),
)
add(
    "12.1.3",
    "a compressed text of 1 MiB, very compressible -> echoed",
    deflate_echo(lambda: [(TEXT, text_of(MiB))]),
)
add(
    "12.1.4",
    "10 compressed texts, the client keeping its context -> each echoed (7.2.3.2)",
    deflate_echo(lambda: [(TEXT, f"message {i} ".encode() * 20) for i in range(10)]),
)
add(
    "12.1.5",
    "a compressed text in 3 frames, RSV1 on the first only -> echoed (6.1)",
    deflate_echo(lambda: [(TEXT, text_of(4000))], parts=3),
)
add(
    "12.1.6",
    "empty compressed texts and binaries -> echoed (7.2.3.6)",
    deflate_echo(lambda: [(TEXT, b""), (BINARY, b"")]),
)


@case("12.2.1", "an uncompressed text (RSV1 clear) on a deflate connection -> echoed (6)")
def uncompressed_on_deflate(t: Target) -> str | None:
    def body(peer: Peer) -> str | None:
        agreed(peer)
        peer.send((TEXT, b"not compressed"))
        peer.expect(TEXT, b"not compressed")
        peer.finish()
        return None

    return run(t, body, deflate=Deflate())


add(
    "12.2.2",
    "RSV1 on a continuation frame -> 1002 (RFC 7692 6: the first frame only)",
    deflate_end(
        lambda d: [(TEXT, d.compress(b"abc"), False, 4), (CONTINUATION, b"\x00", True, 4)], {1002}
    ),
)
add(
    "12.2.3",
    "RSV1 on a ping -> 1002 (RFC 7692 6: not on control frames)",
    deflate_end(lambda d: [(PING, b"ping", True, 4)], {1002}),
)
add(
    "12.2.4",
    "RSV2 on a deflate connection -> 1002 (permessage-deflate takes RSV1 only)",
    deflate_end(lambda d: [(TEXT, b"Hello", True, 2)], {1002}),
)
add(
    "12.2.5",
    "compressed data that does not inflate -> the connection fails, 1007 or 1002",
    deflate_end(lambda d: [(TEXT, b"\xff\xff\xff\xff\xff", True, 4)], {1002, 1007}),
)


def bomb(parts: int) -> Run:
    """A few KiB of compressed zeros inflating to --ws-max-size + 1 MiB: 1009."""

    def start(t: Target) -> str | None:
        def body(peer: Peer) -> str | None:
            agreed(peer)
            assert peer.deflate is not None
            data = peer.deflate.compress(bytes(t.max_size + MiB))
            chunks = pieces(data, parts)
            last = len(chunks) - 1
            peer.send(
                *[
                    (BINARY if i == 0 else CONTINUATION, chunk, i == last, 4 if i == 0 else 0)
                    for i, chunk in enumerate(chunks)
                ]
            )
            return f"{len(data)} compressed bytes, {peer.expect_end(1009)}"

        return run(t, body, deflate=Deflate())

    return start


add("12.3.1", "decompression bomb in one frame, past --ws-max-size -> 1009", bomb(1))
add("12.3.2", "decompression bomb in 16 fragments, each small inflated -> 1009", bomb(16))


# == 13 permessage-deflate: parameters (RFC 7692 7) ================================================
def params_of(value: str) -> list[str]:
    return [part.strip() for part in value.split(";")[1:]]


@case("13.1.1", "server_no_context_takeover offered -> agreed and kept to (7.1.1.1)")
def server_no_takeover(t: Target) -> str | None:
    def body(peer: Peer) -> str | None:
        value = agreed(peer)
        if "server_no_context_takeover" not in params_of(value):
            raise Fail(f"the answer lacks server_no_context_takeover: {value!r}")
        data = b"the same message, twice " * 8
        seen = []
        for _ in range(2):
            peer.compressed(TEXT, data)
            fin, rsv, opcode, payload = peer.next_frame("the echo")
            if not fin or opcode != TEXT:
                raise Fail(f"expected one text frame, got opcode {opcode}, FIN {fin}")
            if rsv & 4:  # each compressed echo must inflate on its own
                fresh = zlib.decompressobj(-15)
                if fresh.decompress(payload + b"\x00\x00\xff\xff") != data:
                    raise Fail("an echo does not inflate on its own: the server kept its context")
            elif payload != data:
                raise Fail(f"got {describe(opcode, payload)}")
            seen.append((rsv, payload))
        if seen[0] != seen[1]:
            raise Fail("the same message compressed twice differently: a context was kept")
        peer.finish()
        return value

    return run(t, body, deflate=Deflate(), offer="permessage-deflate; server_no_context_takeover")


add(
    "13.1.2",
    "client_no_context_takeover offered, the client resetting per message -> echoes",
    deflate_echo(
        lambda: [(TEXT, b"again and again " * 10)] * 5,
        offer="permessage-deflate; client_no_context_takeover",
        reset=True,
    ),
)


def window_bits(offer: str) -> Run:
    """``offer`` with server_max_window_bits=10 -> agreed as 10 and kept to
    (the echo inflates in a 10-bit window), or declined (7.1.2.1)."""

    def body(peer: Peer) -> str | None:
        value = header(peer.ws.head, "sec-websocket-extensions")
        if value is not None and "server_max_window_bits=10" not in params_of(value):
            raise Fail(f"the answer does not keep server_max_window_bits=10: {value!r}")
        data = text_of(3000) + binary_of(3000)
        if value is None:
            peer.deflate = None
            peer.send((BINARY, data))
        else:
            peer.compressed(BINARY, data)
        peer.expect(BINARY, data)
        peer.finish()
        return value or "declined"

    return lambda t: run(t, body, deflate=Deflate(server_bits=10), offer=offer)


add(
    "13.1.3",
    "server_max_window_bits=10 offered -> agreed as 10 and kept to, or declined",
    window_bits("permessage-deflate; server_max_window_bits=10"),
)
add(
    "13.1.4",
    'server_max_window_bits="10" (a quoted-string, RFC 6455 9.1) -> as 13.1.3',
    window_bits('permessage-deflate; server_max_window_bits="10"'),
)


def declined(offer: str) -> Run:
    """An offer the server MUST decline (RFC 7692 7): the handshake
    succeeds without the extension."""

    def body(peer: Peer) -> str | None:
        value = header(peer.ws.head, "sec-websocket-extensions")
        if value is not None:
            raise Fail(f"offer {offer!r} accepted as {value!r}")
        peer.send((TEXT, b"Hello"))
        peer.expect(TEXT, b"Hello")
        peer.finish()
        return None

    def start(t: Target) -> str | None:
        try:
            return run(t, body, offer=offer)
        except HandshakeRefused as exc:
            raise Fail(f"offer {offer!r}: the handshake answered {exc.status}") from None

    return start


add(
    "13.2.1",
    "an unknown extension offered -> none agreed (9.1)",
    declined("x-unknown-extension; foo=bar"),
)
add(
    "13.2.2",
    "permessage-deflate with an unknown parameter -> declined (RFC 7692 7)",
    declined("permessage-deflate; x_unknown_parameter"),
)
add(
    "13.2.3",
    "permessage-deflate with a parameter twice -> declined (RFC 7692 7)",
    declined("permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
)
add(
    "13.2.4",
    "server_max_window_bits=16 (not in 8..15) -> declined (RFC 7692 7.1.2.1)",
    declined("permessage-deflate; server_max_window_bits=16"),
)
add(
    "13.2.5",
    "client_max_window_bits=abc (not a number) -> declined (RFC 7692 7.1.2.2)",
    declined("permessage-deflate; client_max_window_bits=abc"),
)
add(
    "13.2.6",
    "an invalid offer, then a valid one -> the valid one agreed (RFC 7692 5)",
    deflate_echo(
        lambda: [(TEXT, b"from the second offer " * 4)],
        offer="permessage-deflate; server_max_window_bits=16, permessage-deflate",
    ),
)


@case("13.3.1", "--ws-no-compression: permessage-deflate offered -> not agreed")
def not_agreed(t: Target) -> str | None:
    def body(peer: Peer) -> str | None:
        value = header(peer.ws.head, "sec-websocket-extensions")
        if value is not None:
            raise Fail(f"agreed {value!r} with --ws-no-compression")
        peer.send((TEXT, b"Hello"))
        peer.expect(TEXT, b"Hello")
        peer.finish()
        return None

    return run(t, body, plain=True, offer="permessage-deflate; client_max_window_bits")


@case("13.3.2", "--ws-no-compression: a compressed (RSV1) frame -> 1002 (5.2)")
def rsv1_unagreed(t: Target) -> str | None:
    def body(peer: Peer) -> str | None:
        peer.send((TEXT, Deflate().compress(b"Hello"), True, 4))
        return peer.expect_end(1002)

    return run(t, body, plain=True, offer="permessage-deflate; client_max_window_bits")


# -- the script ---------------------------------------------------------------------------------
def parse_address(text: str) -> tuple[tuple[str, int], str]:
    """``HOST:PORT[/PATH]``."""
    where, slash, path = text.partition("/")
    host, _, port = where.rpartition(":")
    return (host or "127.0.0.1", int(port)), slash + path if slash else "/"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="WebSocket conformance check (after Autobahn's case groups) of an echo."
    )
    parser.add_argument("address", help="HOST:PORT[/PATH] of the echo (this module's app)")
    parser.add_argument("--through", default="direct", help="what is in between, for the report")
    parser.add_argument("--plain", help="HOST:PORT[/PATH] of one with --ws-no-compression")
    parser.add_argument("--max-size", type=int, default=MAX_SIZE, help="its --ws-max-size")
    parser.add_argument("--case", action="append", help="only this case or group (repeatable)")
    parser.add_argument(
        "--update-doc", metavar="FILE", help="write the report into FILE's marked section"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="every case's outcome")
    args = parser.parse_args(argv)
    address, path = parse_address(args.address)
    plain = parse_address(args.plain) if args.plain else None
    results = run_all(address, path, max_size=args.max_size, plain=plain, only=args.case)
    if args.verbose:
        for r in results:
            print(f"{r.id:8} {r.outcome:7} {r.seconds * 1000:6.0f} ms  {r.title}  {r.reason}")
        print()
    print(f"WebSocket conformance, {args.through}: {address[0]}:{address[1]}{path}\n")
    print(report(results, args.through))
    if args.update_doc:
        update_doc(args.update_doc, args.through, report(results, args.through))
        update_doc(args.update_doc, "cases", catalogue())
    return 1 if any(r.outcome == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
