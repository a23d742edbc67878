"""The ASGI demo: ``dumbwaiter dumbwaiter.demo:asgi_app``.

Four pages show what the server hands an ASGI application: the scope, a
streamed response (each line sent as the app produces it), a WebSocket echo
page (a browser client in a few lines of script, talking to ``/ws`` on the
same server), and the lifespan state set at start-up.  Standard library
only; no external assets.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from typing import Any

from .demo_page import page

__all__ = ["app"]

LINKS = (("/", "Home"), ("/scope", "Scope"), ("/stream", "Stream"), ("/echo", "WebSocket"))

ECHO = """
<p>Messages typed here go to <code>{ws}</code> and come back from the app.</p>
<form id=say><input id=text size=40 autocomplete=off> <button>Send</button></form>
<pre id=log></pre>
<script>
const log = (line) => document.getElementById("log").textContent += line + "\\n";
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const socket = new WebSocket(scheme + location.host + {ws_json}, ["echo"]);
socket.onopen = () => log("open (subprotocol: " + socket.protocol + ")");
socket.onmessage = (event) => log("< " + event.data);
socket.onclose = (event) => log("closed: " + event.code + " " + event.reason);
document.getElementById("say").onsubmit = (event) => {{
  event.preventDefault();
  const text = document.getElementById("text");
  socket.send(text.value); log("> " + text.value); text.value = "";
}};
</script>
"""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The demo ASGI application."""
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
    elif scope["type"] == "websocket":
        await echo(scope, receive, send)
    else:
        await http(scope, receive, send)


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started"] = time.strftime("%H:%M:%S")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/ws``: every text or binary message comes back, numbered."""
    await receive()  # websocket.connect
    if scope["path"] != scope["root_path"] + "/ws":
        await send({"type": "websocket.close", "code": 1008})
        return
    chosen = "echo" if "echo" in scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": chosen})
    await send({"type": "websocket.send", "text": "hello from dumbwaiter"})
    count = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        count += 1
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": f"{count}: {message['text']}"})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    root = scope["root_path"]
    path = scope["path"][len(root) :] or "/"
    while (await receive()).get("more_body"):
        pass  # (the body is not used)
    if path == "/stream":
        await send(start(200))
        head = page("Stream", "<p>Ten lines, a fifth of a second apart:</p><pre>", root, LINKS)
        await send(body(head[: -len(b"</body></html>")], more=True))
        for number in range(1, 11):
            await asyncio.sleep(0.2)
            await send(body(f"line {number} at {time.strftime('%H:%M:%S')}\n".encode(), True))
        await send(body(b"</pre><p>Done.</p></body></html>", more=False))
        return
    if path == "/":
        title, content, status = "dumbwaiter (ASGI)", home(scope), 200
    elif path == "/scope":
        title, content, status = "Scope", scope_table(scope), 200
    elif path == "/echo":
        ws = root + "/ws"
        content = ECHO.format(ws=html.escape(ws), ws_json=json.dumps(ws))
        title, status = "WebSocket echo", 200
    else:
        title, content, status = "Not found", "<p>No such page.</p>", 404
    await send(start(status))
    await send(body(page(title, content, root, LINKS), more=False))


def home(scope: dict[str, Any]) -> str:
    started = scope.get("state", {}).get("started", "?")
    return (
        f"<p>This page came from an ASGI application over HTTP/{scope['http_version']}; its "
        f"worker started at {html.escape(started)} (lifespan state).</p>"
        "<ul><li><b>Scope</b>: what the app got.</li><li><b>Stream</b>: lines sent one by one."
        "</li><li><b>WebSocket</b>: an echo over a WebSocket (on an HTTP listener, directly "
        "or behind a proxy that passes upgrades).</li></ul>"
    )


def scope_table(scope: dict[str, Any]) -> str:
    rows = []
    for key in sorted(scope):
        value = scope[key]
        if key == "headers":
            text = "\n".join(f"{k.decode('latin-1')}: {v.decode('latin-1')}" for k, v in value)
        else:
            text = value if isinstance(value, str) else repr(value)
        rows.append(f"<tr><td>{html.escape(key)}</td><td><pre>{html.escape(text)}</pre></td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def start(status: int) -> dict[str, Any]:
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    return {"type": "http.response.start", "status": status, "headers": headers}


def body(data: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}
