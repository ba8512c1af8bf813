"""The RQ contenders of the benchmark suite (protocol: ``benchmarks/peers.py``).

Producer: ``rq.Queue``: ``enqueue`` one job after another, or ``enqueue_many`` with
``Queue.prepare_data``, 1,000 jobs per call (bulk adds, and filling the queue before a drain).
Workers: the real ``rq worker`` command, as a user runs it, with ``--worker-class rq.Worker``
(variant ``fork``: a work horse is forked for each job) or ``rq.SimpleWorker`` (variant ``simple``:
jobs run in the worker process itself). RQ has no concurrency setting: concurrency C is C worker
processes, started together; in a drain they run with ``--burst`` and exit once the queue is empty.
Latency waits for each result as an RQ user does, with ``Job.latest_result(timeout=...)`` (a blocking
XREAD on the job's result stream).

Keys: job ids are ``<queue>-<i>`` and workers are named ``<queue>-w<k>``, so every key RQ makes for
a queue, a job or a worker (``rq:queue:``, ``rq:job:``, ``rq:results:``, ``rq:worker:``, the
registries) contains the queue name. Before exiting, also on a failure, the driver stops its workers
(see ``Workers``), deletes those keys, takes the queue's and its workers' entries out of RQ's shared
sets ``rq:queues`` and ``rq:workers``, and deletes the group-cleaning lock ``rq:clean_groups`` (which
a worker takes at start-up for ten minutes) if it was not there before.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
import rq
from common import check_results, deadline_wait, fail, glob_escape, last_line, main
from rq.group import Group
from rq.results import Result
from rq_tasks import job as task
from workers import Workers

BATCH = 1_000
WORKER_CLASSES = {"fork": "rq.Worker", "simple": "rq.SimpleWorker"}
STALL = 20.0  # seconds without progress after which a drain is reported hung
RESULT_TIMEOUT = 30  # seconds a latency job's result is waited for

# --- RQ -----------------------------------------------------------------------------------------


def job_id(spec: dict[str, Any], i: int | str) -> str:
    return f"{spec['queue']}-{i}"


def _delete_keys(connection: redis.Redis, queue: rq.Queue, had_group_lock: bool) -> None:
    keys = list(connection.scan_iter(match=f"*{glob_escape(queue.name)}*", count=1_000))
    for low in range(0, len(keys), BATCH):
        connection.unlink(*keys[low : low + BATCH])
    connection.srem(rq.Queue.redis_queues_keys, queue.key)
    ours = [key for key in connection.smembers(rq.Worker.redis_workers_keys) if queue.name.encode() in key]
    if ours:
        connection.srem(rq.Worker.redis_workers_keys, *ours)
    if not had_group_lock:
        connection.delete(Group.REDIS_GROUP_CLEANING_KEY)


@contextlib.contextmanager
def opened(spec: dict[str, Any]) -> Iterator[tuple[redis.Redis, rq.Queue]]:
    """A connection and the spec's queue; every key of the run is deleted on leaving."""
    connection = redis.Redis.from_url(spec["redis"])
    queue = rq.Queue(spec["queue"], connection=connection)
    had_group_lock = bool(connection.exists(Group.REDIS_GROUP_CLEANING_KEY))
    try:
        yield connection, queue
    finally:
        _delete_keys(connection, queue, had_group_lock)
        connection.close()


def worker_command(spec: dict[str, Any], k: int, *, burst: bool) -> list[str]:
    variant = spec.get("variant") or "fork"
    if variant not in WORKER_CLASSES:
        fail(f"unknown variant {variant!r}; RQ has {sorted(WORKER_CLASSES)}")
    command = [
        os.path.join(os.path.dirname(sys.executable), "rq"), "worker",
        "--url", spec["redis"], "--name", f"{spec['queue']}-w{k}",
        "--worker-class", WORKER_CLASSES[variant], "--quiet",
    ]  # fmt: skip
    return [*command, *(["--burst"] if burst else []), spec["queue"]]


def enqueue_all(queue: rq.Queue, spec: dict[str, Any], data: Callable[[int], dict[str, Any]]) -> None:
    """Add jobs 0..n-1 with ``enqueue_many``, 1,000 per call."""
    n = spec["n"]
    for low in range(0, n, BATCH):
        queue.enqueue_many(
            [
                rq.Queue.prepare_data(task, (data(i),), job_id=job_id(spec, i))
                for i in range(low, min(n, low + BATCH))
            ]
        )


def returned(connection: redis.Redis, ids: list[str]) -> list[Any]:
    """Each job's return value (its latest result), failing on a job without a successful one."""
    values: list[Any] = []
    for low in range(0, len(ids), BATCH):
        chunk = ids[low : low + BATCH]
        with connection.pipeline(transaction=False) as pipe:
            for one in chunk:
                pipe.xrevrange(Result.get_key(one), count=1)
            replies = pipe.execute()
        for one, reply in zip(chunk, replies, strict=True):
            if not reply:
                status = connection.hget(rq.job.Job.key_for(one), "status")
                fail(f"job {one} has no result (status {status!r})")
            result_id, payload = reply[0]
            result = Result.restore(one, result_id.decode(), payload, connection=connection)
            if result.type != Result.Type.SUCCESSFUL:
                fail(f"job {one} ended {result.type.name}: {last_line(result.exc_string)}")
            values.append(result.return_value)
    return values


def versions(spec: dict[str, Any]) -> dict[str, Any]:
    return {"versions": {"rq": rq.__version__, "redis": redis.__version__}}


def enqueue(spec: dict[str, Any]) -> dict[str, Any]:
    n = spec["n"]
    with opened(spec) as (_connection, queue):
        queue.enqueue(task, {"i": -1}, job_id=job_id(spec, "warm"))  # connect first: not part of the adds
        start = time.perf_counter()
        if spec["bulk"]:
            enqueue_all(queue, spec, lambda i: {"i": i})
        else:
            for i in range(n):
                queue.enqueue(task, {"i": i}, job_id=job_id(spec, i))
        seconds = time.perf_counter() - start
        if queue.count != n + 1:
            fail(f"the queue holds {queue.count} jobs after {n} adds and a warm-up one")
    return {"seconds": seconds}


def _wait_burst(connection: redis.Redis, queue: rq.Queue, workers: Workers) -> None:
    """Until every burst worker has exited; fails on a worker error or STALL seconds without progress."""
    keys = (queue.key, queue.finished_job_registry.key, queue.failed_job_registry.key)
    seen: tuple[int, ...] = ()
    moved = time.monotonic()
    while workers.running():
        workers.check()
        with connection.pipeline(transaction=False) as pipe:
            pipe.llen(keys[0]).zcard(keys[1]).zcard(keys[2])
            state = tuple(pipe.execute())
        if state != seen:
            seen, moved = state, time.monotonic()
        elif time.monotonic() - moved > STALL:
            fail(f"no progress for {STALL:g}s (waiting, finished, failed: {state})")
        time.sleep(0.05)
    workers.check()


def drain(spec: dict[str, Any]) -> dict[str, Any]:
    n = spec["n"]
    extra = {"n": spec["rounds"]} if spec["kind"] == "cpu" else {}
    with opened(spec) as (connection, queue), Workers() as workers:
        enqueue_all(queue, spec, lambda i: {"i": i, **extra})
        for k in range(spec["concurrency"]):
            workers.start(worker_command(spec, k, burst=True))
        _wait_burst(connection, queue, workers)
        results = returned(connection, [job_id(spec, i) for i in range(n)])
    for i, result in enumerate(results):
        if not isinstance(result, dict) or result.get("i") != i:
            fail(f"job {job_id(spec, i)} returned {result!r}")
    return check_results(results, spec)


def latency(spec: dict[str, Any]) -> dict[str, Any]:
    active: list[float] = []
    completed: list[float] = []
    concurrency = spec.get("concurrency", 1)
    with opened(spec) as (_connection, queue), Workers() as workers:
        for k in range(concurrency):
            workers.start(worker_command(spec, k, burst=False))
        warm = queue.enqueue(task, {"i": -1}, job_id=job_id(spec, "warm"))
        end = time.monotonic() + 60
        while warm.latest_result(timeout=1) is None:
            workers.check()
            if time.monotonic() > end:
                fail("the warm-up job did not finish within 60s")
        deadline_wait(lambda: rq.Worker.count(queue=queue) >= concurrency, 30, "the workers did not register")
        for i in range(spec["n"]):
            t0 = time.time()
            job = queue.enqueue(task, {"i": i}, job_id=job_id(spec, f"l{i}"))
            result = job.latest_result(timeout=RESULT_TIMEOUT)
            t2 = time.time()
            if result is None or result.type != Result.Type.SUCCESSFUL or result.return_value["i"] != i:
                fail(f"latency job {i} ended with {result!r}: {result and result.exc_string}")
            active.append((result.return_value["t"] - t0) * 1000)
            completed.append((t2 - t0) * 1000)
    return {"active_ms": active, "completed_ms": completed}


if __name__ == "__main__":
    main({"versions": versions, "enqueue": enqueue, "drain": drain, "latency": latency})
