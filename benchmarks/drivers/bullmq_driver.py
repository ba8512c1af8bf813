"""The bullmq PyPI contender of the benchmark suite (protocol: ``benchmarks/peers.py``).

Runs in the ``bullmq`` peer's virtualenv. Producer: ``bullmq.Queue`` (``add``, ``addBulk``). Worker: a
``bullmq.Worker`` with ``concurrency`` C in this driver's asyncio loop; its processor is a coroutine that
runs the job inline, so a cpu job blocks the loop for its whole run, as a CPU-bound processor written for
this worker does. Latency waits on ``QueueEvents``: this client has no ``Job.waitUntilFinished``, so the
driver does what that method does, a future per job id resolved by the ``completed`` / ``failed`` events.

Every key is under ``bull:<queue>:``; the driver closes what it opened and deletes those keys before it
exits, also on a failure.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio
from bullmq import Queue, QueueEvents, Worker
from common import check_results, fail, glob_escape, job_result, main

BATCH = 1_000
STALL_LIMIT = 30.0  # seconds without a job finishing before a drain is given up
LATENCY_LIMIT = 30.0  # seconds one latency job may take


async def process(job: Any, token: str) -> dict[str, Any]:
    return job_result(job.data)


async def delete_keys(client: redis.asyncio.Redis, queue: str) -> None:
    """Deletes every key of the queue (``bull:<queue>:*``)."""
    cursor = 0
    while True:
        cursor, keys = await client.scan(cursor, match=f"bull:{glob_escape(queue)}:*", count=1_000)
        if keys:
            await client.unlink(*keys)
        if cursor == 0:
            return


def run(
    body: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The op that runs ``body`` in a fresh asyncio loop, then deletes the queue's keys."""

    async def with_cleanup(spec: dict[str, Any]) -> dict[str, Any]:
        client = redis.asyncio.Redis.from_url(spec["redis"])
        try:
            # bullmq's own connections retry a refused connection for minutes: fail at once instead.
            await client.ping()
            try:
                return await body(spec)
            finally:
                await delete_keys(client, spec["queue"])
        finally:
            await client.aclose()

    return lambda spec: asyncio.run(with_cleanup(spec))


def versions(spec: dict[str, Any]) -> dict[str, Any]:
    return {"versions": {name: importlib.metadata.version(name) for name in ("bullmq", "redis")}}


async def enqueue(spec: dict[str, Any]) -> dict[str, Any]:
    n = spec["n"]
    queue = Queue(spec["queue"], {"connection": spec["redis"]})
    try:
        await queue.add("warm-up", {"i": -1})  # connect and load the script first: not part of the adds
        start = time.perf_counter()
        if spec["bulk"]:
            for low in range(0, n, BATCH):
                await queue.addBulk(
                    [{"name": "job", "data": {"i": i}} for i in range(low, min(n, low + BATCH))]
                )
        else:
            for i in range(n):
                await queue.add("job", {"i": i})
        seconds = time.perf_counter() - start
        waiting = await queue.getWaitingCount()
        if waiting != n + 1:
            fail(f"{waiting} jobs waiting after adding {n} and a warm-up job")
        return {"seconds": seconds}
    finally:
        await queue.close()


class Tally:
    """Counts the worker's finished jobs; ``done`` resolves when ``n`` have finished."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.finished = 0
        self.failures: list[str] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def completed(self, job: Any, result: Any) -> None:
        self._count()

    def failed(self, job: Any, error: BaseException) -> None:
        self.failures.append(f"job {job.id} failed: {error!r}")
        self._count()

    def error(self, error: BaseException, *_: Any) -> None:
        if not self.done.done():
            self.done.set_exception(RuntimeError(f"worker error: {error!r}"))

    def _count(self) -> None:
        self.finished += 1
        if self.finished >= self.n and not self.done.done():
            self.done.set_result(None)

    async def wait(self) -> None:
        """Until ``n`` jobs finished; fails when none finishes for STALL_LIMIT seconds."""
        seen, moved = -1, time.monotonic()
        while not self.done.done():
            await asyncio.wait([self.done], timeout=0.25)
            if self.finished != seen:
                seen, moved = self.finished, time.monotonic()
            elif time.monotonic() - moved > STALL_LIMIT:
                fail(f"{self.finished} of {self.n} jobs finished; none for {STALL_LIMIT:g}s")
        self.done.result()


async def drain(spec: dict[str, Any]) -> dict[str, Any]:
    n = spec["n"]
    extra = {"n": spec["rounds"]} if spec["kind"] == "cpu" else {}
    queue = Queue(spec["queue"], {"connection": spec["redis"]})
    worker: Worker | None = None
    try:
        for low in range(0, n, BATCH):
            await queue.addBulk(
                [{"name": "job", "data": {"i": i, **extra}} for i in range(low, min(n, low + BATCH))]
            )
        tally = Tally(n)
        worker = Worker(
            spec["queue"], process, {"connection": spec["redis"], "concurrency": spec["concurrency"]}
        )
        worker.on("completed", tally.completed)
        worker.on("failed", tally.failed)
        worker.on("error", tally.error)
        await tally.wait()
        await worker.close()
        worker = None
        if tally.failures:
            fail(tally.failures[0])
        results = [job.returnvalue for job in await queue.getCompleted(0, -1)]
        return check_results(results, spec)
    finally:
        if worker is not None:
            await worker.close(force=True)
        await queue.close()


async def latency(spec: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    finished: dict[str, asyncio.Future[Any]] = {}

    def future_for(job_id: str) -> asyncio.Future[Any]:
        return finished.setdefault(job_id, loop.create_future())

    def on_completed(args: dict[str, Any], event_id: str) -> None:
        future = future_for(args["jobId"])
        if not future.done():
            future.set_result(args["returnvalue"])

    def on_failed(args: dict[str, Any], event_id: str) -> None:
        future = future_for(args["jobId"])
        if not future.done():
            future.set_exception(RuntimeError(f"job {args['jobId']} failed: {args.get('failedReason')}"))

    # The queue is fresh: reading its event stream from the start loses no event to the moment this
    # reader takes to start (with "$", a job finished before its first read would never be seen).
    events = QueueEvents(spec["queue"], {"connection": spec["redis"], "lastEventId": "0-0"})
    events.on("completed", on_completed)
    events.on("failed", on_failed)
    queue = Queue(spec["queue"], {"connection": spec["redis"]})
    worker = Worker(
        spec["queue"], process, {"connection": spec["redis"], "concurrency": spec.get("concurrency", 1)}
    )
    active: list[float] = []
    completed: list[float] = []
    try:
        warm = await queue.add("job", {"i": -1})
        await asyncio.wait_for(future_for(warm.id), 60)
        for i in range(spec["n"]):
            t0 = time.time()
            job = await queue.add("job", {"i": i})
            result = await asyncio.wait_for(future_for(job.id), LATENCY_LIMIT)
            t2 = time.time()
            if not isinstance(result, dict) or result.get("i") != i:
                fail(f"latency job {i} returned {result!r}")
            active.append((result["t"] - t0) * 1000)
            completed.append((t2 - t0) * 1000)
        return {"active_ms": active, "completed_ms": completed}
    finally:
        await worker.close()
        await events.close()
        await queue.close()


if __name__ == "__main__":
    main({"versions": versions, "enqueue": run(enqueue), "drain": run(drain), "latency": run(latency)})
