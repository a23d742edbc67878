"""A Flask app for the integration tests (served through real front servers)."""

from __future__ import annotations

import hashlib
import os
import time

from flask import Flask, Response, request, stream_with_context, url_for

app = Flask(__name__)
MARKERS = os.environ.get("DW_TEST_DIR", "/tmp")


@app.get("/query")
def query() -> dict[str, object]:
    return {
        "args": request.args.to_dict(flat=False),
        "path": request.path,
        "script_root": request.script_root,
    }


@app.post("/form")
def form() -> dict[str, object]:
    return {"form": request.form.to_dict(flat=False)}


@app.post("/upload")
def upload() -> dict[str, object]:
    data = request.get_data()
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.get("/big")
def big() -> Response:
    return Response(bytes(range(256)) * 480, mimetype="application/octet-stream")


@app.get("/stream")
def stream() -> Response:
    marker = os.path.join(MARKERS, request.args["marker"])

    def generate():  # type: ignore[no-untyped-def]
        yield "first\n"
        deadline = time.monotonic() + 10
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield "last\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/error")
def error() -> str:
    raise RuntimeError("flask view failed on purpose")


@app.get("/link")
def link() -> str:
    return url_for("target")


@app.get("/target")
def target() -> str:
    return "target"
