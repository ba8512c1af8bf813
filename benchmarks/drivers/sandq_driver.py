"""The sandq contender of the benchmark suite (protocol: ``benchmarks/peers.py``).

Producer: ``sandq.SyncQueue`` (``sandq.Queue`` and ``QueueEvents`` under trio for latency). Worker: the
real ``sandq run sandq_tasks:job`` command, as a user runs it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import trio
from common import check_results, fail, main

import sandq

BATCH = 1_000
RUN_TIMEOUT = 600  # seconds a burst worker may take (the suite's own timeout is usually shorter)


@contextlib.contextmanager
def cleaned(spec: dict[str, Any]) -> Iterator[None]:
    """Delete the queue's keys afterwards, whatever happens."""
    try:
        yield
    finally:
        with sandq.SyncQueue(spec["queue"], spec["redis"]) as queue:
            keys = list(queue.client.execute("KEYS", f"{queue.keys.base}*") or [])
            for low in range(0, len(keys), 1000):
                queue.client.execute("UNLINK", *keys[low : low + 1000])


def worker_command(spec: dict[str, Any], *, burst: bool) -> list[str]:
    command = [
        os.path.join(os.path.dirname(sys.executable), "sandq"), "run", "sandq_tasks:job",
        "--queue", spec["queue"], "--redis", spec["redis"],
        "--concurrency", str(spec.get("concurrency", 1)), "--log-level", "error",
    ]  # fmt: skip
    return [*command, "--burst"] if burst else command


def versions(spec: dict[str, Any]) -> dict[str, Any]:
    return {"versions": {"sandq": sandq.__version__}}


def enqueue(spec: dict[str, Any]) -> dict[str, Any]:
    n = spec["n"]
    with sandq.SyncQueue(spec["queue"], spec["redis"]) as queue:
        queue.add("warm-up", {"i": -1})  # connect first: the connection is not part of the adds
        start = time.perf_counter()
        if spec["bulk"]:
            for low in range(0, n, BATCH):
                queue.add_bulk([("job", {"i": i}) for i in range(low, min(n, low + BATCH))])
        else:
            for i in range(n):
                queue.add("job", {"i": i})
        return {"seconds": time.perf_counter() - start}


def drain(spec: dict[str, Any]) -> dict[str, Any]:
    n = spec["n"]
    extra = {"n": spec["rounds"]} if spec["kind"] == "cpu" else {}
    with sandq.SyncQueue(spec["queue"], spec["redis"]) as queue:
        for low in range(0, n, BATCH):
            queue.add_bulk([("job", {"i": i, **extra}) for i in range(low, min(n, low + BATCH))])
        try:
            done = subprocess.run(
                worker_command(spec, burst=True),
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            fail(f"sandq run --burst did not finish within {RUN_TIMEOUT} s")
        if done.returncode != 0:
            fail(f"sandq run exited with {done.returncode}: {done.stderr.strip()[-300:]}")
        results = [job.returnvalue for job in queue.get_completed()]
        failed = queue.get_failed(0, 0)
        if failed:
            fail(f"job {failed[0].id} failed: {failed[0].failed_reason}")
    return check_results(results, spec)


async def _latency(spec: dict[str, Any]) -> dict[str, Any]:
    active: list[float] = []
    completed: list[float] = []
    async with (
        sandq.Queue(spec["queue"], spec["redis"]) as queue,
        sandq.QueueEvents(spec["queue"], spec["redis"]) as events,
    ):
        warm = await queue.add("job", {"i": -1})
        await events.wait_until_finished(warm, timeout=60)
        for i in range(spec["n"]):
            t0 = time.time()
            job = await queue.add("job", {"i": i})
            result = await events.wait_until_finished(job, timeout=30)
            t2 = time.time()
            active.append((result["t"] - t0) * 1000)
            completed.append((t2 - t0) * 1000)
    return {"active_ms": active, "completed_ms": completed}


def latency(spec: dict[str, Any]) -> dict[str, Any]:
    worker = subprocess.Popen(worker_command(spec, burst=False), stderr=subprocess.PIPE, text=True)
    try:
        return trio.run(_latency, spec)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()


def with_cleanup(
    op: Callable[[dict[str, Any]], dict[str, Any]],
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def run(spec: dict[str, Any]) -> dict[str, Any]:
        with cleaned(spec):
            return op(spec)

    return run


if __name__ == "__main__":
    main(
        {
            "versions": versions,
            "enqueue": with_cleanup(enqueue),
            "drain": with_cleanup(drain),
            "latency": with_cleanup(latency),
        }
    )
