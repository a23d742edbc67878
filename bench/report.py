"""Turn a run's JSON (bench/run.py) into docs/performance.md.

    python3 bench/report.py bench/results/latest.json [--doc docs/performance.md]

A run with base twins (run.py --base REF) gets a before/after table first
(every workload but overload), and its report goes next to its JSON
(run-DATE.md) unless --doc is given.

The page ends with bench/history.md, the measurements behind the design's
decisions as they were taken (kept by hand).

A (target, workload) cell is the median over its *clean* points (valid and
not disturbed); when every point of it was disturbed, the disturbed ones are
used and the cell says so; invalid points (a failed byte-exact check, a dead
backend) are never used.  Error counts are summed over the points used.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
#: Appended to the page: how the request path got to its cost (kept by hand).
HISTORY = Path(__file__).resolve().parent / "history.md"
DASH = "\N{EN DASH}"  # for a value not measured
DUMBWAITER = "dumbwaiter-lighttpd"
C_LIMIT = "c-nolinger-lighttpd"
#: The paths whose CPU per request is held against uWSGI's: the front, then
#: the suffix of dumbwaiter's targets and of the floors', and uWSGI's target.
CPU_PATHS = {
    "FastCGI (lighttpd)": ("lighttpd", "fcgi-lighttpd", "uwsgi-fcgi-lighttpd"),
    "FastCGI (nginx)": ("nginx", "fcgi-nginx", "uwsgi-fcgi-nginx"),
    "uwsgi protocol (nginx)": ("uwsgi-nginx", "uwsgi-nginx", "uwsgi-uwsgi-nginx"),
}


def num(value: float | None, digits: int = 0) -> str:
    return DASH if value is None else f"{value:,.{digits}f}"


@dataclass
class Cell:
    points: list[dict[str, Any]]
    disturbed_only: bool = False
    left_out: list[dict[str, Any]] = field(default_factory=list)

    def _values(self, key: str) -> list[float]:
        return [p[key] for p in self.points if p.get(key) is not None]

    def median(self, key: str) -> float | None:
        values = self._values(key)
        return statistics.median(values) if values else None

    def most(self, key: str) -> float | None:
        return max(self._values(key), default=None)

    def least(self, key: str) -> float | None:
        return min(self._values(key), default=None)

    def total(self, key: str) -> int:
        return sum(p.get(key) or 0 for p in self.points)

    @property
    def n(self) -> str:
        text = str(len(self.points))
        if self.disturbed_only:
            return text + " (all disturbed)"
        if self.left_out:
            text += f" (+{len(self.left_out)} left out)"
        return text


def cells(points: list[dict[str, Any]]) -> dict[tuple[str, str], Cell]:
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in points:
        grouped.setdefault((p["target"], p["workload"]), []).append(p)
    result = {}
    for key, group in grouped.items():
        valid = [p for p in group if p["valid"]]
        clean = [p for p in valid if not p["disturbed"]]
        left_out = [p for p in group if p not in clean]
        if clean:
            result[key] = Cell(clean, left_out=left_out)
        elif valid:
            result[key] = Cell(valid, disturbed_only=True, left_out=left_out)
        else:
            result[key] = Cell([], left_out=left_out)
    return result


class Lookup:
    """Medians by (target, workload, key); None where nothing was measured."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.cells = cells(data["points"])

    def tag(self, target: str, workload: str) -> str:
        """A target's name, marked when its cell rests on disturbed points only."""
        cell = self.cells.get((target, workload))
        return f"{target} (disturbed)" if cell and cell.disturbed_only else target

    def __call__(self, target: str, workload: str, key: str) -> float | None:
        cell = self.cells.get((target, workload))
        return cell.median(key) if cell else None

    def errors(self, target: str, workload: str) -> int | None:
        cell = self.cells.get((target, workload))
        if not cell or not cell.points:
            return None
        return cell.total("non_2xx") + cell.total("socket_errors")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@dataclass
class Goal:
    goal: str
    measured: str
    ratio: float | None
    met: bool | None


#: The headline targets (the README's build and mode) -> the same command run by
#: the pure-Python build (bench/targets.toml: "this repo's .venv").
PURE_TWINS = {
    "dumbwaiter-lighttpd": "dumbwaiter-pure-lighttpd",
    "dumbwaiter-nginx": "dumbwaiter-pure-nginx",
    "dumbwaiter-uwsgi-nginx": "dumbwaiter-pure-uwsgi-nginx",
    "dumbwaiter-overload-lighttpd": "dumbwaiter-pure-overload-lighttpd",
}


#: The headline targets -> the same with --loop-only (every connection on the loop).
LOOP_TWINS = {
    "dumbwaiter-lighttpd": "dumbwaiter-loop-lighttpd",
    "dumbwaiter-nginx": "dumbwaiter-loop-nginx",
    "dumbwaiter-uwsgi-nginx": "dumbwaiter-loop-uwsgi-nginx",
}


def twin_goals(get: Lookup, twins: dict[str, str]) -> list[Goal]:
    """The same targets, measured on the twins, where the run has them."""
    twin = _TwinLookup(get, twins)
    return [
        g
        for g in goals(twin)
        if twin.used and g.ratio is not None and twin.took(g) and not g.goal.startswith("pure")
    ]


class _TwinLookup:
    """A Lookup that reads each dumbwaiter target's twin instead."""

    def __init__(self, get: Lookup, twins: dict[str, str]) -> None:
        self.get = get
        self.twins = twins
        self.cells = get.cells
        self.used = False
        self.swapped: set[str] = set()

    def _name(self, target: str) -> str:
        name = self.twins.get(target, target)
        if name != target and any(key[0] == name for key in self.get.cells):
            self.used = True
            return name
        return target

    def __call__(self, target: str, workload: str, key: str) -> float | None:
        return self.get(self._name(target), workload, key)

    def tag(self, target: str, workload: str) -> str:
        name = self._name(target)
        tag = self.get.tag(name, workload)
        if name != target:
            self.swapped.add(tag)
        return tag

    def errors(self, target: str, workload: str) -> float | None:
        return self.get.errors(self._name(target), workload)

    def took(self, goal: Goal) -> bool:
        """Whether ``goal`` was measured on a twin (not only on the others)."""
        return any(tag in goal.measured for tag in self.swapped)


def goals(get: Lookup) -> list[Goal]:
    """The issue's targets, each as a ratio from this one run."""
    rows = []

    def compare(text: str, a: str, b: str, wl: str, key: str, bar: float, least: bool) -> None:
        va, vb = get(a, wl, key), get(b, wl, key)
        r = _ratio(va, vb)
        measured = f"{get.tag(a, wl)} {num(va)} vs {get.tag(b, wl)} {num(vb)}"
        met = None if r is None else (r >= bar if least else r <= bar)
        rows.append(Goal(text, measured, r, met))

    def at_least(text: str, a: str, b: str, wl: str, key: str, bar: float) -> None:
        compare(text, a, b, wl, key, bar, least=True)

    def at_most(text: str, a: str, b: str, wl: str, key: str, bar: float) -> None:
        compare(text, a, b, wl, key, bar, least=False)

    rps, us = "rps_2xx", "backend_us_per_req"
    at_least(
        "hello, lighttpd FastCGI: req/s ≥ 1.0 x C limit", DUMBWAITER, C_LIMIT, "hello", rps, 1.0
    )
    at_least(
        "hello, lighttpd FastCGI: req/s ≥ 3 x flup",
        DUMBWAITER,
        "flup-fcgi-lighttpd",
        "hello",
        rps,
        3.0,
    )
    for front, (ours, _, theirs) in CPU_PATHS.items():
        text = f"hello: backend µs/req ≤ uWSGI, {front}"
        at_most(text, f"dumbwaiter-{ours}", theirs, "hello", us, 1.0)
    at_least(
        "nginx FastCGI keep-conn: req/s ≥ 0.9 x threaded C",
        "dumbwaiter-nginx-keepconn",
        "c-mt-nginx-keepconn",
        "hello",
        rps,
        0.9,
    )

    at_least(
        "HTTP via nginx proxy_pass: req/s ≥ 1.0 x granian",
        "dumbwaiter-http-nginx",
        "granian-nginx",
        "hello",
        rps,
        1.0,
    )
    at_most(
        "HTTP via nginx proxy_pass: backend µs/req ≤ granian",
        "dumbwaiter-http-nginx",
        "granian-nginx",
        "hello",
        us,
        1.0,
    )
    keep = "dumbwaiter-nginx-keepconn"
    p50, p99 = get(keep, "hello", "p50_ms"), get(keep, "hello", "p99_ms")
    r = _ratio(p99, p50)
    rows.append(
        Goal(
            "nginx FastCGI keep-conn: p99 ≤ 3 x p50",
            f"{keep} p50 {num(p50, 2)} ms, p99 {num(p99, 2)} ms",
            r,
            None if r is None else r <= 3,
        )
    )

    for target in (DUMBWAITER, keep):
        errors = get.errors(target, "c1000")
        rows.append(
            Goal(
                f"c1000: 0 errors ({get.tag(target, 'c1000')})",
                f"{num(errors)} non-2xx + socket errors",
                None,
                None if errors is None else errors == 0,
            )
        )
    worker = get(DUMBWAITER, "c1000", "rss_peak_max")
    whole = get(DUMBWAITER, "c1000", "rss_peak_sum")
    r = None if worker is None else worker / MiB / 30
    measured = (
        f"worker peak {num(worker and worker / MiB, 1)} MiB"
        f" (master + worker {num(whole and whole / MiB, 1)} MiB)"
    )
    rows.append(Goal("c1000: RSS ≤ 30 MiB per worker", measured, r, None if r is None else r <= 1))
    for target in (DUMBWAITER, keep):
        a, b = get(target, "c1000", rps), get(target, "sweep10", rps)
        r = _ratio(a, b)
        rows.append(
            Goal(
                f"req/s at 1000 clients ≥ 0.9 x at 10 ({target})",
                f"{get.tag(target, 'c1000')} {num(a)} vs at 10 {num(b)}",
                r,
                None if r is None else r >= 0.9,
            )
        )

    at_least("120 KiB: req/s ≥ 1.0 x C, lighttpd", DUMBWAITER, C_LIMIT, "big", rps, 1.0)
    at_least(
        "120 KiB: req/s ≥ 1.0 x C, nginx", "dumbwaiter-nginx", "c-nolinger-nginx", "big", rps, 1.0
    )
    at_least(
        "120 KiB: req/s ≥ 1.0 x C, nginx keep-conn", keep, "c-mt-nginx-keepconn", "big", rps, 1.0
    )
    at_most(
        "1 MiB upload: backend µs per MiB ≤ uWSGI, FastCGI",
        DUMBWAITER,
        "uwsgi-fcgi-lighttpd",
        "upload",
        us,
        1.0,
    )
    at_most(
        "1 MiB upload: backend µs per MiB ≤ uWSGI, uwsgi protocol",
        "dumbwaiter-uwsgi-nginx",
        "uwsgi-uwsgi-nginx",
        "upload",
        us,
        1.0,
    )

    for front, (ours, _, theirs) in CPU_PATHS.items():
        text = f"pure Python: backend µs/req ≤ 1.5 x uWSGI, {front}"
        at_most(text, f"dumbwaiter-pure-{ours}", theirs, "hello", us, 1.5)
    # What any pure-Python server costs at least (bench/floor_serve.py), and the
    # same compiled by mypyc, when run: evidence for the CPU rows, not goals.
    for kind, prefix in (("pure-Python", "floor-"), ("compiled", "floor-compiled-")):
        for front, (_, suffix, theirs) in CPU_PATHS.items():
            floor = prefix + suffix
            va, vb = get(floor, "hello", us), get(theirs, "hello", us)
            if va is not None:
                tags = get.tag(floor, "hello"), get.tag(theirs, "hello")
                measured = f"{tags[0]} {num(va)} vs {tags[1]} {num(vb)}"
                text = f"(evidence) the {kind} floor's backend µs/req ÷ uWSGI's, {front}"
                rows.append(Goal(text, measured, _ratio(va, vb), None))

    over = "dumbwaiter-overload-lighttpd"
    p99_503 = get(over, "overload", "p99_503_ms")
    cell = get.cells.get((over, "overload"))
    proof = cell and cell.points and all(p["app_not_called_for_503"] for p in cell.points)
    proved = ("yes" if proof else "NO") if cell and cell.points else DASH
    measured = (
        f"p99 {num(p99_503, 2)} ms over {num(get(over, 'overload', 'n_503'))} 503s;"
        f" app calls = 200s: {proved}"
    )
    met = None if p99_503 is None else (p99_503 <= 1.0 and bool(proof))
    rows.append(Goal("overload: 503 p99 ≤ 1 ms, app not called", measured, p99_503, met))
    return rows


def _goals_table(rows: list[Goal]) -> str:
    met = {True: "met", False: "**not met**", None: DASH}
    return _table(
        ["goal", "measured (medians)", "ratio", "met?"],
        [[g.goal, g.measured, num(g.ratio, 2), met[g.met]] for g in rows],
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.0f}"


def _mib(value: float | None) -> str:
    return DASH if value is None else f"{value / MiB:.1f}"


def workload_table(data: dict[str, Any], get: Lookup, workload: str) -> str:
    ref = C_LIMIT
    reference = get(ref, workload, "rps_2xx")
    rows = []
    for target in data["targets"]:
        cell = get.cells.get((target, workload))
        if cell is None:
            continue
        if not cell.points:
            rows.append([target, "invalid", *[DASH] * 13])
            continue
        m: Callable[[str], float | None] = cell.median
        rows.append(
            [
                target,
                cell.n,
                num(m("rps_2xx")),
                f"{num(cell.least('rps_2xx'))}-{num(cell.most('rps_2xx'))}",
                num(m("p50_ms"), 2),
                num(m("p99_ms"), 2),
                num(cell.total("non_2xx")),
                num(cell.total("socket_errors")),
                num(m("backend_us_per_req")),
                num(m("front_us_per_req")),
                f"{_mib(cell.least('rss_idle_sum'))} → {_mib(cell.most('rss_peak_sum'))}",
                f"{_pct(m('cpu0_busy'))} / {_pct(m('cpu1_busy'))}",
                f"{_pct(m('foreign0'))} / {_pct(m('foreign1'))}",
                num(m("mb_per_s"), 1),
                num(_ratio(m("rps_2xx"), reference), 2),
            ]
        )
    header = [
        "target", "n", "2xx req/s", "min-max", "p50 ms", "p99 ms", "non-2xx", "sock err",
        "backend µs/req", "front µs/req", "backend RSS MiB idle → peak", "CPU0 / CPU1 %",
        "foreign CPU0 / CPU1 %", "MB/s", f"÷ {ref}",
    ]  # fmt: skip
    if workload == WS:  # (a request is an echo round trip)
        header[2:8] = [
            "round trips/s", "min-max", "p50 ms", "p99 ms", "bad echoes", "conn. errors",
        ]  # fmt: skip
        header[8:10] = ["backend µs/rt", "front µs/rt"]
    return _table(header, rows)


def sweep_table(data: dict[str, Any], get: Lookup) -> str:
    columns = [("sweep1", 1), ("sweep10", 10), ("sweep100", 100), ("c1000", 1000)]
    rows = []
    for target in data["targets"]:
        if (target, "sweep10") not in get.cells:
            continue
        row = [target]
        for workload, _ in columns:
            rate, p99 = get(target, workload, "rps_2xx"), get(target, workload, "p99_ms")
            cell = get.cells.get((target, workload))
            mark = " (d)" if cell and cell.disturbed_only else ""
            row.append(f"{num(rate)} ({num(p99, 2)}){mark}")
        a, b = get(target, "c1000", "rps_2xx"), get(target, "sweep10", "rps_2xx")
        row.append(num(_ratio(a, b), 2))
        rows.append(row)
    header = ["target", *(f"c={c}: req/s (p99 ms)" for _, c in columns), "1000 ÷ 10"]
    return _table(header, rows)


def overload_table(get: Lookup) -> str:
    rows = []
    for (target, workload), cell in get.cells.items():
        if workload != "overload":
            continue
        for p in cell.points:
            rows.append(
                [
                    target,
                    num(p["rate"]),
                    num(p["sent"]),
                    num(p["n_503"]),
                    num(p["n_200"]),
                    num(p["n_other"] + p["errors"]),
                    num(p["p50_503_ms"], 2),
                    num(p["p99_503_ms"], 2),
                    num(p["max_503_ms"], 2),
                    num(p["p50_200_ms"], 1),
                    num(p["app_calls"]),
                    "yes" if p["app_not_called_for_503"] else "NO",
                ]
            )
    header = [
        "target", "offered req/s", "sent", "503", "200", "other/errors", "503 p50 ms",
        "503 p99 ms", "503 max ms", "200 p50 ms", "app calls", "app calls = 200s",
    ]  # fmt: skip
    return _table(header, rows)


def left_out_table(data: dict[str, Any]) -> str:
    """Every disturbed or invalid point, one row per (target, workload)."""
    rows: dict[tuple[str, str], list[str]] = {}
    invalid: dict[tuple[str, str], list[str]] = {}
    for p in data["points"]:
        key = (p["target"], p["workload"])
        if p["disturbed"]:
            load = f"{_pct(p.get('foreign0'))}/{_pct(p.get('foreign1'))}"
            rows.setdefault(key, []).append(f"r{p['round']}.{p['attempt']} {load}")
        if not p["valid"]:
            why = p.get("error") or p.get("check_before") or p.get("check_after")
            invalid.setdefault(key, []).append(f"r{p['round']}.{p['attempt']}: {why or 'died'}")
    if not rows and not invalid:
        return "None.\n"
    table = []
    for target, workload in dict.fromkeys([*rows, *invalid]):
        table.append(
            [
                target,
                workload,
                ", ".join(rows.get((target, workload), [])) or DASH,
                "; ".join(invalid.get((target, workload), [])) or DASH,
                "yes" if from_disturbed(data, target, workload) else "no",
            ]
        )
    header = [
        "target", "workload", "disturbed: round.attempt foreign CPU0/CPU1 %", "invalid",
        "median from disturbed points?",
    ]  # fmt: skip
    return _table(header, table)


def from_disturbed(data: dict[str, Any], target: str, workload: str) -> bool:
    """Whether the cell's median had to use disturbed points (no clean one)."""
    points = [p for p in data["points"] if (p["target"], p["workload"]) == (target, workload)]
    return not any(p["valid"] and not p["disturbed"] for p in points)


def source_note(data: dict[str, Any]) -> str:
    """Which dumbwaiter source each point ran, when it changed during the run."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for p in data["points"]:
        if p["target"].startswith("dumbwaiter") and "dumbwaiter_source" in p:
            seen.setdefault(p["dumbwaiter_source"], []).append(p)
    if len(seen) <= 1:
        return ""
    lines = ["**The dumbwaiter source changed during this run**; its points ran:\n"]
    for fingerprint, points in seen.items():
        workloads = ", ".join(dict.fromkeys(p["workload"] for p in points))
        lines.append(
            f"- `{fingerprint}`: {len(points)} points from {points[0]['started']} to"
            f" {points[-1]['started']} ({workloads})"
        )
    return "\n".join(lines) + "\n"


# --- before/after (run.py --base REF) -------------------------------------------------

BASE_PREFIX = "base-"
#: After ÷ before beyond which a pair is out of tolerance.
RPS_FLOOR = 0.95
US_CEILING = 1.05
#: Workloads without req/s, µs/request and p99 figures (overload times its 503s).
NOT_COMPARED = {"overload"}


def base_pairs(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(after, before) target names: each base twin and the target it copies."""
    return [
        (name.removeprefix(BASE_PREFIX), name)
        for name in data["targets"]
        if name.startswith(BASE_PREFIX) and name.removeprefix(BASE_PREFIX) in data["targets"]
    ]


def _round_ratios(after: Cell, before: Cell, key: str) -> list[float]:
    """after ÷ before in each round that has both: the pairs measured back to back."""

    def by_round(cell: Cell) -> dict[int, float]:
        rounds: dict[int, list[float]] = {}
        for p in cell.points:
            if p.get(key) is not None:
                rounds.setdefault(p["round"], []).append(p[key])
        return {r: statistics.median(v) for r, v in rounds.items()}

    a, b = by_round(after), by_round(before)
    return [a[r] / b[r] for r in sorted(a.keys() & b.keys()) if b[r]]


def before_after(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (pair, workload): medians of both, after ÷ before, tolerance."""
    get = Lookup(data)
    rows = []
    for after, before in base_pairs(data):
        for workload in data["workloads"]:
            after_cell = get.cells.get((after, workload))
            before_cell = get.cells.get((before, workload))
            if workload in NOT_COMPARED or (after_cell is None and before_cell is None):
                continue
            row: dict[str, Any] = {"target": after, "twin": before, "workload": workload}
            for side, cell in (("after", after_cell), ("before", before_cell)):
                row[f"n_{side}"] = len(cell.points) if cell else 0
                row[f"disturbed_{side}"] = bool(cell and cell.disturbed_only)
            for short, key in (("rps", "rps_2xx"), ("us", "backend_us_per_req"), ("p99", "p99_ms")):
                row[f"{short}_before"] = get(before, workload, key)
                row[f"{short}_after"] = get(after, workload, key)
                row[f"{short}_ratio"] = _ratio(row[f"{short}_after"], row[f"{short}_before"])
            row["rps_round_ratios"] = (
                _round_ratios(after_cell, before_cell, "rps_2xx")
                if after_cell and before_cell
                else []
            )
            out = []
            if row["rps_ratio"] is not None and row["rps_ratio"] < RPS_FLOOR:
                out.append("req/s")
            if row["us_ratio"] is not None and row["us_ratio"] > US_CEILING:
                out.append("µs/request")
            row["out_of_tolerance"] = out
            row["within"] = None if row["rps_ratio"] is None or row["us_ratio"] is None else not out
            rows.append(row)
    return rows


def before_after_record(data: dict[str, Any]) -> dict[str, Any]:
    """The table as the JSON keeps it (run.py stores it under "before_after")."""
    return {
        "base": {k: data["base"][k] for k in ("ref", "sha", "describe")}
        if "base" in data
        else None,
        "tolerance": {"rps_ratio_min": RPS_FLOOR, "us_ratio_max": US_CEILING},
        "rows": before_after(data),
    }


def _marked(value: float | None, out: bool) -> str:
    text = num(value, 3)
    return f"**{text}**" if out else text


def before_after_table(rows: list[dict[str, Any]]) -> str:
    table = []
    verdict = {True: "yes", None: "not measured"}
    for r in rows:
        rounds = r["rps_round_ratios"]
        spread = f"{min(rounds):.3f}-{max(rounds):.3f}" if rounds else DASH
        if len(rounds) == 1:
            spread = f"{rounds[0]:.3f}"
        n = f"{r['n_before']}/{r['n_after']}"
        if r["disturbed_before"] or r["disturbed_after"]:
            n += " (disturbed)"
        table.append(
            [
                r["target"],
                r["workload"],
                n,
                num(r["rps_before"]),
                num(r["rps_after"]),
                _marked(r["rps_ratio"], "req/s" in r["out_of_tolerance"]),
                spread,
                num(r["us_before"]),
                num(r["us_after"]),
                _marked(r["us_ratio"], "µs/request" in r["out_of_tolerance"]),
                num(r["p99_before"], 2),
                num(r["p99_after"], 2),
                num(r["p99_ratio"], 2),
                verdict.get(r["within"]) or "**NO**: " + ", ".join(r["out_of_tolerance"]),
            ]
        )
    header = [
        "target (after)", "workload", "n before/after", "req/s before", "req/s after",
        "req/s ÷", "req/s ÷ per round", "backend µs/req before", "µs/req after", "µs/req ÷",
        "p99 ms before", "p99 ms after", "p99 ÷", "within tolerance?",
    ]  # fmt: skip
    return _table(header, table)


def before_after_text(data: dict[str, Any]) -> str:
    """The before/after section: what was compared, the table, a one-line verdict."""
    rows = before_after(data)
    if not rows:
        return ""
    base = data.get("base", {})
    ref = base.get("ref", "?")
    within = [r for r in rows if r["within"]]
    out = [r for r in rows if r["within"] is False]
    missing = len(rows) - len(within) - len(out)
    summary = f"**{len(within)} of {len(rows)} within tolerance**"
    if out:
        summary += "; out: " + ", ".join(f"{r['target']} {r['workload']}" for r in out)
    if missing:
        summary += f"; {missing} not measured on both sides"
    return "\n".join(
        [
            f"## Before/after: the working tree against {ref}\n",
            f"Each `base-NAME` target runs NAME's exact command with dumbwaiter as it was\n"
            f"at `{ref}` = {base.get('describe', '?')} ({base.get('sha', '?')[:12]},"
            f" {base.get('date', '?')}: {base.get('subject', '?')}), built from `git archive`\n"
            "into a venv of its own; it ran right after NAME in every round, same front,\n"
            "same pinning. Ratios are after ÷ before of the medians; *per round* is the\n"
            "range of the rounds' own ratios (each from a pair measured back to back).\n"
            f"Tolerance: req/s ratio ≥ {RPS_FLOOR}, backend µs/request ratio ≤ {US_CEILING}"
            " (outside it: **bold**).\n",
            summary + "\n",
            before_after_table(rows),
        ]
    )


def render(data: dict[str, Any]) -> str:
    """The whole page."""
    get = Lookup(data)
    m, s = data["machine"], data["settings"]
    out = [
        "# Performance\n",
        "What dumbwaiter costs next to its peers and a C FastCGI responder, measured by\n"
        "`bench/` in one run on one machine. Generated by `bench/report.py` from the\n"
        f"run's raw records (`bench/results/`, not in git; this run: {data['started']}):\n"
        "edit the harness, not this page.\n",
        "Rerun (as root, on Debian; `--quick` is a smoke test of a few minutes):\n",
        "```sh\napt-get install wrk lighttpd nginx-light libfcgi-dev gcc\n"
        f"{data['command']}\n```\n",
        "## Machine\n",
        f"- {m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB; {m['os']}, Linux {m['kernel']}\n"
        f"- {m['python']}; dumbwaiter {m['dumbwaiter']} from the working tree (at the start:"
        f" `git describe` {m['commit']}),"
        f" uvloop {m['uvloop']}\n"
        f"- {m['lighttpd']}; {m['nginx']}; {m['wrk']}; libfcgi {m['libfcgi']}; {m['gcc']}\n"
        f"- peers from PyPI: {', '.join(r for reqs in data['venvs'].values() for r in reqs)}\n",
        source_note(data),
        "## How it was measured\n",
        f"Backend process tree on CPU 1; front server (1 worker), wrk (`-t1`) and the harness\n"
        f"on CPU 0. Per point: byte-exact check (two requests on one connection through\n"
        f"the whole chain), {s['warmup']:g} s warm-up, pause, wait for the backend's accept\n"
        f"queue to be empty, **{s['seconds']:g} s measured**, check again. Round 1 runs every\n"
        f"workload for every target, interleaved; {s['rounds']} round(s) in all of\n"
        f"{', '.join(s['rounds_workloads'])}; medians over clean points. *backend µs/req* is\n"
        "the CPU time (user + sys) of the backend's whole process tree per request, from\n"
        "/proc; *foreign* is a core's busy time minus what our own pinned processes used\n"
        f"there: a point above {s['foreign_limit']:.0%} of a core on either core is rerun\n"
        f"(up to {s['reruns']}x, while the run's time budget allows) and left out if still\n"
        "disturbed, unless all its points were (then marked). RSS sums the backend's\n"
        "processes (idle before the load → peak sampled during it). Configs: bench/fronts.py;\n"
        "commands: bench/targets.toml (exact argv in each JSON record).\n",
    ]
    if base_pairs(data):
        out += [before_after_text(data)]
    out += [
        "## The issue's targets\n",
        "Measured on what the README's first command installs and runs: the\n"
        "`dumbwaiter-*` targets are the compiled build (`pip install '.[speed]'`) in the\n"
        "default serving mode (the application threads serve the gateway connections\n"
        "while one is free; the event loop takes them, and answers 503, when all are\n"
        "busy). The pure-Python rows are the fallback for a machine without a compiler.\n",
        _goals_table(goals(get)),
    ]
    for title, twins, what in (
        (
            "pure Python",
            PURE_TWINS,
            "The `dumbwaiter-pure-*` targets run the same sources as pure Python (an\n"
            "editable install, which never compiles): what a machine without a C compiler\n"
            "gets. The rows that involve them:\n",
        ),
        (
            "`--loop-only`",
            LOOP_TWINS,
            "The `dumbwaiter-loop-*` targets run the README's build with `--loop-only`:\n"
            "every connection through the event loop, the threads only run the app.\n"
            "The rows that involve them:\n",
        ),
    ):
        rows = twin_goals(get, twins)
        if rows:
            out += [f"\n### The same, {title}\n", what, _goals_table(rows)]
    out += [
        "\n## Backend cost, hello\n",
        _backend_cost(data, get),
    ]
    if (asgi := asgi_table(get)) is not None:
        out += [
            "\n## ASGI, hello\n",
            "bench/asgi_app.py (as benchasgi) behind nginx's proxy_pass, behind\n"
            "lighttpd's FastCGI against fcgisgi, and behind nginx's uwsgi_pass against\n"
            "gunicorn 27's ASGI worker (`-k asgi --protocol uwsgi`); ratios are the\n"
            "target's over the peer's.\n\n",
            asgi,
        ]
    if (ws := ws_table(get)) is not None:
        out += [
            "\n## WebSockets, echo\n",
            "bench/asgi_app.py's WebSocket echo (as benchasgi) driven by bench/ws_echo.py:\n"
            "50 connections, each sending a 32-byte text message and waiting for its echo\n"
            "(no compression negotiated), pinned to CPU 0 like wrk; *direct* is the\n"
            "client on the backend's own loopback TCP port, *nginx* through proxy_pass\n"
            "with the upgrade passed on (nginx and the client share CPU 0). *backend\n"
            "µs/round trip* is the backend's CPU per echo; *client µs/rt* the client's\n"
            "own; *errors*: echoes not as sent, connections refused, ended early or\n"
            "not closed cleanly. Ratios are the target's over uvicorn's (default\n"
            "`--ws`: websockets) behind the same front. Direct, the backend's core is\n"
            "the limit; through nginx, as for hello, CPU 0 (nginx and the client) may be,\n"
            "and the backend's µs per round trip tells the servers apart.\n\n",
            ws,
        ]
    if (hooks := hooks_table(get)) is not None:
        out += [
            "\n## Server hooks, hello via nginx\n",
            "A hook module whose functions are all outside the request path costs a\n"
            "request nothing (the app is not wrapped: `Hooks.wrap` returns it as it is);\n"
            "request hooks cost a wrapper call and two hook calls.\n\n",
            hooks,
        ]
    for workload, what in data["workloads"].items():
        if workload.startswith("sweep") or workload == "overload":
            continue
        out += [f"\n## {workload}: {what}\n", workload_table(data, get, workload)]
    if any(w.startswith("sweep") for w in data["workloads"]):
        out += [
            "\n## Client sweep, hello\n",
            "(d): every point of that cell was disturbed.\n\n",
            sweep_table(data, get),
        ]
    if "overload" in data["workloads"]:
        out += [
            "\n## Overload\n",
            "dumbwaiter with one application thread and no queue (`--threads 1\n"
            "--queue-size 0`) behind lighttpd; `/slow` sleeps 10 ms (capacity 100 req/s);\n"
            "an open-loop client on CPU 0 sends 10x that over kept-alive connections and\n"
            "times each answer by status. *app calls* counts the application's real runs\n"
            "(a byte appended to a file per call).\n\n",
            overload_table(get),
        ]
    out += ["\n## Points left out (disturbed or invalid)\n", left_out_table(data)]
    out += ["\n## History\n", HISTORY.read_text()]
    return "\n".join(out)


#: The server-hook twins of dumbwaiter-nginx, and what each has.
HOOK_TWINS = {
    "dumbwaiter-hooks-fork-nginx": "a hook module without request hooks",
    "dumbwaiter-hooks-request-nginx": "no-op `pre_request` and `post_request`",
}


def hooks_table(get: Lookup) -> str | None:
    """What --hooks costs a request, next to dumbwaiter-nginx (None when the
    run has neither)."""
    base = "dumbwaiter-nginx"
    base_rps, base_us = get(base, "hello", "rps_2xx"), get(base, "hello", "backend_us_per_req")
    rows = []
    for target, what in HOOK_TWINS.items():
        us = get(target, "hello", "backend_us_per_req")
        if us is None or base_us is None:
            continue
        rps = get(target, "hello", "rps_2xx")
        rows.append(
            [
                target,
                what,
                num(rps),
                num(_ratio(rps, base_rps), 3),
                num(us, 1),
                num(_ratio(us, base_us), 3),
            ]
        )
    if not rows:
        return None
    rows.insert(0, [base, "no `--hooks`", num(base_rps), "1", num(base_us, 1), "1"])
    header = ["target", "hooks", "req/s", "÷", "backend µs/req", "÷"]
    return _table(header, rows)


#: ASGI: each target, and the peer it is measured against (issue 21's bars).
ASGI_PAIRS = [
    ("dumbwaiter-asgi-nginx", "uvicorn-asgi-nginx", "HTTP via nginx: req/s >= 1.0x, µs <= 1.0x"),
    ("granian-asgi-nginx", "uvicorn-asgi-nginx", "(granian, for comparison)"),
    ("hypercorn-asgi-nginx", "uvicorn-asgi-nginx", "(hypercorn, for comparison)"),
    ("dumbwaiter-asgi-lighttpd", "fcgisgi-asgi-lighttpd", "FastCGI via lighttpd: req/s >= 3x"),
    ("dumbwaiter-asgi-uwsgi-nginx", "gunicorn-asgi-uwsgi-nginx", "uwsgi via nginx (gunicorn 27)"),
]


def asgi_table(get: Lookup) -> str | None:
    """ASGI hello against its peers (None when the run has no ASGI target)."""
    rows = []
    for target, peer, goal in ASGI_PAIRS:
        rps, us = get(target, "hello", "rps_2xx"), get(target, "hello", "backend_us_per_req")
        peer_rps, peer_us = get(peer, "hello", "rps_2xx"), get(peer, "hello", "backend_us_per_req")
        if rps is None or peer_rps is None:
            continue
        row = [target, peer, num(rps), num(_ratio(rps, peer_rps), 2), num(us, 1)]
        rows.append([*row, num(_ratio(us, peer_us), 2), goal])
    header = ["target", "against", "req/s", "÷", "backend µs/req", "÷", "bar"]
    return _table(header, rows) if rows else None


WS = "ws-echo"
#: WebSocket echo: each target and the uvicorn target behind the same front.
WS_PAIRS = [
    ("dumbwaiter-ws-direct", "uvicorn-ws-direct", "round trips/s >= 1.0x uvicorn"),
    ("uvicorn-wsproto-ws-direct", "uvicorn-ws-direct", "(uvicorn --ws wsproto)"),
    ("granian-ws-direct", "uvicorn-ws-direct", "(granian, for comparison)"),
    ("hypercorn-ws-direct", "uvicorn-ws-direct", "(hypercorn, for comparison)"),
    ("gunicorn-ws-direct", "uvicorn-ws-direct", "(gunicorn ASGI, for comparison)"),
    ("dumbwaiter-ws-nginx", "uvicorn-ws-nginx", "round trips/s >= 1.0x uvicorn"),
    ("uvicorn-wsproto-ws-nginx", "uvicorn-ws-nginx", "(uvicorn --ws wsproto)"),
    ("granian-ws-nginx", "uvicorn-ws-nginx", "(granian, for comparison)"),
    ("hypercorn-ws-nginx", "uvicorn-ws-nginx", "(hypercorn, for comparison)"),
    ("gunicorn-ws-nginx", "uvicorn-ws-nginx", "(gunicorn ASGI, for comparison)"),
]


def ws_table(get: Lookup) -> str | None:
    """WebSocket echo round trips against uvicorn, direct and via nginx (None
    when the run has no ws-echo point).  The peer's own row comes first."""
    rows = []
    listed: set[str] = set()
    for target, peer, bar in WS_PAIRS:
        rps, us = get(target, WS, "rps_2xx"), get(target, WS, "backend_us_per_req")
        peer_rps, peer_us = get(peer, WS, "rps_2xx"), get(peer, WS, "backend_us_per_req")
        if rps is None:
            continue
        if peer not in listed and peer_rps is not None:
            listed.add(peer)
            rows.append(_ws_row(get, peer, peer, "1", "1", "(the reference)"))
        ratio_rps = num(_ratio(rps, peer_rps), 2)
        rows.append(_ws_row(get, target, peer, ratio_rps, num(_ratio(us, peer_us), 2), bar))
    header = [
        "target", "against", "n", "round trips/s", "÷", "backend µs/round trip", "÷",
        "p50 / p99 ms", "errors", "client µs/rt", "CPU0 / CPU1 %", "bar",
    ]  # fmt: skip
    return _table(header, rows) if rows else None


def _ws_row(
    get: Lookup, target: str, peer: str, ratio_rps: str, ratio_us: str, bar: str
) -> list[str]:
    cell = get.cells[(target, WS)]
    return [
        get.tag(target, WS),
        peer,
        cell.n,
        num(get(target, WS, "rps_2xx")),
        ratio_rps,
        num(get(target, WS, "backend_us_per_req"), 1),
        ratio_us,
        f"{num(get(target, WS, 'p50_ms'), 2)} / {num(get(target, WS, 'p99_ms'), 2)}",
        num(get.errors(target, WS)),
        num(get(target, WS, "client_us_per_rt"), 1),
        f"{_pct(get(target, WS, 'cpu0_busy'))} / {_pct(get(target, WS, 'cpu1_busy'))}",
        bar,
    ]


def _backend_cost(data: dict[str, Any], get: Lookup) -> str:
    limit = get(C_LIMIT, "hello", "backend_us_per_req")
    rows = []
    for target in data["targets"]:
        us = get(target, "hello", "backend_us_per_req")
        if us is None:
            continue
        rows.append(
            [
                target,
                data["targets"][target]["role"],
                num(get(target, "hello", "rps_2xx")),
                num(us),
                num(_ratio(us, limit), 1),
            ]
        )
    rows.sort(key=lambda row: float(row[3].replace(",", "")))
    return _table(["target", "what", "hello 2xx req/s", "backend µs/req", "x C limit's µs"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write docs/performance.md from a run's JSON.")
    parser.add_argument("results", type=Path)
    parser.add_argument(
        "--doc",
        type=Path,
        help="default: docs/performance.md; for a run with base twins, the JSON's name with .md",
    )
    args = parser.parse_args()
    data = json.loads(args.results.read_text())
    doc = args.doc
    if doc is None:
        published = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
        doc = args.results.with_suffix(".md") if base_pairs(data) else published
    doc.write_text(render(data))


if __name__ == "__main__":
    main()
