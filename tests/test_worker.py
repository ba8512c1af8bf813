"""The worker end to end: a real Redis, a real zygote and real child processes, the processors of
``tests/processors/basic.py``. The worker runs in the test's trio loop (``Worker.run``)."""

from __future__ import annotations

import base64
import os
import pathlib
import sys
from typing import Any

import pytest
import redis
import trio

from sandq import JobState, Queue
from sandq.errors import RedisConnectionError

from worker_runs import running

TESTS = pathlib.Path(__file__).parent


@pytest.fixture(autouse=True)
def _in_tests_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(TESTS)  # processors are imported from the current directory, as `python -m` does


@pytest.fixture
def r(redis_url: str) -> Any:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


async def wait_for(queue: Queue, job_id: str, *states: JobState, within: float = 15) -> JobState | None:
    with trio.fail_after(within):
        while True:
            try:
                state = await queue.get_job_state(job_id)
            except RedisConnectionError:  # the test's own connection, in the outage test
                state = None
            if state in states:
                return state
            await trio.sleep(0.02)


def events(r: Any, queue: str, job_id: str) -> list[dict[str, str]]:
    return [fields for _, fields in r.xrange(f"bull:{queue}:events") if fields.get("jobId") == job_id]


async def test_jobs_complete_with_their_return_values(redis_url: str, queue_name: str, r: Any) -> None:
    async with Queue(queue_name, redis_url) as queue, running(redis_url, queue_name, "square", concurrency=2):
        jobs = await queue.add_bulk([("square", {"n": n}) for n in range(20)])
        for job in jobs:
            await wait_for(queue, job.id, JobState.COMPLETED)
        for n, job in enumerate(jobs):
            done = await queue.get_job(job.id)
            assert done is not None
            assert done.returnvalue == {"square": n * n, "attempts": 0, "opts": {"attempts": 0}}
            assert (done.attempts_made, done.attempts_started) == (1, 1)
            assert done.processed_on is not None
            assert done.finished_on is not None
            assert done.finished_on >= done.processed_on
        assert [e["event"] for e in events(r, queue_name, jobs[0].id)] == [
            "added",
            "waiting",
            "active",
            "completed",
        ]


async def test_an_exception_fails_the_job_with_reason_and_stack(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url) as queue, running(redis_url, queue_name, "fail"):
        job = await queue.add("fail", {"x": 1})
        await wait_for(queue, job.id, JobState.FAILED)
        failed = await queue.get_job(job.id)
        assert failed is not None
        assert failed.failed_reason == "bad input {'x': 1}"
        assert len(failed.stacktrace) == 1
        assert "ValueError: bad input" in failed.stacktrace[0]
        assert failed.attempts_made == 1


@pytest.mark.parametrize(
    ("backoff", "expected_waits"),
    [
        (None, [0, 0]),
        (300, [300, 300]),
        ({"type": "exponential", "delay": 200}, [200, 400]),
    ],
)
async def test_retries_follow_the_backoff(
    redis_url: str, queue_name: str, r: Any, backoff: Any, expected_waits: list[int]
) -> None:
    options: dict[str, Any] = {"attempts": 3}
    if backoff is not None:
        options["backoff"] = backoff
    async with Queue(queue_name, redis_url) as queue, running(redis_url, queue_name, "fail"):
        job = await queue.add("fail", {}, **options)
        await wait_for(queue, job.id, JobState.FAILED)
        failed = await queue.get_job(job.id)
        assert failed is not None
        assert failed.attempts_made == 3
        assert len(failed.stacktrace) == 3
        seen = events(r, queue_name, job.id)
        kinds = [e["event"] for e in seen]
        assert kinds.count("active") == 3
        assert kinds[-2:] == ["failed", "retries-exhausted"]
        if backoff is None:
            assert kinds.count("delayed") == 0
        else:
            # A `delayed` event carries the absolute fire time; its stream id, when it was written.
            waits = [
                int(fields["delay"]) - int(entry_id.split("-")[0])
                for entry_id, fields in r.xrange(f"bull:{queue_name}:events")
                if fields.get("jobId") == job.id and fields["event"] == "delayed"
            ]
            assert len(waits) == 2
            for wait, expected in zip(waits, expected_waits, strict=True):
                assert expected - 50 <= wait <= expected + 50


async def test_exponential_backoff_with_jitter_waits_within_its_window(
    redis_url: str, queue_name: str
) -> None:
    async with Queue(queue_name, redis_url) as queue, running(redis_url, queue_name, "fail"):
        job = await queue.add(
            "fail", {}, attempts=2, backoff={"type": "exponential", "delay": 400, "jitter": 0.5}
        )
        await wait_for(queue, job.id, JobState.DELAYED, JobState.FAILED)
        delayed = await queue.get_job(job.id)
        assert delayed is not None
        assert 200 <= delayed.delay < 400
        await wait_for(queue, job.id, JobState.FAILED)


async def test_a_spinning_job_is_killed_at_its_deadline_while_others_complete(
    redis_url: str, queue_name: str, r: Any
) -> None:
    # The lock lives 1 s and the stalled sweep runs every 0.5 s: the spinning job outlives its lock
    # several times over, so a single missed renewal would show as a stalled job.
    options = {"concurrency": 2, "lock_duration": 1.0, "stalled_interval": 0.5, "kill_grace": 0.3}
    async with (
        Queue(queue_name, redis_url) as queue,
        running(redis_url, queue_name, "mixed", processor_module="mixed", **options),
    ):
        spinner = await queue.add("spin", {"spin": True}, timeout=3000)
        start = trio.current_time()
        neighbours = await queue.add_bulk([("n", {"i": i, "sleep": 0.05}) for i in range(30)])
        for job in neighbours:
            await wait_for(queue, job.id, JobState.COMPLETED)
        assert trio.current_time() - start < 3  # they did not wait for the spinning job
        await wait_for(queue, spinner.id, JobState.FAILED, within=10)
        elapsed = trio.current_time() - start
        failed = await queue.get_job(spinner.id)
        assert failed is not None
        assert failed.failed_reason == "timeout: the job ran past its time limit of 3s"
        assert 3.0 <= elapsed < 5.0
        assert failed.stalled_counter == 0
        assert "stalled" not in [e["event"] for e in events(r, queue_name, spinner.id)]


async def test_a_cooperative_job_stops_within_the_grace(redis_url: str, queue_name: str) -> None:
    async with (
        Queue(queue_name, redis_url) as queue,
        running(redis_url, queue_name, "cooperative", kill_grace=5.0) as worker,
    ):
        job = await queue.add("c", {}, timeout=300)
        start = trio.current_time()
        await wait_for(queue, job.id, JobState.FAILED)
        assert trio.current_time() - start < 2.5  # well before the 5 s grace: it stopped by itself
        failed = await queue.get_job(job.id)
        assert failed is not None
        assert failed.failed_reason == "timeout: the job ran past its time limit of 0.3s"
        assert worker._slots[0].child is not None
        assert worker._slots[0].child.alive  # not killed


async def test_a_job_ignoring_the_cancel_is_killed_after_the_grace(redis_url: str, queue_name: str) -> None:
    async with (
        Queue(queue_name, redis_url) as queue,
        running(redis_url, queue_name, "spin", kill_grace=0.5) as worker,
    ):
        job = await queue.add("s", {}, timeout=300)
        first_child = None
        with trio.fail_after(5):
            while first_child is None:
                first_child = worker._slots[0].child
                await trio.sleep(0.01)
        await wait_for(queue, job.id, JobState.FAILED)
        assert not first_child.alive
        assert await first_child.wait() == -9
        # The slot has a fresh child for the next job.
        after = await queue.add("s2", {}, timeout=200)
        await wait_for(queue, after.id, JobState.FAILED)
        assert worker._slots[0].child is not first_child


async def test_a_cancel_from_another_process(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url) as queue, running(redis_url, queue_name, "sleepy"):
        job = await queue.add("s", {"seconds": 30}, attempts=3)
        await wait_for(queue, job.id, JobState.ACTIVE)
        await trio.sleep(0.2)  # the child has the job
        done = await trio.run_process(
            [
                _sandq(),
                "cancel",
                "--redis",
                redis_url,
                queue_name,
                job.id,
                "--reason",
                "user changed their mind",
            ],
            capture_stdout=True,
        )
        assert done.stdout.decode().strip() == f"job {job.id} is running: the worker holding it cancels it"
        await wait_for(queue, job.id, JobState.FAILED)
        failed = await queue.get_job(job.id)
        assert failed is not None
        assert failed.failed_reason == "cancelled: user changed their mind"
        assert failed.attempts_made == 1  # not retried, though attempts were left


@pytest.mark.parametrize(
    ("processor", "reason"),
    [
        ("segfault", "crashed (signal 11, SIGSEGV): the process running the job died"),
        ("exit_hard", "exit(3): the process running the job exited"),
        ("exit_soft", "exit(4): the process running the job exited"),
    ],
)
async def test_a_child_that_dies_fails_its_job_and_the_worker_goes_on(
    redis_url: str, queue_name: str, processor: str, reason: str
) -> None:
    async with Queue(queue_name, redis_url) as queue, running(redis_url, queue_name, processor):
        first = await queue.add("x", {})
        second = await queue.add("x", {})
        for job in (first, second):
            await wait_for(queue, job.id, JobState.FAILED)
            failed = await queue.get_job(job.id)
            assert failed is not None
            assert failed.failed_reason == reason


async def test_progress_logs_data_and_output_are_written(redis_url: str, queue_name: str, r: Any) -> None:
    async with Queue(queue_name, redis_url) as queue, running(redis_url, queue_name, "updates"):
        job = await queue.add("u", {"step": 1})
        await wait_for(queue, job.id, JobState.COMPLETED)
        done = await queue.get_job(job.id)
        assert done is not None
        assert done.progress == {"done": True}
        assert done.data == {"step": 2}
        assert r.lrange(f"bull:{queue_name}:{job.id}:logs", 0, -1) == ["halfway there"]
        progress = [e["data"] for e in events(r, queue_name, job.id) if e["event"] == "progress"]
        assert progress == ["50", '{"done":true}']
    async with Queue(queue_name, redis_url) as queue, running(redis_url, queue_name, "prints"):
        job = await queue.add("p", {})
        await wait_for(queue, job.id, JobState.COMPLETED)
        logs = r.lrange(f"bull:{queue_name}:{job.id}:logs", 0, -1)
        assert f"stdout of job {job.id}" in logs
        assert f"stderr of job {job.id}" in logs
        assert "no newline at the end" in logs


async def test_delay_and_rate_limit_spend_no_attempt(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url) as queue:
        async with running(redis_url, queue_name, "delay_returned"):
            job = await queue.add("d", {}, attempts=2)
            await wait_for(queue, job.id, JobState.DELAYED)
        delayed = await queue.get_job(job.id)
        assert delayed is not None
        assert (delayed.attempts_made, delayed.delay) == (0, 5000)
        async with (
            running(redis_url, queue_name + "r", "rate_limited"),
            Queue(queue_name + "r", redis_url) as other,
        ):
            limited = await other.add("r", {})
            with trio.fail_after(5):
                while True:
                    back = await other.get_job(limited.id)
                    assert back is not None
                    if (
                        back.attempts_started >= 1
                        and await other.get_job_state(limited.id) is JobState.WAITING
                    ):
                        break
                    await trio.sleep(0.02)
            assert back.attempts_made == 0  # put back in wait without spending an attempt


async def test_a_job_with_a_deferred_failure_fails_without_running(
    redis_url: str, queue_name: str, r: Any
) -> None:
    async with Queue(queue_name, redis_url) as queue:
        job = await queue.add("x", {"n": 2})
        r.hset(f"bull:{queue_name}:{job.id}", "defa", "job stalled more than allowable limit")
        async with running(redis_url, queue_name, "square"):
            await wait_for(queue, job.id, JobState.FAILED)
        failed = await queue.get_job(job.id)
        assert failed is not None
        assert failed.failed_reason == "job stalled more than allowable limit"
        assert failed.returnvalue is None
        assert failed.deferred_failure is None  # cleared when failed, as BullMQ does


async def test_malformed_jobs_fail_with_a_clear_reason(redis_url: str, queue_name: str, r: Any) -> None:
    async with Queue(queue_name, redis_url) as queue:
        bad_opts = await queue.add("x", {"n": 1})
        r.hset(f"bull:{queue_name}:{bad_opts.id}", "opts", "{not json")
        bad_data = await queue.add("x", {"n": 1})
        r.hset(f"bull:{queue_name}:{bad_data.id}", "data", "[1, 2")
        good = await queue.add("x", {"n": 3})
        async with running(redis_url, queue_name, "square"):
            for job in (bad_opts, bad_data):
                await wait_for(queue, job.id, JobState.FAILED)
            await wait_for(queue, good.id, JobState.COMPLETED)
        # (get_job refuses to read these hashes; read their fields raw)
        assert r.hget(f"bull:{queue_name}:{bad_opts.id}", "failedReason").startswith(
            "malformed job: its opts"
        )
        assert "data" in r.hget(f"bull:{queue_name}:{bad_data.id}", "failedReason")


async def test_a_lost_lock_makes_the_worker_write_nothing(redis_url: str, queue_name: str, r: Any) -> None:
    async with (
        Queue(queue_name, redis_url) as queue,
        running(redis_url, queue_name, "sleepy", lock_duration=0.6, kill_grace=0.2) as worker,
    ):
        job = await queue.add("s", {"seconds": 30})
        await wait_for(queue, job.id, JobState.ACTIVE)
        r.set(f"bull:{queue_name}:{job.id}:lock", "another-worker")  # someone else owns it now
        with trio.fail_after(5):
            while worker.jobs_finished < 1:  # noqa: ASYNC110 - polling a counter of the worker's
                await trio.sleep(0.02)
        assert await queue.get_job_state(job.id) is JobState.ACTIVE  # untouched by this worker
        assert r.get(f"bull:{queue_name}:{job.id}:lock") == "another-worker"
        assert (await queue.get_job(job.id)).finished_on is None  # type: ignore[union-attr]


async def test_jobs_added_by_bullmq_are_processed(redis_url: str, queue_name: str) -> None:
    import asyncio

    import bullmq

    async def add_and_read(wait: bool) -> Any:
        bq = bullmq.Queue(queue_name, {"connection": redis_url})
        try:
            if not wait:
                return (await bq.add("square", {"n": 12}, {"attempts": 2})).id
            job = await bq.getJob("1")
            return job.returnvalue, await bq.getJobState("1"), job.attemptsMade
        finally:
            await bq.close()

    job_id = await trio.to_thread.run_sync(lambda: asyncio.run(add_and_read(False)))
    async with Queue(queue_name, redis_url) as queue, running(redis_url, queue_name, "square"):
        await wait_for(queue, job_id, JobState.COMPLETED)
    returnvalue, state, attempts = await trio.to_thread.run_sync(lambda: asyncio.run(add_and_read(True)))
    assert (returnvalue["square"], returnvalue["attempts"], returnvalue["opts"]["attempts"]) == (144, 0, 2)
    assert (state, attempts) == ("completed", 1)


def _sandq() -> str:
    return os.path.join(os.path.dirname(sys.executable), "sandq")


async def test_delayed_jobs_run_when_due_and_not_before(redis_url: str, queue_name: str) -> None:
    async with (
        Queue(queue_name, redis_url) as queue,
        running(redis_url, queue_name, "identity", drain_delay=5),
    ):
        job = await queue.add("later", {"v": 1}, delay=1500)
        added = trio.current_time()
        await wait_for(queue, job.id, JobState.COMPLETED, within=10)
        done = await queue.get_job(job.id)
        assert done is not None
        assert done.processed_on is not None
        assert done.processed_on - done.timestamp >= 1500
        # Woken by the delayed-job marker, not by the 5 s drain delay.
        assert trio.current_time() - added < 3.5


async def test_a_global_rate_limit_spaces_the_jobs(redis_url: str, queue_name: str, r: Any) -> None:
    r.hset(f"bull:{queue_name}:meta", mapping={"max": 2, "duration": 1000})
    async with (
        Queue(queue_name, redis_url) as queue,
        running(redis_url, queue_name, "identity", concurrency=2),
    ):
        jobs = await queue.add_bulk([("n", {"i": i}) for i in range(6)])
        for job in jobs:
            await wait_for(queue, job.id, JobState.COMPLETED, within=10)
        starts = sorted([(await queue.get_job(job.id)).processed_on for job in jobs])  # type: ignore[union-attr,type-var]
    # At most two jobs start in any one-second window.
    assert starts[2] - starts[0] >= 900  # type: ignore[operator]
    assert starts[4] - starts[2] >= 900  # type: ignore[operator]


async def test_the_worker_names_its_connection_as_bullmq_workers_do(
    redis_url: str, queue_name: str, r: Any
) -> None:
    # BullMQ's getWorkers lists the connections named P:<base64(queue)>[:w:<name>] (the PyPI client has
    # no getWorkers, so CLIENT LIST is read directly).
    expected = f"bull:{base64.b64encode(queue_name.encode()).decode()}:w:crunch-1"
    async with running(redis_url, queue_name, "identity", name="crunch-1"):
        await trio.sleep(0.3)  # the worker is waiting on its queue's marker
        names = [client["name"] for client in r.client_list()]
    assert names.count(expected) == 1


async def test_redis_going_away_mid_job_loses_nothing() -> None:
    from servers import RedisServer, system_binary

    binary = system_binary()
    if binary is None:
        pytest.skip("needs the system redis-server")
    # Persistence on, so that the restarted server still has the queue.
    server = RedisServer(binary, "--appendonly", "yes", "--appendfsync", "always")
    try:
        async with (
            Queue("outage", server.url) as queue,
            running(server.url, "outage", "mixed", processor_module="mixed"),
        ):
            job = await queue.add("slow", {"sleep": 1.5})
            await wait_for(queue, job.id, JobState.ACTIVE)
            await trio.to_thread.run_sync(server.kill)
            await trio.sleep(0.5)
            await trio.to_thread.run_sync(server.start)
            await wait_for(queue, job.id, JobState.COMPLETED, within=20)
            done = await queue.get_job(job.id)
            assert done is not None
            assert done.returnvalue == {"sleep": 1.5}
            assert done.attempts_made == 1
    finally:
        server.close()


async def test_a_job_too_large_for_the_pipe_fails_alone(redis_url: str, queue_name: str, r: Any) -> None:
    async with Queue(queue_name, redis_url) as queue, running(redis_url, queue_name, "identity"):
        huge = await queue.add("huge", {"blob": "x" * (65 * 2**20)})
        small = await queue.add("small", {"v": 1})
        await wait_for(queue, huge.id, JobState.FAILED, within=30)
        await wait_for(queue, small.id, JobState.COMPLETED)
        reason = r.hget(f"bull:{queue_name}:{huge.id}", "failedReason")
        assert reason.startswith("the job cannot be sent to a child")
        assert r.hget(f"bull:{queue_name}:{huge.id}", "atm") == "1"


async def test_a_prefetched_job_can_be_cancelled_before_it_starts(
    redis_url: str, queue_name: str, r: Any
) -> None:
    async with (
        Queue(queue_name, redis_url) as queue,
        running(redis_url, queue_name, "mixed", processor_module="mixed", concurrency=1),
    ):
        # A is short, so when it ends the worker fetches B to run and C to wait behind it.
        a, b, c = await queue.add_bulk([("a", {"sleep": 0.02}), ("b", {"sleep": 1.5}), ("c", {"v": "c"})])
        await wait_for(queue, a.id, JobState.COMPLETED)
        await wait_for(queue, c.id, JobState.ACTIVE)  # prefetched: active, waiting behind B
        assert await queue.get_job_state(b.id) is JobState.ACTIVE
        assert await queue.cancel(c.id, "not needed") is JobState.ACTIVE
        await wait_for(queue, c.id, JobState.FAILED)
        await wait_for(queue, b.id, JobState.COMPLETED)
        cancelled = await queue.get_job(c.id)
        assert cancelled is not None
        assert cancelled.failed_reason == "cancelled: not needed"
        assert cancelled.returnvalue is None  # it never ran


async def test_retention_options_are_applied(redis_url: str, queue_name: str, r: Any) -> None:
    async with (
        Queue(queue_name, redis_url) as queue,
        running(redis_url, queue_name, "identity", remove_on_fail={"count": 1}),
    ):
        removed = await queue.add("gone", {"v": 1}, remove_on_complete=True)
        kept = [await queue.add("kept", {"v": i}, remove_on_complete=2) for i in range(3)]
        await wait_for(queue, kept[-1].id, JobState.COMPLETED)
        with trio.fail_after(5):
            while r.exists(f"bull:{queue_name}:{removed.id}"):  # noqa: ASYNC110 - polling Redis
                await trio.sleep(0.02)
        completed = r.zrange(f"bull:{queue_name}:completed", 0, -1)
        assert completed == [kept[1].id, kept[2].id]  # the newest two
        assert not r.exists(f"bull:{queue_name}:{kept[0].id}")


async def test_the_worker_default_retention_applies_to_jobs_without_their_own(
    redis_url: str, queue_name: str, r: Any
) -> None:
    async with (
        Queue(queue_name, redis_url) as queue,
        running(redis_url, queue_name, "fail", remove_on_fail=True),
    ):
        job = await queue.add("f", {})
        own = await queue.add("f", {}, remove_on_fail=False)
        await wait_for(queue, own.id, JobState.FAILED)
        with trio.fail_after(5):
            while r.exists(f"bull:{queue_name}:{job.id}"):  # noqa: ASYNC110 - polling Redis
                await trio.sleep(0.02)
        assert r.zrange(f"bull:{queue_name}:failed", 0, -1) == [own.id]
