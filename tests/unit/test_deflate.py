"""permessage-deflate offers, as RFC 7692 section 7 has a server take or
decline them (a bad one must never raise)."""

from __future__ import annotations

import pytest

from dumbwaiter.asgi.deflate import agree


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; x_unknown_parameter",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=\u00b2",  # (isdigit, not int)
        "permessage-deflate; client_max_window_bits=" + "1" * 5000,
        "permessage-deflate; server_max_window_bits",  # (needs a value)
        "permessage-deflate; server_max_window_bits=8",  # (zlib has no 256-byte window)
        "permessage-deflate; server_no_context_takeover=1",
        "x-webkit-deflate-frame",
    ],
)
def test_offers_to_decline(offer: str) -> None:
    assert agree(offer, 1 << 20) is None


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        ("permessage-deflate", "permessage-deflate"),
        ('permessage-deflate; server_max_window_bits="10"', "server_max_window_bits=10"),
        ("permessage-deflate; client_max_window_bits", "client_max_window_bits=15"),
        (
            "permessage-deflate; x_bad, permessage-deflate; server_no_context_takeover",
            "server_no_context_takeover",
        ),
    ],
)
def test_offers_to_take(offer: str, answer: str) -> None:
    agreed = agree(offer, 1 << 20)
    assert agreed is not None and answer in agreed[0]
