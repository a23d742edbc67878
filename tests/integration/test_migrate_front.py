"""A uWSGI deployment moved as `dumbwaiter migrate` says: the same nginx
config (uwsgi_pass to the same socket) answers, served by dumbwaiter started
from the translated file alone."""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

from dumbwaiter.frontconf import NginxSnippet
from integration.fronts import get, nginx, nginx_conf
from serving import TESTS, Server, free_port, run_cli, short_tmpdir, until

pytestmark = pytest.mark.integration

UWSGI_INI = """\
[uwsgi]
module = flask_app:app
master = true
processes = 2
threads = 4
socket = {root}/app.sock
chmod-socket = 666
vacuum = true
harakiri = 30
max-requests = 1000
"""

#: What a uWSGI user's nginx has (uwsgi_params, uwsgi_pass to the socket).
NGINX_HTTP = "upstream app { server unix:%s/app.sock; }\n"
NGINX_SERVER = "location / {\n    include uwsgi_params;\n    uwsgi_pass app;\n}\n"


def test_the_translated_file_serves_through_the_same_nginx_config() -> None:
    root = short_tmpdir()
    shutil.copy(TESTS / "apps" / "flask_app.py", root)
    pathlib.Path(root, "uwsgi.ini").write_text(UWSGI_INI.format(root=root))
    done = run_cli(["migrate", "uwsgi.ini"], cwd=root)
    assert done.returncode == 0, done.stderr
    pathlib.Path(root, "dumbwaiter.toml").write_text(done.stdout)
    checked = run_cli(["--check-config"], cwd=root)
    assert checked.returncode == 0, checked.stderr
    port = free_port()
    snippet = NginxSnippet(NGINX_HTTP % root, NGINX_SERVER)
    with (
        nginx(root, port, nginx_conf(root, port, snippet)) as front,
        Server([], None, workdir=root, wait=[f"unix:{root}/app.sock"]) as backend,
    ):
        status, _, body = get(front, "/query?a=1")
        assert status == 200, front.log() + backend.log()
        assert b'"args":{"a":["1"]}' in body.replace(b" ", b"")
        assert until(lambda: "2 worker(s) ready" in backend.log()), backend.log()
    assert not os.path.exists(f"{root}/app.sock")  # vacuum's job, done anyway


#: The mount uWSGI's docs long showed: the whole path in PATH_INFO, the mount
#: point in SCRIPT_NAME, and modifier1 30 for the server to take it off.
NGINX_MOUNTED = (
    "location /myapp {\n"
    "    include uwsgi_params;\n"
    "    uwsgi_param SCRIPT_NAME /myapp;\n"
    "    uwsgi_modifier1 30;\n"
    "    uwsgi_pass app;\n"
    "}\n"
)


def test_a_mount_made_with_uwsgi_modifier1_30_keeps_working() -> None:
    root = short_tmpdir()
    shutil.copy(TESTS / "apps" / "flask_app.py", root)
    port = free_port()
    snippet = NginxSnippet(NGINX_HTTP % root, NGINX_MOUNTED)
    sock = f"unix:{root}/app.sock"
    with (
        nginx(root, port, nginx_conf(root, port, snippet)) as front,
        Server(["--uwsgi", sock, "--socket-mode", "666"], "flask_app:app", workdir=root) as backend,
    ):
        status, _, body = get(front, "/myapp/query?a=1")
        assert status == 200, front.log() + backend.log()
        compact = body.replace(b" ", b"")
        # Flask routed /query and knows where it is mounted.
        assert b'"path":"/query"' in compact and b'"script_root":"/myapp"' in compact, body
        status, _, body = get(front, "/myapp/link")
        assert status == 200 and b"/myapp/" in body, body
