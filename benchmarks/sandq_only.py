"""The suite's two sandq-only workloads: flat cost under a deep queue, and kill and respawn.

Not a script; ``suite.py`` (and ``throughput.py``, for the kill test) import it.

**Flat cost.** A queue holds ``size`` waiting no-op jobs (the *backlog*, added in bulk once). Each
measurement adds a fixed number of *head* jobs in front of the backlog (LIFO adds, which the worker
takes next), runs ``sandq run`` on the queue (not ``--burst``: it would drain the backlog too) until
every head job has completed, then stops it with SIGTERM. The figure is no-op jobs/s from the first head
job's start to the last one's (each returns its start time), and the supervisor's peak RSS (psutil,
sampled while it runs; the ``sandq run`` process itself, not its zygote or children). Between
measurements the completed jobs are cleaned away and the backlog is topped up to exactly ``size``, so
every measurement of a size starts from the same queue. If per-job cost or memory grew with the
queue's length, the deepest queue would show it.

**Kill and respawn.** One ``sandq run --concurrency 1 --kill-grace 200ms`` over pairs of jobs: a job
with ``timeout=300`` (ms) whose processor spins without looking at its token, then a no-op job that
returns the wall-clock time it started. *Kill*: the spinning job's ``finishedOn`` - (``processedOn`` +
timeout + grace), how long after the kill was due the failure was recorded. *Respawn*: from that
``finishedOn`` to the start of the next job in the fresh child (forked from the zygote, with numpy
preloaded when asked).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis

from harness import LIMITS, BenchmarkError, Settings, check, delete_keys
from sandq import SyncQueue

BENCH_DIR = pathlib.Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DRIVERS = BENCH_DIR / "drivers"

BATCH = 1_000  # jobs per add_bulk call
FLAT_SIZES, FLAT_SIZES_QUICK = (1_000, 100_000, 1_000_000), (1_000, 10_000, 100_000)
FLAT_HEAD, FLAT_HEAD_QUICK = 5_000, 1_000  # head jobs drained per measurement
FLAT_CONCURRENCY = 2
SAMPLE_EVERY = 0.01  # seconds between RSS samples (and progress checks)

KILL_TIMEOUT_MS = 300  # the spinning job's `timeout` option
KILL_GRACE_MS = 200  # sandq run --kill-grace


def sandq_command() -> list[str]:
    """The ``sandq`` console script next to this interpreter (``python -m sandq.cli`` without one)."""
    script = pathlib.Path(sys.executable).parent / "sandq"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sandq.cli"]


def _environment() -> dict[str, str]:
    """``sandq_tasks`` (and its ``common`` and ``processors``) importable by the worker's children."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(DRIVERS), str(BENCH_DIR), str(REPO)])}


# --- flat cost ------------------------------------------------------------------------------------


class Backlog:
    """A queue of ``size`` waiting no-op jobs under ``settings.prefix``; :meth:`measure` drains
    ``head`` jobs added in front of them. Delete it with :meth:`delete`."""

    def __init__(self, settings: Settings, size: int) -> None:
        self.url, self.prefix, self.size = settings.url, settings.prefix, size
        self.name = f"flat{size}-{uuid.uuid4().hex[:10]}"
        self.base = f"{self.prefix}:{self.name}:"
        self.client = redis.Redis.from_url(self.url)

    def _add(self, queue: SyncQueue, count: int, name: str, lifo: bool) -> list[str]:
        ids: list[str] = []
        options = {"lifo": True} if lifo else {}
        for low in range(0, count, BATCH):
            batch = [(name, {"i": i}, options) for i in range(low, min(count, low + BATCH))]
            ids += [job.id for job in queue.add_bulk(batch)]
        return ids

    def top_up(self) -> int:
        """Add backlog jobs (at the tail) until exactly ``size`` are waiting; how many were waiting."""
        waiting = int(self.client.llen(self.base + "wait"))
        check(waiting <= self.size, f"flat cost: {waiting} jobs waiting, more than {self.size}")
        if waiting < self.size:
            with SyncQueue(self.name, self.url, prefix=self.prefix) as queue:
                self._add(queue, self.size - waiting, "backlog", lifo=False)
        return waiting

    def measure(self, head: int, concurrency: int) -> dict[str, float]:
        """One measurement: ``{"rate": jobs/s, "rss_mib": peak supervisor RSS, "waiting": backlog}``."""
        self.top_up()
        with SyncQueue(self.name, self.url, prefix=self.prefix) as queue:
            ids = self._add(queue, head, "head", lifo=True)
        waiting = int(self.client.llen(self.base + "wait")) - head
        command = [
            *sandq_command(), "run", "sandq_tasks:job", "--queue", self.name, "--prefix", self.prefix,
            "--redis", self.url, "--concurrency", str(concurrency), "--log-level", "error",
        ]  # fmt: skip
        with tempfile.TemporaryFile() as output:
            process = subprocess.Popen(
                command, cwd=REPO, env=_environment(), stdout=output, stderr=subprocess.STDOUT
            )
            try:
                peak = self._watch(process, ids)
                process.send_signal(signal.SIGTERM)
                code = process.wait(30)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            if code != 0:
                output.seek(0)
                tail = output.read().decode(errors="replace").strip()[-600:]
                raise BenchmarkError(f"sandq run exited with {code}: {tail}")
        starts = self._starts(ids)
        check(max(starts) > min(starts), "flat cost: every head job started at the same instant")
        with SyncQueue(self.name, self.url, prefix=self.prefix) as queue:
            failed = queue.get_failed(0, 0)
            check(not failed, f"flat cost: job {failed[0].id if failed else ''} failed")
            queue.clean(0, 0, "completed")
        return {
            "rate": (head - 1) / (max(starts) - min(starts)),
            "rss_mib": peak / 2**20,
            "waiting": float(waiting),
        }

    def _watch(self, process: subprocess.Popen[bytes], ids: list[str]) -> int:
        """Sample the supervisor's RSS until every head job has completed; the peak, in bytes."""
        supervisor = psutil.Process(process.pid)
        peak, done, moved = 0, -1, time.monotonic()
        while True:
            with contextlib.suppress(psutil.NoSuchProcess):
                peak = max(peak, supervisor.memory_info().rss)
            if process.poll() is not None:
                raise BenchmarkError(f"sandq run exited with {process.returncode} before the head drained")
            completed = int(self.client.zcard(self.base + "completed"))
            if completed >= len(ids):
                with self.client.pipeline(transaction=False) as pipe:
                    for job_id in ids:
                        pipe.zscore(self.base + "completed", job_id)
                    if all(score is not None for score in pipe.execute()):
                        return peak
            if completed != done:
                done, moved = completed, time.monotonic()
            elif time.monotonic() - moved > LIMITS.timeout:
                raise BenchmarkError(f"flat cost: no job completed within {LIMITS.timeout:g}s (hung?)")
            time.sleep(SAMPLE_EVERY)

    def _starts(self, ids: list[str]) -> list[float]:
        """The head jobs' start times, from their return values (each checked)."""
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(self.base + job_id, ["data", "returnvalue"])
            rows = pipe.execute()
        starts = []
        for job_id, (data, value) in zip(ids, rows, strict=True):
            check(value is not None, f"flat cost: job {job_id} has no return value")
            returned: Any = json.loads(value)
            index = json.loads(data)["i"]
            check(
                isinstance(returned, dict) and returned.get("i") == index and "t" in returned,
                f"flat cost: job {job_id} returned {returned!r}",
            )
            starts.append(float(returned["t"]))
        return starts

    def delete(self) -> None:
        self.client.close()
        delete_keys(self.url, self.base + "*")
        delete_keys(self.url, f"{self.prefix}:{self.name}")


# --- kill and respawn -----------------------------------------------------------------------------


@dataclass
class KillRespawn:
    label: str
    excess_ms: list[float] = field(default_factory=list)
    respawn_ms: list[float] = field(default_factory=list)
    prefetched: int = 0  # next jobs whose processedOn came before the kill (fetched ahead)
    error: str | None = None
    skipped: str | None = None

    def summary(self) -> dict[str, float]:
        """Median and worst of each, in ms (raises BenchmarkError when the run failed)."""
        if self.error is not None:
            raise BenchmarkError(self.error)
        return {
            "kill_ms": statistics.median(self.excess_ms),
            "kill_max_ms": max(self.excess_ms),
            "respawn_ms": statistics.median(self.respawn_ms),
            "respawn_max_ms": max(self.respawn_ms),
        }


def kill_respawn(
    settings: Settings, samples: int, preload: str | None, sandq: list[str] | None = None
) -> KillRespawn:
    """One ``sandq run`` at concurrency 1 over ``samples`` pairs of jobs: a spinning job with a
    ``timeout`` (killed after the grace), then a no-op job (the first job of the fresh child).
    ``sandq``: the command to run (default :func:`sandq_command`), e.g. from an environment with
    numpy for ``preload="numpy"``."""
    label = f"--preload {preload}" if preload else "no preload"
    outcome = KillRespawn(label)
    name = f"sandq-kill-{uuid.uuid4().hex[:10]}"
    base = f"{settings.prefix}:{name}:"
    try:
        with SyncQueue(name, settings.url, prefix=settings.prefix) as queue:
            pairs = []
            for k in range(samples):
                spinner = queue.add("spin", {"spin": True, "k": k}, timeout=KILL_TIMEOUT_MS)
                follower = queue.add("next", {"k": k})
                pairs.append((spinner.id, follower.id))
        command = [
            *(sandq or sandq_command()), "run", "benchmarks.processors:spin",
            "--queue", name, "--prefix", settings.prefix, "--concurrency", "1",
            "--redis", settings.url, "--kill-grace", f"{KILL_GRACE_MS}ms",
            "--burst", "--log-level", "error",
        ]  # fmt: skip
        if preload:
            command += ["--preload", preload]
        with tempfile.TemporaryFile() as output:
            budget = samples * (KILL_TIMEOUT_MS + KILL_GRACE_MS) / 1000 + LIMITS.timeout
            try:
                subprocess.run(
                    command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, timeout=budget, check=True
                )
            except subprocess.TimeoutExpired:
                raise BenchmarkError(f"sandq run (kill test) did not end within {budget:g}s") from None
            except subprocess.CalledProcessError as exc:
                output.seek(0)
                tail = output.read().decode(errors="replace").strip()[-800:]
                raise BenchmarkError(f"sandq run (kill test) exited with {exc.returncode}: {tail}") from None
        with redis.Redis.from_url(settings.url) as client:
            for k, (spinner, follower) in enumerate(pairs):
                spun = client.hmget(base + spinner, ["processedOn", "finishedOn", "failedReason"])
                nxt = client.hmget(base + follower, ["processedOn", "returnvalue"])
                check(
                    client.zscore(base + "failed", spinner) is not None,
                    f"kill test: spinning job {spinner} is not failed",
                )
                reason = (spun[2] or b"").decode()
                check("timeout" in reason, f"kill test: job {spinner} failed with {reason!r}")
                check(
                    client.zscore(base + "completed", follower) is not None and nxt[1] is not None,
                    f"kill test: job {follower} after the kill did not complete",
                )
                returned = json.loads(nxt[1] or b"null")
                check(
                    isinstance(returned, dict) and returned.get("k") == k,
                    f"kill test: job {follower} returned {returned!r}",
                )
                processed, finished = int(float(spun[0] or 0)), int(float(spun[1] or 0))
                outcome.excess_ms.append(finished - (processed + KILL_TIMEOUT_MS + KILL_GRACE_MS))
                outcome.respawn_ms.append(returned["started"] - finished)
                if int(float(nxt[0] or 0)) < finished:
                    outcome.prefetched += 1
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        delete_keys(settings.url, base + "*")
    return outcome
