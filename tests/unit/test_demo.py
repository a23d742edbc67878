"""The demo app, through wsgiref's validator (through a real server:
tests/functional/test_demo.py)."""

from __future__ import annotations

import io
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

from dumbwaiter.demo import app


def call(
    path: str, method: str = "GET", body: bytes = b"", content_type: str = ""
) -> tuple[str, bytes]:
    environ: dict[str, Any] = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
    }
    if content_type:
        environ["CONTENT_TYPE"] = content_type
    setup_testing_defaults(environ)
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda data: None

    result = validator(app)(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        result.close()
    return seen[0], data


def test_pages() -> None:
    assert call("/")[0] == "200 OK"
    status, data = call("/environ")
    assert status == "200 OK" and b"wsgi.url_scheme" in data
    assert b"multipart/form-data" in call("/form")[1]
    assert call("/nowhere")[0] == "404 Not Found"


def test_upload_reports_fields_and_files() -> None:
    body = (
        b'--XX\r\nContent-Disposition: form-data; name="name"\r\n\r\nAda\r\n'
        b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhello\r\n--XX--\r\n"
    )
    status, data = call("/upload", "POST", body, "multipart/form-data; boundary=XX")
    assert status == "200 OK"
    assert b"Ada" in data
    assert b"a.txt: 5 bytes" in data
    assert b"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" in data
