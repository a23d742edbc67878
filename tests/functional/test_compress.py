"""--gzip and --gzip-types on a real server: dumbwaiter.middleware.Compress
wrapped around the app by the command line.  The middleware itself, driven
in-process, is tested in tests/unit/test_compress.py."""

from __future__ import annotations


def test_the_gzip_option_compresses_what_is_worth_it() -> None:
    import gzip as gzip_module
    import http.client

    from serving import Server, free_port

    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--gzip", "--gzip-types", "application/octet-stream"]
    with Server(args):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/big", headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        body = response.read()
        assert response.getheader("Content-Encoding") == "gzip"
        assert response.getheader("Vary") == "Accept-Encoding"
        assert gzip_module.decompress(body) == bytes(range(256)) * 480
        conn.request("GET", "/hello", headers={"Accept-Encoding": "gzip"})  # text/plain: not listed
        response = conn.getresponse()
        assert response.read() == b"Hello world\n"
        assert response.getheader("Content-Encoding") is None


def test_a_bad_gzip_type_is_a_usage_error() -> None:
    from serving import run_cli

    result = run_cli(["--gzip", "--gzip-types", "not a type", "server_apps:app"])
    assert result.returncode == 2
    assert result.stderr.startswith("dumbwaiter: error: --gzip-types: ")
    assert len(result.stderr.splitlines()) == 1
