"""The arq contender of the benchmark suite (protocol: ``benchmarks/peers.py``).

Runs in the ``arq`` peer's virtualenv. Producer: ``ArqRedis.enqueue_job``, one job at a time (arq has no
bulk add). Worker: an ``arq.Worker`` with ``max_jobs`` = C in this driver's asyncio loop, ``burst`` for a
drain; its job is the coroutine :func:`job` (a cpu job would run inline, blocking the loop, but the suite
asks arq for no-op jobs only). Latency waits with ``Job.result``.

Poll delays: arq's default is 0.5 s for the worker (``Worker(poll_delay=)``) and for ``Job.result``
(``poll_delay=``). The worker looks at its queue once per poll delay and starts at most ``max_jobs`` jobs
per look (about 4 jobs/s with ``max_jobs`` 2 by default), and ``Job.result`` asks Redis once per poll
delay, so the defaults would measure the delays, not arq. A drain's worker polls with no delay (it looks
again as soon as a slot is free; it is never idle until the queue is empty, when a burst worker stops);
for latency, the idle worker and ``Job.result`` poll every LATENCY_POLL_DELAY, which adds up to that
much to each figure (with no delay, the idle worker would keep a CPU busy asking Redis).

Keys: arq names a queue's sorted set after the queue, its health check ``<queue>:health-check``, and a
job's keys ``arq:job:<id>``, ``arq:result:<id>``, ``arq:in-progress:<id>``, ``arq:retry:<id>``; job ids
here are ``<queue>:<i>``, so every key contains the queue name. The driver deletes them all before it
exits, also on a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arq import Worker
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix
from arq.jobs import deserialize_result
from common import check_results, fail, glob_escape, job_result, main

DRAIN_POLL_DELAY = 0.0  # seconds between a worker's looks at its queue (arq's default: 0.5 s)
LATENCY_POLL_DELAY = 0.001  # the same for latency, and Job.result's (arq's default: 0.5 s for both)
LATENCY_LIMIT = 30.0  # seconds one latency job may take
STALL_LIMIT = 30.0  # seconds a drain may go without a job finishing


async def job(ctx: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return job_result(data)


def job_id(spec: dict[str, Any], i: int | str) -> str:
    return f"{spec['queue']}:{i}"


async def delete_keys(pool: ArqRedis, spec: dict[str, Any]) -> None:
    """Deletes the queue's sorted set, its health check key and every key of its jobs."""
    queue = glob_escape(spec["queue"])
    await pool.unlink(spec["queue"])
    patterns = [f"{queue}:*"]
    patterns += [f"{prefix}{queue}:*" for prefix in (job_key_prefix, result_key_prefix)]
    patterns += [f"{prefix}{queue}:*" for prefix in (in_progress_key_prefix, retry_key_prefix)]
    for pattern in patterns:
        cursor = 0
        while True:
            cursor, keys = await pool.scan(cursor, match=pattern, count=1_000)
            if keys:
                await pool.unlink(*keys)
            if cursor == 0:
                break


def run(
    body: Callable[[ArqRedis, dict[str, Any]], Awaitable[dict[str, Any]]],
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The op that runs ``body`` with a connection pool in a fresh asyncio loop, then deletes the keys."""

    async def with_pool(spec: dict[str, Any]) -> dict[str, Any]:
        pool = await create_pool(RedisSettings.from_dsn(spec["redis"]))
        try:
            return await body(pool, spec)
        finally:
            try:
                await delete_keys(pool, spec)
            finally:
                await pool.aclose()

    return lambda spec: asyncio.run(with_pool(spec))


def make_worker(spec: dict[str, Any], *, burst: bool, poll_delay: float) -> Worker:
    return Worker(
        [job],
        queue_name=spec["queue"],
        redis_settings=RedisSettings.from_dsn(spec["redis"]),
        burst=burst,
        max_jobs=spec.get("concurrency", 1),
        poll_delay=poll_delay,
        handle_signals=False,
    )


def versions(spec: dict[str, Any]) -> dict[str, Any]:
    return {"versions": {name: importlib.metadata.version(name) for name in ("arq", "redis")}}


async def enqueue(pool: ArqRedis, spec: dict[str, Any]) -> dict[str, Any]:
    n, queue = spec["n"], spec["queue"]
    if spec["bulk"]:
        return {"unsupported": "arq has no bulk add (enqueue_job adds one job)"}
    await pool.enqueue_job("job", {"i": -1}, _job_id=job_id(spec, "warm-up"), _queue_name=queue)
    start = time.perf_counter()
    for i in range(n):
        await pool.enqueue_job("job", {"i": i}, _job_id=job_id(spec, i), _queue_name=queue)
    seconds = time.perf_counter() - start
    queued = await pool.zcard(queue)
    if queued != n + 1:
        fail(f"{queued} jobs queued after adding {n} and a warm-up job")
    return {"seconds": seconds}


async def drain(pool: ArqRedis, spec: dict[str, Any]) -> dict[str, Any]:
    n, queue = spec["n"], spec["queue"]
    extra = {"n": spec["rounds"]} if spec["kind"] == "cpu" else {}
    for i in range(n):  # untimed
        await pool.enqueue_job("job", {"i": i, **extra}, _job_id=job_id(spec, i), _queue_name=queue)
    queued = await pool.zcard(queue)
    if queued != n:
        fail(f"{queued} jobs queued, not {n}")
    worker = make_worker(spec, burst=True, poll_delay=DRAIN_POLL_DELAY)
    try:
        running = asyncio.ensure_future(worker.async_run())
        seen, moved = -1, time.monotonic()
        while not running.done():
            await asyncio.wait([running], timeout=0.25)
            finished = worker.jobs_complete + worker.jobs_failed
            if finished != seen:
                seen, moved = finished, time.monotonic()
            elif time.monotonic() - moved > STALL_LIMIT:
                fail(f"{finished} of {n} jobs finished; none for {STALL_LIMIT:g}s")
        running.result()
    finally:
        with contextlib.suppress(asyncio.CancelledError):  # the jobs it cancels when a drain is given up
            await worker.close()
    if worker.jobs_failed or worker.jobs_retried:
        fail(f"{worker.jobs_failed} jobs failed, {worker.jobs_retried} retried")
    async with pool.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.get(result_key_prefix + job_id(spec, i))
        stored = await pipe.execute()
    results = []
    for i, raw in enumerate(stored):
        if raw is None:
            fail(f"job {i} has no result")
        outcome = deserialize_result(raw)
        if not outcome.success:
            fail(f"job {i} failed: {outcome.result!r}")
        results.append(outcome.result)
    return check_results(results, spec)


async def latency(pool: ArqRedis, spec: dict[str, Any]) -> dict[str, Any]:
    queue = spec["queue"]
    worker = make_worker(spec, burst=False, poll_delay=LATENCY_POLL_DELAY)
    running = asyncio.ensure_future(worker.async_run())
    active: list[float] = []
    completed: list[float] = []
    try:
        warm = await pool.enqueue_job("job", {"i": -1}, _job_id=job_id(spec, "warm-up"), _queue_name=queue)
        assert warm is not None
        await warm.result(timeout=60, poll_delay=LATENCY_POLL_DELAY)
        for i in range(spec["n"]):
            t0 = time.time()
            added = await pool.enqueue_job(
                "job", {"i": i}, _job_id=job_id(spec, f"latency-{i}"), _queue_name=queue
            )
            if added is None:
                fail(f"latency job {i} was not added (its id exists)")
            result = await added.result(timeout=LATENCY_LIMIT, poll_delay=LATENCY_POLL_DELAY)
            t2 = time.time()
            if not isinstance(result, dict) or result.get("i") != i:
                fail(f"latency job {i} returned {result!r}")
            active.append((result["t"] - t0) * 1000)
            completed.append((t2 - t0) * 1000)
        if running.done():
            running.result()  # the worker stopped early: raise its error
        return {"active_ms": active, "completed_ms": completed}
    finally:
        # Without signal handlers, close() cancels the worker's main task and its job tasks, then
        # gathers them: a job task still finishing its bookkeeping raises CancelledError there.
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await running


if __name__ == "__main__":
    main({"versions": versions, "enqueue": run(enqueue), "drain": run(drain), "latency": run(latency)})
