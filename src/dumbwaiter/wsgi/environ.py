"""The WSGI environ: a request's CGI variables completed as PEP 3333 asks,
with what each front server gets wrong or leaves out repaired once, here.

* SCRIPT_NAME/PATH_INFO, whatever the front sent (:func:`fix_paths`);
* ``X-Forwarded-*``/``Forwarded`` applied for a trusted proxy over HTTP;
* SERVER_NAME/SERVER_PORT from the Host header when no front named them
  (and HAProxy's port-and-all SERVER_NAME split);
* CONTENT_LENGTH the length actually received (front servers may send -1,
  or nothing, for a body they stream);
* the FastCGI role's extras (``dumbwaiter.fcgi_role``, ``dumbwaiter.fcgi_data``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from ..access import AddressList, apply_forwarded
from ..protocols import Role
from ..protocols.mount import split_at
from ..typing import FORWARDED

if TYPE_CHECKING:
    from ..request import Request

__all__ = ["complete_environ", "fix_paths"]


def complete_environ(
    request: Request,
    peer: dict[str, str],
    base: dict[str, Any],
    trusted: AddressList,
    script_name: str | None,
) -> dict[str, Any]:
    """The CGI variables of ``request`` completed into a WSGI environ (the
    same dict, changed in place).  ``peer``: what only the socket knows;
    ``base``: the ``wsgi.*`` keys every request shares; ``trusted``: whose
    forwarding headers to believe; ``script_name``: the mount prefix, if
    configured (see :func:`fix_paths`)."""
    environ: dict[str, Any] = request.environ
    if FORWARDED in peer:  # over HTTP from a trusted proxy
        apply_forwarded(environ, trusted)
    # (str locals: plain str operations when compiled, where the
    # environ's values are Any)
    https: str = environ.get("HTTPS", "")
    scheme: str = (
        "https" if https and https.lower() in ("on", "1") else environ.get("REQUEST_SCHEME", "http")
    )
    if not environ.get("SERVER_NAME"):
        _name_from_host(environ, scheme)
    for key, value in peer.items():
        environ.setdefault(key, value)
    environ.pop(FORWARDED, None)  # ours, or a front server's forgery
    environ.update(base)
    environ["wsgi.input"] = request.input
    length = request.length
    declared: str = environ.get("CONTENT_LENGTH", "0")
    if length or declared not in ("", "0"):
        # The body was received whole: its real length is the one to
        # trust (front servers may send -1 or nothing when streaming).
        environ["CONTENT_LENGTH"] = str(length)
    environ["wsgi.url_scheme"] = scheme
    fix_paths(environ, script_name)
    environ.setdefault("REQUEST_METHOD", "GET")
    environ.setdefault("SERVER_PROTOCOL", "HTTP/1.1")
    server_name: str = environ.get("SERVER_NAME", "")
    if (
        ":" in server_name
        and server_name.count(":") == 1
        and server_name.rpartition(":")[2].isdigit()
    ):
        # HAProxy's fcgi-app sends the Host header, port and all.
        environ["SERVER_NAME"] = server_name.rpartition(":")[0]
    environ.setdefault("SERVER_NAME", "localhost")  # no Host, no socket address
    environ.setdefault("SERVER_PORT", "443" if scheme == "https" else "80")
    if request.role is not Role.RESPONDER:
        environ["dumbwaiter.fcgi_role"] = request.role.name
        if request.filter_input is not None:
            environ["dumbwaiter.fcgi_data"] = request.filter_input
    return environ


def _name_from_host(environ: dict[str, Any], scheme: str) -> None:
    """SERVER_NAME and SERVER_PORT from the Host header.

    Over HTTP no front server names the server, and nginx sends "" from a
    server block without server_name (PEP 3333: never empty): the Host the
    client asked for does, port and all.  The socket's own address (the peer
    values) is only the fallback: behind a proxy it is dumbwaiter's port, and
    a URL rebuilt from it would be wrong.
    """
    environ.pop("SERVER_NAME", None)
    name, port = _host_port(environ.get("HTTP_HOST", ""))
    if name:
        environ["SERVER_NAME"] = name
        default = "443" if scheme == "https" else "80"
        environ.setdefault("SERVER_PORT", port if port.isascii() and port.isdigit() else default)


def fix_paths(environ: dict[str, Any], script_name: str | None) -> None:
    """Make SCRIPT_NAME/PATH_INFO right whatever the front server sent.

    * With ``script_name`` configured (the mount prefix), the full path is
      split at it: SCRIPT_NAME = prefix, PATH_INFO = the rest.
    * Without it, a missing PATH_INFO (nginx's default ``fastcgi_params``,
      SCGI, uwsgi) is derived from REQUEST_URI: what follows SCRIPT_NAME, or
      the whole path when SCRIPT_NAME *is* the whole path (nginx sets it to
      ``$fastcgi_script_name``, which is the full URI without a split).
      Apache's mod_proxy_fcgi and mod_proxy_scgi do the same, but name the
      path below the ProxyPass prefix in SCRIPT_FILENAME, which gives the split.
    """
    path_info: str | None = environ.get("PATH_INFO")
    if script_name is None:
        if path_info is not None:
            environ.setdefault("SCRIPT_NAME", "")
            return
        path = _request_path(environ)
        script: str = environ.get("SCRIPT_NAME", "")
        filename: str = environ.get("SCRIPT_FILENAME", "")
        proxied = _apache_proxy_path(filename) if filename.startswith("proxy:") else None
        if proxied is not None and path.endswith(proxied) and proxied.startswith("/"):
            # Apache mod_proxy_fcgi/scgi: SCRIPT_NAME is the whole path, and
            # only SCRIPT_FILENAME ("proxy:fcgi://host:port/rest") tells
            # where the ProxyPass prefix ends.
            environ["SCRIPT_NAME"] = path[: len(path) - len(proxied)]
            environ["PATH_INFO"] = proxied
        # Split only at a segment boundary: /app covers /app/x, not /application.
        elif script and path.startswith(script) and path[len(script) : len(script) + 1] == "/":
            environ["PATH_INFO"] = path[len(script) :]
        else:
            environ["SCRIPT_NAME"] = ""
            environ["PATH_INFO"] = path
        return
    if path_info is None:
        path = _request_path(environ)
    else:
        path = environ.get("SCRIPT_NAME", "") + path_info
    environ["SCRIPT_NAME"], environ["PATH_INFO"] = split_at(script_name, path)


def _apache_proxy_path(filename: str) -> str | None:
    """The backend-relative path in Apache's ``proxy:SCHEME://AUTHORITY/path``."""
    rest = filename.partition("://")[2]
    slash = rest.find("/")
    if slash < 0:
        return None
    path = rest[slash:]
    if "%" in path:
        path = unquote_to_bytes(path).decode("latin-1")
    return path


def _request_path(environ: dict[str, Any]) -> str:
    uri: str = environ.get("REQUEST_URI") or environ.get("DOCUMENT_URI") or ""
    path = uri.partition("?")[0]
    if "%" in path:
        path = unquote_to_bytes(path).decode("latin-1")
    return path


def _host_port(host: str) -> tuple[str, str]:
    """``example.org:8080`` -> ``("example.org", "8080")``;
    ``[::1]:80`` -> ``("[::1]", "80")``; no port -> ``""``."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else ""
    name, _, port = host.partition(":")
    return name, port
