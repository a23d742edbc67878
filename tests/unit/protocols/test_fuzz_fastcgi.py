"""FastCGI under hypothesis: properties that hold for any input.

* a state machine that multiplexes requests on one connection, as a web
  server could: several request ids open at once, PARAMS/STDIN/DATA records
  interleaved, some aborted, GET_VALUES in between, the bytes delivered in
  arbitrary pieces, and responses interleaved too -- every request completes
  with the environ and input sent, every answer parses back exactly;
* client -> server round trips at the name-value length boundaries (127/128
  bytes, 64 KiB records) for every role;
* the same events whatever the chunking; mutated streams (bit flips, length
  fields, duplicated, dropped or swapped records, truncation) give events in
  order or a ``RemoteProtocolError``, never another exception;
* every limit: at the limit accepted, one past refused with its status.

``HYPOTHESIS_PROFILE=fuzz`` multiplies every budget here by 1000 for a long
run outside CI (see docs/robustness.md, "Fuzzing").
"""

from __future__ import annotations

import itertools
import os
import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from dumbwaiter.protocols import (
    BodyReceived,
    Event,
    FilterDataReceived,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    RequestAborted,
    RequestComplete,
    RequestReceived,
    Role,
)
from dumbwaiter.protocols.fastcgi import FastCGIServerProtocol
from dumbwaiter.protocols.fastcgi_client import (
    ClientEvent,
    EndRequest,
    FastCGIClientProtocol,
    GetValuesResult,
    Stdout,
    parse_cgi_response,
)
from dumbwaiter.protocols.fastcgi_records import encode_pairs
from sans_io import merge

#: Under HYPOTHESIS_PROFILE=fuzz every budget grows by FUZZ_SCALE (default 1000).
FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
SCALE = int(os.environ.get("FUZZ_SCALE", "1000")) if FUZZ else 1


def budget(examples: int, **kwargs: object) -> settings:
    """``examples`` in CI; many more under ``HYPOTHESIS_PROFILE=fuzz``."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **kwargs,  # type: ignore[arg-type]
    )


HEADER = struct.Struct(">BBHHBx")
HOP_BY_HOP = frozenset(
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ]
)
#: Name and value lengths around the one-byte/four-byte switch (3.4) and records (3.3).
BOUNDARY_SIZES = [0, 1, 126, 127, 128, 129, 255, 256, 8191, 65535, 65536, 70000]
LATIN1 = st.characters(max_codepoint=255)
small_text = st.text(LATIN1, max_size=12)
boundary_text = st.builds(lambda n, c: c * n, st.sampled_from(BOUNDARY_SIZES), LATIN1)
names = st.one_of(small_text, boundary_text.filter(lambda s: len(s) <= 300))
values = st.one_of(small_text, small_text, boundary_text)
params_strategy = st.dictionaries(names, values, max_size=6)
big_limits = Limits(max_header_bytes=1 << 22, max_header_count=1000, max_body=0)


def chop(data: bytes, at: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in at)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def feed(
    server: FastCGIServerProtocol, pieces: list[bytes]
) -> tuple[list[Event], bytes, RemoteProtocolError | None]:
    events: list[Event] = []
    replies = b""
    try:
        for piece in pieces:
            events += server.receive_data(piece)
            replies += server.data_to_send()
    except RemoteProtocolError as exc:
        return events, replies, exc
    return events, replies, None


def check_order(events: list[Event]) -> dict[int, str]:
    phase: dict[int, str] = {}
    for event in events:
        now = phase.get(event.stream_id)
        if isinstance(event, RequestReceived):
            assert now is None
            phase[event.stream_id] = "input"
        elif isinstance(event, BodyReceived | FilterDataReceived):
            assert now == "input" and event.data
        elif isinstance(event, RequestComplete):
            assert now == "input"
            phase[event.stream_id] = "complete"
        else:
            assert now in ("input", "complete")
            phase[event.stream_id] = "aborted"
    return phase


def request_stream(
    client: FastCGIClientProtocol,
    params: dict[str, str],
    body: bytes,
    role: Role,
    keep_conn: bool = True,
    data: bytes = b"",
) -> tuple[int, bytes]:
    rid = client.begin_request(role, keep_conn)
    out = [client.send_begin(rid)]
    if params:
        out.append(client.send_params(rid, params))
    out.append(client.send_params(rid, {}))
    if role is not Role.AUTHORIZER:
        if body:
            out.append(client.send_stdin(rid, body))
        out.append(client.send_stdin(rid, b""))
    if role is Role.FILTER:
        if data:
            out.append(client.send_data(rid, data))
        out.append(client.send_data(rid, b""))
    return rid, b"".join(out)


def expected_events(
    rid: int, params: dict[str, str], body: bytes, role: Role, data: bytes = b""
) -> list[Event]:
    events: list[Event] = [RequestReceived(rid, params, role)]
    if body and role is not Role.AUTHORIZER:
        events.append(BodyReceived(rid, body))
    if data and role is Role.FILTER:
        events.append(FilterDataReceived(rid, data))
    return [*events, RequestComplete(rid)]


# -- round trips ------------------------------------------------------------------------
@budget(60)
@given(
    params=params_strategy,
    body=st.one_of(st.binary(max_size=64), st.sampled_from(BOUNDARY_SIZES).map(bytes)),
    data=st.binary(max_size=64),
    role=st.sampled_from(list(Role)),
    pad=st.booleans(),
    at=st.lists(st.integers(min_value=0), max_size=12),
)
def test_round_trip_at_length_boundaries(
    params: dict[str, str], body: bytes, data: bytes, role: Role, pad: bool, at: list[int]
) -> None:
    client = FastCGIClientProtocol(pad=pad)
    rid, stream = request_stream(client, params, body, role, data=data)
    events, replies, error = feed(FastCGIServerProtocol(big_limits), chop(stream, at))
    assert error is None and replies == b""
    assert merge(events) == expected_events(rid, params, body, role, data)


@budget(100)
@given(st.lists(st.tuples(names, values), max_size=8))
def test_name_value_lengths_switch_at_128(pairs: list[tuple[str, str]]) -> None:
    encoded = encode_pairs((n.encode("latin-1"), v.encode("latin-1")) for n, v in pairs)
    position = 0
    for name, value in pairs:
        for part in (name, value):
            if len(part) < 128:
                assert encoded[position] == len(part)
                position += 1
            else:
                assert struct.unpack_from(">I", encoded, position)[0] == len(part) | 1 << 31
                position += 4
        position += len(name) + len(value)
    assert position == len(encoded)


@st.composite
def valid_streams(draw: st.DrawFn) -> tuple[bytes, list[Event]]:
    """Several requests, one after the other on a kept connection, maybe
    with management records between them; and the events they must give."""
    client = FastCGIClientProtocol(pad=draw(st.booleans()))
    out: list[bytes] = []
    events: list[Event] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            out.append(client.send_get_values(["FCGI_MAX_CONNS", "X"]))
        role = draw(st.sampled_from(list(Role)))
        params = draw(st.dictionaries(small_text, small_text, max_size=4))
        body, data = draw(st.binary(max_size=40)), draw(st.binary(max_size=20))
        rid, stream = request_stream(client, params, body, role, data=data)
        out.append(stream)
        events += expected_events(rid, params, body, role, data)
    return b"".join(out), events


@budget(150)
@given(valid_streams(), st.lists(st.integers(min_value=0), max_size=20))
def test_any_chunking_gives_the_same_events(
    stream: tuple[bytes, list[Event]], at: list[int]
) -> None:
    data, expected = stream
    whole, replies, _ = feed(FastCGIServerProtocol(), [data])
    assert merge(whole) == expected
    pieces, piece_replies, _ = feed(FastCGIServerProtocol(), chop(data, at))
    assert merge(pieces) == expected and piece_replies == replies
    if len(data) < 400:
        bytewise, byte_replies, _ = feed(
            FastCGIServerProtocol(), chop(data, list(range(len(data))))
        )
        assert merge(bytewise) == expected and byte_replies == replies


# -- mutations -----------------------------------------------------------------------------
def split_records(data: bytes) -> list[bytes]:
    out, position = [], 0
    while position < len(data):
        _, _, _, length, padding = HEADER.unpack_from(data, position)
        end = position + 8 + length + padding
        out.append(data[position:end])
        position = end
    return out


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data, _ = draw(valid_streams())
    records = split_records(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(["flip", "length", "padding", "id", "dup", "drop", "swap", "cut"])
        )
        i = draw(st.integers(0, len(records) - 1)) if records else 0
        if not records:
            break
        record = bytearray(records[i])
        if len(record) < 8 and op in ("flip", "length", "padding", "id"):
            continue  # a record already cut short
        if op == "flip":
            bit = draw(st.integers(0, len(record) * 8 - 1))
            record[bit // 8] ^= 1 << (bit % 8)
        elif op == "length":
            size = draw(st.sampled_from([0, 1, 7, 8, 127, 128, 0xFFFF]) | st.integers(0, 0xFFFF))
            record[4:6] = size.to_bytes(2, "big")
        elif op == "padding":
            record[6] = draw(st.integers(0, 255))
        elif op == "id":
            record[2:4] = draw(st.integers(0, 3)).to_bytes(2, "big")
        elif op == "dup":
            records.insert(i, bytes(record))
        elif op == "drop":
            del records[i]
            continue
        elif op == "swap":
            j = draw(st.integers(0, len(records) - 1))
            records[i], records[j] = records[j], records[i]
            continue
        else:
            del record[draw(st.integers(0, len(record))) :]
        if i < len(records):
            records[i] = bytes(record)
    return b"".join(records)


@budget(300)
@given(
    mutated(),
    st.lists(st.integers(min_value=0), max_size=10),
    st.integers(1, 3),
    st.booleans(),
)
def test_mutated_streams_give_events_or_remote_errors(
    data: bytes, at: list[int], max_streams: int, multiplex: bool
) -> None:
    def make() -> FastCGIServerProtocol:
        limits = Limits(300, 5, max_body=100, max_streams=max_streams)
        return FastCGIServerProtocol(limits, multiplex=multiplex)

    whole, replies, error = feed(make(), [data])
    pieces, piece_replies, piece_error = feed(make(), chop(data, at))
    if error is None:
        assert piece_error is None
        assert merge(whole) == merge(pieces) and replies == piece_replies
        check_order(whole)
    else:
        assert piece_error is not None
        assert (str(error), error.status) == (str(piece_error), piece_error.status)
        check_order(pieces)


@budget(60)
@given(mutated())
def test_truncation_never_completes_a_request_early(data: bytes) -> None:
    """Every prefix of a stream gives a prefix of its events (the last body
    piece maybe cut short); EOF then drops what is half received."""
    whole, _, error = feed(FastCGIServerProtocol(), [data])
    assume(error is None)
    expected = merge(whole)
    for cut in sorted({len(data) * k // 7 for k in range(1, 7)}):
        server = FastCGIServerProtocol()
        events, _, error = feed(server, [data[:cut]])
        assert error is None
        got = merge(events)
        if got:
            assert got[:-1] == expected[: len(got) - 1]
            last, full = got[-1], expected[len(got) - 1]
            if isinstance(last, BodyReceived | FilterDataReceived) and last != full:
                assert type(full) is type(last) and full.data.startswith(last.data)
            else:
                assert last == full
        assert server.receive_data(b"") == [] and server.closing


# -- limits --------------------------------------------------------------------------------
@budget(100)
@given(
    st.dictionaries(small_text, st.one_of(small_text, boundary_text), min_size=1, max_size=6),
    st.lists(st.integers(min_value=0), max_size=6),
)
def test_params_bytes_limit_at_and_past(params: dict[str, str], at: list[int]) -> None:
    size = len(encode_pairs((n.encode("latin-1"), v.encode("latin-1")) for n, v in params.items()))
    _, stream = request_stream(FastCGIClientProtocol(), params, b"", Role.RESPONDER)
    events, _, error = feed(FastCGIServerProtocol(Limits(max_header_bytes=size)), chop(stream, at))
    assert error is None and events[0] == RequestReceived(1, params)
    _, _, error = feed(FastCGIServerProtocol(Limits(max_header_bytes=size - 1)), chop(stream, at))
    assert error is not None and error.status == 431


@budget(60)
@given(st.integers(2, 300), st.lists(st.integers(min_value=0), max_size=6))
def test_params_count_limit_at_and_past(count: int, at: list[int]) -> None:
    params = {f"N{i}": "v" * (i % 3) for i in range(count)}
    _, stream = request_stream(FastCGIClientProtocol(), params, b"", Role.RESPONDER)
    events, _, error = feed(FastCGIServerProtocol(Limits(max_header_count=count)), chop(stream, at))
    assert error is None and events[0] == RequestReceived(1, params)
    _, _, error = feed(FastCGIServerProtocol(Limits(max_header_count=count - 1)), [stream])
    assert error is not None and error.status == 431


@budget(60)
@given(
    st.integers(2, 200_000),
    st.sampled_from([Role.RESPONDER, Role.FILTER]),
    st.lists(st.integers(min_value=0), max_size=6),
)
def test_body_limit_at_and_past(size: int, role: Role, at: list[int]) -> None:
    """STDIN (and DATA for a FILTER, counted together) at max_body is
    accepted; one byte more is a 413."""
    split = size // 2 if role is Role.FILTER else size
    body, data = b"b" * split, b"d" * (size - split)
    _, stream = request_stream(FastCGIClientProtocol(), {}, body, role, data=data)
    events, _, error = feed(FastCGIServerProtocol(Limits(max_body=size)), chop(stream, at))
    assert error is None and isinstance(events[-1], RequestComplete)
    _, stream = request_stream(FastCGIClientProtocol(), {}, body + b"+", role, data=data)
    _, _, error = feed(FastCGIServerProtocol(Limits(max_body=size)), chop(stream, at))
    assert error is not None and error.status == 413


@budget(40)
@given(st.integers(1, 12), st.booleans())
def test_stream_limit_at_and_past(max_streams: int, keep_conn: bool) -> None:
    """``max_streams`` requests may be open at once; the next is refused
    with FCGI_OVERLOADED (not a connection error) and the others go on."""
    client = FastCGIClientProtocol()
    server = FastCGIServerProtocol(Limits(max_streams=max_streams))
    rids = [client.begin_request(Role.RESPONDER, keep_conn) for _ in range(max_streams + 1)]
    opened = b"".join(client.send_begin(rid) + client.send_params(rid, {}) for rid in rids)
    events = server.receive_data(opened)
    assert events == [RequestReceived(rid, {}) for rid in rids[:-1]]
    assert client.receive_data(server.data_to_send()) == [EndRequest(rids[-1], 0, 2)]
    assert not server.closing  # more requests remain open
    for rid in rids[:-1]:
        assert server.receive_data(client.send_stdin(rid, b"")) == [RequestComplete(rid)]
        out = server.start_response(rid, "200 OK", [], b"x", end=True)
        assert client.receive_data(out)[-1] == EndRequest(rid, 0, 0)
    assert server.idle and server.closing is not keep_conn


# -- responses -----------------------------------------------------------------------------
header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True).filter(
    lambda name: name.lower() not in ("status", "content-length")
)
header_values = st.from_regex(
    r"[!-~\xa0-\xff]([ -~\xa0-\xff]{0,40}[!-~\xa0-\xff])?", fullmatch=True
)
headers_strategy = st.lists(
    st.tuples(st.one_of(header_names, st.sampled_from(sorted(HOP_BY_HOP))), header_values),
    max_size=8,
)
statuses = st.sampled_from(["200 OK", "404 Not Found", "302 Found", "299 Whatever It Is"])


@budget(60)
@given(
    status=statuses,
    headers=headers_strategy,
    body=st.binary(max_size=200),
    reject_503=st.booleans(),
    at=st.lists(st.integers(min_value=0), max_size=8),
)
def test_reject_round_trips(
    status: str, headers: list[tuple[str, str]], body: bytes, reject_503: bool, at: list[int]
) -> None:
    client = FastCGIClientProtocol()
    server = FastCGIServerProtocol()
    rid, stream = request_stream(client, {}, b"", Role.RESPONDER)
    server.receive_data(stream)
    status = "503 Service Unavailable" if reject_503 else status
    out = server.reject(rid, status, headers, body)
    events: list[ClientEvent] = []
    for piece in chop(out, at):
        events += client.receive_data(piece)
    assert events[-1] == EndRequest(rid, 0, 2 if reject_503 else 0)
    stdout = b"".join(e.data for e in events if isinstance(e, Stdout))
    code, reason, got, got_body = parse_cgi_response(stdout)
    assert (f"{code} {reason}", got_body) == (status, body)
    sent = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]
    assert got == [*sent, ("Content-Length", str(len(body)))]
    assert client.outstanding == []


# -- the multiplexing state machine -----------------------------------------------------------
@dataclass
class Sent:
    """What the client sent for one request, and what came back."""

    role: Role
    params: dict[str, str] = field(default_factory=dict)
    params_open: bool = True
    stdin: bytes = b""
    stdin_open: bool = True
    data: bytes = b""
    data_open: bool = True
    aborted: bool = False
    # What the server said.
    received: dict[str, str] | None = None
    got_stdin: bytes = b""
    got_data: bytes = b""
    complete: bool = False
    abort_seen: bool = False
    # The response.
    responding: bool = False
    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    ended: bool = False  # FCGI_END_REQUEST read by the client
    answered: bool = False  # the response is complete from the server's side

    def input_done(self) -> bool:
        if self.role is Role.AUTHORIZER:
            return not self.params_open
        done = not self.params_open and not self.stdin_open
        return done and (self.role is not Role.FILTER or not self.data_open)


machine_values = st.one_of(small_text, boundary_text.filter(lambda s: len(s) <= 300))
big_body = st.just(bytes(range(256)) * 300)  # more than one record


class MultiplexedConnection(RuleBasedStateMachine):
    """A web server multiplexing requests on one kept connection."""

    def __init__(self) -> None:
        super().__init__()
        self.client = FastCGIClientProtocol()
        self.server = FastCGIServerProtocol(Limits(max_header_bytes=1 << 20, max_streams=50))
        self.sent: dict[int, Sent] = {}
        self.pending = b""  # sent by the client, not yet delivered
        self.stdout: dict[int, bytes] = {}
        self.values_asked = 0
        self.values_got = 0

    @initialize(pad=st.booleans())
    def set_padding(self, pad: bool) -> None:
        self.client.pad = pad

    # -- the client sends ---------------------------------------------------------------
    def sending(self, params_open: bool | None = None) -> list[int]:
        """Requests the client is still sending (of which PARAMS are open or not)."""
        return [
            rid
            for rid, r in self.sent.items()
            if not r.aborted
            and not r.input_done()
            and (params_open is None or r.params_open is params_open)
        ]

    def pick(self, choices: list[int], pick: int) -> tuple[int, Sent]:
        rid = choices[pick % len(choices)]
        return rid, self.sent[rid]

    @precondition(lambda self: len(self.sending()) < 6)
    @rule(role=st.sampled_from(list(Role)))
    def begin(self, role: Role) -> None:
        rid = self.client.begin_request(role, keep_conn=True)
        self.sent[rid] = Sent(role)
        self.pending += self.client.send_begin(rid)

    @precondition(lambda self: self.sending(params_open=True))
    @rule(
        pick=st.integers(0), params=st.dictionaries(names, machine_values, min_size=1, max_size=3)
    )
    def params(self, pick: int, params: dict[str, str]) -> None:
        rid, request = self.pick(self.sending(params_open=True), pick)
        request.params.update(params)
        self.pending += self.client.send_params(rid, params)

    @precondition(lambda self: self.sending(params_open=True))
    @rule(pick=st.integers(0))
    def end_params(self, pick: int) -> None:
        rid, request = self.pick(self.sending(params_open=True), pick)
        request.params_open = False
        self.pending += self.client.send_params(rid, {})

    @precondition(lambda self: self.sending(params_open=False))
    @rule(pick=st.integers(0), data=st.binary(min_size=1, max_size=300), to_data=st.booleans())
    def input(self, pick: int, data: bytes, to_data: bool) -> None:
        rid, request = self.pick(self.sending(params_open=False), pick)
        if request.role is Role.FILTER and (
            (to_data and request.data_open) or not request.stdin_open
        ):
            request.data += data
            self.pending += self.client.send_data(rid, data)
        else:
            request.stdin += data
            self.pending += self.client.send_stdin(rid, data)

    @precondition(lambda self: self.sending(params_open=False))
    @rule(pick=st.integers(0), to_data=st.booleans())
    def end_input(self, pick: int, to_data: bool) -> None:
        rid, request = self.pick(self.sending(params_open=False), pick)
        if request.role is Role.FILTER and (
            (to_data and request.data_open) or not request.stdin_open
        ):
            request.data_open = False
            self.pending += self.client.send_data(rid, b"")
        else:
            request.stdin_open = False
            self.pending += self.client.send_stdin(rid, b"")

    @precondition(lambda self: self.sending())
    @rule(pick=st.integers(0), body=st.binary(max_size=100))
    def finish_input(self, pick: int, body: bytes) -> None:
        """Everything the request still lacks, at once (as front servers
        that buffer the request body send it)."""
        rid, request = self.pick(self.sending(), pick)
        if request.params_open:
            self.end_params(self.sending(params_open=True).index(rid))
        if request.role is Role.AUTHORIZER:
            return
        if body and request.stdin_open:
            request.stdin += body
            self.pending += self.client.send_stdin(rid, body)
        while not request.input_done():
            self.end_input(self.sending(params_open=False).index(rid), to_data=False)

    def abortable(self) -> list[int]:
        return [rid for rid, r in self.sent.items() if not (r.aborted or r.ended or r.answered)]

    @precondition(lambda self: self.abortable())
    @rule(pick=st.integers(0), really=st.integers(0, 3))
    def abort(self, pick: int, really: int) -> None:
        if really:
            return  # fewer aborts, so that more requests complete
        rid, request = self.pick(self.abortable(), pick)
        request.aborted = True
        self.pending += self.client.send_abort(rid)

    @rule()
    def get_values(self) -> None:
        self.values_asked += 1
        self.pending += self.client.send_get_values(["FCGI_MPXS_CONNS", "FCGI_MAX_REQS"])

    # -- delivery ----------------------------------------------------------------------------
    @precondition(lambda self: self.pending)
    @rule(size=st.integers(min_value=1, max_value=2000))
    def deliver(self, size: int) -> None:
        piece, self.pending = self.pending[:size], self.pending[size:]
        for event in self.server.receive_data(piece):
            self.on_event(event)
        self.to_client(self.server.data_to_send())

    def on_event(self, event: Event) -> None:
        request = self.sent[event.stream_id]
        assert not request.abort_seen and not request.ended
        if isinstance(event, RequestReceived):
            assert request.received is None and not request.params_open
            assert event.role is request.role
            assert event.environ == request.params
            request.received = event.environ
        elif isinstance(event, BodyReceived):
            assert request.received is not None and not request.complete
            request.got_stdin += event.data
            assert request.stdin.startswith(request.got_stdin)
        elif isinstance(event, FilterDataReceived):
            assert request.received is not None and not request.complete
            request.got_data += event.data
            assert request.data.startswith(request.got_data)
        elif isinstance(event, RequestComplete):
            assert request.received is not None and not request.complete
            assert request.input_done() and not request.abort_seen
            if request.role is not Role.AUTHORIZER:
                assert request.got_stdin == request.stdin
            assert request.got_data == request.data
            request.complete = True
        else:
            assert isinstance(event, RequestAborted)
            assert request.aborted and request.received is not None
            request.abort_seen = True
            if request.responding:
                self.finish_response(event.stream_id, request)
            else:
                # The application never ran (or is told to stop): END_REQUEST only.
                request.answered = True
                self.to_client(self.server.end_response(event.stream_id))

    def to_client(self, data: bytes) -> None:
        for event in self.client.receive_data(data):
            if isinstance(event, Stdout):
                assert not self.sent[event.request_id].ended
                self.stdout[event.request_id] = self.stdout.get(event.request_id, b"") + event.data
            elif isinstance(event, GetValuesResult):
                assert event.values == {"FCGI_MPXS_CONNS": "1", "FCGI_MAX_REQS": "1000"}
                self.values_got += 1
            else:
                assert isinstance(event, EndRequest), event
                request = self.sent[event.request_id]
                assert not request.ended
                assert (event.app_status, event.protocol_status) == (0, 0)
                request.ended = True
                if request.responding:
                    assert request.answered
                    code, reason, headers, body = parse_cgi_response(
                        self.stdout.pop(event.request_id)
                    )
                    assert f"{code} {reason}" == request.status
                    assert headers == [
                        (n, v) for n, v in request.headers if n.lower() not in HOP_BY_HOP
                    ]
                    assert body == request.body
                else:
                    # Only an abort ends a request without a response (before
                    # its PARAMS ended, the protocol answers it by itself).
                    assert request.aborted and event.request_id not in self.stdout
                    request.answered = True

    # -- the server answers ---------------------------------------------------------------------
    def answerable(self) -> list[int]:
        return [
            rid
            for rid, request in self.sent.items()
            if request.complete and not request.abort_seen and not request.responding
        ]

    @precondition(lambda self: self.answerable())
    @rule(
        pick=st.integers(min_value=0),
        status=statuses,
        headers=headers_strategy,
        first=st.binary(max_size=100),
        end=st.booleans(),
    )
    def start_response(
        self, pick: int, status: str, headers: list[tuple[str, str]], first: bytes, end: bool
    ) -> None:
        choices = self.answerable()
        rid = choices[pick % len(choices)]
        request = self.sent[rid]
        request.responding = True
        request.status, request.headers, request.body = status, headers, first
        request.answered = end
        self.to_client(self.server.start_response(rid, status, headers, first, end))

    def streaming(self) -> list[int]:
        return [rid for rid, r in self.sent.items() if r.responding and not r.answered]

    @precondition(lambda self: self.streaming())
    @rule(pick=st.integers(min_value=0), data=st.binary(min_size=1, max_size=300) | big_body)
    def send_body(self, pick: int, data: bytes) -> None:
        choices = self.streaming()
        rid = choices[pick % len(choices)]
        self.sent[rid].body += data
        self.to_client(self.server.send_body(rid, data))

    @precondition(lambda self: self.streaming())
    @rule(pick=st.integers(min_value=0))
    def end_response(self, pick: int) -> None:
        choices = self.streaming()
        rid = choices[pick % len(choices)]
        self.finish_response(rid, self.sent[rid])

    def finish_response(self, rid: int, request: Sent) -> None:
        request.answered = True
        self.to_client(self.server.end_response(rid))

    # -- invariants ------------------------------------------------------------------------------
    @invariant()
    def kept_open(self) -> None:
        assert not self.server.closing  # every request says FCGI_KEEP_CONN

    @invariant()
    def ended_exactly_when_answered(self) -> None:
        for request in self.sent.values():
            assert request.ended == request.answered

    def teardown(self) -> None:
        # Deliver the rest: everything sent must come through as promised.
        while self.pending:
            self.deliver(4096)
        for rid in self.streaming():
            self.finish_response(rid, self.sent[rid])
        for rid in self.answerable():
            request = self.sent[rid]
            request.responding = True
            request.status = "200 OK"
            request.answered = True
            self.to_client(self.server.start_response(rid, "200 OK", [], b"", end=True))
        assert self.values_got == self.values_asked
        for request in self.sent.values():
            if request.aborted and request.received is None:
                assert request.ended  # answered at once by the protocol itself
            if request.input_done() and not request.aborted:
                assert request.complete and request.ended
        unfinished = [rid for rid, r in self.sent.items() if not r.ended]
        assert sorted(self.client.outstanding) == sorted(unfinished)
        assert self.server.idle is (not unfinished)
        with pytest.raises(LocalProtocolError):
            self.server.end_response(max(self.sent, default=0) + 1)


MultiplexedConnection.TestCase.settings = budget(100, stateful_step_count=50)
test_multiplexed_connection = MultiplexedConnection.TestCase
