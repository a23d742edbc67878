"""Benchmark dumbwaiter next to its peers behind lighttpd and nginx.

    python3 bench/run.py --quick      # smoke test of every target, a few minutes
    python3 bench/run.py              # the full run (about an hour), then the report
    python3 bench/run.py --base REF --targets 'dumbwaiter-lighttpd,...' --workloads hello
                                      # before/after: the same targets at commit REF

Each point starts one target (bench/targets.toml) behind a freshly generated
front-server config (bench/fronts.py) under /dev/shm, pins the backend to CPU 1
and the front server, wrk and this harness to CPU 0, checks a byte-exact
answer, warms up, measures, checks again and stops everything
(bench/point.py).  Targets are interleaved: round 1 runs every workload for
every target, further rounds repeat ``--rounds-workloads`` (hello) so that
their medians come from several rounds A B C ... A B C.  A point disturbed by
foreign CPU load is rerun at once, up to ``--reruns`` times.

Raw records go to bench/results/run-DATE.json (and latest.json); the report to
docs/performance.md (bench/report.py, which can also be rerun on a JSON file).

WebSockets (the ws-echo workload): bench/ws_echo.py, run by this repo's .venv
python (uvloop) in wrk's place, drives bench/asgi_app.py's echo over 50
connections; the *-ws-direct targets have no front (the client on the
backend's loopback TCP port), the *-ws-nginx ones nginx proxy_pass with the
upgrade passed on.  dumbwaiter against uvicorn (websockets) and the others,
3 rounds (about 8 minutes for the 12 targets):

    python3 bench/run.py --workloads ws-echo --rounds-workloads ws-echo --rounds 3 \
        --targets '*-ws-direct,*-ws-nginx'

Before/after (``--base REF``, REF any commit-ish of this repository: a sha,
``HEAD~3``, a tag): every chosen target that runs dumbwaiter -- its argv uses
``{python}`` (this repo's .venv, pure Python) or its venv is ``dumbwaiter``
(the README's compiled install) -- gets a twin ``base-NAME`` with the same
argv, front and workloads, run by dumbwaiter as it was at REF.  The twins'
venvs are built from ``git archive REF`` (the working tree is not touched)
under bench/.cache/venvs: ``dumbwaiter-base-SHA`` (``pip install 'SRC[speed]'``
into a venv of the .venv's interpreter, uvloop and httptools pinned to the
.venv's versions) and ``dumbwaiter-base-compiled-SHA``
(``DUMBWAITER_COMPILE=1``, which every commit since the compiled build
understands, with uvloop and httptools at the ``dumbwaiter`` venv's
versions); cached by REF's full sha and those pins, built only when missing.
Each twin runs right after its target in every round, with the same pinning,
so before and after alternate within one run.  The report then starts with a
before/after table (req/s, backend µs/request and p99 of both, and after ÷
before; a req/s ratio below 0.95 or a µs/request ratio above 1.05 is out
of tolerance), also stored in the JSON as "before_after".  Since the twins are
not part of the published comparison, such a run writes its report next to its
JSON (bench/results/run-DATE.md), not to docs/performance.md, unless ``--doc``
is given.  The refactoring check, hello through lighttpd and nginx FastCGI,
compiled and pure, default mode and ``--loop-only``, against the last commit
(48 points: about 12 minutes when no point is disturbed, 20 on a busy machine;
the twins' venvs, when missing, take a minute or two more):

    python3 bench/run.py --base HEAD --workloads hello --rounds 3 --targets '
        dumbwaiter-lighttpd, dumbwaiter-nginx, dumbwaiter-pure-lighttpd,
        dumbwaiter-pure-nginx, dumbwaiter-loop-lighttpd, dumbwaiter-loop-nginx'

Needs, on Debian: wrk lighttpd nginx-light libfcgi-dev gcc (and util-linux's
taskset, iproute2's ss); Python >= 3.11 for the harness itself.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import point
import report
import targets
from targets import BENCH, REPO

WORKLOAD_ORDER = [
    "hello", "big", "upload", "c1000", "sweep1", "sweep10", "sweep100", "overload", "ws-echo",
]  # fmt: skip
TOOLS = ["wrk", "lighttpd", "nginx", "taskset", "ss", "gcc"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke: 2 s points, 1 s warm-up, one round"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per point")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up time per point")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --rounds-workloads")
    parser.add_argument("--rounds-workloads", default="hello", help="workloads repeated")
    parser.add_argument("--reruns", type=int, default=2, help="reruns of a disturbed point")
    parser.add_argument(
        "--budget", type=float, default=75.0, help="minutes; reruns stop when they would overrun"
    )
    parser.add_argument("--targets", default="*", help="comma-separated names or globs")
    parser.add_argument("--workloads", default="*", help="comma-separated names or globs")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="JSON directory")
    parser.add_argument(
        "--base",
        metavar="REF",
        help="also run every dumbwaiter target as it was at commit REF (twins base-NAME)",
    )
    parser.add_argument(
        "--doc",
        type=Path,
        help="where the report goes (default: docs/performance.md; with --base,"
        " bench/results/run-DATE.md)",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not write the report")
    parser.add_argument("--keep", action="store_true", help="keep the run's /dev/shm directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup, args.rounds = 2.0, 1.0, 1
    return args


def chosen(names: list[str], patterns: str) -> list[str]:
    globs = [p.strip() for p in patterns.split(",") if p.strip()]
    return [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs)]


def plan(
    selected: list[targets.Target], workloads: list[str], rounds: int, repeated: list[str]
) -> list[tuple[int, str, targets.Target]]:
    """(round, workload, target) in run order: interleaved, round after round."""
    order = []
    for round_number in range(1, rounds + 1):
        for workload in workloads:
            if round_number > 1 and workload not in repeated:
                continue
            order += [(round_number, workload, t) for t in selected if workload in t.workloads]
    return order


def on_time(elapsed: float, done: int, remaining: int, budget_minutes: float) -> bool:
    """Whether one more point still lets the rest finish within the budget."""
    per_point = elapsed / max(done, 1)
    return elapsed + per_point * (remaining + 1) <= budget_minutes * 60


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except OSError:
        return "missing"
    return ((done.stdout or done.stderr).strip().splitlines() or ["?"])[0]


def machine() -> dict[str, Any]:
    """What the report says about where and with what it ran."""
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    venv_python = str(REPO / ".venv" / "bin" / "python")
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1),
        "kernel": platform.release(),
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": _first_line([venv_python, "-VV"]),
        "dumbwaiter": _first_line(
            [venv_python, "-c", "import dumbwaiter; print(dumbwaiter.__version__)"]
        ),
        "uvloop": _first_line([venv_python, "-c", "import uvloop; print(uvloop.__version__)"]),
        "commit": _first_line(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        "lighttpd": _first_line(["lighttpd", "-v"]).split(" - ")[0],
        "nginx": _first_line(["nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
        "gcc": _first_line(["gcc", "--version"]),
        "libfcgi": _first_line(["dpkg-query", "-W", "-f", "${Version}", "libfcgi-dev"]),
    }


def describe(record: dict[str, Any]) -> str:
    if "error" in record or record.get("check_before"):
        return f"INVALID {record.get('error') or record.get('check_before')}"
    if record["workload"] == "overload":
        text = (
            f"{record['n_503']} x 503 p99 {report.num(record['p99_503_ms'], 2)} ms, "
            f"{record['n_200']} x 200, app calls {record['app_calls']}"
        )
    elif record["workload"] == "ws-echo":
        ws = record["ws"]
        text = (
            f"{record['rps_2xx']:,.0f} round trips/s, p50 {report.num(record['p50_ms'], 2)} p99 "
            f"{report.num(record['p99_ms'], 2)} ms, {ws['connected']}/{ws['connections']}"
            f" connected, errors {record['non_2xx']}+{record['socket_errors']}, backend "
            f"{report.num(record['backend_us_per_req'])} us/rt, client "
            f"{report.num(record['client_us_per_rt'])} us/rt"
        )
        if ws["problems"]:
            text += f" ({'; '.join(ws['problems'])})"
    else:
        text = (
            f"{record['rps_2xx']:,.0f} req/s, p50 {record['p50_ms']:.2f} p99 "
            f"{record['p99_ms']:.2f} ms, errors {record['non_2xx']}+{record['socket_errors']}, "
            f"backend {report.num(record['backend_us_per_req'])} us/req"
        )
    flags = "" if record["valid"] else f" INVALID after: {record.get('check_after')}"
    flags += " DISTURBED" if record["disturbed"] else ""
    return f"{text}, foreign {record['foreign0']:.0%}/{record['foreign1']:.0%}{flags}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing tools: {' '.join(missing)} (apt-get install wrk lighttpd ...)")
    if not (REPO / ".venv" / "bin" / "python").exists():
        raise SystemExit("no .venv: see README (python3 -m venv .venv && ...)")
    os.sched_setaffinity(0, {0})

    venvs, all_targets = targets.load()
    names = chosen([t.name for t in all_targets], args.targets)
    selected = [t for t in all_targets if t.name in names]
    base = targets.resolve_base(args.base) if args.base else None
    if base is not None:
        selected = targets.with_base_twins(selected, base)
        if len(selected) == len(names):
            raise SystemExit("--base: none of the chosen targets runs dumbwaiter")
    workloads = chosen(WORKLOAD_ORDER, args.workloads)
    repeated = chosen(WORKLOAD_ORDER, args.rounds_workloads)
    order = plan(selected, workloads, args.rounds, repeated)
    targets.prepare(venvs, selected, base)
    settings = point.Settings(args.seconds, args.warmup, pause=0.2 if args.quick else 1.0)

    started = datetime.datetime.now(datetime.timezone.utc)
    run_dir = Path(tempfile.mkdtemp(prefix="dwbench-", dir="/dev/shm"))
    app_dir = run_dir / "app"
    app_dir.mkdir()
    shutil.copy(BENCH / "app.py", app_dir / "benchapp.py")
    shutil.copy(BENCH / "flup_serve.py", app_dir / "flup_serve.py")
    shutil.copy(BENCH / "floor_serve.py", app_dir / "floor_serve.py")
    if any(target.venv == targets.FLOOR_COMPILED_VENV for target in selected):
        targets.compile_floor(app_dir)
    shutil.copy(BENCH / "asgi_app.py", app_dir / "benchasgi.py")
    shutil.copy(BENCH / "fcgisgi_serve.py", app_dir / "fcgisgi_serve.py")
    for hooks in ("hooks_fork", "hooks_request"):
        shutil.copy(BENCH / f"{hooks}.py", app_dir / f"bench{hooks}.py")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"run-{started:%Y%m%d-%H%M%S}.json"
    data: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(["python3 bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "settings": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "rounds_workloads": repeated,
            "reruns": args.reruns,
            "budget_minutes": args.budget,
            "foreign_limit": point.FOREIGN_LIMIT,
            "quick": args.quick,
        },
        "machine": machine(),
        "venvs": venvs,
        "targets": {t.name: {"front": t.front, "role": t.role} for t in selected},
        "workloads": {w: point.WORKLOADS[w].what for w in workloads},
        "points": [],
    }
    if base is not None:
        data["base"] = base_record(base, selected)
    print(f"{len(order)} points, results in {out}", flush=True)
    clock = time.monotonic()
    try:
        for index, (round_number, workload, target) in enumerate(order, 1):
            for attempt in range(1 + args.reruns):
                directory = run_dir / f"{index:03d}-{attempt}-{target.name}-{workload}"
                record = point.run_point(
                    target, point.WORKLOADS[workload], settings, directory, app_dir
                )
                record.update(round=round_number, attempt=attempt)
                if base is not None and target.name.startswith(targets.BASE_PREFIX):
                    # What this point ran is REF's source, not the working tree's.
                    record.update(dumbwaiter_source=f"git {base.short}", base=base.sha)
                data["points"].append(record)
                out.write_text(json.dumps(data, separators=(",", ":")))
                print(
                    f"[{index}/{len(order)} {time.monotonic() - clock:5.0f}s] r{round_number} "
                    f"{target.name} {workload}: {describe(record)}",
                    flush=True,
                )
                if not record["disturbed"] or not on_time(
                    time.monotonic() - clock, len(data["points"]), len(order) - index, args.budget
                ):
                    break
    finally:
        data["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        )
        if base is not None:
            data["before_after"] = report.before_after_record(data)
        out.write_text(json.dumps(data, separators=(",", ":")))
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copy(out, args.out / "latest.json")
    if base is not None:
        print(report.before_after_text(data), end="")
    if not args.no_doc:
        doc = args.doc or (out.with_suffix(".md") if base else REPO / "docs" / "performance.md")
        doc.write_text(report.render(data))
        print(f"report: {doc}")
    return 0


def base_record(base: targets.Base, selected: list[targets.Target]) -> dict[str, Any]:
    """What the JSON says about REF and the twins' venvs."""
    record: dict[str, Any] = base.describe()
    record["twins"] = {
        t.name: t.name.removeprefix(targets.BASE_PREFIX)
        for t in selected
        if t.name.startswith(targets.BASE_PREFIX)
    }
    record["venvs"] = {}
    for name in sorted({t.venv for t in selected if t.name in record["twins"] and t.venv}):
        python = targets.CACHE / "venvs" / name / "bin" / "python"
        record["venvs"][name] = {
            "python": _first_line([str(python), "-VV"]),
            **targets.installed_versions(python, ("dumbwaiter", *targets.SPEED_PACKAGES)),
        }
    return record


if __name__ == "__main__":
    sys.exit(main())
