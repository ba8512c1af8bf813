"""The worker scripts against the ``bullmq`` PyPI client, on one Redis, in both directions.

- Jobs added by bullmq are fetched and finished by sandq's scripts, then read back by bullmq
  (``getJob``, ``getJobState``, ``getJobCounts``).
- A job fetched by sandq and never renewed is recovered by bullmq's own stalled checker and worker.
- Jobs that sandq's ``requeue`` / ``retry`` put back are processed by a bullmq Worker.
- A job processed by a bullmq Worker and one processed by sandq leave the same hash fields and events.

bullmq runs on asyncio, one ``asyncio.run`` per step (as in ``test_interop_bullmq.py``); sandq's scripts
run over a SyncRedisClient. bullmq Workers get short lock/stalled intervals so the file stays quick.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import bullmq
import pytest
import redis

import sandq
from sandq import worker_scripts as ws
from sandq.backoff import backoff_delay
from sandq.connection.resp import Reply
from sandq.connection.sync import SyncRedisClient
from sandq.keys import QueueKeys
from sandq.queue import now_ms
from sandq.scripts import ScriptCall

from bullmq_peer import bull, bull_add

T = TypeVar("T")


def bull_read(redis_url: str, queue_name: str, job_id: str) -> tuple[Any, str, dict[str, int]]:
    """bullmq's view of a job: the Job, its state and the queue's counts."""

    async def work(queue: bullmq.Queue) -> tuple[Any, str, dict[str, int]]:
        job = await queue.getJob(job_id)
        return job, await queue.getJobState(job_id), await queue.getJobCounts()

    return bull(redis_url, queue_name, work)


def bull_work(
    redis_url: str,
    queue_name: str,
    expected: int,
    *,
    options: dict[str, Any] | None = None,
    timeout: float = 10.0,
    fail: bool = False,
) -> list[str]:
    """Run a bullmq Worker until it has run ``expected`` jobs (or ``timeout``); the ids of the jobs it
    ran, in order. Its processor returns ``{"by": "bullmq", "attempt": attemptsMade}``, or raises
    ``RuntimeError("boom")`` when ``fail``."""
    ran: list[str] = []

    async def main() -> list[str]:
        done = asyncio.Event()

        async def process(job: Any, token: str) -> Any:
            ran.append(str(job.id))
            if len(ran) >= expected:
                asyncio.get_running_loop().call_later(0.05, done.set)
            if fail:
                raise RuntimeError("boom")
            return {"by": "bullmq", "attempt": job.attemptsMade}

        worker = bullmq.Worker(
            queue_name, process, {"connection": redis_url, "drainDelay": 1, **(options or {})}
        )
        try:
            await asyncio.wait_for(done.wait(), timeout)
        finally:
            await worker.close()
        return ran

    return asyncio.run(main())


class Sandq:
    """sandq's worker scripts for one queue, over one SyncRedisClient."""

    def __init__(self, client: SyncRedisClient, name: str) -> None:
        self.client = client
        self.keys = QueueKeys(name)

    def run(self, call: ScriptCall) -> Reply:
        return self.client.run_script(call.script, call.keys, call.args)

    def fetch(
        self, *tokens: str, lock_duration_ms: int = 30_000, now: int | None = None
    ) -> list[ws.FetchedJob]:
        call = ws.move_to_active(
            self.keys,
            tokens,
            now_ms=now or now_ms(),
            lock_duration_ms=lock_duration_ms,
            worker_name="sandq-w",
        )
        return ws.decode_fetch(self.run(call)).jobs

    def finish(self, *entries: ws.FinishEntry, now: int | None = None) -> list[int]:
        call = ws.finish_jobs(self.keys, entries, now_ms=now or now_ms())
        codes, _ = ws.decode_finish(self.run(call))
        return codes


@pytest.fixture
def sq(redis_url: str, queue_name: str) -> Iterator[Sandq]:
    with SyncRedisClient(redis_url) as client:
        yield Sandq(client, queue_name)


def test_bullmq_job_completed_by_sandq(redis_url: str, queue_name: str, sq: Sandq) -> None:
    job_id = bull_add(redis_url, queue_name, "resize", {"w": 64}, {"removeOnComplete": 10})
    (fetched,) = sq.fetch("tok-1")
    assert fetched.id == job_id
    opts = json.loads(fetched.fields[b"opts"])
    keep = ws.retention(opts.get("removeOnComplete"))
    assert sq.finish(ws.Complete(job_id, "tok-1", json.dumps({"ok": True, "size": 64}), keep)) == [0]

    job, state, counts = bull_read(redis_url, queue_name, job_id)
    assert state == "completed"
    assert job.returnvalue == {"ok": True, "size": 64}
    assert job.attemptsMade == 1
    assert job.attemptsStarted == 1
    assert job.finishedOn >= job.processedOn > 0
    assert counts["completed"] == 1
    assert counts["active"] == counts["waiting"] == 0


def test_bullmq_job_retried_then_failed_by_sandq(
    redis_url: str, queue_name: str, raw: redis.Redis, sq: Sandq
) -> None:
    opts = {"attempts": 2, "backoff": {"type": "exponential", "delay": 1000}}
    job_id = bull_add(redis_url, queue_name, "flaky", {}, opts)
    now = now_ms()
    (first,) = sq.fetch("t1", now=now)
    stored = json.loads(first.fields[b"opts"])
    delay = backoff_delay(stored["backoff"], 1)
    assert delay == 1000
    stack1 = ["Error: first\n  at step 1"]
    assert sq.finish(ws.Retry(job_id, "t1", delay, "first", ws.stacktrace_json(stack1)), now=now) == [0]

    job, state, counts = bull_read(redis_url, queue_name, job_id)
    assert state == "delayed"
    assert (job.attemptsMade, job.failedReason, job.stacktrace) == (1, "first", stack1)
    assert job.delay == 1000
    assert counts["delayed"] == 1

    assert sq.fetch("t2", now=now + 999) == []
    assert [job.id for job in sq.fetch("t2", now=now + 1000)] == [job_id]
    stack2 = [*stack1, "Error: second\n  at step 2"]
    fail = ws.Fail(job_id, "t2", "second", ws.stacktrace_json(stack2), ws.retention(None), stored["attempts"])
    assert sq.finish(fail, now=now + 1001) == [0]

    job, state, counts = bull_read(redis_url, queue_name, job_id)
    assert state == "failed"
    assert (job.attemptsMade, job.attemptsStarted) == (2, 2)
    assert job.failedReason == "second"
    assert job.stacktrace == stack2
    assert job.finishedOn == now + 1001
    assert job.processedOn == now + 1000
    assert counts["failed"] == 1
    assert counts["delayed"] == counts["active"] == 0
    kinds = [fields["event"] for _, fields in raw.xrange(sq.keys.events)]
    assert kinds[-3:] == ["failed", "retries-exhausted", "drained"]


#: A job fetched by sandq, stalled, recovered by a sweep (bullmq's or sandq's), completed by bullmq.
STALLED_THEN_COMPLETED = [
    {"event": "added", "jobId": "<id>", "name": "orphaned"},
    {"event": "waiting", "jobId": "<id>"},
    {"event": "active", "jobId": "<id>", "prev": "waiting"},
    {"event": "waiting", "jobId": "<id>", "prev": "active"},
    {"event": "stalled", "jobId": "<id>"},
    {"event": "active", "jobId": "<id>", "prev": "waiting"},
    {"event": "completed", "jobId": "<id>", "returnvalue": '{"by":"bullmq","attempt":0}', "prev": "active"},
    {"event": "drained"},
]


def queue_events(raw: redis.Redis, keys: QueueKeys) -> list[dict[str, str]]:
    return [
        {field: "<id>" if field == "jobId" else value for field, value in entry.items()}
        for _, entry in raw.xrange(keys.events)
    ]


def test_unrenewed_sandq_job_recovered_by_bullmq(
    redis_url: str, queue_name: str, raw: redis.Redis, sq: Sandq
) -> None:
    job_id = bull_add(redis_url, queue_name, "orphaned", {"n": 1})
    (fetched,) = sq.fetch("dead-worker", lock_duration_ms=100)  # the sandq worker dies here
    assert fetched.id == job_id
    started = time.monotonic()
    ran = bull_work(
        redis_url, queue_name, 1, options={"stalledInterval": 250, "lockDuration": 5000, "maxStalledCount": 1}
    )
    assert ran == [job_id]
    assert time.monotonic() - started < 8
    job, state, _ = bull_read(redis_url, queue_name, job_id)
    assert state == "completed"
    assert job.stalledCounter == 1
    assert job.attemptsStarted == 2
    assert job.returnvalue == {"by": "bullmq", "attempt": 0}
    assert queue_events(raw, sq.keys) == STALLED_THEN_COMPLETED


def test_sandq_sweep_then_bullmq_worker(redis_url: str, queue_name: str, raw: redis.Redis, sq: Sandq) -> None:
    job_id = bull_add(redis_url, queue_name, "orphaned", {})
    sq.fetch("dead-worker", lock_duration_ms=1)
    sweep = ws.move_stalled_jobs_to_wait(
        sq.keys, max_stalled_count=1, now_ms=now_ms(), stalled_interval_ms=10
    )
    assert ws.decode_stalled(sq.run(sweep)) == []
    time.sleep(0.02)
    assert ws.decode_stalled(sq.run(sweep)) == [job_id]
    assert bull_work(redis_url, queue_name, 1) == [job_id]
    job, state, _ = bull_read(redis_url, queue_name, job_id)
    assert (state, job.stalledCounter, job.returnvalue) == ("completed", 1, {"by": "bullmq", "attempt": 0})
    assert queue_events(raw, sq.keys) == STALLED_THEN_COMPLETED


def test_bullmq_worker_takes_jobs_sandq_put_back(redis_url: str, queue_name: str, sq: Sandq) -> None:
    with sandq.SyncQueue(queue_name, redis_url) as queue:
        requeued = queue.add("a", {"i": 1}).id
        retried = queue.add("b", {"i": 2}, attempts=3).id
        delayed = queue.add("c", {"i": 3}).id
    assert [job.id for job in sq.fetch("t1", "t2", "t3")] == [requeued, retried, delayed]
    codes = sq.finish(
        ws.Requeue(requeued, "t1"),
        ws.Retry(retried, "t2", 0, "try again"),
        ws.Delay(delayed, "t3", 300),
    )
    assert codes == [0, 0, 0]
    ran = bull_work(redis_url, queue_name, 3)
    assert ran == [requeued, retried, delayed]  # the requeued job went to the front
    results = {job_id: bull_read(redis_url, queue_name, job_id)[0] for job_id in ran}
    assert results[requeued].returnvalue == {"by": "bullmq", "attempt": 0}  # no attempt spent
    assert results[retried].returnvalue == {"by": "bullmq", "attempt": 1}
    assert results[delayed].returnvalue == {"by": "bullmq", "attempt": 0}
    assert [results[job_id].attemptsMade for job_id in ran] == [1, 2, 1]
    assert [results[job_id].attemptsStarted for job_id in ran] == [2, 2, 2]


def test_same_fields_and_events_as_a_bullmq_worker(redis_url: str, queue_name: str, raw: redis.Redis) -> None:
    """One job completed by a bullmq Worker, one by sandq: the same hash fields, the same events."""
    names = {"bullmq": queue_name + "b", "sandq": queue_name + "s"}
    ids = {who: bull_add(redis_url, name, "job", {"x": 1}) for who, name in names.items()}
    bull_work(redis_url, names["bullmq"], 1)
    with SyncRedisClient(redis_url) as client:
        s = Sandq(client, names["sandq"])
        (fetched,) = s.fetch("tok")
        returnvalue = json.dumps({"by": "bullmq", "attempt": 0}, separators=(",", ":"))
        assert s.finish(ws.Complete(fetched.id, "tok", returnvalue)) == [0]

    def shape(who: str) -> tuple[set[str], list[list[tuple[str, str]]]]:
        base = f"bull:{names[who]}:"
        fields = set(raw.hgetall(base + ids[who])) - {"pb"}  # sandq's fetch named its worker
        events = [
            [(f, "<id>" if f == "jobId" else v) for f, v in entry.items()]
            for _, entry in raw.xrange(base + "events")
        ]
        return fields, events

    bull_fields, bull_events = shape("bullmq")
    sandq_fields, sandq_events = shape("sandq")
    assert sandq_fields == bull_fields
    assert sandq_events == bull_events


def test_same_retry_and_failure_as_a_bullmq_worker(redis_url: str, queue_name: str, raw: redis.Redis) -> None:
    """A job that fails twice (one retry with backoff, then for good), by bullmq and by sandq."""
    names = {"bullmq": queue_name + "b", "sandq": queue_name + "s"}
    opts = {"attempts": 2, "backoff": {"type": "fixed", "delay": 100}}
    ids = {who: bull_add(redis_url, name, "job", {"x": 1}, opts) for who, name in names.items()}
    bull_work(redis_url, names["bullmq"], 2, fail=True)
    with SyncRedisClient(redis_url) as client:
        s = Sandq(client, names["sandq"])
        now = now_ms()
        (job,) = s.fetch("t1", now=now)
        trace = ["Traceback: boom"]
        assert s.finish(ws.Retry(job.id, "t1", 100, "boom", ws.stacktrace_json(trace)), now=now) == [0]
        (job,) = s.fetch("t2", now=now + 100)
        fail = ws.Fail(job.id, "t2", "boom", ws.stacktrace_json(trace * 2), attempts=2)
        assert s.finish(fail, now=now + 101) == [0]

    def shape(who: str) -> tuple[dict[str, Any], list[list[tuple[str, str]]]]:
        base = f"bull:{names[who]}:"
        job = raw.hgetall(base + ids[who])
        job.pop("pb", None)
        fields = {
            field: len(json.loads(value)) if field == "stacktrace" else value
            for field, value in job.items()
            if field not in ("timestamp", "processedOn", "finishedOn")
        }
        events = [
            [(f, "<id>" if f == "jobId" else "<time>" if f == "delay" else v) for f, v in entry.items()]
            for _, entry in raw.xrange(base + "events")
        ]
        return fields, events

    bull_shape, sandq_shape = shape("bullmq"), shape("sandq")
    assert sandq_shape == bull_shape
    assert bull_shape[0]["atm"] == "2"
    assert [entry[0][1] for entry in bull_shape[1]][-3:] == ["failed", "retries-exhausted", "drained"]
