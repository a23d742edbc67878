"""`dumbwaiter request` against a real server, over every protocol."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from serving import Server, free_port, run_cli, short_tmpdir


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    folder = short_tmpdir()
    addresses = {
        "fastcgi": f"unix:{folder}/f.sock",
        "scgi": f"unix:{folder}/s.sock",
        "uwsgi": f"127.0.0.1:{free_port()}",
        "http": f"127.0.0.1:{free_port()}",
    }
    args = [part for kind, address in addresses.items() for part in (f"--{kind}", address)]
    with Server(args, workdir=folder) as srv:
        srv.addresses = addresses  # type: ignore[attr-defined]
        yield srv


PROTOCOLS = ["fastcgi", "scgi", "uwsgi", "http"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_get_with_headers_shown(server: Server, protocol: str) -> None:
    address = server.addresses[protocol]  # type: ignore[attr-defined]
    result = run_cli(["request", "-p", protocol, "-i", address, "/hello"])
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition("\n\n")  # text mode: CRLF read as LF
    assert head.startswith("200 OK")
    assert body == "Hello world\n"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_post_with_data_and_header(server: Server, protocol: str, tmp_path: object) -> None:
    address = server.addresses[protocol]  # type: ignore[attr-defined]
    result = run_cli(
        [
            "request",
            "-p",
            protocol,
            "-X",
            "PUT",
            "-H",
            "X-Test: yes",
            "-H",
            "Content-Type: text/plain",
            "-d",
            "payload",
            address,
            "/echo/e?k=v",
        ]
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["REQUEST_METHOD"], info["PATH_INFO"], info["QUERY_STRING"]) == (
        "PUT",
        "/echo/e",
        "k=v",
    )
    assert info["HTTP_X_TEST"] == "yes" and info["body_length"] == 7
    assert info["CONTENT_TYPE"] == "text/plain"


def test_data_file_and_authorizer_role(server: Server) -> None:
    address = server.addresses["fastcgi"]  # type: ignore[attr-defined]
    path = os.path.join(server.dir, "body.bin")
    with open(path, "wb") as f:
        f.write(b"z" * 100_000)
    result = run_cli(["request", "--data-file", path, address, "/echo"])
    assert json.loads(result.stdout)["body_length"] == 100_000
    allowed = run_cli(
        [
            "request",
            "--role",
            "authorizer",
            "-i",
            "-H",
            "Authorization: Bearer good",
            address,
            "/authorize",
        ]
    )
    assert allowed.returncode == 0 and "Variable-X-User: alice" in allowed.stdout
    denied = run_cli(["request", "--role", "authorizer", address, "/authorize"])
    assert denied.returncode == 0 and denied.stdout == "no\n"


def test_exit_status_for_5xx_and_for_no_server(server: Server) -> None:
    address = server.addresses["fastcgi"]  # type: ignore[attr-defined]
    assert run_cli(["request", address, "/error"]).returncode == 1
    refused = run_cli(["request", f"unix:{server.dir}/nothing.sock", "/"])
    assert refused.returncode == 2
    assert refused.stderr.startswith("dumbwaiter request: error: ")
    garbage = run_cli(["request", "-p", "fastcgi", server.addresses["http"], "/"])  # type: ignore[attr-defined]
    assert garbage.returncode == 2
