"""Job add throughput: sandq next to the bullmq PyPI client, against one Redis, in one run.

    python benchmarks/add.py [--redis URL] [--quick]

* sequential single adds: one ``add`` awaited (or called) after another, for a fixed time: sandq's
  ``Queue`` under trio (and under asyncio), sandq's ``SyncQueue``, and bullmq's ``Queue`` (asyncio);
* concurrent single adds: 50 tasks adding to one shared queue object for a fixed time;
* bulk adds: batches of 1,000 jobs, 50,000 jobs in all (10,000 with --quick): sandq ``add_bulk`` and
  bullmq ``addBulk``.

Every measurement uses a fresh queue name, small JSON data ({"i": i, "payload": "x" * 32}), and ends
with a check that the queue's wait list holds exactly the jobs added and that the last job's data is
what was sent; its keys are then deleted. The tables give the best of N rounds (contenders
alternating), sandq/bullmq ratios, and sandq's goals: single adds >= 3x bullmq, bulk >= 60,000 jobs/s.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import anyio
import redis

from harness import (
    Contender,
    Settings,
    best,
    check,
    describe,
    parse_args,
    ratio,
    redis_usec,
    run_anyio,
    run_asyncio,
    run_rounds,
    setup,
    spread,
    table,
)
from sandq import Queue, SyncQueue
from sandq.keys import QUEUE_KEY_SUFFIXES

CONCURRENCY = 50
BULK_BATCH = 1_000
BULK_TOTAL = 50_000
BULK_TOTAL_QUICK = 10_000
WARMUP = 20  # adds before the clock starts: connect, load the scripts
PAYLOAD = "x" * 32

SINGLE_GOAL = 3.0  # sandq single adds / bullmq single adds
BULK_GOAL = 60_000.0  # sandq add_bulk, jobs/s

Measurement = tuple[int, float]
Sample = tuple[int, float, float]  # jobs, seconds, Redis microseconds per job


def job_data(i: int) -> dict[str, Any]:
    return {"i": i, "payload": PAYLOAD}


class Target:
    """A fresh queue for one measurement, its checks and its clean-up."""

    def __init__(self, url: str, prefix: str, label: str) -> None:
        self.url = url
        self.prefix = prefix
        self.name = f"{label}-{uuid.uuid4().hex[:10]}"
        self.base = f"{prefix}:{self.name}:"
        self._script_usec = redis_usec(url, "evalsha")[1]

    def verify_and_delete(self, added: int, last_id: str, last_index: int) -> float:
        """Check that the wait list holds ``added`` jobs and the last job's data is right, delete the
        queue's keys (outside the timed part, so every round starts from the same memory), and
        return the microseconds Redis spent in script calls per job added."""
        server_us = (redis_usec(self.url, "evalsha")[1] - self._script_usec) / added
        with redis.Redis.from_url(self.url) as client:
            waiting = int(client.llen(self.base + "wait"))
            counter = int(client.get(self.base + "id") or 0)
            stored = client.hget(self.base + last_id, "data")
            try:
                check(waiting == added, f"{self.name}: {waiting} jobs waiting, {added} added")
                check(counter == added, f"{self.name}: id counter is {counter}, {added} added")
                check(
                    stored is not None and json.loads(stored) == job_data(last_index),
                    f"{self.name}: job {last_id} holds {stored!r}",
                )
            finally:
                keys = [self.base + suffix for suffix in QUEUE_KEY_SUFFIXES]
                keys += [self.base + str(n) for n in range(1, counter + 1)]
                for start in range(0, len(keys), 10_000):
                    client.unlink(*keys[start : start + 10_000])
        return server_us


# --- sequential single adds --------------------------------------------------------------------


async def _sandq_sequential(target: Target, duration: float) -> tuple[Measurement, str, int]:
    async with Queue(target.name, target.url, prefix=target.prefix) as queue:
        for i in range(WARMUP):
            await queue.add("bench", job_data(i))
        i = WARMUP
        start = time.perf_counter()
        deadline = start + duration
        while True:
            for _ in range(50):
                job = await queue.add("bench", job_data(i))
                i += 1
            now = time.perf_counter()
            if now >= deadline:
                return (i - WARMUP, now - start), job.id, i - 1


def sandq_sequential(backend: str, url: str, prefix: str, duration: float) -> Sample:
    target = Target(url, prefix, "sandq-seq")
    (count, elapsed), last_id, last = run_anyio(backend, _sandq_sequential, target, duration)
    return count, elapsed, target.verify_and_delete(last + 1, last_id, last)


def sync_sequential(url: str, prefix: str, duration: float) -> Sample:
    target = Target(url, prefix, "sandq-sync-seq")
    with SyncQueue(target.name, url, prefix=prefix) as queue:
        for i in range(WARMUP):
            queue.add("bench", job_data(i))
        i = WARMUP
        start = time.perf_counter()
        deadline = start + duration
        while True:
            for _ in range(50):
                job = queue.add("bench", job_data(i))
                i += 1
            now = time.perf_counter()
            if now >= deadline:
                break
    return i - WARMUP, now - start, target.verify_and_delete(i, job.id, i - 1)


def bullmq_queue(target: Target) -> Any:
    from bullmq import Queue as BullQueue

    return BullQueue(target.name, {"connection": target.url, "prefix": target.prefix})


async def _bullmq_sequential(target: Target, duration: float) -> tuple[Measurement, str, int]:
    queue = bullmq_queue(target)
    try:
        for i in range(WARMUP):
            await queue.add("bench", job_data(i))
        i = WARMUP
        start = time.perf_counter()
        deadline = start + duration
        while True:
            for _ in range(50):
                job = await queue.add("bench", job_data(i))
                i += 1
            now = time.perf_counter()
            if now >= deadline:
                return (i - WARMUP, now - start), str(job.id), i - 1
    finally:
        await queue.close()


def bullmq_sequential(url: str, prefix: str, duration: float) -> Sample:
    target = Target(url, prefix, "bullmq-seq")
    (count, elapsed), last_id, last = run_asyncio(_bullmq_sequential, target, duration)
    return count, elapsed, target.verify_and_delete(last + 1, last_id, last)


# --- concurrent single adds --------------------------------------------------------------------
#
# Task t adds jobs t, t + 50, t + 100, ...: the data indices stay distinct, and the check at the end
# looks at the job with the highest id, whose data index is only known to the task that added it.


async def _sandq_concurrent(target: Target, duration: float) -> tuple[Measurement, str, int]:
    async with Queue(target.name, target.url, prefix=target.prefix) as queue:
        for i in range(WARMUP):
            await queue.add("bench", job_data(-1 - i))
        counts = [0] * CONCURRENCY
        last: dict[str, int] = {}
        start = time.perf_counter()
        deadline = start + duration

        async def worker(task: int) -> None:
            n = task
            while time.perf_counter() < deadline:
                for _ in range(5):
                    job = await queue.add("bench", job_data(n))
                    last[job.id] = n
                    n += CONCURRENCY
                counts[task] += 5

        async with anyio.create_task_group() as group:
            for task in range(CONCURRENCY):
                group.start_soon(worker, task)
        elapsed = time.perf_counter() - start
        last_id = max(last, key=int)
        return (sum(counts), elapsed), last_id, last[last_id]


def sandq_concurrent(backend: str, url: str, prefix: str, duration: float) -> Sample:
    target = Target(url, prefix, "sandq-conc")
    (count, elapsed), last_id, last = run_anyio(backend, _sandq_concurrent, target, duration)
    return count, elapsed, target.verify_and_delete(count + WARMUP, last_id, last)


async def _bullmq_concurrent(target: Target, duration: float) -> tuple[Measurement, str, int]:
    queue = bullmq_queue(target)
    try:
        for i in range(WARMUP):
            await queue.add("bench", job_data(-1 - i))
        counts = [0] * CONCURRENCY
        last: dict[str, int] = {}
        start = time.perf_counter()
        deadline = start + duration

        async def worker(task: int) -> None:
            n = task
            while time.perf_counter() < deadline:
                for _ in range(5):
                    job = await queue.add("bench", job_data(n))
                    last[str(job.id)] = n
                    n += CONCURRENCY
                counts[task] += 5

        await asyncio.gather(*(worker(task) for task in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
        last_id = max(last, key=int)
        return (sum(counts), elapsed), last_id, last[last_id]
    finally:
        await queue.close()


def bullmq_concurrent(url: str, prefix: str, duration: float) -> Sample:
    target = Target(url, prefix, "bullmq-conc")
    (count, elapsed), last_id, last = run_asyncio(_bullmq_concurrent, target, duration)
    return count, elapsed, target.verify_and_delete(count + WARMUP, last_id, last)


# --- bulk adds ---------------------------------------------------------------------------------


async def _sandq_bulk(target: Target, total: int) -> tuple[Measurement, str]:
    async with Queue(target.name, target.url, prefix=target.prefix) as queue:
        await queue.add_bulk([("bench", job_data(i)) for i in range(WARMUP)])
        start = time.perf_counter()
        for first in range(WARMUP, WARMUP + total, BULK_BATCH):
            jobs = await queue.add_bulk([("bench", job_data(i)) for i in range(first, first + BULK_BATCH)])
        elapsed = time.perf_counter() - start
        check(len(jobs) == BULK_BATCH, f"add_bulk returned {len(jobs)} jobs")
        return (total, elapsed), jobs[-1].id


def sandq_bulk(backend: str, url: str, prefix: str, total: int) -> Sample:
    target = Target(url, prefix, "sandq-bulk")
    (count, elapsed), last_id = run_anyio(backend, _sandq_bulk, target, total)
    return count, elapsed, target.verify_and_delete(total + WARMUP, last_id, total + WARMUP - 1)


async def _bullmq_bulk(target: Target, total: int) -> tuple[Measurement, str]:
    queue = bullmq_queue(target)
    try:
        await queue.addBulk([{"name": "bench", "data": job_data(i)} for i in range(WARMUP)])
        start = time.perf_counter()
        for first in range(WARMUP, WARMUP + total, BULK_BATCH):
            jobs = await queue.addBulk(
                [{"name": "bench", "data": job_data(i)} for i in range(first, first + BULK_BATCH)]
            )
        elapsed = time.perf_counter() - start
        check(len(jobs) == BULK_BATCH, f"addBulk returned {len(jobs)} jobs")
        return (total, elapsed), str(jobs[-1].id)
    finally:
        await queue.close()


def bullmq_bulk(url: str, prefix: str, total: int) -> Sample:
    target = Target(url, prefix, "bullmq-bulk")
    (count, elapsed), last_id = run_asyncio(_bullmq_bulk, target, total)
    return count, elapsed, target.verify_and_delete(total + WARMUP, last_id, total + WARMUP - 1)


# --- the run -----------------------------------------------------------------------------------

SANDQ_TRIO = "sandq Queue (trio)"
SANDQ_ASYNCIO = "sandq Queue (asyncio)"
SANDQ_SYNC = "sandq SyncQueue"
BULLMQ = "bullmq Queue (asyncio)"


def micros(contender: Contender) -> str:
    value = contender.server_us_per_op
    return "-" if value is None else f"{value:.1f}"


def ceiling(contender: Contender) -> str:
    value = contender.server_us_per_op
    return "-" if not value else f"{1e6 / value:,.0f} jobs/s"


def quotient(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def verdict(value: float | None, goal: float) -> str:
    if value is None:
        return "not measured (a contender failed)"
    return "PASS" if value >= goal else f"short of goal ({value / goal:.0%} of it)"


def main() -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "")
    # bullmq may warn (e.g. about the server's eviction policy); a benchmark need not stop for it.
    warnings.simplefilter("ignore")
    with setup(args, "add") as settings:
        contenders = run(settings)
    # Goals missed are reported, not an error; a contender that failed (hung, wrong result) is.
    sys.exit(1 if any(c.error is not None for c in contenders) else 0)


def run(settings: Settings) -> list[Contender]:
    describe(settings, "sandq add benchmark: job add throughput, sandq vs bullmq (PyPI)")
    url, prefix, duration, rounds = settings.url, settings.prefix, settings.duration, settings.rounds
    total = BULK_TOTAL_QUICK if settings.quick else BULK_TOTAL
    print(
        f"  data {json.dumps(job_data(0))}; {CONCURRENCY} concurrent tasks; "
        f"bulk: {total:,} jobs in batches of {BULK_BATCH:,}"
    )

    def bind(fn: Callable[..., Sample], *head: Any) -> Callable[[], Sample]:
        return functools.partial(fn, *head, url, prefix, duration)

    def bind_bulk(fn: Callable[..., Sample], *head: Any) -> Callable[[], Sample]:
        return functools.partial(fn, *head, url, prefix, total)

    sequential = [
        Contender(SANDQ_TRIO, bind(sandq_sequential, "trio")),
        Contender(SANDQ_ASYNCIO, bind(sandq_sequential, "asyncio")),
        Contender(SANDQ_SYNC, bind(sync_sequential)),
        Contender(BULLMQ, bind(bullmq_sequential)),
    ]
    concurrent = [
        Contender(SANDQ_TRIO, bind(sandq_concurrent, "trio")),
        Contender(SANDQ_ASYNCIO, bind(sandq_concurrent, "asyncio")),
        Contender(BULLMQ, bind(bullmq_concurrent)),
    ]
    bulk = [
        Contender(SANDQ_TRIO, bind_bulk(sandq_bulk, "trio")),
        Contender(SANDQ_ASYNCIO, bind_bulk(sandq_bulk, "asyncio")),
        Contender(BULLMQ, bind_bulk(bullmq_bulk)),
    ]
    run_rounds("sequential single adds", sequential, rounds)
    run_rounds(f"concurrent single adds ({CONCURRENCY} tasks, one queue object)", concurrent, rounds)
    run_rounds(f"bulk adds ({total:,} jobs in batches of {BULK_BATCH:,})", bulk, rounds)

    concurrent_by_name = {c.name: c for c in concurrent}
    seq_bull, conc_bull = sequential[-1].best, concurrent[-1].best
    rows = []
    for seq in sequential:
        conc = concurrent_by_name.get(seq.name)
        rows.append(
            [
                seq.name,
                best(seq),
                best(conc),
                ratio(seq.best, seq_bull),
                ratio(conc.best if conc is not None else None, conc_bull),
                micros(seq),
                f"{spread(seq)} / {spread(conc)}",
            ]
        )
    print("\nsingle adds (jobs/s, best of rounds; ratio = contender / bullmq)")
    print(
        table(
            [
                "contender",
                "sequential jobs/s",
                f"concurrent ({CONCURRENCY}) jobs/s",
                "/ bullmq (seq)",
                "/ bullmq (conc)",
                "Redis us/job",
                "spread seq/conc",
            ],
            rows,
        )
    )
    bulk_bull = bulk[-1].best
    print(f"\nbulk adds, batches of {BULK_BATCH:,} ({total:,} jobs per measurement)")
    print(
        table(
            ["contender", "jobs/s", "/ bullmq", "Redis us/job", "Redis-bound ceiling", "spread"],
            [[c.name, best(c), ratio(c.best, bulk_bull), micros(c), ceiling(c), spread(c)] for c in bulk],
        )
    )

    seq_ratio = quotient(sequential[0].best, seq_bull)
    conc_ratio = quotient(concurrent[0].best, conc_bull)
    print("\ngoals (sandq Queue under trio)")
    print(
        table(
            ["goal", "measured", "verdict"],
            [
                [
                    f"sequential single adds >= {SINGLE_GOAL:g}x bullmq",
                    ratio(sequential[0].best, seq_bull),
                    verdict(seq_ratio, SINGLE_GOAL),
                ],
                [
                    f"concurrent single adds >= {SINGLE_GOAL:g}x bullmq",
                    ratio(concurrent[0].best, conc_bull),
                    verdict(conc_ratio, SINGLE_GOAL),
                ],
                [
                    f"bulk adds >= {BULK_GOAL:,.0f} jobs/s",
                    best(bulk[0]),
                    verdict(bulk[0].best, BULK_GOAL),
                ],
            ],
        )
    )
    print(
        "\n(every measurement checked: wait list length = jobs added, last job's data as sent)"
        "\n(Redis us/job: time Redis spent in the add scripts per job, from INFO commandstats, median of"
        "\n rounds; the ceiling is 1e6 / that: what one batch at a time could reach with a client that"
        "\n cost nothing. Server-wide figures: exact on the private server, rough on a shared one.)"
    )
    return [*sequential, *concurrent, *bulk]


if __name__ == "__main__":
    main()
