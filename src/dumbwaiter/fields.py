"""What an application may put in a response head, checked before it is
written: a status line (WSGI's text, ASGI's int 200-599), field names (RFC 9110
tokens) and values (no CR, LF or NUL, latin-1).  A CR or LF in a value
would let the application, or whoever fills the value in, write fields and
responses of its own (response splitting).  The WSGI and ASGI gateways
share these checks.

An application answers with a handful of each, so what was found valid is
remembered (bounded; shared by the threads: a set's add and lookup are
atomic) and most are checked once.
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = [
    "STATUS",
    "VALID_NAMES",
    "VALID_STATUS",
    "VALID_VALUES",
    "check_name",
    "check_value",
    "pairs_of",
    "status_code",
    "valid_name",
    "valid_value",
]

# Status and field values must be latin-1 (PEP 3333): the protocols encode them.
STATUS: Final = re.compile(r"[1-9][0-9][0-9] [^\r\n\0\u0100-\U0010ffff]*\Z")
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE: Final = re.compile(r"[\r\n\0\u0100-\U0010ffff]")
VALID_STATUS: Final[set[str]] = set()
VALID_NAMES: Final[set[str]] = set()
VALID_VALUES: Final[set[str]] = set()
VALID_MAX: Final = 512
#: Values are remembered only when short (Content-Type, Content-Length):
#: long ones (cookies, policies) are neither frequent nor worth keeping.
_VALUE_CACHED: Final = 32


def valid_name(name: str) -> bool:
    """A field name not remembered yet: whether it is a token (remembered if so)."""
    if not _TOKEN.match(name):
        return False
    if len(VALID_NAMES) < VALID_MAX:
        VALID_NAMES.add(name)
    return True


def valid_value(value: str) -> bool:
    """A field value not remembered yet: whether it is one (remembered if so)."""
    if _BAD_VALUE.search(value):
        return False
    if len(value) <= _VALUE_CACHED and len(VALID_VALUES) < VALID_MAX:
        VALID_VALUES.add(value)
    return True


def check_name(name: str) -> None:
    if name not in VALID_NAMES and not valid_name(name):
        raise ValueError(f"bad header name {name!r}")


def check_value(name: str, value: str) -> None:
    if value not in VALID_VALUES and not valid_value(value):
        raise ValueError(f"bad value for header {name}: {value!r}")


def pairs_of(pairs: Any) -> list[tuple[str, str]]:
    """ASGI's headers (an iterable of [name, value] byte strings) as the
    protocols' ``(name, value)`` text pairs, each checked."""
    headers = []
    for name, value in pairs:
        text = bytes(name).decode("latin-1")
        check_name(text)
        value_text = bytes(value).decode("latin-1")
        check_value(text, value_text)
        headers.append((text, value_text))
    return headers


def status_code(status: object) -> int:
    """ASGI's status: an int from 200 to 599 (an IntEnum such as
    ``http.HTTPStatus.OK`` too, not a bool or a string).  A 1xx is no final
    answer: a client would take it as an interim one and wait on."""
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
        raise ValueError(f"bad status {status!r}: an int from 200 to 599")
    return int(status)
