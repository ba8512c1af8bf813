"""The getters and job actions of Queue / SyncQueue against a real Redis: get_jobs and its shortcuts,
logs, counts per priority, retry (one job and all of a state), promote, change_priority, change_delay,
update_data, the global limits in ``meta``; each with its error cases, and each read back by the
``bullmq`` PyPI client where it has the same call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import bullmq
import pytest
import redis

import sandq
from sandq import worker_scripts as ws
from sandq.connection.sync import SyncRedisClient
from sandq.errors import (
    ConfigurationError,
    InvalidOptionError,
    JobNotFoundError,
    JobNotInStateError,
    LockMismatchError,
)
from sandq.queue import now_ms

from bullmq_peer import bull
from script_jobs import finish, run_script, take


@pytest.fixture
def q(redis_url: str, queue_name: str) -> Iterator[sandq.SyncQueue]:
    with sandq.SyncQueue(queue_name, redis_url) as queue:
        yield queue


def events(raw: redis.Redis, q: sandq.SyncQueue, name: str) -> list[dict[str, str]]:
    return [fields for _, fields in raw.xrange(q.keys.events) if fields["event"] == name]


# --- getters ------------------------------------------------------------------------------------


def test_get_jobs_pages_each_state_like_bullmq(redis_url: str, queue_name: str, q: sandq.SyncQueue) -> None:
    for i in range(5):
        q.add("w", {"i": i})
    q.add("lifo", {}, lifo=True)
    for priority in (3, 1, 2):
        q.add("p", {"priority": priority}, priority=priority)
    for delay in (30_000, 10_000, 20_000):
        q.add("d", {}, delay=delay)
    completed = finish(q, 2)  # the lifo job, then the oldest
    failed = finish(q, 1, fail=True)

    cases: list[tuple[list[str], int, int, bool]] = [
        (["waiting"], 0, -1, False),
        (["waiting"], 0, -1, True),
        (["waiting"], 1, 2, False),
        (["waiting"], 1, 2, True),
        (["prioritized"], 0, -1, True),
        (["prioritized"], 0, 0, False),
        (["delayed"], 0, -1, True),
        (["completed", "failed"], 0, -1, False),
        (["waiting", "delayed", "prioritized"], 0, 1, True),
    ]

    async def theirs(queue: bullmq.Queue) -> list[list[str]]:
        answers = []
        for states, start, end, asc in cases:
            names = ["wait" if state == "waiting" else state for state in states]
            answers.append([job.id for job in await queue.getJobs(names, start, end, asc)])
        return answers

    expected = bull(redis_url, queue_name, theirs)
    ours = [[job.id for job in q.get_jobs(states, start, end, asc=asc)] for states, start, end, asc in cases]
    # One state: the same page in the same order. Several: the same pages; their client joins the
    # states in set order, so only the membership is compared.
    for (states, *_), mine, their in zip(cases, ours, expected, strict=True):
        assert (mine if len(states) == 1 else sorted(mine)) == (their if len(states) == 1 else sorted(their))
    # And the answers are the right ones, not merely the same.
    assert [job.name for job in q.get_prioritized(asc=True)] == ["p", "p", "p"]
    assert [job.data["priority"] for job in q.get_prioritized(asc=True)] == [1, 2, 3]
    assert [job.data for job in q.get_waiting(asc=True)] == [{"i": 2}, {"i": 3}, {"i": 4}]
    assert {job.id for job in q.get_completed()} == set(completed)
    assert [job.failed_reason for job in q.get_failed()] == ["boom"]
    assert [job.id for job in q.get_failed()] == failed
    delayed = q.get_delayed(asc=True)
    assert [job.delay for job in delayed] == [10_000, 20_000, 30_000]


def test_get_jobs_of_all_states_and_bad_state(q: sandq.SyncQueue) -> None:
    ids = {q.add("a").id for _ in range(3)} | {q.add("b", delay=60_000).id}
    assert {job.id for job in q.get_jobs()} == ids
    assert q.get_jobs("active") == []
    assert len(q.get_jobs("wait")) == 3  # BullMQ's spelling
    with pytest.raises(ConfigurationError, match="unknown job state 'done'"):
        q.get_jobs(["done"])


def test_get_jobs_skips_a_job_whose_hash_is_gone(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    first, second = q.add("a"), q.add("b")
    raw.delete(q.keys.job(first.id))
    assert [job.id for job in q.get_waiting()] == [second.id]


def test_job_logs_pages_and_order(redis_url: str, queue_name: str, q: sandq.SyncQueue) -> None:
    job = q.add("logged")
    for i in range(5):
        run_script(q, ws.add_log(q.keys, job.id, f"line {i}"))
    logs = q.get_job_logs(job.id)
    assert logs.logs == [f"line {i}" for i in range(5)]
    assert logs.count == 5
    assert q.get_job_logs(job.id, 1, 2).logs == ["line 1", "line 2"]
    assert q.get_job_logs(job.id, 0, 1, asc=False).logs == ["line 4", "line 3"]
    assert q.get_job_logs("missing").count == 0

    async def theirs(queue: bullmq.Queue) -> Any:
        return await queue.getJobLogs(job.id, 0, 1, False)

    assert bull(redis_url, queue_name, theirs) == {"logs": ["line 4", "line 3"], "count": 5}


def test_counts_per_priority_like_bullmq(redis_url: str, queue_name: str, q: sandq.SyncQueue) -> None:
    q.add_bulk([("n", {}), ("n", {}), ("p", {}, {"priority": 1}), ("p", {}, {"priority": 5})])
    q.add("p", priority=5)
    ours = q.get_counts_per_priority(0, 1, 2, 5)
    assert ours == {0: 2, 1: 1, 2: 0, 5: 2}

    async def theirs(queue: bullmq.Queue) -> Any:
        return await queue.getCountsPerPriority([0, 1, 2, 5])

    assert {int(k): v for k, v in bull(redis_url, queue_name, theirs).items()} == ours
    with pytest.raises(ConfigurationError):
        q.get_counts_per_priority(-1)


# --- retry --------------------------------------------------------------------------------------


def test_retry_a_failed_job(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    job = q.add("again", {"x": 1}, attempts=2)
    [job_id] = finish(q, 1, fail=True, attempts=2)
    assert job_id == job.id
    assert q.retry(job.id) is sandq.JobState.FAILED
    assert q.get_job_state(job.id) is sandq.JobState.WAITING
    fields = raw.hgetall(q.keys.job(job.id))
    assert "failedReason" not in fields
    assert "finishedOn" not in fields
    assert "processedOn" not in fields
    assert fields["atm"] == "1"  # kept: the attempts go on from where they were
    assert events(raw, q, "waiting")[-1] == {"event": "waiting", "jobId": job.id, "prev": "failed"}
    assert raw.zscore(q.keys.marker, "0") == 0


def test_retry_resets_attempts_when_asked(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    job = q.add("again")
    finish(q, 1, fail=True)
    q.retry(job.id, reset_attempts_made=True, reset_attempts_started=True)
    fields = raw.hgetall(q.keys.job(job.id))
    assert "atm" not in fields
    assert "ats" not in fields


def test_retry_a_completed_job_keeps_its_priority_and_lifo(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    urgent = q.add("urgent", priority=2)
    [done] = finish(q, 1)
    assert done == urgent.id
    lifo = q.add("lifo", lifo=True)
    finish(q, 1)
    plain = q.add("plain")
    assert raw.hget(q.keys.job(urgent.id), "returnvalue") == '"ok"'
    assert q.retry(urgent.id, state="completed") is sandq.JobState.COMPLETED
    assert q.retry(lifo.id) is sandq.JobState.COMPLETED
    assert "returnvalue" not in raw.hgetall(q.keys.job(urgent.id))
    assert q.get_job_state(urgent.id) is sandq.JobState.PRIORITIZED
    assert raw.lrange(q.keys.wait, 0, -1) == [plain.id, lifo.id]  # the lifo job runs next (tail)


def test_retry_refusals(q: sandq.SyncQueue) -> None:
    waiting = q.add("waiting")
    with pytest.raises(JobNotFoundError, match="'nope' does not exist"):
        q.retry("nope")
    with pytest.raises(JobNotInStateError, match=f"job '{waiting.id}' is not completed or failed"):
        q.retry(waiting.id)
    [active] = [job.id for job in take(q)]
    with pytest.raises(JobNotInStateError):
        q.retry(active)
    failed = q.add("failed")
    finish(q, 1, fail=True)
    with pytest.raises(JobNotInStateError):
        q.retry(failed.id, state="completed")
    with pytest.raises(ConfigurationError, match="only completed or failed"):
        q.retry(failed.id, state="delayed")
    assert q.get_job_state(failed.id) is sandq.JobState.FAILED


def test_retry_all_failed_in_batches(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    q.add_bulk([("bulk", {"i": i}) for i in range(2_100)])
    q.add("kept")
    while raw.llen(q.keys.wait) > 1:
        finish(q, 300, fail=True)
    assert q.get_job_counts("failed") == {"failed": 2_100}
    assert q.retry_jobs(limit=100) == 100
    assert q.retry_jobs() == 2_000
    assert q.get_job_counts("failed", "waiting") == {"failed": 0, "waiting": 2_101}
    assert q.retry_jobs("completed") == 0
    with pytest.raises(ConfigurationError):
        q.retry_jobs("waiting")


def test_retried_job_is_run_by_bullmq(redis_url: str, queue_name: str, q: sandq.SyncQueue) -> None:
    job = q.add("again", {"n": 2})
    finish(q, 1, fail=True)
    q.retry(job.id)

    async def theirs(queue: bullmq.Queue) -> Any:
        ids = await queue.getJobs(["wait"])
        return [j.id for j in ids], await queue.getJobState(job.id)

    assert bull(redis_url, queue_name, theirs) == ([job.id], "waiting")


# --- promote ------------------------------------------------------------------------------------


def test_promote_a_delayed_job(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    later = q.add("later", delay=60_000)
    other = q.add("other", delay=90_000)
    q.promote(later.id)
    assert q.get_job_state(later.id) is sandq.JobState.WAITING
    assert raw.hget(q.keys.job(later.id), "delay") == "0"
    assert events(raw, q, "waiting")[-1] == {"event": "waiting", "jobId": later.id, "prev": "delayed"}
    # The delayed marker now points at the other job.
    assert raw.zscore(q.keys.marker, "1") == pytest.approx(raw.zscore(q.keys.delayed, other.id) // 4096)
    q.promote(other.id)
    assert raw.zscore(q.keys.marker, "1") is None


def test_promote_prioritized_and_refusals(q: sandq.SyncQueue) -> None:
    urgent = q.add("urgent", delay=60_000, priority=4)
    q.promote(urgent.id)
    assert q.get_job_state(urgent.id) is sandq.JobState.PRIORITIZED
    with pytest.raises(JobNotInStateError, match="is not delayed"):
        q.promote(urgent.id)
    with pytest.raises(JobNotFoundError):
        q.promote("missing")


def test_promote_all_delayed(q: sandq.SyncQueue) -> None:
    q.add_bulk([("d", {"i": i}, {"delay": 60_000 + i}) for i in range(1_500)])
    assert q.promote_jobs(limit=10) == 10
    assert [job.data["i"] for job in q.get_waiting(asc=True)] == list(range(10))
    assert q.promote_jobs() == 1_490
    assert q.get_job_counts("delayed", "waiting") == {"delayed": 0, "waiting": 1_500}


def test_paused_queue_promote_adds_no_marker(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    job = q.add("later", delay=60_000)
    q.pause()
    raw.zrem(q.keys.marker, "0")
    q.promote(job.id)
    assert raw.zscore(q.keys.marker, "0") is None
    assert q.get_job_state(job.id) is sandq.JobState.WAITING


# --- change_priority / change_delay / update_data -------------------------------------------------


def test_change_priority_moves_waiting_jobs(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    first, second = q.add("a", priority=3), q.add("b", priority=3)
    plain = q.add("c")
    q.change_priority(second.id, 1)
    assert [job.id for job in q.get_prioritized(asc=True)] == [second.id, first.id]
    q.change_priority(plain.id, 3)
    assert [job.id for job in q.get_prioritized(asc=True)] == [second.id, first.id, plain.id]
    q.change_priority(plain.id, 3, lifo=True)
    assert [job.id for job in q.get_prioritized(asc=True)] == [second.id, plain.id, first.id]
    q.change_priority(first.id, 0)
    assert raw.lrange(q.keys.wait, 0, -1) == [first.id]
    assert raw.hget(q.keys.job(first.id), "priority") == "0"


def test_change_priority_of_a_job_that_is_not_waiting(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    job = q.add("later", delay=60_000)
    q.change_priority(job.id, 7)
    assert q.get_job_state(job.id) is sandq.JobState.DELAYED
    q.promote(job.id)
    assert raw.zscore(q.keys.prioritized, job.id) // 2**32 == 7
    with pytest.raises(JobNotFoundError):
        q.change_priority("missing", 1)
    with pytest.raises(InvalidOptionError, match="priority"):
        q.change_priority(job.id, 2**21)


def test_change_priority_like_bullmq(
    redis_url: str, queue_name: str, q: sandq.SyncQueue, raw: redis.Redis
) -> None:
    ours = [q.add("a", priority=2), q.add("b", priority=2), q.add("c")]
    q.change_priority(ours[2].id, 2)
    q.change_priority(ours[0].id, 5)
    mine = [job.name for job in q.get_prioritized(asc=True)]

    other = f"{queue_name}-bull"

    async def theirs(queue: bullmq.Queue) -> list[str]:
        jobs = [
            await queue.add("a", {}, {"priority": 2}),
            await queue.add("b", {}, {"priority": 2}),
            await queue.add("c", {}),
        ]
        await jobs[2].changePriority({"priority": 2})
        await jobs[0].changePriority({"priority": 5})
        return [job.name for job in await queue.getPrioritized()]

    try:
        assert (
            bull(redis_url, other, theirs) == mine == ["b", "c", "a"]
        )  # their getPrioritized is oldest first
    finally:
        for key in raw.scan_iter(f"bull:{other}:*"):
            raw.delete(key)


def test_change_delay(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    job = q.add("later", delay=60_000)
    before = now_ms()
    q.change_delay(job.id, 5_000)
    due = raw.zscore(q.keys.delayed, job.id) // 4096
    assert before + 5_000 <= due <= now_ms() + 5_000
    assert raw.hget(q.keys.job(job.id), "delay") == "5000"
    event = events(raw, q, "delayed")[-1]
    assert event["jobId"] == job.id
    assert int(event["delay"]) == due
    assert raw.zscore(q.keys.marker, "1") == due
    waiting = q.add("now")
    with pytest.raises(JobNotInStateError, match="is not delayed"):
        q.change_delay(waiting.id, 10)
    with pytest.raises(JobNotFoundError):
        q.change_delay("missing", 10)
    with pytest.raises(InvalidOptionError):
        q.change_delay(job.id, -1)


def test_update_data(redis_url: str, queue_name: str, q: sandq.SyncQueue) -> None:
    job = q.add("data", {"old": True})
    q.update_data(job.id, {"new": [1, 2]})
    got = q.get_job(job.id)
    assert got is not None
    assert got.data == {"new": [1, 2]}

    async def theirs(queue: bullmq.Queue) -> Any:
        return (await queue.getJob(job.id)).data

    assert bull(redis_url, queue_name, theirs) == {"new": [1, 2]}
    with pytest.raises(JobNotFoundError):
        q.update_data("missing", {})
    with pytest.raises(sandq.JobDataError):
        q.update_data(job.id, {1, 2})


# --- global limits ------------------------------------------------------------------------------


def test_global_limits_are_shared_with_bullmq(redis_url: str, queue_name: str, q: sandq.SyncQueue) -> None:
    assert q.get_global_concurrency() is None
    assert q.get_global_rate_limit() is None
    q.set_global_concurrency(3)
    q.set_global_rate_limit(10, 1_000)

    async def theirs(queue: bullmq.Queue) -> Any:
        seen = (await queue.getGlobalConcurrency(), await queue.getGlobalRateLimit())
        await queue.setGlobalConcurrency(5)
        await queue.setGlobalRateLimit(7, 2_000)
        return seen

    concurrency, limit = bull(redis_url, queue_name, theirs)
    assert int(concurrency) == 3
    assert {key: int(value) for key, value in limit.items()} == {"max": 10, "duration": 1_000}
    assert q.get_global_concurrency() == 5
    assert q.get_global_rate_limit() == (7, 2_000)
    q.set_global_concurrency(None)
    q.set_global_rate_limit(None)
    assert q.get_global_concurrency() is None
    assert q.get_global_rate_limit() is None
    with pytest.raises(ConfigurationError):
        q.set_global_concurrency(0)
    with pytest.raises(ConfigurationError):
        q.set_global_rate_limit(5, 0)


def test_global_concurrency_withholds_the_marker(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    q.set_global_concurrency(1)
    q.add("a")
    [job.id for job in take(q)]
    raw.delete(q.keys.marker)
    job = q.add("b", delay=60_000)
    q.promote(job.id)
    assert raw.zscore(q.keys.marker, "0") is None  # at the limit: no wake-up for idle workers


# --- the async Queue ----------------------------------------------------------------------------


async def test_async_queue_getters_and_actions(redis_url: str, queue_name: str) -> None:
    async with sandq.Queue(queue_name, redis_url) as queue:
        jobs = [await queue.add("a", {"i": i}) for i in range(3)]
        later = await queue.add("later", delay=60_000)
        assert [job.id for job in await queue.get_waiting(asc=True)] == [job.id for job in jobs]
        await queue.promote(later.id)
        assert (await queue.get_waiting())[0].id == later.id
        await queue.change_priority(jobs[0].id, 1)
        assert [job.id for job in await queue.get_prioritized()] == [jobs[0].id]
        assert await queue.get_counts_per_priority(0, 1) == {0: 3, 1: 1}
        await queue.update_data(jobs[1].id, [1])
        assert (await queue.get_jobs(["waiting"], 0, 0, asc=True))[0].data == [1]
        assert (await queue.get_job_logs(jobs[1].id)).count == 0
        await queue.set_global_concurrency(2)
        assert await queue.get_global_concurrency() == 2
        with pytest.raises(JobNotInStateError):
            await queue.retry(jobs[1].id)
        with pytest.raises(JobNotInStateError):
            await queue.change_delay(jobs[1].id, 5)
        assert await queue.promote_jobs() == 0
        assert await queue.retry_jobs() == 0
    with SyncRedisClient(redis_url) as client:
        assert json.loads(client.execute("HGET", f"bull:{queue_name}:{jobs[1].id}", "data")) == [1]


# --- removal ------------------------------------------------------------------------------------


def test_remove_from_each_state_and_refusals(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    done = q.add("done")
    finish(q, 1)
    waiting, later = q.add("waiting"), q.add("later", delay=60_000)
    held = q.add("held")
    assert [job.id for job in take(q)] == [waiting.id]  # the oldest waiting job is taken
    run_script(q, ws.add_log(q.keys, later.id, "line"))
    assert q.remove(done.id) is sandq.JobState.COMPLETED
    assert q.remove(later.id) is sandq.JobState.DELAYED
    assert q.remove(held.id) is sandq.JobState.WAITING
    assert not raw.exists(q.keys.job(later.id), q.keys.job_logs(later.id), q.keys.job(done.id))
    assert [event["prev"] for event in events(raw, q, "removed")] == ["completed", "delayed", "wait"]
    with pytest.raises(LockMismatchError, match="is locked"):
        q.remove(waiting.id)  # a worker holds it
    assert q.get_job_state(waiting.id) is sandq.JobState.ACTIVE
    with pytest.raises(JobNotFoundError):
        q.remove(done.id)


def test_drain_keeps_running_and_delayed_jobs(q: sandq.SyncQueue) -> None:
    q.add_bulk([("w", {}) for _ in range(5)])
    take(q)
    q.add("p", priority=1)
    q.add("d", delay=60_000)
    q.drain()
    assert q.get_job_counts("waiting", "prioritized", "delayed", "active") == {
        "waiting": 0,
        "prioritized": 0,
        "delayed": 1,
        "active": 1,
    }
    q.drain(delayed=True)
    assert q.get_job_counts("delayed", "active") == {"delayed": 0, "active": 1}


def test_clean_by_age_and_limit(q: sandq.SyncQueue, raw: redis.Redis) -> None:
    q.add_bulk([("x", {}) for _ in range(6)])
    finished = finish(q, 6)
    assert q.clean(60_000) == []  # nothing is a minute old yet
    removed = q.clean(0, 2)
    assert len(removed) == 2
    assert set(removed) <= set(finished)
    assert sorted(q.clean(0), key=int) == sorted(set(finished) - set(removed), key=int)
    assert q.get_job_counts("completed") == {"completed": 0}
    assert [event["count"] for event in events(raw, q, "cleaned")] == ["0", "2", "4"]  # as BullMQ: even 0
    with pytest.raises(ConfigurationError, match="cannot clean"):
        q.clean(0, 0, "stalled")


def test_obliterate_pauses_and_refuses_running_jobs_unless_forced(
    q: sandq.SyncQueue, raw: redis.Redis
) -> None:
    q.add_bulk([("x", {}) for _ in range(3)])
    take(q)
    with pytest.raises(sandq.ActiveJobsError, match="active jobs"):
        q.obliterate()
    assert q.is_paused()  # it paused the queue first, as BullMQ's obliterate does
    assert raw.exists(q.keys.wait)
    q.obliterate(force=True)
    assert list(raw.scan_iter(f"{q.keys.base}*")) == []


async def test_async_removal(redis_url: str, queue_name: str) -> None:
    async with sandq.Queue(queue_name, redis_url) as queue:
        job = await queue.add("a")
        await queue.add("b")
        assert await queue.remove(job.id) is sandq.JobState.WAITING
        assert await queue.clean(0, 0, "waiting") != []
        await queue.add("c", delay=1_000)
        await queue.drain(delayed=True)
        assert await queue.get_job_counts("delayed", "waiting") == {"delayed": 0, "waiting": 0}
        await queue.obliterate()
        assert await queue.get_job_counts("delayed") == {"delayed": 0}
        assert not await queue.is_paused()  # meta is gone with the queue
