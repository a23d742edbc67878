"""`dumbwaiter request` against a real server, over every protocol."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator

import pytest

from serving import TESTS, Server, free_port, run_cli, short_tmpdir


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


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return env


def into_a_pipeline(args: list[str], reader: str) -> subprocess.CompletedProcess[str]:
    """``dumbwaiter ARGS | READER`` in bash with pipefail: the pipeline's
    status is the command's unless the reader fails."""
    command = f"{shlex.join([sys.executable, '-m', 'dumbwaiter', *args])} | {reader} > /dev/null"
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=30,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
    )


def into_a_closed_pipe(args: list[str]) -> subprocess.CompletedProcess[str]:
    """The command line with stdout a pipe whose reader is gone already:
    its first write fails (EPIPE)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "dumbwaiter", *args],
            stdin=subprocess.DEVNULL,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            env=cli_env(),
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_reader_that_goes_away_ends_the_command_quietly(server: Server, protocol: str) -> None:
    """The user's pipeline.  Whether the command's write meets the reader
    gone depends on timing; :func:`into_a_closed_pipe` (below) makes sure."""
    address = server.addresses[protocol]  # type: ignore[attr-defined]
    # 120 kB, more than a pipe holds: the command may still write when head has gone.
    result = into_a_pipeline(["request", "-p", protocol, address, "/big"], "head -c 10")
    assert result.stderr == ""
    assert result.returncode == 0  # the server's answer, though the rest went unread


def test_a_reader_gone_before_the_first_byte_keeps_the_exit_status(server: Server) -> None:
    address = server.addresses["fastcgi"]  # type: ignore[attr-defined]
    for path, status in (("/hello", 0), ("/error", 1)):
        result = into_a_closed_pipe(["request", "-i", address, path])
        assert (result.stderr, result.returncode) == ("", status)


def test_config_and_help_into_a_reader_gone_end_quietly() -> None:
    for args in (["config", "nginx", "--fastcgi", "unix:/run/app.sock"], ["request", "--help"]):
        result = into_a_closed_pipe(args)
        assert (result.stderr, result.returncode) == ("", 0), args
