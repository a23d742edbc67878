"""SCGI and the uwsgi protocol, without sockets: fed whole, byte by byte and
with trailing bytes, at and past their limits, and round-tripped."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dumbwaiter.protocols import (
    BodyReceived,
    Event,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    RequestComplete,
    RequestReceived,
    scgi,
    uwsgi,
)
from dumbwaiter.protocols.oneshot import OneShotServerProtocol

KINDS: dict[str, tuple[Callable[..., OneShotServerProtocol], Callable[..., bytes]]] = {
    "scgi": (scgi.SCGIServerProtocol, scgi.encode_request),
    "uwsgi": (uwsgi.UwsgiServerProtocol, uwsgi.encode_request),
}
ENVIRON = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/a?b=1", "QUERY_STRING": "b=1"}


def feed(server: OneShotServerProtocol, data: bytes, bytewise: bool) -> list[Event]:
    if not bytewise:
        return server.receive_data(data)
    events: list[Event] = []
    for i in range(len(data)):
        events += server.receive_data(data[i : i + 1])
    merged: list[Event] = []
    for event in events:
        if isinstance(event, BodyReceived) and merged and isinstance(merged[-1], BodyReceived):
            merged[-1] = BodyReceived(1, merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_request(kind: str, bytewise: bool) -> None:
    make, encode = KINDS[kind]
    server = make()
    events = feed(server, encode(ENVIRON, b"hello"), bytewise)
    assert isinstance(events[0], RequestReceived)
    assert {k: events[0].environ[k] for k in ENVIRON} == ENVIRON
    assert events[0].environ["CONTENT_LENGTH"] == "5"
    assert events[1:] == [BodyReceived(1, b"hello"), RequestComplete(1)]
    assert server.closing


@pytest.mark.parametrize("kind", KINDS)
def test_trailing_bytes_are_an_error(kind: str) -> None:
    make, encode = KINDS[kind]
    with pytest.raises(RemoteProtocolError):
        make().receive_data(encode(ENVIRON, b"abc") + b"extra")


@pytest.mark.parametrize("kind", KINDS)
def test_eof_before_the_body_ends(kind: str) -> None:
    make, encode = KINDS[kind]
    server = make()
    server.receive_data(encode(ENVIRON, b"abcdef")[:-2])
    with pytest.raises(RemoteProtocolError, match="cut short"):
        server.receive_data(b"")


@pytest.mark.parametrize("kind", KINDS)
def test_limits(kind: str) -> None:
    make, encode = KINDS[kind]
    data = encode({"X": "v" * 1000})
    assert make(Limits(max_header_bytes=2000)).receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        feed(make(Limits(max_header_bytes=500)), data, bytewise=True)
    assert info.value.status == 431
    with pytest.raises(RemoteProtocolError) as info:
        make(Limits(max_body=3)).receive_data(encode(ENVIRON, b"four"))
    assert info.value.status == 413


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"5:abcde,",
        b"12:CONTENT_LENGTH\x000\x00,",
        b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00;",
        b"16:SCGI\x001\x00CONTENT_LENGTH\x000\x00,",
        b"x" * 20,
    ],
    ids=["http", "no-nul", "no-scgi-header", "bad-terminator", "length-not-first", "junk"],
)
def test_scgi_malformed(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        scgi.SCGIServerProtocol().receive_data(data)


def test_uwsgi_malformed() -> None:
    with pytest.raises(RemoteProtocolError, match="modifier1"):
        uwsgi.UwsgiServerProtocol().receive_data(struct.pack("<BHB", 5, 0, 0))
    truncated = struct.pack("<BHB", 0, 5, 0) + struct.pack("<H", 9) + b"abc"
    with pytest.raises(RemoteProtocolError):
        uwsgi.UwsgiServerProtocol().receive_data(truncated)


@pytest.mark.parametrize(
    ("script", "path", "after"),
    [
        ("/myapp", "/myapp/items/1", ("/myapp", "/items/1")),
        ("/myapp", "/myapp", ("/myapp", "")),
        ("/myapp/", "/myapp/x", ("/myapp", "/x")),
        # not under the mount (nginx's location /myapp matches these too)
        ("/myapp", "/myapplication", ("", "/myapplication")),
        ("/myapp", "/other", ("", "/other")),
        ("/", "/x", ("", "/x")),
        ("", "/x", ("", "/x")),
    ],
)
def test_uwsgi_modifier1_30_takes_script_name_off_path_info(
    script: str, path: str, after: tuple[str, str]
) -> None:
    """nginx's ``uwsgi_modifier1 30``, uWSGI's "manage PATH_INFO"."""
    environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": script, "PATH_INFO": path}
    events = uwsgi.UwsgiServerProtocol().receive_data(uwsgi.encode_request(environ, modifier1=30))
    assert isinstance(events[0], RequestReceived)
    got = events[0].environ
    assert (got["SCRIPT_NAME"], got["PATH_INFO"]) == after
    # modifier1 0: the vars as they came
    events = uwsgi.UwsgiServerProtocol().receive_data(uwsgi.encode_request(environ))
    assert isinstance(events[0], RequestReceived)
    assert (events[0].environ["SCRIPT_NAME"], events[0].environ["PATH_INFO"]) == (script, path)


@pytest.mark.parametrize(
    ("sent", "scheme"),
    [
        ({"UWSGI_SCHEME": "https"}, "https"),
        ({"UWSGI_SCHEME": "HTTPS"}, "https"),
        ({"UWSGI_SCHEME": "gopher"}, None),
        ({"UWSGI_SCHEME": "https", "REQUEST_SCHEME": "http"}, "https"),
        ({"REQUEST_SCHEME": "http"}, "http"),
        ({"UWSGI_SCHEME": ""}, None),
    ],
)
def test_uwsgi_scheme_names_the_scheme(sent: dict[str, str], scheme: str | None) -> None:
    """uWSGI's magic variable UWSGI_SCHEME, as REQUEST_SCHEME."""
    events = uwsgi.UwsgiServerProtocol().receive_data(uwsgi.encode_request({"A": "1", **sent}))
    assert isinstance(events[0], RequestReceived)
    assert events[0].environ.get("REQUEST_SCHEME") == scheme


def test_response_heads() -> None:
    head = scgi.SCGIServerProtocol().start_response(
        1, "200 OK", [("X", "1"), ("Connection", "close")], b"b"
    )
    assert head == b"Status: 200 OK\r\nX: 1\r\n\r\nb"
    server = uwsgi.UwsgiServerProtocol()
    assert server.start_response(1, "404 Not Found", []) == b"HTTP/1.1 404 Not Found\r\n\r\n"
    assert server.send_body(1, b"x") == b"x"
    server.end_response(1)
    with pytest.raises(LocalProtocolError):
        server.send_body(1, b"late")


@pytest.mark.parametrize("kind", KINDS)
def test_error_response_is_a_readable_answer(kind: str) -> None:
    make, _ = KINDS[kind]
    out = make().error_response(RemoteProtocolError("too big", 431))
    assert b"431" in out.split(b"\r\n")[0] and out.endswith(b"too big\n")


latin1 = st.text(st.characters(max_codepoint=255), max_size=100)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(sorted(KINDS)),
    environ=st.dictionaries(
        latin1.filter(lambda s: s and "\0" not in s and s not in ("CONTENT_LENGTH", "SCGI")),
        latin1.filter(lambda s: "\0" not in s),
        max_size=15,
    ),
    body=st.binary(max_size=5000),
    cut=st.integers(min_value=0, max_value=6000),
)
def test_round_trip(kind: str, environ: dict[str, str], body: bytes, cut: int) -> None:
    make, encode = KINDS[kind]
    data = encode(environ, body)
    server = make()
    pieces = [piece for piece in (data[:cut], data[cut:]) if piece]  # b"" would mean EOF
    events = [event for piece in pieces for event in server.receive_data(piece)]
    received = [e for e in events if isinstance(e, RequestReceived)]
    assert len(received) == 1
    assert {k: received[0].environ[k] for k in environ} == environ
    assert b"".join(e.data for e in events if isinstance(e, BodyReceived)) == body
    assert isinstance(events[-1], RequestComplete)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), data=st.binary(max_size=300))
def test_garbage_gives_events_or_remote_errors(kind: str, data: bytes) -> None:
    make, _ = KINDS[kind]
    server = make(Limits(max_header_bytes=200))
    try:
        server.receive_data(data)
        server.receive_data(b"")
    except RemoteProtocolError:
        pass


@pytest.mark.parametrize("kind", KINDS)
def test_a_connection_closed_before_a_byte_is_no_error(kind: str) -> None:
    # A port probe or a health check's connect: nothing to complain about.
    make, _ = KINDS[kind]
    server = make()
    assert server.idle
    assert server.receive_data(b"") == []
