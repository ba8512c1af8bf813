"""The benchmark suite: sandq and its peers on one machine and one Redis, in one run, as ratios.

    python benchmarks/suite.py [--quick] [--redis URL] [--only WORKLOAD,...] [--rounds N]

Workloads (``--only`` takes their names):

* ``noop``: no-op jobs/s at concurrency 1, 2, 4 and 8, every contender (the ``drain`` op);
* ``cpu``: jobs of 10 ms of pure Python (``processors.burn``; Node runs the same function in JavaScript,
  calibrated to the same time) at concurrency 1, 2 and 4: jobs/s and the share of the cores' limit;
* ``latency``: add -> active and add -> completed with an idle worker, p50 and p99 (the ``latency`` op);
* ``enqueue``: single adds one after another, and bulk adds, jobs/s (the ``enqueue`` op);
* ``flat`` (sandq only): no-op jobs/s and the supervisor's RSS with 1k, 100k and 1M jobs waiting;
* ``kill`` (sandq only): a job past its deadline killed, and a warm child starting the next job.

Contenders and their drivers are in ``peers.py`` (the driver protocol is in its docstring); each peer
runs from its own virtualenv under ``~/.cache/sandq-bench``, installed on first use. A contender that
cannot be installed or has no driver is reported as ``not installed: ...``, one whose driver fails as
``FAILED: ...``; the others go on. Every measurement runs each contender in turn, in an order that
rotates every round and reverses every other round; each keeps its best round, and the spread (how far
the worst round fell from the best) says how noisy it was. Throughput is ``(N - 1) / (last job's start
- first job's start)``, so start-up and shut-down are not counted. The number of jobs per measurement
is sized from the contender's rate measured so far, so that each takes about the same time.

The run writes ``benchmarks/results/latest.json`` (the machine, every contender's versions, every
figure with its rounds and spread, the targets and their verdicts) and draws one PNG per workload
from it with ``charts.py``, in the ``charts`` peer's virtualenv (matplotlib). Targets are reported,
never enforced: the exit status is 1 only when a measurement failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import itertools
import json
import math
import os
import pathlib
import platform
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis

import peers
import sandq_only
from harness import Settings, alternating, check, delete_keys, setup, table
from throughput import Work, calibrate_node, calibrate_python

from processors import burn

RESULTS = peers.BENCH_DIR / "results"
WORKLOADS = ("noop", "cpu", "latency", "enqueue", "flat", "kill")

NOOP_LEVELS, NOOP_LEVELS_QUICK = (1, 2, 4, 8), (1, 4)
CPU_LEVELS, CPU_LEVELS_QUICK = (1, 2, 4), (2,)

# Seconds of measured time (first to last job start) each measurement aims at, full / quick.
TARGET_S = {"noop": (0.75, 0.25), "cpu": (0.75, 0.25), "enqueue": (0.5, 0.15)}
LIMITS_N = {"noop": ((100, 20_000), (60, 3_000)), "enqueue": ((300, 50_000), (100, 10_000))}
LATENCY_N = (100, 20)
KILL_SAMPLES = (6, 3)
# First guesses of a contender's rate (jobs/s), only to size its first measurement; later ones are
# sized from what it measured. Keyed by (peer, variant); kind -> rate.
FIRST_GUESS = {"noop": 1_000.0, "single": 2_000.0, "bulk": 20_000.0}
FIRST_GUESS_NOOP = {
    ("sandq", ""): 2_500.0,
    ("bullmq", ""): 1_500.0,
    ("node", "sandboxed"): 2_000.0,
    ("node", "inprocess"): 4_000.0,
    ("rq", "fork"): 60.0,
    ("rq", "simple"): 300.0,
    ("celery", ""): 600.0,
    ("arq", ""): 500.0,
}

NOOP_BULLMQ_TARGET, NOOP_NODE_TARGET, NOOP_RQ_TARGET = 3.0, 1.0, 20.0
CPU_TARGET = 0.90
ACTIVE_P50_TARGET_MS = 1.0
BULK_TARGET = 60_000.0
FLAT_TOLERANCE = 1.10  # "no growth": the deepest queue within 10% of the shallowest

BULLMQ_PYPI = "bullmq PyPI (asyncio)"
NODE_SANDBOXED = "Node bullmq, sandboxed"
RQ_FORK = "RQ Worker (fork)"


# --- figures --------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One figure of a table: its value in every round, the size of each round (jobs or samples),
    and why it is missing if it is."""

    lower_is_better: bool = False
    values: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)  # seconds each round took, driver start to exit
    error: str | None = None  # FAILED
    absent: str | None = None  # not installed, unsupported, not applicable: not a failure
    worst_case: bool = False  # the figure is the worst round (a maximum), not the best

    @property
    def best(self) -> float | None:
        """The figure: the best round (the worst one for a worst-case figure)."""
        if self.error is not None or self.absent is not None or not self.values:
            return None
        lowest = self.lower_is_better != self.worst_case
        return min(self.values) if lowest else max(self.values)

    @property
    def spread(self) -> float | None:
        """How far the other extreme round is from the figure, as a fraction of it (None with one round)."""
        figure = self.best
        if figure is None or figure == 0 or len(self.values) < 2:
            return None
        other = max(self.values) if figure == min(self.values) else min(self.values)
        return abs(other - figure) / figure

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.best,
            "rounds": self.values,
            "sizes": self.sizes,
            "wall_seconds": [round(w, 2) for w in self.walls],
            "spread": self.spread,
            "lower_is_better": self.lower_is_better,
            "worst_case": self.worst_case,
            "error": self.error,
            "absent": self.absent,
        }


@dataclass
class Row:
    label: str
    cells: dict[str, Cell]
    highlight: bool = False  # sandq's row
    absent: str | None = None  # the whole row: not installed, not applicable

    def value(self, column: str) -> float | None:
        return self.cells[column].best

    def mark(self, columns: Sequence[str], *, error: str | None = None, absent: str | None = None) -> None:
        for column in columns:
            cell = self.cells[column]
            if cell.error is None and cell.absent is None:
                cell.error, cell.absent = error, absent


@dataclass
class Table:
    """One workload's results: rows (contenders, or sizes for sandq-only ones) by columns."""

    key: str
    title: str
    unit: str
    columns: dict[str, str]  # key -> heading
    rows: list[Row] = field(default_factory=list)
    lower_is_better: bool = False
    ratios: bool = True  # show sandq's ratio to each contender
    ratio_columns: list[str] | None = None  # which columns get one (default: all)
    formats: dict[str, str] = field(default_factory=dict)  # column -> format spec (default ",.0f")
    extras: dict[str, Callable[[Row], str]] = field(default_factory=dict)  # heading -> derived cell
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def row(self, label: str) -> Row | None:
        return next((row for row in self.rows if row.label == label), None)

    def ratio(self, row: Row, column: str) -> float | None:
        """sandq's advantage over ``row`` (> 1: sandq better): its figure over the row's, or the row's
        over sandq's where lower is better."""
        reference = next((r for r in self.rows if r.highlight), None)
        ours = None if reference is None else reference.value(column)
        theirs = row.value(column)
        if ours is None or theirs is None or ours == 0 or theirs == 0:
            return None
        lower = row.cells[column].lower_is_better
        return theirs / ours if lower else ours / theirs

    def cell_text(self, row: Row, column: str) -> str:
        cell = row.cells[column]
        if row.absent is not None:
            return row.absent.split(":")[0] if column == next(iter(self.columns)) else ""
        if cell.absent is not None:
            return cell.absent.split(":")[0]
        if cell.error is not None:
            return "FAILED"
        value = cell.best
        return "-" if value is None else format(value, self.formats.get(column, ",.0f"))

    def render(self) -> str:
        headers = ["", *self.columns.values(), *self.extras]
        rows = list(self.rows)
        ratio_columns = (self.ratio_columns or list(self.columns)) if self.ratios else []
        headers += [f"vs {self.columns[c]}" for c in ratio_columns]
        headers += ["spread"]
        body = []
        for row in rows:
            line = [row.label + (" *" if row.highlight else "")]
            line += [self.cell_text(row, column) for column in self.columns]
            line += ["" if row.absent else derive(row) for derive in self.extras.values()]
            for column in ratio_columns:
                value = self.ratio(row, column)
                line.append("-" if value is None else f"{value:.2f}x")
            spreads = [row.cells[c].spread for c in self.columns]
            shown = " / ".join("-" if s is None else f"{s:.0%}" for s in spreads)
            line.append("" if row.absent or all(s is None for s in spreads) else shown)
            body.append(line)
        text = [self.title]
        if ratio_columns:
            text.append(
                "  vs: sandq's advantage, "
                + ("their figure / sandq's" if self.lower_is_better else "sandq's figure / theirs")
                + " (> 1: sandq better); * sandq; best of rounds"
            )
        text.append(table(headers, body))
        reasons = []
        for row in rows:
            if row.absent is not None:
                reasons.append(f"  {row.label}: {row.absent}")
                continue
            seen: set[str] = set()
            for column, cell in row.cells.items():
                reason = f"FAILED: {cell.error}" if cell.error else cell.absent
                if reason and reason not in seen:
                    seen.add(reason)
                    reasons.append(f"  {row.label} ({self.columns[column]}): {reason}")
        return "\n".join(text + reasons + [f"  {note}" for note in self.notes])

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "unit": self.unit,
            "columns": [{"key": key, "heading": heading} for key, heading in self.columns.items()],
            "rows": [
                {
                    "label": row.label,
                    "highlight": row.highlight,
                    "absent": row.absent,
                    "cells": {key: cell.to_json() for key, cell in row.cells.items()},
                    "ratios": {key: self.ratio(row, key) for key in (self.ratio_columns or self.columns)}
                    if self.ratios
                    else {},
                }
                for row in self.rows
            ],
            "notes": self.notes,
            "info": self.info,
            "seconds": round(self.seconds, 1),
        }


# --- talking to drivers ---------------------------------------------------------------------------


def glob_safe(name: str) -> str:
    check(name.isalnum(), f"queue name {name!r} is not plain letters and digits")
    return name


class Suite:
    """One run: the Redis, the contenders (installed, with their versions), and the measurements."""

    def __init__(self, settings: Settings, private: bool, quick: bool, rounds: int) -> None:
        self.settings, self.private, self.quick, self.rounds = settings, private, quick, rounds
        self.url = settings.url
        self.token = uuid.uuid4().hex[:8]
        self.counter = itertools.count()
        self.contenders = list(peers.CONTENDERS)
        self.absent: dict[str, str] = {}  # label -> not installed: why
        self.versions: dict[str, dict[str, str]] = {}
        self.version_errors: dict[str, str] = {}
        self.hung: dict[str, str] = {}
        self.leaks: dict[str, list[str]] = {}
        self.rates: dict[tuple[str, str], dict[int, float]] = {}
        self.failed = False
        self.work: Work | None = None
        self.work_note: str | None = None

    # -- set-up --

    def prepare(self) -> None:
        """Install every peer (first use only), then ask every driver for its versions."""
        print("contenders:")
        for contender in self.contenders:
            folder = peers.NODE_DIR if peers.PEERS.get(contender.peer, peers.Peer("")).node else peers.DRIVERS
            driver = folder / contender.driver
            if not driver.exists():
                self.absent[contender.label] = f"not installed: no driver ({driver.relative_to(peers.REPO)})"
                continue
            try:
                peers.command_for(contender)
            except peers.Unavailable as exc:
                text = str(exc)
                self.absent[contender.label] = (
                    text if text.startswith("not installed") else f"not installed: {text}"
                )
        live = [c for c in self.contenders if c.label not in self.absent]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(live))) as pool:
            futures = {c.label: pool.submit(self._versions, c) for c in live}
        for label, future in futures.items():
            try:
                self.versions[label] = future.result()
            except Exception as exc:
                self.version_errors[label] = f"{type(exc).__name__}: {exc}"
        for contender in self.contenders:
            label = contender.label
            if label in self.absent:
                state = self.absent[label]
            elif label in self.version_errors:
                state = f"versions FAILED: {self.version_errors[label]}"
            else:
                state = ", ".join(f"{k} {v}" for k, v in self.versions[label].items())
            print(f"  {label:<28} {state}")

    def _versions(self, contender: peers.Contender) -> dict[str, str]:
        queue = f"sqb{self.token}v{next(self.counter):05d}"
        try:
            reply = peers.run_driver(contender, {"op": "versions", "redis": self.url, "queue": queue}, 120)
        finally:
            delete_keys(self.url, f"*{glob_safe(queue)}*")
        versions = reply.get("versions")
        check(isinstance(versions, dict) and bool(versions), f"versions replied {reply!r}")
        return {str(k): str(v) for k, v in versions.items()}

    def calibrate(self) -> Work:
        if self.work is None:
            work = calibrate_python()
            print(f"  CPU-bound work: burn({work.n:,}) takes {work.ms:.2f} ms in Python (best of 7)")
            node = [c for c in self.contenders if c.peer == "node" and c.label not in self.absent]
            if node:
                calibrated = calibrate_node(work)
                if isinstance(calibrated, str):
                    self.work_note = f"Node {calibrated}"
                else:
                    work = calibrated
                    print(f"  in JavaScript: burn({work.n_js:,}) takes {work.ms_js:.2f} ms (best of 7)")
            self.work = work
        return self.work

    # -- measuring --

    def drive(self, contender: peers.Contender, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One driver op on a fresh queue, whose keys are deleted afterwards. On the private server,
        keys the driver left that do not name the queue are reported (and deleted)."""
        queue = f"sqb{self.token}q{next(self.counter):05d}"
        before = self._keys() if self.private else None
        try:
            return peers.run_driver(contender, {**spec, "redis": self.url, "queue": queue}, timeout)
        finally:
            delete_keys(self.url, f"*{glob_safe(queue)}*")
            if before is not None:
                left = self._keys() - before
                if left:
                    names = sorted(k.decode(errors="replace") for k in left)
                    known = self.leaks.setdefault(contender.label, [])
                    known += [n for n in names[:5] if n not in known][: 10 - len(known)]
                    with redis.Redis.from_url(self.url) as client:
                        client.unlink(*left)

    def _keys(self) -> set[bytes]:
        with redis.Redis.from_url(self.url) as client:
            return set(client.scan_iter(count=5000))

    def guess(self, contender: peers.Contender, kind: str, level: int) -> float:
        """The contender's best rate of ``kind`` at the highest level <= ``level`` measured so far, or
        a first guess."""
        known = self.rates.get((contender.label, kind), {})
        below = [lv for lv in known if lv <= level]
        if below:
            return known[max(below)]
        if known:
            return min(known.values())
        if kind == "noop":
            return FIRST_GUESS_NOOP.get((contender.peer, contender.variant or ""), FIRST_GUESS[kind])
        return FIRST_GUESS[kind]

    def learn(self, contender: peers.Contender, kind: str, level: int, rate: float) -> None:
        known = self.rates.setdefault((contender.label, kind), {})
        known[level] = max(rate, known.get(level, 0.0))

    def size(self, workload: str, rate: float) -> int:
        target = TARGET_S[workload][1 if self.quick else 0]
        low, high = LIMITS_N[workload][1 if self.quick else 0]
        return int(min(high, max(low, rate * target)))

    def timeout(self, seconds: float) -> float:
        """A driver's time limit for an op expected to take ``seconds``."""
        return (20.0 if self.quick else 40.0) + 5 * seconds

    def contender_rows(self, op: str, kind: str | None, columns: Sequence[str], lower: bool) -> list[Row]:
        rows = []
        for contender in self.contenders:
            cells = {column: Cell(lower_is_better=lower) for column in columns}
            absent = self.absent.get(contender.label)
            if absent is None and op not in contender.ops:
                absent = f"not applicable: the driver has no {op} op"
            if absent is None and kind is not None and kind not in contender.kinds:
                absent = f"not applicable: the driver has no {kind} jobs"
            rows.append(Row(contender.label, cells, contender.peer == peers.SANDQ, absent))
        return rows

    def step(
        self,
        label: str,
        rows: Sequence[Row],
        columns: Sequence[str],
        measure: Callable[[Row], tuple[dict[str, float], int]],
    ) -> None:
        """Measure ``columns`` of every row ``self.rounds`` times, in alternating order. A row that
        fails is not measured again in this step; one that hangs, in this run."""
        print(f"  {label} ", end="", flush=True)
        live = [row for row in rows if row.absent is None]
        for index in range(self.rounds):
            for row in alternating(live, index):
                if any(row.cells[c].error is not None or row.cells[c].absent is not None for c in columns):
                    continue
                if row.label in self.hung:
                    row.mark(columns, error=f"skipped: {self.hung[row.label]}")
                    continue
                started = time.perf_counter()
                try:
                    values, size = measure(row)
                    for column, value in values.items():
                        check(math.isfinite(value) and value > 0, f"{column} measured {value}")
                except peers.Unsupported as exc:
                    row.mark(columns, absent=str(exc))
                    print("u", end="", flush=True)
                    continue
                except peers.Hung as exc:
                    self.hung[row.label] = f"hung earlier ({label}: {exc})"
                    row.mark(columns, error=str(exc))
                    self.failed = True
                    print("x", end="", flush=True)
                    continue
                except Exception as exc:
                    row.mark(columns, error=str(exc) or type(exc).__name__)
                    self.failed = True
                    print("x", end="", flush=True)
                    continue
                for column, value in values.items():
                    row.cells[column].values.append(value)
                    row.cells[column].sizes.append(size)
                    row.cells[column].walls.append(time.perf_counter() - started)
                print(".", end="", flush=True)
        print(flush=True)

    def contender(self, row: Row) -> peers.Contender:
        return next(c for c in self.contenders if c.label == row.label)


# --- the workloads --------------------------------------------------------------------------------


def drained(reply: dict[str, Any], n: int) -> float:
    """jobs/s from a drain reply: (N - 1) / (last start - first start)."""
    first, last, jobs = reply.get("first"), reply.get("last"), reply.get("jobs")
    check(jobs == n, f"drain replied {jobs!r} jobs, not {n}")
    check(isinstance(first, float | int) and isinstance(last, float | int), f"drain replied {reply!r}")
    check(last > first, f"drain: last start {last} is not after the first {first}")
    return (n - 1) / (last - first)


def noop_workload(suite: Suite) -> Table:
    levels = NOOP_LEVELS_QUICK if suite.quick else NOOP_LEVELS
    columns = {f"c{c}": f"c={c}" for c in levels}
    result = Table("noop", "no-op jobs/s, first to last job start, by concurrency", "jobs/s", columns)
    result.rows = suite.contender_rows("drain", "noop", list(columns), lower=False)
    for c in levels:

        def measure(row: Row, c: int = c) -> tuple[dict[str, float], int]:
            contender = suite.contender(row)
            guess = suite.guess(contender, "noop", c)
            n = suite.size("noop", guess)
            spec = {"op": "drain", "kind": "noop", "n": n, "concurrency": c}
            rate = drained(suite.drive(contender, spec, suite.timeout(2 * n / guess)), n)
            suite.learn(contender, "noop", c, rate)
            return {f"c{c}": rate}, n

        suite.step(f"no-op, concurrency {c}", result.rows, [f"c{c}"], measure)
    result.info = {"levels": list(levels)}
    return result


def burn_ms(n: int, times: int) -> float:
    """The best of ``times`` timings of ``burn(n)`` here, in ms."""
    best = math.inf
    for _ in range(times):
        started = time.perf_counter()
        burn(n)
        best = min(best, (time.perf_counter() - started) * 1000)
    return best


def cpu_workload(suite: Suite) -> Table:
    work = suite.calibrate()
    cores = os.cpu_count() or 1
    levels = CPU_LEVELS_QUICK if suite.quick else CPU_LEVELS
    columns = {f"c{c}": f"c={c}" for c in levels}
    title = f"CPU-bound jobs/s ({work.ms:.1f} ms of pure-Python work each), first to last job start"
    result = Table("cpu", title, "jobs/s", columns)
    result.rows = suite.contender_rows("drain", "cpu", list(columns), lower=False)
    if suite.work_note:
        for row in result.rows:
            if row.label.startswith("Node") and row.absent is None:
                row.absent = suite.work_note
    target = TARGET_S["cpu"][1 if suite.quick else 0]
    for c in levels:
        limit = min(c, cores) * 1000 / work.ms

        def measure(row: Row, c: int = c, limit: float = limit) -> tuple[dict[str, float], int]:
            contender = suite.contender(row)
            node = contender.peer == "node"
            n = max(20, round(limit * target))
            spec = {
                "op": "drain", "kind": "cpu", "n": n, "concurrency": c,
                "rounds": work.n_js if node else work.n, "check": work.x_js if node else work.x,
            }  # fmt: skip
            rate = drained(suite.drive(contender, spec, suite.timeout(2 * n * work.ms / 1000)), n)
            return {f"c{c}": rate}, n

        suite.step(f"CPU-bound, concurrency {c}", result.rows, [f"c{c}"], measure)
    # The work's time: its best timing at the start or now, so that a busy moment on the machine
    # during the calibration does not lower the limit.
    work_ms = min(work.ms, burn_ms(work.n, 15))
    print(f"  burn({work.n:,}) timed again: {work_ms:.2f} ms is the best of the two timings")
    limits = {f"c{c}": min(c, cores) * 1000 / work_ms for c in levels}
    result.title = f"CPU-bound jobs/s ({work_ms:.1f} ms of pure-Python work each), first to last job start"
    limits_js = {f"c{c}": min(c, cores) * 1000 / work.ms_js for c in levels} if work.ms_js else {}
    efficiency: dict[str, dict[str, float | None]] = {}
    for row in result.rows:
        own = limits_js if row.label.startswith("Node") and limits_js else limits
        efficiency[row.label] = {
            key: (None if row.value(key) is None else (row.value(key) or 0) / own[key]) for key in columns
        }
    result.info = {
        "levels": list(levels),
        "cores": cores,
        "work": {"rounds": work.n, "ms": work_ms, "rounds_js": work.n_js, "ms_js": work.ms_js},
        "limit": limits,
        "limit_js": limits_js,
        "efficiency": efficiency,
    }
    share = " / ".join(f"{limits[k]:,.0f}" for k in columns)
    result.notes.append(
        f"cores' limit: min(c, {cores} cores) x 1000 / {work_ms:.2f} ms = {share} jobs/s (Python"
        + (f"; JavaScript work {work.ms_js:.2f} ms)" if work.ms_js else ")")
    )
    for key, heading in columns.items():

        def share(row: Row, key: str = key) -> str:
            value = efficiency[row.label][key]
            return "-" if value is None else f"{value:.0%}"

        result.extras[f"limit {heading}"] = share
    result.notes.append("limit c=N: the share of the cores' limit reached")
    return result


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_workload(suite: Suite) -> Table:
    columns = {
        "active_p50": "add->active p50",
        "active_p99": "p99",
        "completed_p50": "add->completed p50",
        "completed_p99": "p99",
    }
    n = LATENCY_N[1 if suite.quick else 0]
    title = f"latency with an idle worker, ms ({n} jobs, each added once the previous one completed)"
    result = Table("latency", title, "ms", columns)
    result.lower_is_better = True
    result.ratio_columns = ["active_p50", "completed_p50"]
    result.formats = dict.fromkeys(columns, ",.2f")
    result.rows = suite.contender_rows("latency", None, list(columns), lower=True)

    def measure(row: Row) -> tuple[dict[str, float], int]:
        reply = suite.drive(
            suite.contender(row), {"op": "latency", "n": n, "concurrency": 1}, suite.timeout(n / 10)
        )
        active, completed = reply.get("active_ms"), reply.get("completed_ms")
        check(
            isinstance(active, list) and isinstance(completed, list) and len(active) == len(completed) == n,
            f"latency replied {len(active or [])} / {len(completed or [])} samples, not {n}",
        )
        assert isinstance(active, list)
        assert isinstance(completed, list)
        for a, b in zip(active, completed, strict=True):
            check(0 <= a <= b + 0.05, f"latency: add->active {a} ms, add->completed {b} ms")
        return {
            "active_p50": percentile(active, 50),
            "active_p99": percentile(active, 99),
            "completed_p50": percentile(completed, 50),
            "completed_p99": percentile(completed, 99),
        }, n

    suite.step("latency", result.rows, list(columns), measure)
    result.info = {"samples": n}
    return result


def enqueue_workload(suite: Suite) -> Table:
    columns = {"single": "single adds", "bulk": "bulk adds"}
    result = Table("enqueue", "jobs added per second (jobs/s)", "jobs/s", columns)
    result.rows = suite.contender_rows("enqueue", None, list(columns), lower=False)
    for mode in columns:

        def measure(row: Row, mode: str = mode) -> tuple[dict[str, float], int]:
            contender = suite.contender(row)
            guess = suite.guess(contender, mode, 0)
            n = suite.size("enqueue", guess)
            spec = {"op": "enqueue", "n": n, "bulk": mode == "bulk"}
            reply = suite.drive(contender, spec, suite.timeout(2 * n / guess))
            seconds = reply.get("seconds")
            check(isinstance(seconds, float | int) and seconds > 0, f"enqueue replied {reply!r}")
            rate = n / float(seconds or 1)
            suite.learn(contender, mode, 0, rate)
            return {mode: rate}, n

        suite.step(f"enqueue, {mode}", result.rows, [mode], measure)
    result.notes.append("single: one add after another; bulk: the peer's bulk add, 1,000 jobs per call")
    return result


def flat_workload(suite: Suite) -> Table:
    sizes = sandq_only.FLAT_SIZES_QUICK if suite.quick else sandq_only.FLAT_SIZES
    head = sandq_only.FLAT_HEAD_QUICK if suite.quick else sandq_only.FLAT_HEAD
    concurrency = sandq_only.FLAT_CONCURRENCY
    columns = {"rate": "jobs/s", "us_per_job": "us/job", "rss_mib": "supervisor RSS MiB"}
    result = Table(
        "flat",
        f"sandq with a deep queue: {head:,} no-op jobs drained from its head, sandq run --concurrency "
        f"{concurrency}",
        "",
        columns,
    )
    result.ratios = False
    result.formats = {"rss_mib": ",.1f"}
    backlogs: dict[str, sandq_only.Backlog] = {}
    try:
        print("  filling the queues ", end="", flush=True)
        for size in sizes:
            label = f"{size:,} waiting"
            cells = {
                "rate": Cell(),
                "us_per_job": Cell(lower_is_better=True),
                "rss_mib": Cell(lower_is_better=True),
            }
            result.rows.append(Row(label, cells, highlight=True))
            backlogs[label] = sandq_only.Backlog(suite.settings, size)
            started = time.perf_counter()
            backlogs[label].top_up()
            print(f"{size:,} in {time.perf_counter() - started:.1f}s; ", end="", flush=True)
        print(flush=True)

        def measure(row: Row) -> tuple[dict[str, float], int]:
            figures = backlogs[row.label].measure(head, concurrency)
            return {
                "rate": figures["rate"],
                "us_per_job": 1e6 / figures["rate"],
                "rss_mib": figures["rss_mib"],
            }, head

        suite.step(f"sandq run --concurrency {concurrency}", result.rows, list(columns), measure)
    finally:
        for backlog in backlogs.values():
            backlog.delete()
    first, last = result.rows[0], result.rows[-1]
    cost = quotient(last.value("us_per_job"), first.value("us_per_job"))
    memory = quotient(last.value("rss_mib"), first.value("rss_mib"))
    result.info = {
        "sizes": list(sizes),
        "head": head,
        "concurrency": concurrency,
        "cost_ratio": cost,
        "rss_ratio": memory,
    }
    shown = ["-" if value is None else f"{value:.2f}x" for value in (cost, memory)]
    result.notes.append(
        f"last / first ({sizes[-1]:,} vs {sizes[0]:,} waiting): per-job cost {shown[0]}, "
        f"supervisor RSS {shown[1]}"
    )
    return result


def kill_workload(suite: Suite) -> Table:
    samples = KILL_SAMPLES[1 if suite.quick else 0]
    columns = {
        "kill_ms": "kill ms (median)",
        "kill_max_ms": "(max)",
        "respawn_ms": "respawn ms (median)",
        "respawn_max_ms": "(max)",
    }
    worst = {"kill_max_ms", "respawn_max_ms"}
    title = (
        f"sandq kill and respawn: ms past deadline+grace until the child is gone, and to a warm child "
        f"starting the next job ({samples} kills per round; timeout {sandq_only.KILL_TIMEOUT_MS} ms, "
        f"--kill-grace {sandq_only.KILL_GRACE_MS}ms)"
    )
    result = Table("kill", title, "", columns, lower_is_better=True, ratios=False)
    result.formats = dict.fromkeys(columns, ",.1f")
    # numpy preloaded: sandq from an environment of its own with numpy (installed on first use).
    numpy_sandq: list[str] | None = None
    absent_numpy: str | None = None
    try:
        python = peers.install(peers.PEERS["sandq-numpy"])[0]
        numpy_sandq = [str(pathlib.Path(python).parent / "sandq")]
    except peers.Unavailable as exc:
        absent_numpy = f"not installed: {exc}"
    numpy = numpy_sandq is not None
    for preload in (None, "numpy"):
        cells = {column: Cell(lower_is_better=True, worst_case=column in worst) for column in columns}
        absent = absent_numpy if preload else None
        result.rows.append(Row(f"--preload {preload}" if preload else "no preload", cells, True, absent))

    def measure(row: Row) -> tuple[dict[str, float], int]:
        preload = row.label.removeprefix("--preload ") if row.label.startswith("--") else None
        command = numpy_sandq if preload else None
        outcome = sandq_only.kill_respawn(suite.settings, samples, preload, command)
        figures = outcome.summary()
        return figures, samples

    suite.step("kill and respawn", result.rows, list(columns), measure)
    result.notes.append("medians: the best round's; maxima: the worst sample of any round")
    result.info = {"samples": samples, "numpy": numpy}
    return result


def quotient(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


# --- targets --------------------------------------------------------------------------------------


def targets(tables: dict[str, Table]) -> list[dict[str, Any]]:
    """Every target, its measured value and verdict (PASS, short, or not measured)."""
    found: list[dict[str, Any]] = []

    def add(target: str, value: float | None, passed: Callable[[float], bool], shown: str, why: str) -> None:
        verdict = (
            f"not measured{' (' + why.split(':', maxsplit=1)[0] + ')' if why else ''}"
            if value is None
            else ("PASS" if passed(value) else "short of target")
        )
        found.append(
            {
                "target": target,
                "measured": value,
                "shown": shown if value is not None else "-",
                "verdict": verdict,
            }
        )

    def missing(row: Row | None, column: str) -> str:
        if row is None:
            return "not run"
        if row.absent:
            return row.absent
        cell = row.cells[column]
        return cell.absent or (f"FAILED: {cell.error}" if cell.error else "")

    noop = tables.get("noop")
    if noop is not None:
        for label, goal, name in (
            (BULLMQ_PYPI, NOOP_BULLMQ_TARGET, "bullmq PyPI"),
            (NODE_SANDBOXED, NOOP_NODE_TARGET, "Node sandboxed"),
            (RQ_FORK, NOOP_RQ_TARGET, "RQ fork"),
        ):
            row = noop.row(label)
            for c in noop.info["levels"]:
                key = f"c{c}"
                value = None if row is None else noop.ratio(row, key)
                why = missing(row, key) or missing(noop.row(peers.SANDQ), key)
                add(
                    f"no-op c={c}: >= {goal:g}x {name}",
                    value,
                    lambda v, g=goal: v >= g,
                    f"{value or 0:.2f}x",
                    why,
                )
    cpu = tables.get("cpu")
    if cpu is not None:
        sandq = cpu.row(peers.SANDQ)
        for c in cpu.info["levels"]:
            key = f"c{c}"
            share = cpu.info.get("efficiency", {}).get(peers.SANDQ, {}).get(key)
            add(
                f"CPU-bound c={c}: within {1 - CPU_TARGET:.0%} of the cores' limit",
                share,
                lambda v: v >= CPU_TARGET,
                f"{share or 0:.0%}",
                missing(sandq, key),
            )
    latency = tables.get("latency")
    if latency is not None:
        row = latency.row(peers.SANDQ)
        value = None if row is None else row.value("active_p50")
        add(
            f"add->active p50 < {ACTIVE_P50_TARGET_MS:g} ms",
            value,
            lambda v: v < ACTIVE_P50_TARGET_MS,
            f"{value or 0:.2f} ms",
            missing(row, "active_p50"),
        )
    enqueue = tables.get("enqueue")
    if enqueue is not None:
        row = enqueue.row(peers.SANDQ)
        value = None if row is None else row.value("bulk")
        add(
            f"bulk add >= {BULK_TARGET:,.0f} jobs/s",
            value,
            lambda v: v >= BULK_TARGET,
            f"{value or 0:,.0f}",
            missing(row, "bulk"),
        )
    flat = tables.get("flat")
    if flat is not None:
        sizes = flat.info.get("sizes", [0, 0])
        span = f"{sizes[0]:,} -> {sizes[-1]:,} waiting"
        for key, name in (("cost_ratio", "per-job cost"), ("rss_ratio", "supervisor RSS")):
            value = flat.info.get(key)
            add(
                f"flat cost: {name} {span}, no growth (<= {FLAT_TOLERANCE:.2f}x)",
                value,
                lambda v: v <= FLAT_TOLERANCE,
                f"{value or 0:.2f}x",
                "a measurement failed",
            )
    return found


# --- the machine ----------------------------------------------------------------------------------


def machine(settings: Settings) -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    system = platform.platform()
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                system = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.system()} {platform.release()})"
    node = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": system,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "node": node or None,
        "redis": settings.redis_version,
        "redis_server": settings.redis_origin,
        "load_at_start": [round(v, 2) for v in os.getloadavg()],
    }


# --- the run --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small measurements, one round: under a minute")
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="Redis to measure against (default: a private redis-server on a free port)",
    )
    parser.add_argument(
        "--only", metavar="WORKLOAD,...", help=f"run only these workloads, of: {', '.join(WORKLOADS)}"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds per measurement (default 3, 1 with --quick)"
    )
    parser.add_argument("--redis-server", metavar="PATH", default=None, help="redis-server binary to start")
    parser.add_argument(
        "--output", metavar="DIR", default=str(RESULTS), help="where latest.json and the PNGs go"
    )
    args = parser.parse_args(argv)
    args.duration = None  # harness.setup wants it; every measurement here is sized in jobs
    chosen = [w.strip() for w in (args.only or ",".join(WORKLOADS)).split(",") if w.strip()]
    unknown = [w for w in chosen if w not in WORKLOADS]
    if unknown or not chosen:
        parser.error(f"--only: unknown workload(s) {', '.join(unknown)}; pick from {', '.join(WORKLOADS)}")
    args.workloads = [w for w in WORKLOADS if w in chosen]
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


RUNNERS: dict[str, Callable[[Suite], Table]] = {
    "noop": noop_workload,
    "cpu": cpu_workload,
    "latency": latency_workload,
    "enqueue": enqueue_workload,
    "flat": flat_workload,
    "kill": kill_workload,
}


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    started = time.perf_counter()
    yield lambda: time.perf_counter() - started


def draw_charts(results: pathlib.Path, output: pathlib.Path) -> tuple[list[str], str | None]:
    """Run charts.py in the charts peer's environment: the PNGs written, or why none were."""
    try:
        python = peers.install(peers.PEERS["charts"])
    except peers.Unavailable as exc:
        return [], f"charts not drawn: {exc}"
    try:
        done = subprocess.run(
            [*python, str(peers.BENCH_DIR / "charts.py"), str(results), str(output)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [], "charts not drawn: charts.py took over 180 s"
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        return [], f"charts not drawn: charts.py exited with {done.returncode}: {tail}"
    return [line.strip() for line in done.stdout.splitlines() if line.strip().endswith(".png")], None


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.simplefilter("ignore")
    # SIGTERM unwinds like Ctrl-C: the running driver (with its workers) and the private Redis stop too.
    signal.signal(signal.SIGTERM, _stop)
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    started_at = datetime.datetime.now(datetime.timezone.utc)
    with timed() as elapsed, setup(args, "suite") as settings:
        suite = Suite(settings, private=args.redis is None, quick=args.quick, rounds=args.rounds)
        host = machine(settings)
        mode = "quick" if args.quick else "full"
        print(
            f"sandq benchmark suite, {started_at:%Y-%m-%d %H:%M} UTC: {mode} run, best of {args.rounds} "
            f"round(s), workloads {', '.join(args.workloads)}"
        )
        print(
            f"  {host['cpu']}, {host['cores']} cores, {host['ram_gib']} GiB; {host['os']}; Python "
            f"{host['python']}; Redis {host['redis']} ({host['redis_server']}); load {host['load_at_start']}"
        )
        suite.prepare()
        tables: dict[str, Table] = {}
        broken: dict[str, str] = {}
        for workload in args.workloads:
            print(f"\n[{workload}]", flush=True)
            with timed() as took:
                try:
                    tables[workload] = RUNNERS[workload](suite)
                except Exception as exc:
                    suite.failed = True
                    broken[workload] = f"{type(exc).__name__}: {exc}"
                    print(f"\n  FAILED: {broken[workload]}")
                    continue
            tables[workload].seconds = took()
            print(f"  ({took():.0f} s)")
        host["load_at_end"] = [round(v, 2) for v in os.getloadavg()]
        verdicts = targets(tables)
        print()
        for result in tables.values():
            print(result.render(), end="\n\n")
        for workload, reason in broken.items():
            print(f"{workload}: FAILED: {reason}\n")
        if suite.leaks:
            print("keys left behind by drivers (not naming their queue; deleted):")
            for label, keys in suite.leaks.items():
                print(f"  {label}: {', '.join(keys)}")
            print()
        print("targets (reported, not enforced)")
        print(
            table(
                ["target", "measured", "verdict"], [[t["target"], t["shown"], t["verdict"]] for t in verdicts]
            )
        )
        seconds = elapsed()
        print(f"\n({seconds:.0f} s of measurements)")
        report = {
            "suite": {
                "started": started_at.isoformat(timespec="seconds"),
                "mode": mode,
                "rounds": args.rounds,
                "workloads": args.workloads,
                "seconds": round(seconds, 1),
                "command": " ".join(
                    ["python benchmarks/suite.py", *(argv if argv is not None else sys.argv[1:])]
                ),
            },
            "machine": host,
            "contenders": [
                {
                    "label": c.label,
                    "peer": c.peer,
                    "variant": c.variant,
                    "status": suite.absent.get(c.label) or suite.hung.get(c.label) or "ok",
                    "versions": suite.versions.get(c.label, {}),
                    "versions_error": suite.version_errors.get(c.label),
                    "keys_left": suite.leaks.get(c.label, []),
                }
                for c in suite.contenders
            ],
            "workloads": {key: value.to_json() for key, value in tables.items()},
            "failed_workloads": broken,
            "targets": verdicts,
            "tables": {key: value.render() for key, value in tables.items()},
        }
    results = output / "latest.json"
    results.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {results}")
    charts, problem = draw_charts(results, output)
    print(problem or f"charts: {', '.join(charts)}")
    # File names, next to latest.json: the JSON names no path of the machine it ran on.
    report["charts"] = [pathlib.Path(chart).name for chart in charts] if problem is None else problem
    report["suite"]["seconds_with_charts"] = round(elapsed(), 1)
    results.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
