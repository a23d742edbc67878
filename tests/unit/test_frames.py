"""The common-frame reader: whatever the cut of the bytes, the messages come
out in order, and what it hands wsproto is whole frames (wsproto decodes
them to the same messages)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, Ping, TextMessage

from dumbwaiter.asgi.frames import Frames, data_frame
from wsclient import build_frame


def client_frame(first: int, payload: bytes) -> bytes:
    return build_frame(first & 0x0F, payload, fin=bool(first & 0x80))


# A message: (text?, payload, how many fragments)
messages = st.lists(
    st.tuples(
        st.booleans(),
        st.one_of(
            st.binary(max_size=300),
            # (around the 16-bit length's edge; drawn as a size: hypothesis
            # refuses to draw that many bytes one by one)
            st.integers(65530, 65600).map(lambda n: (bytes(range(256)) * 257)[:n]),
        ),
        st.integers(1, 3),
        st.booleans(),  # a ping before it
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(messages, st.lists(st.integers(1, 70000), max_size=20))
def test_messages_come_out_in_order_whatever_the_cut(
    sent: list[tuple[bool, bytes, int, bool]], cuts: list[int]
) -> None:
    wire = b""
    expected: list[str | bytes] = []
    for text, raw, pieces, ping in sent:
        payload = raw.decode("latin-1").encode() if text else raw  # (valid UTF-8)
        if ping:
            wire += client_frame(0x89, b"p")
        step = max(1, len(payload) // pieces + 1)
        parts = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
        for index, part in enumerate(parts):
            opcode = (1 if text else 2) if index == 0 else 0
            fin = 0x80 if index == len(parts) - 1 else 0
            wire += client_frame(fin | opcode, part)
        expected.append(payload.decode() if text else payload)
    frames = Frames()
    framing = Connection(ConnectionType.SERVER)
    got: list[str | bytes] = []
    pending: list[str | bytes] = []
    position = 0
    for size in [*cuts, len(wire)]:
        chunk, position = wire[position : position + size], position + size
        for piece in frames.split(chunk):
            if type(piece) is bytearray:
                framing.receive_data(bytes(piece))
                for event in framing.events():
                    if isinstance(event, (TextMessage, BytesMessage)):
                        pending.append(event.data)
                        if event.message_finished:
                            joined = "".join(pending) if text_of(pending) else b"".join(pending)
                            got.append(joined if isinstance(joined, str) else bytes(joined))
                            pending = []
                    else:
                        assert isinstance(event, Ping)
            else:
                got.append(piece)
    assert got == expected
    assert frames.pending == b"" and frames.owed == 0


def text_of(pieces: list[str | bytes]) -> bool:
    return isinstance(pieces[0], str)


def test_a_small_whole_frame_is_read_here_and_bad_text_is_wsprotos() -> None:
    frames = Frames()
    assert frames.split(client_frame(0x81, "héllo".encode())) == ["héllo"]
    assert frames.split(client_frame(0x82, b"\x00\xff")) == [b"\x00\xff"]
    bad = client_frame(0x81, b"\xff\xfe")
    assert frames.split(bad) == [bytearray(bad)]  # (wsproto answers 1007)
    unmasked = b"\x81\x02hi"
    assert frames.split(unmasked) == [bytearray(unmasked)]  # (1002)


def test_server_frames() -> None:
    assert data_frame(b"hi", True) == b"\x81\x02hi"
    assert data_frame(b"x" * 200, False)[:4] == b"\x82\x7e\x00\xc8"
    assert data_frame(b"x" * 70000, False)[:10] == b"\x82\x7f" + (70000).to_bytes(8, "big")
