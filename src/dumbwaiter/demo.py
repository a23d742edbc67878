"""The demo application: ``dumbwaiter dumbwaiter.demo:app`` (WSGI), and
``dumbwaiter dumbwaiter.demo:asgi_app`` (ASGI, with a WebSocket echo page:
:mod:`dumbwaiter.demo_asgi`).

Three pages show what the server hands an application: the environ, a form
with a file upload (the body arrives whole, spooled to disk when large), and
a streamed response (each line is sent as the app produces it).  Standard
library only; no external assets, so it works offline.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import html
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .demo_asgi import app as asgi_app
from .demo_page import page

__all__ = ["app", "asgi_app"]

StartResponse = Callable[..., Any]
MAX_UPLOAD = 50 * 1024 * 1024


def respond(
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str = "text/html; charset=utf-8",
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def home(environ: dict[str, Any]) -> str:
    server = environ.get("SERVER_SOFTWARE") or "dumbwaiter"
    return (
        f"<p>This page came from a WSGI application served by {html.escape(server)} over "
        f"<code>{html.escape(environ.get('SERVER_PROTOCOL', '?'))}</code>.</p>"
        "<ul><li><b>Environ</b>: the CGI variables and <code>wsgi.*</code> keys the app got."
        "</li><li><b>Upload</b>: a form with a file; the body is read whole before the app "
        "runs.</li><li><b>Stream</b>: lines sent one by one as the app yields them.</li></ul>"
    )


def environ_table(environ: dict[str, Any]) -> str:
    rows = []
    for key in sorted(environ):
        value = repr(environ[key]) if not isinstance(environ[key], str) else environ[key]
        if len(value) > 500:
            value = value[:500] + " …"
        rows.append(f"<tr><td>{html.escape(key)}</td><td>{html.escape(value)}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


FORM = """
<form method=post action="{action}" enctype="multipart/form-data">
<p><label>Your name <input name=name></label></p>
<p><label>A file <input type=file name=file></label></p>
<p><button>Send</button></p>
</form>
"""


def upload(environ: dict[str, Any]) -> tuple[str, str]:
    """Parse a multipart/form-data body; returns (status, html)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_UPLOAD:
        return "413 Content Too Large", f"<p>Uploads are limited to {MAX_UPLOAD >> 20} MiB.</p>"
    body = environ["wsgi.input"].read(length)
    content_type = environ.get("CONTENT_TYPE", "")
    if not content_type.startswith("multipart/form-data"):
        return "400 Bad Request", "<p>Expected a multipart/form-data form.</p>"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
    )
    rows = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition") or "?"
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if filename is not None:
            detail = (
                f"file {html.escape(filename)}: {len(data)} bytes, sha256 "
                f"<code>{hashlib.sha256(data).hexdigest()}</code>"
            )
        else:
            detail = html.escape(data.decode("utf-8", "replace"))
        rows.append(f"<tr><td>{html.escape(str(name))}</td><td>{detail}</td></tr>")
    return "200 OK", f"<p>Received {len(body)} bytes.</p><table>{''.join(rows)}</table>"


def stream(script_name: str) -> Iterator[bytes]:
    yield page("Stream", "<p>Ten lines, a fifth of a second apart:</p><pre>", script_name)[
        : -len(b"</body></html>")
    ]
    for number in range(1, 11):
        time.sleep(0.2)
        yield f"line {number} at {time.strftime('%H:%M:%S')}\n".encode()
    yield b"</pre><p>Done.</p></body></html>"


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The demo WSGI application."""
    path = environ.get("PATH_INFO") or "/"
    method = environ.get("REQUEST_METHOD", "GET")
    script_name = environ.get("SCRIPT_NAME", "")
    if path == "/" and method in ("GET", "HEAD"):
        return respond(start_response, "200 OK", page("dumbwaiter", home(environ), script_name))
    if path == "/environ":
        return respond(
            start_response, "200 OK", page("Environ", environ_table(environ), script_name)
        )
    if path == "/form":
        form = FORM.format(action=html.escape(script_name + "/upload"))
        return respond(start_response, "200 OK", page("Upload", form, script_name))
    if path == "/upload" and method == "POST":
        status, body = upload(environ)
        return respond(start_response, status, page("Upload", body, script_name))
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return stream(script_name)
    return respond(
        start_response, "404 Not Found", page("Not found", "<p>No such page.</p>", script_name)
    )
