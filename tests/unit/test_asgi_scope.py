"""The ASGI scopes made from a request's completed CGI variables."""

from __future__ import annotations

from dumbwaiter.asgi.scope import http_scope, websocket_scope


def test_a_header_the_front_passed_twice_is_in_the_scope_once() -> None:
    # lighttpd, and nginx's uwsgi and scgi modules, send CONTENT_LENGTH and
    # HTTP_CONTENT_LENGTH both (Django would join two copies into "5,5").
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/up",
        "CONTENT_LENGTH": "5",
        "HTTP_CONTENT_LENGTH": "5",
        "CONTENT_TYPE": "text/plain",
        "HTTP_CONTENT_TYPE": "text/plain",
        "HTTP_X_ONE": "1",
    }
    headers = http_scope(environ, None)["headers"]
    assert sorted(headers) == [
        (b"content-length", b"5"),
        (b"content-type", b"text/plain"),
        (b"x-one", b"1"),
    ]


def test_a_websocket_scope() -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/chat",
        "QUERY_STRING": "room=1",
        "wsgi.url_scheme": "https",
        "HTTP_SEC_WEBSOCKET_PROTOCOL": "one, two ,",
    }
    scope = websocket_scope(environ, {"ready": True})
    assert scope["type"] == "websocket" and "method" not in scope
    assert scope["asgi"]["spec_version"] == "2.5"
    assert scope["scheme"] == "wss"
    assert scope["path"] == "/app/chat" and scope["root_path"] == "/app"
    assert scope["subprotocols"] == ["one", "two"]
    assert scope["state"] == {"ready": True}
    assert scope["extensions"] == {"websocket.http.response": {}}
