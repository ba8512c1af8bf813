"""The Celery contender of the benchmark suite (protocol: ``benchmarks/peers.py``).

Redis is broker and result backend; the app and its one task are in ``celery_tasks.py``. Producer:
``Task.apply_async``, one call after another (Celery has no bulk add). Worker: the real ``celery
worker`` command with the prefork pool and ``-c C``, and gossip, mingle and heartbeat off; a drain
stops it (SIGTERM, a warm shutdown) once all N results are in. Latency waits for each result as a
Celery user does, with ``AsyncResult.get(timeout=...)``.

Keys: every broker and result key is prefixed with ``<queue>:`` (see ``celery_tasks.py``) and task ids
are ``<queue>-<i>``. Before exiting, also on a failure, the driver stops the worker and its pool (see
``Workers``) and deletes every key containing the queue name.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import celery
import kombu
import redis
from celery import states
from celery.exceptions import TimeoutError as ResultTimeout
from common import check_results, fail, glob_escape, last_line, main
from workers import Workers

STALL = 20.0  # seconds without progress after which a drain is reported hung
RESULT_TIMEOUT = 30  # seconds a latency job's result is waited for
BATCH = 1_000

# --- Celery -------------------------------------------------------------------------------------


def task_id(spec: dict[str, Any], i: int | str) -> str:
    return f"{spec['queue']}-{i}"


@contextlib.contextmanager
def opened(spec: dict[str, Any]) -> Iterator[tuple[redis.Redis, ModuleType]]:
    """A plain Redis connection and the ``celery_tasks`` module set up for the spec's queue; every key
    containing the queue name is deleted on leaving."""
    os.environ["SANDQ_BENCH_REDIS"] = spec["redis"]
    os.environ["SANDQ_BENCH_QUEUE"] = spec["queue"]
    connection = redis.Redis.from_url(spec["redis"])
    try:
        import celery_tasks

        yield connection, celery_tasks
    finally:
        keys = list(connection.scan_iter(match=f"*{glob_escape(spec['queue'])}*", count=1_000))
        for low in range(0, len(keys), BATCH):
            connection.unlink(*keys[low : low + BATCH])
        connection.close()


def worker_command(spec: dict[str, Any]) -> list[str]:
    return [
        os.path.join(os.path.dirname(sys.executable), "celery"), "-A", "celery_tasks", "worker",
        "--queues", spec["queue"], "--hostname", f"{spec['queue']}@%h",
        "--pool", "prefork", "--concurrency", str(spec.get("concurrency", 1)),
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING",
    ]  # fmt: skip


def versions(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "versions": {"celery": celery.__version__, "kombu": kombu.__version__, "redis": redis.__version__}
    }


def enqueue(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["bulk"]:
        return {"unsupported": "Celery has no bulk add: a group or a chord publishes one message per task"}
    n = spec["n"]
    with opened(spec) as (connection, tasks):
        tasks.job.apply_async(({"i": -1},), task_id=task_id(spec, "warm"))  # connect first
        start = time.perf_counter()
        for i in range(n):
            tasks.job.apply_async(({"i": i},), task_id=task_id(spec, i))
        seconds = time.perf_counter() - start
        waiting = connection.llen(tasks.PREFIX + tasks.QUEUE)
        if waiting != n + 1:
            fail(f"the queue holds {waiting} tasks after {n} adds and a warm-up one")
    return {"seconds": seconds}


def _collect(
    connection: redis.Redis, backend: Any, pending: dict[bytes, str], values: dict[str, Any]
) -> None:
    """Move the tasks of ``pending`` (result key -> task id) whose results are in to ``values``; fails
    on a task that did not succeed."""
    keys = list(pending)
    for low in range(0, len(keys), BATCH):
        chunk = keys[low : low + BATCH]
        for key, raw in zip(chunk, connection.mget(chunk), strict=True):
            meta = backend.decode_result(raw) if raw is not None else {"status": states.PENDING}
            if meta["status"] == states.SUCCESS:
                values[pending.pop(key)] = meta["result"]
            elif meta["status"] in states.READY_STATES:
                fail(f"task {pending[key]} ended {meta['status']}: {last_line(meta.get('traceback'))}")


def _results(connection: redis.Redis, tasks: ModuleType, ids: list[str], workers: Workers) -> list[Any]:
    """The return values of tasks ``ids``, once all are in. While tasks wait in the queue, only its length
    is watched; then the missing results are read (MGET) until none is. Fails on a task that did not
    succeed, a worker that exited, or STALL seconds without progress."""
    pending = {tasks.app.backend.get_key_for_task(one): one for one in ids}
    values: dict[str, Any] = {}
    seen, moved = (-1, -1), time.monotonic()
    while pending:
        workers.check()
        if not workers.running():
            fail(f"the worker exited with {len(pending)} results missing")
        waiting = connection.llen(tasks.PREFIX + tasks.QUEUE)
        if waiting == 0:
            _collect(connection, tasks.app.backend, pending, values)
        if (waiting, len(pending)) != seen:
            seen, moved = (waiting, len(pending)), time.monotonic()
        elif time.monotonic() - moved > STALL:
            fail(f"no progress for {STALL:g}s ({waiting} tasks waiting, {len(pending)} results missing)")
        time.sleep(0.05)
    return [values[one] for one in ids]


def drain(spec: dict[str, Any]) -> dict[str, Any]:
    n = spec["n"]
    extra = {"n": spec["rounds"]} if spec["kind"] == "cpu" else {}
    ids = [task_id(spec, i) for i in range(n)]
    with opened(spec) as (connection, tasks), Workers() as workers:
        with tasks.app.producer_or_acquire() as producer:
            for i, one in enumerate(ids):
                tasks.job.apply_async(({"i": i, **extra},), task_id=one, producer=producer)
        workers.start(worker_command(spec))
        results = _results(connection, tasks, ids, workers)
    for i, result in enumerate(results):
        if not isinstance(result, dict) or result.get("i") != i:
            fail(f"task {ids[i]} returned {result!r}")
    return check_results(results, spec)


def latency(spec: dict[str, Any]) -> dict[str, Any]:
    active: list[float] = []
    completed: list[float] = []
    with opened(spec) as (_connection, tasks), Workers() as workers:
        workers.start(worker_command(spec))
        warm = tasks.job.apply_async(({"i": -1},), task_id=task_id(spec, "warm"))
        end = time.monotonic() + 60
        while True:
            try:
                warm.get(timeout=1)
                break
            except ResultTimeout:
                workers.check()
                if time.monotonic() > end:
                    fail("the warm-up task did not finish within 60s")
        for i in range(spec["n"]):
            t0 = time.time()
            result = tasks.job.apply_async(({"i": i},), task_id=task_id(spec, f"l{i}")).get(
                timeout=RESULT_TIMEOUT
            )
            t2 = time.time()
            if result["i"] != i:
                fail(f"latency task {i} returned {result!r}")
            active.append((result["t"] - t0) * 1000)
            completed.append((t2 - t0) * 1000)
    return {"active_ms": active, "completed_ms": completed}


if __name__ == "__main__":
    main({"versions": versions, "enqueue": enqueue, "drain": drain, "latency": latency})
