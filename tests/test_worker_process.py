"""``sandq run`` as a process: a supervisor killed with SIGKILL, shutdown on SIGTERM, a processor that
cannot be imported. Real processes, real signals; processes are found with psutil."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
import redis

from sandq import JobState, SyncQueue

TESTS = pathlib.Path(__file__).parent
SANDQ = os.path.join(os.path.dirname(sys.executable), "sandq")


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def start_worker(redis_url: str, queue: str, processor: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SANDQ, "run", processor, "--queue", queue, "--redis", redis_url, "--log-level", "info", *args],
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {within}s: {condition}")
        time.sleep(0.02)


def descendants(pid: int) -> list[int]:
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def gone(pids: list[int]) -> bool:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return not alive


def test_a_killed_supervisor_takes_its_children_along_and_its_job_is_recovered(
    redis_url: str, queue_name: str, r: redis.Redis
) -> None:
    queue = SyncQueue(queue_name, redis_url)
    job = queue.add("long", {"sleep": 30})
    worker = start_worker(
        redis_url,
        queue_name,
        "processors.mixed:mixed",
        "--lock-duration",
        "1s",
        "--stalled-interval",
        "500ms",
    )
    try:
        wait_until(lambda: queue.get_job_state(job.id) is JobState.ACTIVE)
        wait_until(lambda: len(descendants(worker.pid)) >= 2)  # the zygote and the child
        family = descendants(worker.pid)
        worker.send_signal(signal.SIGKILL)
        worker.wait(5)
        wait_until(lambda: gone(family), within=5)
    finally:
        worker.kill()
        worker.communicate()
    # A second worker's stalled checker finds the job without a lock and runs it again.
    rescuer = start_worker(redis_url, queue_name, "processors.basic:identity", "--stalled-interval", "500ms")
    try:
        wait_until(lambda: queue.get_job_state(job.id) is JobState.COMPLETED, within=15)
    finally:
        rescuer.send_signal(signal.SIGTERM)
        assert rescuer.wait(10) == 0
        rescuer.communicate()
    done = queue.get_job(job.id)
    assert done is not None
    assert done.returnvalue == {"sleep": 30}
    assert done.stalled_counter == 1
    assert "stalled" in [fields["event"] for _, fields in r.xrange(f"bull:{queue_name}:events")]
    queue.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_puts_running_jobs_back_and_leaves_no_process(
    redis_url: str, queue_name: str, signum: signal.Signals
) -> None:
    queue = SyncQueue(queue_name, redis_url)
    jobs = [queue.add("spin", {"spin": True}, attempts=2), queue.add("sleep", {"sleep": 30}, attempts=2)]
    worker = start_worker(
        redis_url,
        queue_name,
        "processors.mixed:mixed",
        "-c",
        "2",
        "--shutdown-timeout",
        "500ms",
        "--kill-grace",
        "300ms",
    )
    try:
        wait_until(lambda: all(queue.get_job_state(job.id) is JobState.ACTIVE for job in jobs))
        wait_until(lambda: len(descendants(worker.pid)) >= 3)
        family = descendants(worker.pid)
        started = time.monotonic()
        worker.send_signal(signum)
        assert worker.wait(10) == 0
        assert time.monotonic() - started < 5
        wait_until(lambda: gone(family), within=5)
    finally:
        worker.kill()
        _, log = worker.communicate()
    for job in jobs:
        assert queue.get_job_state(job.id) is JobState.WAITING, log
        back = queue.get_job(job.id)
        assert back is not None
        assert back.attempts_made == 0  # no attempt spent
        assert back.failed_reason is None
    queue.close()


def test_a_second_signal_skips_the_wait(redis_url: str, queue_name: str) -> None:
    queue = SyncQueue(queue_name, redis_url)
    job = queue.add("sleep", {"sleep": 30})
    worker = start_worker(redis_url, queue_name, "processors.mixed:mixed", "--shutdown-timeout", "60s")
    try:
        wait_until(lambda: queue.get_job_state(job.id) is JobState.ACTIVE)
        wait_until(lambda: len(descendants(worker.pid)) >= 2)
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) == 0
        assert time.monotonic() - started < 5  # not the 60 s of --shutdown-timeout
    finally:
        worker.kill()
        worker.communicate()
    assert queue.get_job_state(job.id) is JobState.WAITING
    queue.close()


@pytest.mark.parametrize(
    ("processor", "message"),
    [
        ("processors.nope:fn", "cannot import module 'processors.nope'"),
        ("processors.basic:nope", "has no attribute 'nope'"),
        ("processors.broken_import:fn", "cannot import module 'processors.broken_import'"),
    ],
)
def test_a_processor_that_cannot_be_loaded_is_one_line_before_any_job(
    redis_url: str, queue_name: str, processor: str, message: str
) -> None:
    queue = SyncQueue(queue_name, redis_url)
    job = queue.add("x", {})
    worker = start_worker(redis_url, queue_name, processor)
    try:
        _, stderr = worker.communicate(timeout=20)
    finally:
        worker.kill()
    assert worker.returncode == 2
    assert stderr.startswith("sandq: error: ")
    assert message in stderr
    assert stderr.count("\n") == 1
    untouched = queue.get_job(job.id)
    assert untouched is not None
    assert untouched.attempts_started == 0
    assert queue.get_job_state(job.id) is JobState.WAITING
    queue.close()


def test_children_that_keep_failing_to_start_stop_the_worker(redis_url: str, queue_name: str) -> None:
    queue = SyncQueue(queue_name, redis_url)
    job = queue.add("x", {})
    worker = start_worker(redis_url, queue_name, "processors.bad_child:process")
    try:
        _, stderr = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("sandq: error: children failed to start 5 times in a row")
    assert queue.get_job_state(job.id) is JobState.WAITING  # never taken
    queue.close()
