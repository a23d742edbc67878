"""A method the HTTP parser does not know: 501 or 400 (RFC 9110 9.1).

llhttp refuses any method outside its list with the same error as a request
line that is garbage.  A method that is a valid token is one we do not
implement (501); anything else is a bad request (400).  The parser does not
say where in the bytes a later request began, so this is told apart in a
connection's first request only (later ones get 400), from its first bytes,
whatever the sizes of the feeds they came in: the answer waits until the
method's end (a space) or its impossibility is known.
"""

from __future__ import annotations

import re

from .errors import RemoteProtocolError

__all__ = ["FirstMethod"]

#: A request line's method: a token (RFC 9110 5.6.2), then a space.
METHOD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) ")
TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]*")
#: The longest method told apart from a bad request line.
LONGEST = 32


class FirstMethod:
    """A connection's first bytes, while its first request is read."""

    __slots__ = ("opening", "refused")

    def __init__(self) -> None:
        self.opening = b""
        #: The parser's refusal (its 400 message), once it refused the method.
        self.refused = ""

    def saw(self, data: bytes) -> None:
        if len(self.opening) < LONGEST:
            self.opening += data[: LONGEST - len(self.opening)]

    def verdict(self) -> RemoteProtocolError | None:
        """501 once the method is a whole token, 400 once it cannot be one;
        None while it may still become one."""
        method = METHOD.match(self.opening)
        if method is not None:
            name = method[1].decode("latin-1")
            return RemoteProtocolError(f"method not implemented: {name}", 501)
        if len(self.opening) >= LONGEST or not TOKEN.fullmatch(self.opening):
            return RemoteProtocolError(self.refused)
        return None
