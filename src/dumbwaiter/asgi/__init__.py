"""The ASGI 3 gateway: async applications (Starlette, FastAPI, Django's
ASGI handler, Quart, Litestar) over the same protocols and session layer as
WSGI ones, run on the worker's event loop instead of the thread pool.

* :mod:`.detect`: whether an application is ASGI 3, ASGI 2 or WSGI;
* :mod:`.scope`: a request's completed CGI variables as an HTTP ``scope``;
* :mod:`.gateway`: :class:`ASGIGateway`, which runs one request as a task
  (``receive`` and ``send`` over the connection's session), and the
  lifespan protocol.

What this slice serves: HTTP requests over every protocol (FastCGI, SCGI,
uwsgi, HTTP/1.1), ``--timeout`` (the task cancelled) and lifespan.
WebSockets and ``http.response.pathsend`` are not here yet.
"""

from __future__ import annotations

from .detect import ASGIApp, interface_of
from .gateway import ASGIExchange, ASGIGateway
from .lifespan import Lifespan

__all__ = ["ASGIApp", "ASGIExchange", "ASGIGateway", "Lifespan", "interface_of"]
