"""Job processing throughput: the sandq worker next to BullMQ's workers, against one Redis, in one run.

    python benchmarks/throughput.py [--redis URL] [--quick] [--rounds N]

Workloads, each at concurrency 1, 2 and 4, on a fresh queue per measurement holding jobs added
beforehand (5,000 no-op jobs, 600 CPU-bound ones; 1,000 / 100 with --quick):

* **no-op** jobs (the processor returns the job's data);
* **CPU-bound** jobs of about 10 ms of pure-Python integer arithmetic each (``processors.burn``, a
  round count calibrated once at start and carried in the job's data; Node runs the same function in
  JavaScript, calibrated to the same time).

Contenders:

* sandq: ``sandq run benchmarks.processors:noop --burst ...`` as a subprocess from the repository root;
* the bullmq PyPI ``Worker`` (asyncio, in-process; CPU-bound work runs inline, blocking the loop);
* npm ``bullmq`` 6 with sandboxed processors (``useWorkerThreads: false``, a child process per slot),
  and an in-process processor function for no-op jobs. The script installs ``bullmq@6`` and
  ``ioredis`` with npm into ``~/.cache/sandq-bench/node`` (never into the repository); without node or
  npm, or when the install fails, those rows say ``not installed: <reason>``.

The main figure is jobs/s from the first job's ``processedOn`` to the last job's ``finishedOn`` (as
stored in Redis), so that start-up is excluded; start-up (launch to first ``processedOn``), shut-down,
the launch-to-exit rate and the CPU time per job (the worker's processes, and Redis) are shown
separately for no-op jobs. After each measurement every job must be completed with the
right return value (the no-op data, or the CPU checksum); a failed check fails the contender.

For sandq alone: kill latency (a spinning job with a ``timeout``, ``--kill-grace 200ms``: how long after
deadline + grace its ``finishedOn`` lands) and respawn time (after the kill, until the next job starts
on the fresh child), with ``--preload numpy`` when numpy is importable, and without a preload.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import importlib.util
import json
import os
import pathlib
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from harness import (
    LIMITS,
    BenchmarkError,
    Contender,
    Settings,
    check,
    delete_keys,
    parse_args,
    ratio,
    run_rounds,
    setup,
    spread,
    table,
    timeout_message,
)
from sandq import SyncQueue
from sandq_only import KILL_GRACE_MS, KILL_TIMEOUT_MS, KillRespawn, kill_respawn, sandq_command

from processors import burn

BENCH_DIR = pathlib.Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
NODE_DIR = BENCH_DIR / "node"
NODE_CACHE = (
    pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "sandq-bench/node"
)

CONCURRENCIES = (1, 2, 4)
NOOP_JOBS, NOOP_JOBS_QUICK = 5_000, 1_000
CPU_JOBS, CPU_JOBS_QUICK = 600, 100
WORK_MS = 10.0  # target time of one CPU-bound job's work
ADD_BATCH = 1_000
PAYLOAD = "x" * 32
POLL = 0.1  # seconds between progress checks of a running contender

KILL_SAMPLES, KILL_SAMPLES_QUICK = 6, 3

NOOP_BULLMQ_GOAL = 3.0  # sandq no-op jobs/s / bullmq PyPI jobs/s, same concurrency
NOOP_NODE_GOAL = 2.0  # sandq no-op jobs/s / Node sandboxed jobs/s, same concurrency
CPU_GOAL = 0.90  # of what the cores allow
RESPAWN_GOAL_MS = 20.0
KILL_GOAL_MS = 50.0

Sample = tuple[int, float, float]  # jobs, seconds (first processedOn to last finishedOn), Redis us/job

SANDQ = "sandq run (child processes)"
BULLMQ = "bullmq PyPI Worker (asyncio)"
NODE_SANDBOXED = "Node bullmq 6, sandboxed"
NODE_INPROCESS = "Node bullmq 6, in-process"


# --- jobs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Work:
    """The CPU-bound job's round counts (Python and JavaScript), their checksums and timings."""

    n: int
    ms: float
    x: int
    n_js: int = 0
    ms_js: float = 0.0
    x_js: int = 0


@dataclass(frozen=True)
class Workload:
    kind: str  # "noop" or "cpu"
    total: int
    work: Work

    def data(self, i: int) -> dict[str, Any]:
        if self.kind == "noop":
            return {"i": i, "payload": PAYLOAD}
        return {"i": i, "n": self.work.n, "n_js": self.work.n_js}

    def expected(self, i: int, javascript: bool) -> Any:
        if self.kind == "noop":
            return self.data(i)
        return {"i": i, "x": self.work.x_js if javascript else self.work.x}


def calibrate_python() -> Work:
    """A round count for which ``burn`` takes about WORK_MS here (best of several timings)."""

    def best_ms(n: int, times: int) -> float:
        timings = []
        for _ in range(times):
            start = time.perf_counter()
            burn(n)
            timings.append((time.perf_counter() - start) * 1000)
        return min(timings)

    n = 20_000
    n = round(n * WORK_MS / best_ms(n, 5))
    n = round(n * WORK_MS / best_ms(n, 7))
    return Work(n=n, ms=best_ms(n, 7), x=burn(n))


class Fresh:
    """A fresh queue holding ``workload``'s jobs, added before the clock starts; its checks and its
    clean-up. ``sandq.SyncQueue.add_bulk`` in batches of ADD_BATCH, for every contender."""

    def __init__(self, settings: Settings, workload: Workload, label: str) -> None:
        self.url, self.prefix, self.workload = settings.url, settings.prefix, workload
        self.name = f"{label}-{uuid.uuid4().hex[:10]}"
        self.base = f"{self.prefix}:{self.name}:"
        self.ids: list[str] = []
        with SyncQueue(self.name, self.url, prefix=self.prefix) as queue:
            for first in range(0, workload.total, ADD_BATCH):
                last = min(first + ADD_BATCH, workload.total)
                jobs = queue.add_bulk([("bench", workload.data(i)) for i in range(first, last)])
                self.ids += [job.id for job in jobs]
        self.client = redis.Redis.from_url(self.url)

    def finished(self) -> int:
        """Jobs completed or failed so far (the progress a watchdog looks at)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zcard(self.base + "completed")
            pipe.zcard(self.base + "failed")
            return sum(int(n) for n in pipe.execute())

    def fields(self, *names: str) -> list[list[bytes | None]]:
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in self.ids:
                pipe.hmget(self.base + job_id, list(names))
            return pipe.execute()  # type: ignore[no-any-return]

    def verify(self, who: str, javascript: bool = False) -> tuple[int, int]:
        """Every job completed, with the right return value; returns (first processedOn, last
        finishedOn) in ms."""
        total = self.workload.total
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zcard(self.base + "completed")
            pipe.zcard(self.base + "failed")
            pipe.llen(self.base + "wait")
            pipe.llen(self.base + "active")
            completed, failed, waiting, active = (int(n) for n in pipe.execute())
        check(failed == 0, f"{who}: {failed} job(s) failed")
        check(completed == total, f"{who}: {completed} of {total} jobs completed")
        check(waiting == 0 and active == 0, f"{who}: {waiting} waiting and {active} active at the end")
        processed_on, finished_on = [], []
        for index, (processed, finished, value) in enumerate(
            self.fields("processedOn", "finishedOn", "returnvalue")
        ):
            job_id = self.ids[index]
            check(processed is not None and finished is not None, f"{who}: job {job_id} has no timestamps")
            want = self.workload.expected(index, javascript)
            got = json.loads(value) if value is not None else None
            check(got == want, f"{who}: job {job_id} returned {got!r}, not {want!r}")
            processed_on.append(int(float(processed or 0)))
            finished_on.append(int(float(finished or 0)))
        first, last = min(processed_on), max(finished_on)
        check(last > first, f"{who}: last finishedOn {last} is not after first processedOn {first}")
        return first, last

    def delete(self) -> None:
        self.client.close()
        delete_keys(self.url, self.base + "*")
        delete_keys(self.url, f"{self.prefix}:{self.name}")  # a bare queue key, should one exist


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def wall_ms() -> float:
    return time.time() * 1000


# --- measurements -------------------------------------------------------------------------------


@dataclass
class Throughput(Contender):
    """A contender of a throughput table: besides jobs/s (first processedOn to last finishedOn), the
    start-up (launch to first processedOn), the shut-down (last finishedOn to exit, or to the end of
    ``close()`` in-process), in ms, and the launch-to-exit rate of every round."""

    concurrency: int = 1
    missing: str | None = None  # "not installed: ..." (not a failure)
    startups: list[float] = field(default_factory=list)
    shutdowns: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # the worker's CPU (all its processes) per job
    idle_cpu: float | None = None  # CPU seconds of a launch on an empty queue (0 in-process)

    def record(
        self,
        jobs: int,
        *,
        launched: float,
        first: int,
        last: int,
        ended: float,
        cpu: float,
        redis_used: float,
    ) -> Sample:
        """Keep the round's start-up, shut-down and launch-to-exit rate (wall-clock ms, as the jobs'
        timestamps) and the worker's CPU per job; return (jobs, seconds from first processedOn to
        last finishedOn, Redis CPU microseconds per job)."""
        self.startups.append(first - launched)
        self.shutdowns.append(ended - last)
        self.walls.append(jobs / ((ended - launched) / 1000))
        self.cpu_us.append((cpu - (self.idle_cpu or 0.0)) / jobs * 1e6)
        return jobs, (last - first) / 1000, redis_used / jobs * 1e6

    def cell(self, short: bool = False) -> str:
        if self.missing is not None:
            return self.missing.split(":")[0] if short else self.missing
        if self.error is not None:
            return "FAILED"
        return "-" if self.best is None else f"{self.best:,.0f}"


def children_cpu() -> float:
    """CPU seconds (user + system) of every reaped descendant of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def redis_cpu(url: str) -> float:
    """Redis's CPU seconds so far (INFO cpu; server-wide: exact on the private server)."""
    with redis.Redis.from_url(url) as client:
        info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run_process(
    command: Sequence[str], fresh: Fresh, who: str, env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """Run ``command`` until it exits; stop it (and fail) when no job finishes within LIMITS.timeout.
    Returns the wall-clock ms of its launch and of its exit, and the CPU seconds it used with every
    process under it (all reaped by then: sandq's zygote reaps its children, the supervisor its zygote,
    Node its sandboxed children)."""
    with tempfile.TemporaryFile() as output:
        cpu_before = children_cpu()
        launched = wall_ms()
        process = subprocess.Popen(
            command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        try:
            done, moved = -1, time.monotonic()
            while True:
                try:
                    process.wait(POLL)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now_done = fresh.finished()
                if now_done != done:
                    done, moved = now_done, time.monotonic()
                elif time.monotonic() - moved > LIMITS.timeout:
                    raise BenchmarkError(timeout_message(who))
            ended = wall_ms()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if process.returncode != 0:
            output.seek(0)
            tail = output.read().decode(errors="replace").strip()[-800:]
            raise BenchmarkError(f"{who} exited with {process.returncode}: {tail}")
    return launched, ended, children_cpu() - cpu_before


def sandq_command_for(settings: Settings, queue: str, kind: str, concurrency: int) -> list[str]:
    return [
        *sandq_command(), "run", f"benchmarks.processors:{kind}",
        "--queue", queue, "--prefix", settings.prefix,
        "--concurrency", str(concurrency), "--redis", settings.url,
        "--burst", "--log-level", "warning",
    ]  # fmt: skip


def idle_cpu(
    settings: Settings,
    workload: Workload,
    command_for: Callable[[str], list[str]],
    env: dict[str, str] | None = None,
) -> float:
    """CPU seconds of a launch on an empty queue: the fixed cost (start-up, shut-down) that a
    worker's CPU per job should not carry. Measured once per contender, outside the timing."""
    fresh = Fresh(settings, dataclasses.replace(workload, total=0), "idle")
    try:
        return run_process(command_for(fresh.name), fresh, "an idle launch", env)[2]
    finally:
        fresh.delete()


def sandq_run(settings: Settings, workload: Workload, contender: Throughput) -> Sample:
    c = contender.concurrency
    if contender.idle_cpu is None:
        contender.idle_cpu = idle_cpu(
            settings, workload, lambda queue: sandq_command_for(settings, queue, workload.kind, c)
        )
    fresh = Fresh(settings, workload, f"sandq-{workload.kind}")
    try:
        command = sandq_command_for(settings, fresh.name, workload.kind, c)
        redis_before = redis_cpu(settings.url)
        launched, ended, cpu = run_process(command, fresh, "sandq run")
        redis_used = redis_cpu(settings.url) - redis_before
        first, last = fresh.verify("sandq")
    finally:
        fresh.delete()
    return contender.record(
        workload.total, launched=launched, first=first, last=last, ended=ended, cpu=cpu, redis_used=redis_used
    )


def bullmq_run(settings: Settings, workload: Workload, contender: Throughput) -> Sample:
    from bullmq import Worker

    import processors

    processor = processors.bullmq_noop if workload.kind == "noop" else processors.bullmq_cpu
    fresh = Fresh(settings, workload, f"bullmq-{workload.kind}")

    async def process() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        count = [0]

        def on_finished(*_: Any) -> None:
            count[0] += 1
            if count[0] >= workload.total and not finished.done():
                finished.set_result(None)

        cpu_before, launched = self_cpu(), wall_ms()
        worker = Worker(
            fresh.name,
            processor,
            {"connection": settings.url, "prefix": settings.prefix, "concurrency": contender.concurrency},
        )
        worker.on("completed", on_finished)
        worker.on("failed", on_finished)
        try:
            done, moved = -1, time.monotonic()
            while not finished.done():
                await asyncio.wait([finished], timeout=POLL)
                if count[0] != done:
                    done, moved = count[0], time.monotonic()
                elif time.monotonic() - moved > LIMITS.timeout:
                    raise BenchmarkError(timeout_message("bullmq Worker"))
        finally:
            await worker.close()
        return launched, wall_ms(), self_cpu() - cpu_before

    try:
        redis_before = redis_cpu(settings.url)
        launched, ended, cpu = asyncio.run(process())
        redis_used = redis_cpu(settings.url) - redis_before
        first, last = fresh.verify("bullmq")
    finally:
        fresh.delete()
    return contender.record(
        workload.total, launched=launched, first=first, last=last, ended=ended, cpu=cpu, redis_used=redis_used
    )


def node_command_for(
    settings: Settings, queue: str, workload: Workload, concurrency: int, sandboxed: bool
) -> list[str]:
    command = [
        "node", str(NODE_DIR / "worker.js"), settings.url, settings.prefix, queue,
        str(concurrency), str(workload.total),
    ]  # fmt: skip
    if sandboxed:
        return [*command, "sandboxed", str(NODE_DIR / f"{workload.kind}.js")]
    return [*command, "inprocess"]


def node_run(
    settings: Settings, workload: Workload, modules: pathlib.Path, sandboxed: bool, contender: Throughput
) -> Sample:
    c = contender.concurrency
    env = {**os.environ, "NODE_PATH": str(modules)}
    if contender.idle_cpu is None:
        idle = dataclasses.replace(workload, total=0)
        contender.idle_cpu = idle_cpu(
            settings,
            idle,
            lambda queue: node_command_for(settings, queue, idle, c, sandboxed),
            env,
        )
    fresh = Fresh(settings, workload, f"node-{workload.kind}")
    try:
        command = node_command_for(settings, fresh.name, workload, c, sandboxed)
        redis_before = redis_cpu(settings.url)
        launched, ended, cpu = run_process(command, fresh, "node worker.js", env=env)
        redis_used = redis_cpu(settings.url) - redis_before
        first, last = fresh.verify("node", javascript=True)
    finally:
        fresh.delete()
    return contender.record(
        workload.total, launched=launched, first=first, last=last, ended=ended, cpu=cpu, redis_used=redis_used
    )


# --- Node: install and calibrate ------------------------------------------------------------------


def install_node() -> tuple[pathlib.Path | None, str]:
    """``bullmq@6`` and ``ioredis`` in NODE_CACHE (from benchmarks/node/package.json): the
    node_modules directory and bullmq's version, or None and why not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None, "not installed: no " + " and no ".join(
            name for name, path in (("node", node), ("npm", npm)) if path is None
        )
    NODE_CACHE.mkdir(parents=True, exist_ok=True)
    manifest = (NODE_DIR / "package.json").read_text()
    cached = NODE_CACHE / "package.json"
    modules = NODE_CACHE / "node_modules"
    installed = modules / "bullmq" / "package.json"
    if not (cached.exists() and cached.read_text() == manifest and installed.exists()):
        cached.write_text(manifest)
        print(f"  installing bullmq@6 and ioredis with npm into {NODE_CACHE} ...", flush=True)
        try:
            result = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=NODE_CACHE,
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, "not installed: npm install took over 240 s"
        if result.returncode != 0 or not installed.exists():
            cached.unlink(missing_ok=True)
            lines = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()
            told = [line for line in lines if "complete log" not in line] or lines
            return None, f"not installed: npm install failed ({told[0][:120]})"
    version = str(json.loads(installed.read_text()).get("version", "?"))
    if not version.startswith("6."):
        return None, f"not installed: npm gave bullmq {version}, not 6.x"
    return modules, version


def calibrate_node(work: Work) -> Work | str:
    """The JavaScript round count for WORK_MS, checked against the Python function on a small count."""
    check_n = 100_000
    try:
        result = subprocess.run(
            ["node", str(NODE_DIR / "work.js"), "calibrate", str(WORK_MS), str(check_n)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        reply = json.loads(result.stdout)
    except (subprocess.SubprocessError, ValueError) as exc:
        return f"not calibrated: {exc}"
    if reply["check"] != burn(check_n):
        return f"not calibrated: work.js computes burn({check_n}) = {reply['check']}, not {burn(check_n)}"
    return Work(work.n, work.ms, work.x, int(reply["n"]), float(reply["ms"]), int(reply["x"]))


# --- tables ---------------------------------------------------------------------------------------


def verdict(value: float | None, goal: float) -> str:
    """PASS when ``value`` >= ``goal``."""
    if value is None:
        return "not measured"
    return "PASS" if value >= goal else f"short of goal ({value / goal:.0%} of it)"


def verdict_ms(value: float | None, passed: bool) -> str:
    if value is None:
        return "not measured"
    return "PASS" if passed else f"short of goal ({value:.0f} ms)"


def quotient(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def millis(values: Sequence[float]) -> str:
    return "-" if not values else f"{statistics.median(values):,.0f}"


def efficiency(contender: Throughput, work_ms: float) -> float | None:
    """Measured jobs/s over what the cores allow: cores_used * 1000 / work_ms jobs/s."""
    if contender.best is None or not work_ms:
        return None
    cores = min(contender.concurrency, os.cpu_count() or 1)
    return contender.best / (cores * 1000 / work_ms)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def rate_table(title: str, rows: dict[str, dict[int, Throughput]], reference: str) -> str:
    headers = ["contender"]
    headers += [f"c={c} jobs/s" for c in CONCURRENCIES]
    headers += [f"sandq / it c={c}" for c in CONCURRENCIES]
    headers += ["spread"]
    body = []
    for name, by_c in rows.items():
        line = [name] + [by_c[c].cell(short=i > 0) for i, c in enumerate(CONCURRENCIES)]
        line += [ratio(rows[reference][c].best, by_c[c].best) for c in CONCURRENCIES]
        line += [" / ".join(spread(by_c[c]) for c in CONCURRENCIES)]
        body.append(line)
    return f"\n{title}\n" + table(headers, body)


def cpu_table(rows: dict[str, dict[int, Throughput]]) -> str:
    """The worker's CPU (all its processes) and Redis's CPU per job, median of rounds, per concurrency."""

    def cells(by_c: dict[int, Throughput], values: Callable[[Throughput], list[float]]) -> str:
        parts = []
        for c in CONCURRENCIES:
            numbers = values(by_c[c]) if by_c[c].error is None else []
            parts.append(f"{statistics.median(numbers):,.0f}" if numbers else "-")
        return " / ".join(parts)

    levels = "/".join(map(str, CONCURRENCIES))
    headers = ["contender", f"worker CPU us/job (c={levels})", f"Redis CPU us/job (c={levels})"]
    body = [
        [name, cells(by_c, lambda t: t.cpu_us), cells(by_c, lambda t: t.server_us)]
        for name, by_c in rows.items()
        if not any(by_c[c].missing for c in CONCURRENCIES)
    ]
    return table(headers, body)


def startup_table(rows: dict[str, dict[int, Throughput]]) -> str:
    """Start-up and shut-down (median of rounds, ms) and the launch-to-exit rate (best), per concurrency."""

    def cells(by_c: dict[int, Throughput], values: Callable[[Throughput], str]) -> str:
        return " / ".join(values(by_c[c]) if by_c[c].error is None else "FAILED" for c in CONCURRENCIES)

    levels = "/".join(map(str, CONCURRENCIES))
    headers = [
        "contender",
        f"start-up ms (c={levels})",
        f"shut-down ms (c={levels})",
        f"jobs/s launch-to-exit (c={levels})",
    ]
    body = []
    for name, by_c in rows.items():
        if any(by_c[c].missing for c in CONCURRENCIES):
            continue
        body.append(
            [
                name,
                cells(by_c, lambda t: millis(t.startups)),
                cells(by_c, lambda t: millis(t.shutdowns)),
                cells(by_c, lambda t: f"{max(t.walls):,.0f}" if t.walls else "-"),
            ]
        )
    return table(headers, body)


# --- the run --------------------------------------------------------------------------------------


def make(name: str, concurrency: int, fn: Callable[..., Sample], *head: Any) -> Throughput:
    contender = Throughput(name, run=lambda: (0, 1.0), concurrency=concurrency)
    contender.run = functools.partial(fn, *head, contender)
    return contender


def missing(name: str, concurrency: int, reason: str) -> Throughput:
    return Throughput(name, run=lambda: (0, 1.0), concurrency=concurrency, error=reason, missing=reason)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "")
    if args.rounds is None:
        args.rounds = 2 if args.quick else 3
    warnings.simplefilter("ignore")  # bullmq may warn (e.g. about the eviction policy)
    started = time.perf_counter()
    with setup(args, "throughput") as settings:
        failed = run(settings)
    print(f"({time.perf_counter() - started:.0f} s in all)")
    # Goals missed are reported, not an error; a contender that failed (hung, wrong result) is.
    sys.exit(1 if failed else 0)


def run(settings: Settings) -> bool:
    print("sandq throughput benchmark: jobs processed per second, sandq vs BullMQ workers")
    print(
        f"  {datetime.date.today().isoformat()}  Python {platform.python_version()} "
        f"({platform.python_implementation()})  Redis {settings.redis_version} ({settings.redis_origin})  "
        f"{os.cpu_count()} CPU(s)"
    )
    print(
        f"  {'quick' if settings.quick else 'full'} run: best of {settings.rounds} round(s), "
        "contenders alternating, a fixed number of jobs per measurement"
    )
    quick = settings.quick
    noop_total = NOOP_JOBS_QUICK if quick else NOOP_JOBS
    cpu_total = CPU_JOBS_QUICK if quick else CPU_JOBS
    samples = KILL_SAMPLES_QUICK if quick else KILL_SAMPLES

    print(f"  load average at start: {load()} (other processes on this machine skew the CPU-bound figures)")
    modules, node_note = install_node()
    work = calibrate_python()
    print(f"  CPU-bound work: burn({work.n:,}) takes {work.ms:.2f} ms here in Python (best of 7)")
    node_missing: str | None = node_note if modules is None else None
    node_cpu_missing = node_missing
    if modules is not None:
        print(
            f"  Node {subprocess.check_output(['node', '--version'], text=True).strip()}, bullmq {node_note}"
        )
        calibrated = calibrate_node(work)
        if isinstance(calibrated, str):
            node_cpu_missing = calibrated
            print(f"  Node CPU-bound work {calibrated}")
        else:
            work = calibrated
            print(
                f"  CPU-bound work in JavaScript: burn({work.n_js:,}) takes {work.ms_js:.2f} ms (best of 7)"
            )
    else:
        print(f"  Node contenders {node_note}")
    print(
        f"  jobs per measurement: {noop_total:,} no-op, {cpu_total:,} CPU-bound; "
        f"concurrency {', '.join(map(str, CONCURRENCIES))}; {os.cpu_count()} CPU(s)"
    )

    noop = Workload("noop", noop_total, work)
    cpu = Workload("cpu", cpu_total, work)
    noop_rows: dict[str, dict[int, Throughput]] = {
        SANDQ: {},
        BULLMQ: {},
        NODE_SANDBOXED: {},
        NODE_INPROCESS: {},
    }
    cpu_rows: dict[str, dict[int, Throughput]] = {SANDQ: {}, BULLMQ: {}, NODE_SANDBOXED: {}}
    for workload, rows in ((noop, noop_rows), (cpu, cpu_rows)):
        for c in CONCURRENCIES:
            rows[SANDQ][c] = make(SANDQ, c, sandq_run, settings, workload)
            rows[BULLMQ][c] = make(BULLMQ, c, bullmq_run, settings, workload)
            absent = node_missing if workload.kind == "noop" else node_cpu_missing
            if absent is None:
                assert modules is not None
                rows[NODE_SANDBOXED][c] = make(NODE_SANDBOXED, c, node_run, settings, workload, modules, True)
            else:
                rows[NODE_SANDBOXED][c] = missing(NODE_SANDBOXED, c, absent)
            if NODE_INPROCESS in rows:
                if node_missing is None:
                    rows[NODE_INPROCESS][c] = make(
                        NODE_INPROCESS, c, node_run, settings, workload, modules, False
                    )
                else:
                    rows[NODE_INPROCESS][c] = missing(NODE_INPROCESS, c, node_missing)
            label = f"{workload.kind} jobs, concurrency {c} ({workload.total:,} jobs)"
            run_rounds(label, [rows[name][c] for name in rows], settings.rounds)

    print("\nsandq kill and respawn", end=" ", flush=True)
    kills = [kill_respawn(settings, samples, None)]
    if importlib.util.find_spec("numpy") is not None:
        kills.append(kill_respawn(settings, samples, "numpy"))
    else:
        kills.append(KillRespawn("--preload numpy", skipped="not measured: numpy is not installed here"))
    print()

    # --- tables ---
    print(
        rate_table(
            "no-op jobs: jobs/s, first processedOn to last finishedOn (best of rounds)", noop_rows, SANDQ
        )
    )
    print(
        "\nno-op jobs: start-up (launch to first processedOn) and shut-down (last finishedOn to exit;"
        "\nin-process: to the end of close()), median of rounds; jobs/s from launch to exit, best of rounds"
    )
    print(startup_table(noop_rows))
    print(
        "\nno-op jobs: CPU time per job, median of rounds. Worker: its process and every process under it"
        "\n(getrusage), less the CPU of one launch on an empty queue (start-up and shut-down); Redis: INFO"
        "\ncpu, server-wide, so exact on the private server only"
    )
    print(cpu_table(noop_rows))

    print(
        rate_table(
            "CPU-bound jobs: jobs/s, first processedOn to last finishedOn (best of rounds)", cpu_rows, SANDQ
        )
    )
    cores = os.cpu_count() or 1
    body = []
    for name, by_c in cpu_rows.items():
        work_ms = work.ms_js if name.startswith("Node") else work.ms
        body.append(
            [name]
            + [
                by_c[c].cell(short=True) if by_c[c].missing else percent(efficiency(by_c[c], work_ms))
                for c in CONCURRENCIES
            ]
        )
    print(
        f"\nCPU-bound efficiency: jobs/s / (min(c, {cores} CPUs) x 1000 / work ms); work = "
        f"{work.ms:.2f} ms (Python)" + (f", {work.ms_js:.2f} ms (JavaScript)" if work.ms_js else "")
    )
    print(table(["contender", *(f"c={c}" for c in CONCURRENCIES)], body))

    print(
        f"\nsandq kill and respawn (concurrency 1; job timeout {KILL_TIMEOUT_MS} ms, --kill-grace "
        f"{KILL_GRACE_MS}ms; {samples} samples each)"
    )
    kill_body = []
    for k in kills:
        if k.error is not None or k.skipped is not None:
            kill_body.append([k.label, k.skipped or "FAILED", "", "", "", ""])
            continue
        kill_body.append(
            [
                k.label,
                millis(k.excess_ms),
                f"{max(k.excess_ms):,.0f}",
                millis(k.respawn_ms),
                f"{max(k.respawn_ms):,.0f}",
                f"{k.prefetched} of {len(k.respawn_ms)}",
            ]
        )
    print(
        table(
            [
                "child",
                "kill: ms past deadline+grace (median)",
                "(max)",
                "respawn ms (median)",
                "(max)",
                "next job fetched ahead",
            ],
            kill_body,
        )
    )
    print(
        "  (kill: the killed job's finishedOn - (processedOn + timeout + grace). respawn: from that"
        "\n   finishedOn to the next job's start in the fresh child, as the job itself reports it;"
        "\n   'fetched ahead': next jobs whose processedOn predates the kill, so unusable for this)"
    )
    for k in kills:
        if k.error is not None:
            print(f"  {k.label}: {k.error}")

    # --- goals ---
    goals = []
    for c in CONCURRENCIES:
        value = quotient(noop_rows[SANDQ][c].best, noop_rows[BULLMQ][c].best)
        goals.append(
            [
                f"no-op c={c}: >= {NOOP_BULLMQ_GOAL:g}x bullmq PyPI",
                ratio(noop_rows[SANDQ][c].best, noop_rows[BULLMQ][c].best),
                verdict(value, NOOP_BULLMQ_GOAL),
            ]
        )
    for c in CONCURRENCIES:
        node = noop_rows[NODE_SANDBOXED][c]
        value = quotient(noop_rows[SANDQ][c].best, node.best)
        goals.append(
            [
                f"no-op c={c}: >= {NOOP_NODE_GOAL:g}x Node sandboxed",
                ratio(noop_rows[SANDQ][c].best, node.best),
                node.missing if node.missing else verdict(value, NOOP_NODE_GOAL),
            ]
        )
    for c in CONCURRENCIES:
        value = efficiency(cpu_rows[SANDQ][c], work.ms)
        goals.append(
            [f"CPU-bound c={c}: >= {CPU_GOAL:.0%} of the cores", percent(value), verdict(value, CPU_GOAL)]
        )
    numpy_run = kills[-1]
    respawn = statistics.median(numpy_run.respawn_ms) if numpy_run.respawn_ms else None
    goals.append(
        [
            f"respawn ({numpy_run.label}, median) < {RESPAWN_GOAL_MS:g} ms",
            "-" if respawn is None else f"{respawn:.0f} ms",
            verdict_ms(respawn, respawn is not None and respawn < RESPAWN_GOAL_MS),
        ]
    )
    excess = [e for k in kills for e in k.excess_ms]
    worst = max(excess) if excess else None
    goals.append(
        [
            f"kill within {KILL_GOAL_MS:g} ms of deadline + grace (max)",
            "-" if worst is None else f"{worst:.0f} ms",
            verdict_ms(worst, worst is not None and worst <= KILL_GOAL_MS),
        ]
    )
    print(f"\nload average at the end: {load()}")
    print("\ngoals (sandq)")
    print(table(["goal", "measured", "verdict"], goals))
    print(
        "\n(every measurement checked: all jobs completed, none failed, each return value as expected;"
        "\n kill test: each spinning job failed with a timeout, each next job completed)"
    )

    contenders = [c for rows in (noop_rows, cpu_rows) for by_c in rows.values() for c in by_c.values()]
    return any(c.error is not None and c.missing is None for c in contenders) or any(
        k.error is not None for k in kills
    )


if __name__ == "__main__":
    main()
