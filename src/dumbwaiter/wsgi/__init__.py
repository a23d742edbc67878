"""The WSGI gateway (PEP 3333), written once for every protocol and driver.

* :mod:`.environ`: the request's CGI variables completed into a WSGI
  environ, with the front servers' quirks repaired (SCRIPT_NAME/PATH_INFO,
  forwarded headers, HAProxy's SERVER_NAME);
* :mod:`.gateway`: :class:`WSGIGateway`, which calls the application and
  turns what it does into the calls of an :class:`~dumbwaiter.typing.Exchange`;
* :mod:`.objects`: the classes applications get (``wsgi.file_wrapper``,
  ``wsgi.errors``).

It knows nothing of sockets, event loops, wire protocols or the settings
table: the server gives it its settings as arguments.
"""

from __future__ import annotations

from ..errors import ClientDisconnected
from ..typing import FORWARDED, ExcInfo, StartResponse, WSGIApp
from .environ import fix_paths
from .gateway import WSGIGateway
from .objects import ErrorStream, FileWrapper

__all__ = [
    "FORWARDED",
    "ClientDisconnected",
    "ErrorStream",
    "ExcInfo",
    "FileWrapper",
    "StartResponse",
    "WSGIApp",
    "WSGIGateway",
    "fix_paths",
]
