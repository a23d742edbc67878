"""What the SCGI and uwsgi fuzz targets share (``fuzz_scgi.py``, ``fuzz_uwsgi.py``).

Input layout: 4 config bytes, then the bytes a front server sends.

* byte 0, bits 0-2: which limit byte 1 sets (0: none, the defaults);
  bit 3: *framed*: the payload is ``name NUL value NUL ... NUL NUL body`` and
  the target frames it (netstring, or uwsgi sizes), so that mutations reach
  the values -- ``CONTENT_LENGTH`` above all -- with the framing intact.
* byte 1: that limit's value.
* bytes 2-3: the seed that cuts the payload into pieces.

What must hold for every input (any exception is a finding):

* only ``RemoteProtocolError`` comes out of ``receive_data`` (the payload, then
  EOF), with 400, 413 or 431, and ``error_response`` is an answer the front
  server parses with that status;
* fed whole or in pieces: the same events (body pieces joined), the same
  error status;
* events: RequestReceived, BodyReceived*, RequestComplete; the environ is
  latin-1 str, ``CONTENT_LENGTH`` digits and the body exactly that long,
  within the limits (and ``SCGI=1``, ``CONTENT_LENGTH`` first, for SCGI);
* re-encoding the environ and body with the protocol's ``encode_request``
  parses back to the same request;
* a response made with start_response/send_body/end_response parses back
  exactly.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Hashable

import harness

from dumbwaiter.protocols import (
    BodyReceived,
    Event,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    RequestComplete,
    RequestReceived,
)
from dumbwaiter.protocols.fastcgi_client import parse_cgi_response
from dumbwaiter.protocols.http_client import Data, EndOfMessage, HTTPClientProtocol, Response
from dumbwaiter.protocols.oneshot import OneShotServerProtocol

Make = Callable[[Limits], OneShotServerProtocol]
Encode = Callable[[dict[str, str], bytes], bytes]
SIZE = struct.Struct("<H")
TOKENS = [b"CONTENT_LENGTH", b"SCGI", b"\x001\x00", b"REQUEST_METHOD", b"0" * 30, b"\x00\x00"]


def frame(payload: bytes, scgi: bool) -> bytes:
    """``name NUL value NUL ... NUL NUL body`` as an SCGI or uwsgi request."""
    head, _, body = payload.partition(b"\0\0\0")
    parts = head.split(b"\0")
    if len(parts) % 2:
        parts.append(b"")
    if scgi:
        block = b"".join(part + b"\0" for part in parts) if head else b""
        return b"%d:%s,%s" % (len(block), block, body)
    block = b"".join(SIZE.pack(len(part) & 0xFFFF) + part[:0xFFFF] for part in parts)
    return struct.pack("<BHB", 0, len(block) & 0xFFFF, 0) + block + body


def limits_of(config: bytes) -> Limits:
    which, value = config[0] & 7, config[1]
    if which == 1:
        return Limits(max_header_bytes=value)
    if which == 2:
        return Limits(max_header_count=value % 16)
    if which == 3:
        return Limits(max_body=value)
    if which == 4:
        return Limits(value * 2, value % 8, max_body=value)
    return Limits()


def feed(
    server: OneShotServerProtocol, pieces: list[bytes]
) -> tuple[list[Event], RemoteProtocolError | None]:
    events: list[Event] = []
    try:
        for piece in [*pieces, b""]:
            events += server.receive_data(piece)
    except RemoteProtocolError as exc:
        return events, exc
    return events, None


def merged(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for event in events:
        if isinstance(event, BodyReceived) and out and isinstance(out[-1], BodyReceived):
            out[-1] = BodyReceived(1, out[-1].data + event.data)
        else:
            out.append(event)
    return out


def parse_response(scgi: bool, data: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """What the front server reads: a CGI response (SCGI) or an HTTP/1.1 one
    ending at the close (uwsgi)."""
    if scgi:
        status, _, headers, body = parse_cgi_response(data)
        return status, headers, body
    client = HTTPClientProtocol()
    client.send_request("GET", "/", [])
    events = client.receive_data(data) + client.receive_data(b"")
    assert isinstance(events[0], Response) and isinstance(events[-2], EndOfMessage)
    head = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in events[0].headers]
    body = b"".join(e.data for e in events if isinstance(e, Data))
    return events[0].status, head, body


def one_input(
    make: Make, encode: Encode, data: bytes, *, scgi: bool
) -> Hashable:  # the shared target
    config, payload = harness.config(data)
    if config[0] & 8:
        payload = frame(payload, scgi)
    limits = limits_of(config)
    whole = make(limits)
    events, error = feed(whole, [payload] if payload else [])
    cut = make(limits)
    cut_events, cut_error = feed(cut, harness.cuts(payload, config[2] << 8 | config[3]))
    assert (error is None) == (cut_error is None), (error, cut_error)
    if error is not None and cut_error is not None:
        assert error.status == cut_error.status, (error, cut_error)
        assert error.status in (400, 413, 431)
        answer = make(limits).error_response(error)
        assert parse_response(scgi, answer)[0] == error.status
        return ("error", error.status, re.sub(r"(['\"]).*\1|\d+", "", str(error)))
    events = merged(events)
    assert events == merged(cut_events)
    if not payload:
        assert not events  # closed before a byte: a probe, not an error
        return ("probe",)
    received, *body_events, complete = events
    assert isinstance(received, RequestReceived) and isinstance(complete, RequestComplete)
    assert all(isinstance(e, BodyReceived) and e.data for e in body_events)
    body = b"".join(e.data for e in body_events if isinstance(e, BodyReceived))
    environ = received.environ
    for key, value in environ.items():
        key.encode("latin-1"), value.encode("latin-1")
    length = environ.get("CONTENT_LENGTH") or "0"
    assert length.isascii() and length.isdigit() and int(length.lstrip("0") or "0") == len(body)
    assert len(environ) <= limits.max_header_count
    assert not limits.max_body or len(body) <= limits.max_body
    if scgi:
        assert next(iter(environ)) == "CONTENT_LENGTH" and environ["SCGI"] == "1"
    # The client encoders say the same thing again (CONTENT_LENGTH normalized).
    again = make(Limits())
    framing = ("CONTENT_LENGTH", "SCGI") if scgi else ("CONTENT_LENGTH",)
    sent = {k: v for k, v in environ.items() if k not in framing}
    try:
        request = encode(sent, body)
    except ValueError:  # a uwsgi block past 64 KiB once CONTENT_LENGTH is normalized
        assert not scgi
    else:
        reparsed = merged(again.receive_data(request))
        assert isinstance(reparsed[0], RequestReceived)
        environ_again = dict(reparsed[0].environ)
        assert environ_again.pop("CONTENT_LENGTH") == str(len(body))
        assert environ_again == {k: v for k, v in environ.items() if k != "CONTENT_LENGTH"}
        assert reparsed[1:] == events[1:]
    # The response side.
    headers = [("X-A", "1"), ("Transfer-Encoding", "dropped"), ("X-B", "\xe9")]
    out = whole.start_response(1, "201 Created", headers, body[:5])
    out += whole.send_body(1, body[5:] or b"-") + whole.end_response(1)
    try:
        whole.send_body(1, b"late")
    except LocalProtocolError:
        pass
    else:
        raise AssertionError("a body after the end")
    status, got, answered = parse_response(scgi, out)
    assert (status, got) == (201, [("X-A", "1"), ("X-B", "\xe9")]), (status, got)
    assert answered == body[:5] + (body[5:] or b"-")
    assert whole.closing
    return ("ok", len(body_events) > 0, len(environ) > 2)
