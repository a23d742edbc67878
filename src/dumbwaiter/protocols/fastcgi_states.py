"""The per-request state machine of the FastCGI server, as tables.

Theory of operation (FastCGI Specification 1.0, sections 5 and 6)
-----------------------------------------------------------------
A request opens with ``FCGI_BEGIN_REQUEST`` (5.1), whose role (``ROLES``)
picks the first state (``FIRST_STATE``).  Its input streams follow:
``FCGI_PARAMS`` (5.2), then ``FCGI_STDIN`` (5.3) for a RESPONDER (6.2),
nothing more for an AUTHORIZER (6.3; a STDIN sent anyway is dropped),
``FCGI_STDIN`` and ``FCGI_DATA`` for a FILTER (6.4).  Each stream ends with an
empty record of its type (3.3).  The web server may send
``FCGI_ABORT_REQUEST`` (5.4) at any point; the request then owes only its
``FCGI_END_REQUEST`` (5.5).

So a record, as the machine sees it, is its type, or the negated type for
the empty record that ends a stream (``END_PARAMS``, ``END_STDIN``,
``END_DATA``); ``ABORT`` is ``FCGI_ABORT_REQUEST``, which has no content.
``TRANSITIONS`` maps (state, record) to the next state, and anything missing
from it is a protocol error.  Beside it, two tables of small codes say what
happens: ``ACTIONS``, by record, what the record does (collect PARAMS, hand
STDIN or DATA on); ``ENTRIES``, by state, what entering the state does (say
the request is complete or aborted, or answer it at once).  In ``DROPPING``
states input is read and dropped, so no action is taken.

``STEPS`` joins the three once, by state: state -> record -> (next state,
action code, entry code), so a record costs two dict lookups.
``FastCGIServerProtocol._record`` carries the codes out with an if-chain
(native calls when compiled, where a table of functions would not be).
"""

from __future__ import annotations

from typing import Final

from .events import Role
from .fastcgi_records import ABORT_REQUEST, DATA, PARAMS, STDIN

__all__ = [
    "ACTIONS",
    "DROPPING",
    "ENTRIES",
    "FIRST_STATE",
    "ROLES",
    "STEPS",
    "TRANSITIONS",
]

# Records as the state machine sees them: non-empty ones by type, the empty
# record that ends a stream by the negated type.  ABORT_REQUEST has no content.
END_PARAMS: Final = -PARAMS
END_STDIN: Final = -STDIN
END_DATA: Final = -DATA
ABORT: Final = -ABORT_REQUEST

# Per-request states.
RESPONDER_PARAMS: Final = "responder params"
AUTHORIZER_PARAMS: Final = "authorizer params"
FILTER_PARAMS: Final = "filter params"
STDIN_AND_DATA: Final = "stdin and data"  # FILTER: both streams open
READING_STDIN: Final = "stdin"
READING_DATA: Final = "data"  # FILTER: STDIN ended first
COMPLETE: Final = "complete"  # every input stream ended; the response is owed
AUTHORIZED: Final = "authorizer complete"  # COMPLETE, but STDIN is still dropped
ABORTED: Final = "aborted"  # FCGI_ABORT_REQUEST seen; only END_REQUEST is owed
FORGOTTEN: Final = "forgotten"  # aborted before RequestReceived: answered at once

#: A role by its number in ``FCGI_BEGIN_REQUEST`` (5.1), and its first state.
ROLES: Final = {int(role): role for role in Role}
FIRST_STATE: Final = {
    Role.RESPONDER: RESPONDER_PARAMS,
    Role.AUTHORIZER: AUTHORIZER_PARAMS,
    Role.FILTER: FILTER_PARAMS,
}

#: The per-request state machine; anything missing is a protocol error.
TRANSITIONS: Final[dict[tuple[str, int], str]] = {
    (RESPONDER_PARAMS, PARAMS): RESPONDER_PARAMS,
    (RESPONDER_PARAMS, END_PARAMS): READING_STDIN,
    (RESPONDER_PARAMS, ABORT): FORGOTTEN,
    (AUTHORIZER_PARAMS, PARAMS): AUTHORIZER_PARAMS,
    (AUTHORIZER_PARAMS, END_PARAMS): AUTHORIZED,
    (AUTHORIZER_PARAMS, ABORT): FORGOTTEN,
    (FILTER_PARAMS, PARAMS): FILTER_PARAMS,
    (FILTER_PARAMS, END_PARAMS): STDIN_AND_DATA,
    (FILTER_PARAMS, ABORT): FORGOTTEN,
    (STDIN_AND_DATA, STDIN): STDIN_AND_DATA,
    (STDIN_AND_DATA, DATA): STDIN_AND_DATA,
    (STDIN_AND_DATA, END_STDIN): READING_DATA,
    (STDIN_AND_DATA, END_DATA): READING_STDIN,
    (STDIN_AND_DATA, ABORT): ABORTED,
    (READING_STDIN, STDIN): READING_STDIN,
    (READING_STDIN, END_STDIN): COMPLETE,
    (READING_STDIN, ABORT): ABORTED,
    (READING_DATA, DATA): READING_DATA,
    (READING_DATA, END_DATA): COMPLETE,
    (READING_DATA, ABORT): ABORTED,
    (COMPLETE, ABORT): ABORTED,
    (AUTHORIZED, STDIN): AUTHORIZED,
    (AUTHORIZED, END_STDIN): AUTHORIZED,
    (AUTHORIZED, ABORT): ABORTED,
    # The web server may still be sending input when it aborts.
    (ABORTED, STDIN): ABORTED,
    (ABORTED, END_STDIN): ABORTED,
    (ABORTED, DATA): ABORTED,
    (ABORTED, END_DATA): ABORTED,
    (ABORTED, ABORT): ABORTED,
}

#: States whose input is read and dropped.
DROPPING: Final = frozenset({AUTHORIZED, ABORTED})

# What a record does (unless its request's state drops input) ...
NO_ACTION: Final = 0
ON_PARAMS: Final = 1  # collect the PARAMS content
ON_PARAMS_END: Final = 2  # decode PARAMS: RequestReceived
ON_STDIN: Final = 3  # BodyReceived
ON_DATA: Final = 4  # FilterDataReceived
ACTIONS: Final = {PARAMS: ON_PARAMS, END_PARAMS: ON_PARAMS_END, STDIN: ON_STDIN, DATA: ON_DATA}

# ... and what entering a state does.
NO_ENTRY: Final = 0
ENTER_COMPLETE: Final = 1  # RequestComplete
ENTER_ABORTED: Final = 2  # RequestAborted
ENTER_FORGOTTEN: Final = 3  # answered at once: END_REQUEST
ENTRIES: Final = {
    COMPLETE: ENTER_COMPLETE,
    AUTHORIZED: ENTER_COMPLETE,
    ABORTED: ENTER_ABORTED,
    FORGOTTEN: ENTER_FORGOTTEN,
}

#: ``TRANSITIONS`` joined with ``ACTIONS`` and ``ENTRIES`` once, by state:
#: state -> record -> (next state, the record's action unless the state drops
#: input, the next state's entry unless it is the same state).  Every state
#: has a row, those no record may follow too.
STEPS: Final[dict[str, dict[int, tuple[str, int, int]]]] = {}
for (_old, _token), _new in TRANSITIONS.items():
    STEPS.setdefault(_old, {})[_token] = (
        _new,
        NO_ACTION if _old in DROPPING else ACTIONS.get(_token, NO_ACTION),
        NO_ENTRY if _new == _old else ENTRIES.get(_new, NO_ENTRY),
    )
for _new in TRANSITIONS.values():
    STEPS.setdefault(_new, {})
