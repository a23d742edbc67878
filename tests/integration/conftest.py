"""The interop report: with ``DUMBWAITER_INTEROP_REPORT=FILE`` set, the
integration run writes its results there as ``docs/interop.md``: the matrix
(``matrix.CELLS`` by ``matrix.BEHAVIOURS``) as a grid with the reasons for
every n/a, then the other integration checks, then the front-server quirks
dumbwaiter copes with (written here by hand; they do not come from a run)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from integration.matrix import (
    ASGI_BEHAVIOURS,
    ASGI_CELLS,
    ASGI_FRAMEWORK_NA,
    BEHAVIOURS,
    CELLS,
    Cell,
)

#: nodeid -> outcome: "passed", "failed", "n/a: why" or "skipped: why".
RESULTS: dict[str, str] = {}
#: nodeid -> "n/a: why", for the tests not collected (see CHECKS_ITS_NA).
NOT_COLLECTED: dict[str, str] = {}
MATRIX_FILE = "test_matrix.py"
ASGI_FILE = "test_asgi_frameworks.py"
WORST = {"passed": 0, "skipped": 1, "failed": 2}

QUIRKS = """\
## Quirks of the front servers, and what copes with them

- **lighttpd** `bin-path`: lighttpd gives each request to the least loaded
  process of a host, which is the first one whenever all are idle
  (`fastcgi.balance` only chooses between hosts): concurrent requests spread
  over `max-procs` processes, sequential ones stay on one. `max-procs 1` with
  `dumbwaiter --workers N` lets the kernel spread them. With the app at `/`, lighttpd makes
  the first path segment SCRIPT_NAME unless `"fix-root-scriptname" =>
  "enable"`, which the generated config sets. lighttpd closes its FastCGI,
  SCGI and proxy connections after each request.
- **nginx**: Debian's stock `fastcgi_params` sets SCRIPT_NAME to the whole path
  and no PATH_INFO; the generated config splits them with
  `fastcgi_split_path_info`, and dumbwaiter repairs the stock params too (the
  app sees itself at `/`). Debian's params files (a 2025 security fix) send
  `HTTP_HOST` as `$host`, without the port; SERVER_PORT still has it. A
  `server` block without `server_name` sends SERVER_NAME ""; dumbwaiter then
  takes the name from the Host header (PEP 3333: never empty). Upstream
  keep-alive needs `fastcgi_keep_conn on` (FastCGI) or HTTP/1.1 with an empty
  `Connection` header (proxy); SCGI and uwsgi cannot keep connections. The
  HTTP proxy adds the client's address only with `X-Forwarded-For`, which the
  generated config sets.
- **Apache**: mod_proxy_fcgi and mod_proxy_scgi send SCRIPT_NAME = the whole
  path; only SCRIPT_FILENAME (`proxy:fcgi://host:port/rest`) says where the
  ProxyPass prefix ends, and dumbwaiter splits there. Without `flushpackets=on`
  the response is buffered whole. mod_proxy_http strips the prefix and sends
  the backend's address as Host: the generated config passes the whole path
  (`--script-name` splits it) and sets `ProxyPreserveHost On`. Apache keeps
  `Authorization` from FastCGI authorizers unless `CGIPassAuth On`.
  Apache's processes run as www-data: a unix socket must be reachable by that
  user (here: a 0711 folder and `--socket-mode 666`). mod_fcgid refuses bodies
  over 128 KiB and holds back 64 KiB of each response by default
  (`FcgidMaxRequestLen`, `FcgidOutputBufferSize 0` in the generated config);
  its access checker answers a refusal with Apache's own page (the
  authorizer's status and headers, not its body) and passes the authorizer's
  `Variable-*` headers on to the client.
- **Caddy**: the FastCGI transport sends SCRIPT_NAME "" and the whole path in
  PATH_INFO, and opens a connection per request; under a prefix
  (`handle /app/*`) the path goes on whole and `--script-name` splits it.
- **h2o**: SERVER_NAME is the `hosts:` key, so name the host as clients do;
  `proxy.preserve-host: ON` passes the client's Host on. FastCGI connections
  are closed after each request unless `fastcgi.timeout.keepalive` is set
  (the generated config sets it). Under a prefix h2o sends SCRIPT_NAME "" and
  the whole path in PATH_INFO: `--script-name` splits it (the spawn command
  gets it).
- **HAProxy**: the fcgi-app sends SCRIPT_NAME = the path without PATH_INFO, and
  SERVER_NAME with the port (the whole Host header); dumbwaiter repairs both.
  `option keep-conn` keeps FastCGI connections; `option forwardfor` adds the
  client's address over HTTP.
- **Unix sockets** have no peer address: dumbwaiter uses the REMOTE_ADDR the
  front server sends. Over HTTP, REMOTE_ADDR is the proxy's address and the
  client's and the scheme arrive as `X-Forwarded-For` and `X-Forwarded-Proto`
  (the generated configs set both), which dumbwaiter makes REMOTE_ADDR and
  `wsgi.url_scheme` when the proxy is in `--forwarded-allow-ips` (default:
  this machine).
"""


#: The tests that run in their n/a cells, to check that the reason still
#: holds (found by running, not assumed): they pass when it does, and say so
#: with an ``n/a`` property.  Every other test of an n/a cell has nothing to
#: run there (the front cannot do it at all) and is not collected; the
#: report shows it as n/a all the same.
CHECKS_ITS_NA = {(MATRIX_FILE, "test_reuse"), (ASGI_FILE, "test_disconnect")}


def na_reason(item: pytest.Item) -> str | None:
    """Why ``item`` (a behaviour in a cell of the matrix or the ASGI grid)
    does not apply there, or None when it does."""
    name, test, _ = split(item.nodeid)
    callspec = getattr(item, "callspec", None)
    params: dict[str, Any] = callspec.params if callspec is not None else {}
    cell = params.get("site")
    if name not in (MATRIX_FILE, ASGI_FILE) or not isinstance(cell, Cell):
        return None
    behaviour = test.removeprefix("test_")
    reason = cell.na.get(behaviour)
    if reason is None and name == ASGI_FILE:
        framework = getattr(params.get("stack"), "name", "")
        reason = ASGI_FRAMEWORK_NA.get(framework, {}).get(behaviour)
    return reason


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        name, test, _ = split(item.nodeid)
        reason = na_reason(item)
        if reason is not None and (name, test) not in CHECKS_ITS_NA:
            NOT_COLLECTED[item.nodeid] = reason
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_runtest_logreport(report: Any) -> None:
    if "integration" not in report.nodeid:
        return
    if report.when != "call" and report.outcome == "passed":
        return  # setup and teardown count only when they fail or skip
    outcome = report.outcome
    if outcome == "passed":
        outcome = dict(report.user_properties).get("n/a", outcome)  # (CHECKS_ITS_NA)
    elif outcome == "skipped":
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
        reason = reason.removeprefix("Skipped: ")
        outcome = reason if reason.startswith("n/a:") else f"skipped: {reason}"
    kind = outcome.partition(":")[0]
    previous = RESULTS.get(report.nodeid)
    if previous is None or WORST.get(kind, 1) >= WORST.get(previous.partition(":")[0], 1):
        RESULTS[report.nodeid] = outcome


def split(nodeid: str) -> tuple[str, str, str]:
    """(file, test, parameter) of ``tests/integration/test_x.py::test_y[p]``."""
    path, _, name = nodeid.partition("::")
    test, _, param = name.partition("[")
    return os.path.basename(path), test, param.rstrip("]")


def grid(
    filename: str = MATRIX_FILE,
    behaviours: dict[str, str] = BEHAVIOURS,
    rows: list[tuple[str, str]] | None = None,
) -> list[str]:
    """The grid of ``filename``'s results: one row per (parameter, label) of
    ``rows`` (the matrix's cells by default), one column per behaviour."""
    if rows is None:
        rows = [(cell.id, cell.label) for cell in CELLS]
    cells: dict[tuple[str, str], str] = {}
    for nodeid, outcome in RESULTS.items():
        name, test, param = split(nodeid)
        if name == filename:
            cells[(param, test.removeprefix("test_"))] = outcome
    if not cells:
        return []
    notes: list[str] = []
    lines = [
        "| cell | " + " | ".join(behaviours.values()) + " |",
        "|---|" + "---|" * len(behaviours),
    ]
    for param, label in rows:
        entries = []
        for behaviour in behaviours:
            outcome = cells.get((param, behaviour), "not run")
            if outcome == "passed":
                entries.append("✓")
            elif outcome == "failed":
                entries.append("✗")
            elif outcome == "not run":
                entries.append("not run")
            else:
                kind, _, reason = outcome.partition(":")
                if reason.strip() not in notes:
                    notes.append(reason.strip())
                entries.append(f"{kind} [{notes.index(reason.strip()) + 1}]")
        lines.append(f"| {label} | " + " | ".join(entries) + " |")
    passed = sum(1 for outcome in cells.values() if outcome == "passed")
    na = sum(1 for outcome in cells.values() if outcome.startswith("n/a"))
    lines += [
        "",
        f"{len(rows)} cells by {len(behaviours)} behaviours: {passed} passed, "
        f"{na} n/a, {len(cells) - passed - na} failed or skipped.",
        "",
    ]
    lines += [f"{number}. {note}" for number, note in enumerate(notes, 1)]
    return lines


def asgi_grid() -> list[str]:
    """``test_asgi_frameworks.py``: a row per framework and cell (its
    parameters are ``FRAMEWORK-CELL``)."""
    frameworks = dict.fromkeys(
        split(nodeid)[2].partition("-")[0] for nodeid in RESULTS if split(nodeid)[0] == ASGI_FILE
    )
    rows = [
        (f"{framework}-{cell.id}", f"{framework}: {cell.label}")
        for framework in frameworks
        for cell in ASGI_CELLS
    ]
    return grid(ASGI_FILE, ASGI_BEHAVIOURS, rows)


def others() -> list[str]:
    rows = []
    for nodeid, outcome in RESULTS.items():
        filename, test, param = split(nodeid)
        if filename not in (MATRIX_FILE, ASGI_FILE):
            name = f"{test}[{param}]" if param else test
            rows.append((filename, name, "✓" if outcome == "passed" else outcome))
    if not rows:
        return []
    lines = ["| file | check | result |", "|---|---|---|"]
    lines += [f"| {f} | `{n}` | {o} |" for f, n, o in sorted(rows)]
    return lines


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("DUMBWAITER_INTEROP_REPORT")
    if not path or not RESULTS:
        return
    # (after what ran: the grids' rows come in the order the run met them)
    RESULTS.update({k: v for k, v in NOT_COLLECTED.items() if k not in RESULTS})
    lines = [
        "# Interoperability: dumbwaiter behind real front servers",
        "",
        "Made by the integration tests, not by hand: each row is one front server",
        "setup (Debian's package, with the configuration `dumbwaiter config",
        "FRONTEND` prints), each column one behaviour checked through it",
        "(`tests/integration/test_matrix.py`; the rows and columns are in",
        "`tests/integration/matrix.py`). ✓ passed, ✗ failed, n/a: the front",
        "server (or the protocol) cannot have it, for the numbered reason below",
        "the table. To remake it:",
        "",
        "    DUMBWAITER_INTEROP_REPORT=docs/interop.md .venv/bin/python -m pytest -q "
        "tests/integration",
        "",
        "What the columns check: a GET with a query string (QUERY_STRING,",
        "PATH_INFO); a urlencoded form POST parsed by Flask; a 10 MiB upload",
        "(length and sha256); a byte-exact 120 KiB response; streaming (the first",
        "chunk arrives while the app still holds the last); an exception in the",
        "app arrives as a 500 without the traceback; the app at `/` and under",
        "`/app` (SCRIPT_NAME, PATH_INFO, and a Flask `url_for` link that leads",
        "back to the app); a client on 127.0.0.2 (REMOTE_ADDR, through an HTTP",
        "proxy from its X-Forwarded-For), HTTP_HOST, SERVER_NAME,",
        "SERVER_PORT, no HTTPS; through the front's TLS port, HTTPS=on and",
        "`wsgi.url_scheme` https; six requests on six client connections reach",
        "dumbwaiter over at most three backend connections (where n/a, the test",
        "checks they really were six); dumbwaiter as the front's FastCGI",
        "authorizer (a 200 lets a static file through, a 401 and its",
        "WWW-Authenticate reach the client).",
        "",
        "## The matrix",
        "",
        *grid(),
    ]
    frameworks = asgi_grid()
    if frameworks:
        lines += [
            "",
            "## ASGI frameworks",
            "",
            "FastAPI, Starlette, Quart, Litestar and Django (Channels for its WebSocket),",
            "each through every cell (`tests/integration/test_asgi_frameworks.py`;",
            "`ASGI_CELLS` and `ASGI_BEHAVIOURS` in `tests/integration/matrix.py`).",
            "",
            *frameworks,
        ]
    rest = others()
    if rest:
        lines += ["", "## Other integration checks", "", *rest]
    lines += ["", QUIRKS]
    with open(path, "w") as out:
        out.write("\n".join(lines))
