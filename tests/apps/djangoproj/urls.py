"""Views and routes of the minimal Django project."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt

MARKERS = os.environ.get("DW_TEST_DIR", "/tmp")


def query(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        json.dumps(
            {
                "args": dict(request.GET.lists()),
                "path": request.path,
                "path_info": request.path_info,
            }
        ),
        content_type="application/json",
    )


@csrf_exempt
def form(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        json.dumps({"form": dict(request.POST.lists())}), content_type="application/json"
    )


@csrf_exempt
def upload(request: HttpRequest) -> HttpResponse:
    data = request.body
    return HttpResponse(
        json.dumps({"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}),
        content_type="application/json",
    )


def big(request: HttpRequest) -> HttpResponse:
    return HttpResponse(bytes(range(256)) * 480, content_type="application/octet-stream")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    marker = os.path.join(MARKERS, request.GET["marker"])

    def generate() -> Iterator[bytes]:
        yield b"first\n"
        deadline = time.monotonic() + 10
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield b"last\n"

    return StreamingHttpResponse(generate(), content_type="text/plain")


def error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("django view failed on purpose")


def link(request: HttpRequest) -> HttpResponse:
    return HttpResponse(reverse("target"))


def target(request: HttpRequest) -> HttpResponse:
    return HttpResponse("target")


urlpatterns = [
    path("query", query),
    path("form", form),
    path("upload", upload),
    path("big", big),
    path("stream", stream),
    path("error", error),
    path("link", link),
    path("target", target, name="target"),
]
