"""The worker's Lua scripts against real Redis servers: every test runs on Redis 7.x and on 6.2.

Jobs are added with SyncQueue, the worker scripts are run through their pure builders
(:mod:`sandq.worker_scripts`), and the keys are read back raw, as BullMQ's clients would read them.
Times are passed explicitly (``now_ms``), so scores and fields can be checked exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
import redis

from sandq import SyncQueue
from sandq import worker_scripts as ws
from sandq.connection.resp import Reply
from sandq.connection.sync import SyncRedisClient
from sandq.errors import JobNotFoundError, ReplyError
from sandq.job import JobState
from sandq.options import KeepJobs
from sandq.scripts import ScriptCall

T0 = 1_800_000_000_000  # a fixed "now", so scores and fields can be computed exactly
LOCK_MS = 30_000


@pytest.fixture
def r(any_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(any_redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def q(any_redis_url: str, queue_name: str) -> Iterator[SyncQueue]:
    queue = SyncQueue(queue_name, any_redis_url)
    yield queue
    queue.close()


@pytest.fixture
def client(any_redis_url: str) -> Iterator[SyncRedisClient]:
    with SyncRedisClient(any_redis_url) as c:
        yield c


class Runner:
    """The scripts of one queue, run on one client."""

    def __init__(self, client: SyncRedisClient, q: SyncQueue) -> None:
        self.client = client
        self.keys = q.keys

    def run(self, call: ScriptCall) -> Reply:
        return self.client.run_script(call.script, call.keys, call.args)

    def fetch(self, *tokens: str, now: int = T0, **kwargs: Any) -> ws.FetchResult:
        kwargs.setdefault("lock_duration_ms", LOCK_MS)
        return ws.decode_fetch(self.run(ws.move_to_active(self.keys, tokens, now_ms=now, **kwargs)))

    def ids(self, *tokens: str, now: int = T0, **kwargs: Any) -> list[str]:
        return [job.id for job in self.fetch(*tokens, now=now, **kwargs).jobs]

    def finish(
        self, *entries: ws.FinishEntry, now: int = T0, fetch: ws.FetchSpec | None = None
    ) -> tuple[list[int], ws.FetchResult | None]:
        return ws.decode_finish(self.run(ws.finish_jobs(self.keys, entries, now_ms=now, fetch=fetch)))


@pytest.fixture
def w(client: SyncRedisClient, q: SyncQueue) -> Runner:
    return Runner(client, q)


def events(r: redis.Redis, q: SyncQueue) -> list[dict[str, str]]:
    return [fields for _, fields in r.xrange(q.keys.events)]


def last_events(r: redis.Redis, q: SyncQueue, n: int) -> list[dict[str, str]]:
    return events(r, q)[-n:]


def active_job(q: SyncQueue, w: Runner, name: str = "job", token: str = "tok", **options: Any) -> str:
    """Add a job and fetch it (with ``token``); its id."""
    job = q.add(name, {"n": 1}, **options)
    fetched = w.fetch(token)
    assert [j.id for j in fetched.jobs] == [job.id]
    return job.id


# --- move_to_active ---------------------------------------------------------------------------------


def test_fetch_order_wait_before_prioritized(q: SyncQueue, w: Runner) -> None:
    a = q.add("a").id
    b = q.add("b").id
    lifo = q.add("lifo", lifo=True).id
    low = q.add("low", priority=5).id
    high = q.add("high", priority=1).id
    high2 = q.add("high2", priority=1).id
    c = q.add("c").id
    order = [job_id for _ in range(8) for job_id in w.ids("t")]
    assert order == [lifo, a, b, c, high, high2, low]


def test_fetch_many_at_once_keeps_the_order_and_tokens(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    ids = [job.id for job in q.add_bulk([("j", i) for i in range(5)])]
    q.add("p", priority=1)
    result = w.fetch("t1", "t2", "t3")
    assert [(job.id, job.token) for job in result.jobs] == list(zip(ids[:3], ["t1", "t2", "t3"], strict=True))
    assert [r.get(q.keys.job_lock(job_id)) for job_id in ids[:3]] == ["t1", "t2", "t3"]
    assert r.lrange(q.keys.active, 0, -1) == list(reversed(ids[:3]))
    assert [job.id for job in w.fetch("a", "b", "c", "d").jobs] == [*ids[3:], "6"]
    assert w.fetch("x").jobs == []
    assert r.exists(q.keys.pc) == 0  # deleted once prioritized was found empty


def test_fetch_writes_lock_fields_events_and_marker(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = q.add("send", {"to": "ada"}, attempts=2).id
    r.delete(q.keys.marker)
    (job,) = w.fetch("tok-1", worker_name="w1", now=T0 + 5).jobs
    assert job.id == job_id
    assert job.token == "tok-1"
    assert job.fields[b"name"] == b"send"
    assert job.fields[b"data"] == b'{"to":"ada"}'
    assert job.fields[b"processedOn"] == str(T0 + 5).encode()
    assert job.fields[b"pb"] == b"w1"
    assert job.fields[b"ats"] == b"1"
    assert r.get(q.keys.job_lock(job_id)) == "tok-1"
    assert 0 < r.pttl(q.keys.job_lock(job_id)) <= LOCK_MS
    assert r.lrange(q.keys.active, 0, -1) == [job_id]
    assert r.llen(q.keys.wait) == 0
    assert last_events(r, q, 1) == [{"event": "active", "jobId": job_id, "prev": "waiting"}]
    assert r.zrange(q.keys.marker, 0, -1, withscores=True) == [("0", 0.0)]


def test_fetch_without_name_or_lock(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = q.add("x").id
    (job,) = w.fetch("0").jobs
    assert b"pb" not in job.fields
    assert r.exists(q.keys.job_lock(job_id)) == 0
    r.lpush(q.keys.wait, job_id)
    w.fetch("t")
    assert r.hget(q.keys.job(job_id), "ats") == "2"


def test_nothing_to_fetch(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    assert w.fetch("t") == ws.FetchResult(jobs=[], rate_limit_ttl_ms=0, next_delayed_ms=0)
    assert r.exists(q.keys.marker) == 0


def test_delayed_jobs_are_promoted_on_time(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    plain = q.add("plain", delay=5000, timestamp=T0).id
    prio = q.add("prio", delay=5000, priority=3, timestamp=T0).id
    later = q.add("later", delay=9000, timestamp=T0).id
    early = w.fetch("t", now=T0 + 4999)
    assert early.jobs == []
    assert early.next_delayed_ms == T0 + 5000
    assert r.zcard(q.keys.delayed) == 3
    due = w.fetch("t1", "t2", now=T0 + 5000)
    assert [job.id for job in due.jobs] == [plain, prio]  # wait first, then prioritized
    assert due.next_delayed_ms == T0 + 9000
    assert r.hget(q.keys.job(plain), "delay") == "0"
    assert r.hget(q.keys.job(prio), "delay") == "0"
    assert r.zrange(q.keys.delayed, 0, -1) == [later]
    promoted = [e for e in events(r, q) if e.get("prev") == "delayed"]
    assert promoted == [
        {"event": "waiting", "jobId": plain, "prev": "delayed"},
        {"event": "waiting", "jobId": prio, "prev": "delayed"},
    ]


def test_promotion_is_fifo_and_capped_at_1000(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    r.zadd(q.keys.delayed, {f"d{i}": T0 * 4096 + i for i in range(1001)})
    for i in range(1001):
        r.hset(q.keys.job(f"d{i}"), mapping={"name": "d", "priority": "0", "delay": "10"})
    q.pause()  # promote without fetching
    w.fetch("t", now=T0)
    assert r.llen(q.keys.wait) == 1000
    assert r.zrange(q.keys.delayed, 0, -1) == ["d1000"]
    assert r.lindex(q.keys.wait, -1) == "d0"  # the earliest is fetched first


def test_legacy_marker_ids_and_orphans_are_skipped(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = q.add("real").id
    r.rpush(q.keys.wait, "ghost")  # an id without a hash
    r.rpush(q.keys.wait, "0:1234")  # a v4 marker id
    assert w.ids("t") == [job_id]
    assert r.lrange(q.keys.active, 0, -1) == [job_id]
    assert r.llen(q.keys.wait) == 0


def test_worker_rate_limit(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    q.add_bulk([("j", i) for i in range(4)])
    first = w.fetch("a", "b", "c", limiter=(2, 10_000))
    assert len(first.jobs) == 2
    assert 0 < first.rate_limit_ttl_ms <= 10_000
    assert r.get(q.keys.limiter) == "2"
    assert 0 < r.pttl(q.keys.limiter) <= 10_000
    again = w.fetch("d", limiter=(2, 10_000))
    assert again.jobs == []
    assert 0 < again.rate_limit_ttl_ms <= 10_000
    r.delete(q.keys.limiter)  # the window ends
    assert len(w.fetch("e", limiter=(2, 10_000)).jobs) == 1
    assert r.get(q.keys.limiter) == "1"


def test_global_rate_limit_from_meta(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    q.add_bulk([("j", i) for i in range(3)])
    r.hset(q.keys.meta, mapping={"max": 1, "duration": 5000})
    result = w.fetch("a", "b", limiter=(10, 60_000))  # meta max wins, the worker's duration wins
    assert len(result.jobs) == 1
    assert 5000 < result.rate_limit_ttl_ms <= 60_000
    assert w.fetch("c").jobs == []


def test_manual_rate_limit_and_expired_limiter(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    q.add("j")
    r.set(q.keys.limiter, 9007199254740991, px=5000)
    limited = w.fetch("a")
    assert limited.jobs == []
    assert 0 < limited.rate_limit_ttl_ms <= 5000
    r.set(q.keys.limiter, 5)  # at the max but without an expiry: cleared, not a block forever
    assert len(w.fetch("a", limiter=(5, 1000)).jobs) == 1


def test_paused_queue_fetches_nothing(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    q.add("j")
    q.add("later", delay=1000, timestamp=T0)
    q.pause()
    assert w.fetch("a", now=T0) == ws.FetchResult(jobs=[], rate_limit_ttl_ms=0, next_delayed_ms=0)
    assert r.llen(q.keys.wait) == 1
    q.resume()
    assert len(w.fetch("a", now=T0).jobs) == 1


def test_global_concurrency_caps_the_fetch(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    q.add_bulk([("j", i) for i in range(5)])
    r.hset(q.keys.meta, "concurrency", 2)
    assert len(w.fetch("a", "b", "c").jobs) == 2
    assert w.fetch("d").jobs == []
    r.lpop(q.keys.active)
    assert len(w.fetch("e", "f").jobs) == 1


# --- finish_jobs: each kind -------------------------------------------------------------------------


def test_complete(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    r.sadd(q.keys.stalled, job_id)
    codes, fetched = w.finish(ws.Complete(job_id, "tok", '{"ok":1}'), now=T0 + 7)
    assert (codes, fetched) == ([0], None)
    job = r.hgetall(q.keys.job(job_id))
    assert job["returnvalue"] == '{"ok":1}'
    assert job["finishedOn"] == str(T0 + 7)
    assert job["atm"] == "1"
    assert r.zrange(q.keys.completed, 0, -1, withscores=True) == [(job_id, float(T0 + 7))]
    assert r.exists(q.keys.job_lock(job_id)) == 0
    assert r.smembers(q.keys.stalled) == set()
    assert r.llen(q.keys.active) == 0
    assert q.get_job_state(job_id) is JobState.COMPLETED
    assert last_events(r, q, 2) == [
        {"event": "completed", "jobId": job_id, "returnvalue": '{"ok":1}', "prev": "active"},
        {"event": "drained"},
    ]


def test_complete_keeps_a_job_with_a_parent_key(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    r.hset(q.keys.job(job_id), mapping={"parentKey": "bull:other:p1", "parent": '{"id":"p1"}'})
    assert w.finish(ws.Complete(job_id, "tok", "null"))[0] == [0]
    assert r.hget(q.keys.job(job_id), "returnvalue") == "null"
    assert r.hget(q.keys.job(job_id), "parentKey") == "bull:other:p1"


def test_retention_by_count(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    ids = []
    for i in range(4):
        job_id = active_job(q, w)
        r.rpush(q.keys.job_logs(job_id), "line")
        assert w.finish(ws.Complete(job_id, "tok", "1", ws.retention(2)), now=T0 + i)[0] == [0]
        ids.append(job_id)
    assert r.zrange(q.keys.completed, 0, -1) == ids[2:]
    for job_id in ids[:2]:
        assert r.exists(q.keys.job(job_id), q.keys.job_logs(job_id)) == 0
    assert r.exists(q.keys.job(ids[3])) == 1


def test_retention_by_age_with_a_limit(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    r.zadd(q.keys.completed, {"old1": T0, "old2": T0 + 1, "recent": T0 + 15_000})
    for job_id in ("old1", "old2", "recent"):
        r.hset(q.keys.job(job_id), "name", "x")
    job_id = active_job(q, w)
    keep = ws.retention({"age": 10, "limit": 1})
    assert w.finish(ws.Complete(job_id, "tok", "1", keep), now=T0 + 20_000)[0] == [0]
    assert r.zrange(q.keys.completed, 0, -1) == ["old2", "recent", job_id]  # one removal per call
    assert r.exists(q.keys.job("old1")) == 0
    assert r.exists(q.keys.job("old2")) == 1


def test_retention_true_deletes_the_job(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    job_key = q.keys.job(job_id)
    r.rpush(q.keys.job_logs(job_id), "line")
    r.sadd(job_key + ":dependencies", "x")
    r.zadd(job_key + ":unsuccessful", {"x": 1})
    r.hset(job_key + ":processed", "c", "1")
    r.hset(job_key + ":failed", "c", "boom")
    assert w.finish(ws.Complete(job_id, "tok", '"v"', KeepJobs(count=0))) == ([0], None)
    assert r.keys(job_key + "*") == []
    assert r.zcard(q.keys.completed) == 0
    assert {"event": "completed", "jobId": job_id, "returnvalue": '"v"', "prev": "active"} in events(r, q)


def test_fail(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    r.hset(q.keys.job(job_id), "defa", "job stalled more than allowable limit")
    entry = ws.Fail(job_id, "tok", "boom", ws.stacktrace_json(["Error: boom"]), attempts=3)
    assert w.finish(entry, now=T0 + 3) == ([0], None)
    job = r.hgetall(q.keys.job(job_id))
    assert job["failedReason"] == "boom"
    assert json.loads(job["stacktrace"]) == ["Error: boom"]
    assert job["finishedOn"] == str(T0 + 3)
    assert job["atm"] == "1"
    assert "defa" not in job
    assert r.zrange(q.keys.failed, 0, -1, withscores=True) == [(job_id, float(T0 + 3))]
    assert last_events(r, q, 2) == [
        {"event": "failed", "jobId": job_id, "failedReason": "boom", "prev": "active"},
        {"event": "drained"},
    ]


def test_fail_with_attempts_exhausted(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    r.hset(q.keys.job(job_id), "atm", 1)
    assert w.finish(ws.Fail(job_id, "tok", "again", keep=ws.retention(True), attempts=2))[0] == [0]
    assert r.exists(q.keys.job(job_id)) == 0
    assert r.zcard(q.keys.failed) == 0
    assert last_events(r, q, 3) == [
        {"event": "failed", "jobId": job_id, "failedReason": "again", "prev": "active"},
        {"event": "retries-exhausted", "jobId": job_id, "attemptsMade": "2"},
        {"event": "drained"},
    ]


def test_fail_keeps_an_existing_stacktrace_when_none_given(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    r.hset(q.keys.job(job_id), "stacktrace", '["first"]')
    w.finish(ws.Fail(job_id, "tok", "x", attempts=5))
    assert r.hget(q.keys.job(job_id), "stacktrace") == '["first"]'


def test_retry_with_backoff_goes_to_delayed(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    r.delete(q.keys.marker)
    entry = ws.Retry(job_id, "tok", 2000, "flaky", ws.stacktrace_json(["e1"]))
    assert w.finish(entry, now=T0) == ([0], None)
    job = r.hgetall(q.keys.job(job_id))
    fields = (job["failedReason"], job["stacktrace"], job["atm"], job["delay"])
    assert fields == ("flaky", '["e1"]', "1", "2000")
    assert "finishedOn" not in job
    assert r.zrange(q.keys.delayed, 0, -1, withscores=True) == [(job_id, float((T0 + 2000) * 4096))]
    assert r.zrange(q.keys.marker, 0, -1, withscores=True) == [("1", float(T0 + 2000))]
    # As BullMQ's moveToDelayed: no `drained`, though wait, active and prioritized are empty.
    assert last_events(r, q, 1) == [{"event": "delayed", "jobId": job_id, "delay": str(T0 + 2000)}]
    assert w.ids("t", now=T0 + 2000) == [job_id]


def test_immediate_retry_fifo_lifo_and_priority(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    q.add("other")
    fifo = q.add("fifo").id
    lifo = q.add("lifo").id
    prio = q.add("prio", priority=4).id
    r.lrem(q.keys.wait, 0, "1")  # keep "other" out of the fetch
    assert w.ids("a", "b", "c") == [fifo, lifo, prio]
    r.lpush(q.keys.wait, "1")
    r.delete(q.keys.marker)
    codes, _ = w.finish(
        ws.Retry(fifo, "a", 0, "e"), ws.Retry(lifo, "b", 0, "e", lifo=True), ws.Retry(prio, "c", 0, "e")
    )
    assert codes == [0, 0, 0]
    assert r.lrange(q.keys.wait, 0, -1) == [fifo, "1", lifo]
    assert r.zscore(q.keys.prioritized, prio) == float(4 * 2**32 + 2)  # a fresh counter value
    assert r.zrange(q.keys.marker, 0, -1, withscores=True) == [("0", 0.0)]
    assert last_events(r, q, 3) == [
        {"event": "waiting", "jobId": job_id, "prev": "active"} for job_id in (fifo, lifo, prio)
    ]
    assert [r.hget(q.keys.job(job_id), "atm") for job_id in (fifo, lifo, prio)] == ["1", "1", "1"]


def test_retry_while_paused_withholds_the_marker(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    q.pause()
    w.finish(ws.Retry(job_id, "tok", 0, "e"))
    assert r.lrange(q.keys.wait, 0, -1) == [job_id]
    assert r.exists(q.keys.marker) == 0


def test_delay_spends_no_attempt(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    assert w.finish(ws.Delay(job_id, "tok", 500), now=T0 + 1) == ([0], None)
    job = r.hgetall(q.keys.job(job_id))
    assert "atm" not in job
    assert "failedReason" not in job
    assert job["delay"] == "500"
    assert r.zscore(q.keys.delayed, job_id) == float((T0 + 501) * 4096)
    assert r.zscore(q.keys.marker, "1") == float(T0 + 501)
    assert {"event": "delayed", "jobId": job_id, "delay": str(T0 + 501)} in events(r, q)


def test_requeue_goes_to_the_front(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    prio = active_job(q, w, token="p", priority=7)
    q.add("next")
    q.add("next-prio", priority=7)
    codes, _ = w.finish(ws.Requeue(job_id, "tok"), ws.Requeue(prio, "p"))
    assert codes == [0, 0]
    assert r.lindex(q.keys.wait, -1) == job_id
    assert r.zscore(q.keys.prioritized, prio) == float(7 * 2**32)
    assert r.hget(q.keys.job(job_id), "atm") is None
    assert last_events(r, q, 2) == [
        {"event": "waiting", "jobId": job_id, "prev": "active"},
        {"event": "waiting", "jobId": prio, "prev": "active"},
    ]
    assert w.ids("a", "b", "c", "d") == [job_id, "3", prio, "4"]


# --- finish_jobs: dedup, refusals, batches, drained, fetch-next -------------------------------------


@pytest.mark.parametrize(
    ("owner", "ttl", "released"),
    [("self", None, True), ("self", 60_000, False), ("other", None, False)],
    ids=["owned", "throttle-ttl", "owned-by-another"],
)
def test_dedup_slot_release(
    *, r: redis.Redis, q: SyncQueue, w: Runner, owner: str, ttl: int | None, released: bool
) -> None:
    job_id = active_job(q, w)
    r.hset(q.keys.job(job_id), "deid", "d1")
    dedup_key = q.keys.base + "de:d1"
    r.set(dedup_key, job_id if owner == "self" else "someone", px=ttl)
    w.finish(ws.Complete(job_id, "tok", "1"))
    assert (r.exists(dedup_key) == 0) is released


def test_fail_releases_the_dedup_slot(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    r.hset(q.keys.job(job_id), "deid", "d2")
    r.set(q.keys.base + "de:d2", job_id)
    w.finish(ws.Fail(job_id, "tok", "x"))
    assert r.exists(q.keys.base + "de:d2") == 0


ALL_KINDS: dict[str, Callable[[str, str], ws.FinishEntry]] = {
    "complete": lambda job_id, token: ws.Complete(job_id, token, "1"),
    "fail": lambda job_id, token: ws.Fail(job_id, token, "x"),
    "retry": lambda job_id, token: ws.Retry(job_id, token, 0, "x"),
    "delay": lambda job_id, token: ws.Delay(job_id, token, 10),
    "requeue": ws.Requeue,
}


def snapshot(r: redis.Redis, q: SyncQueue, job_id: str) -> tuple[Any, ...]:
    keys = q.keys
    return (
        r.hgetall(keys.job(job_id)),
        r.get(keys.job_lock(job_id)),
        r.lrange(keys.active, 0, -1),
        r.lrange(keys.wait, 0, -1),
        r.zrange(keys.delayed, 0, -1),
        r.zrange(keys.completed, 0, -1),
        r.zrange(keys.failed, 0, -1),
        r.smembers(keys.stalled),
        r.xlen(keys.events),
    )


@pytest.mark.parametrize("kind", sorted(ALL_KINDS))
def test_refusal_codes(r: redis.Redis, q: SyncQueue, w: Runner, kind: str) -> None:
    make = ALL_KINDS[kind]
    job_id = active_job(q, w)
    r.sadd(q.keys.stalled, job_id)
    before = snapshot(r, q, job_id)
    assert w.finish(make("missing", "tok"))[0] == [-1]
    assert w.finish(make(job_id, "other-token"))[0] == [-6]
    assert snapshot(r, q, job_id) == before
    r.delete(q.keys.job_lock(job_id))
    assert w.finish(make(job_id, "tok"))[0] == [-2]
    r.lrem(q.keys.active, 0, job_id)
    assert w.finish(make(job_id, ""))[0] == [-3]  # no lock check, but not in active
    r.lpush(q.keys.active, job_id)
    assert w.finish(make(job_id, ""))[0] == [0]  # "" skips the lock check
    assert r.llen(q.keys.active) == 0


def test_a_batch_applies_every_entry_but_the_refused_one(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    ids = [job.id for job in q.add_bulk([("j", i) for i in range(5)])]
    w.fetch("t1", "t2", "t3", "t4", "t5")
    codes, fetched = w.finish(
        ws.Complete(ids[0], "t1", '"a"'),
        ws.Fail(ids[1], "t2", "bad", attempts=1),
        ws.Complete(ids[2], "wrong", '"c"'),
        ws.Retry(ids[3], "t4", 100, "again"),
        ws.Requeue(ids[4], "t5"),
        now=T0,
    )
    assert codes == [0, 0, -6, 0, 0]
    assert fetched is None
    assert q.get_job_state(ids[0]) is JobState.COMPLETED
    assert q.get_job_state(ids[1]) is JobState.FAILED
    assert q.get_job_state(ids[2]) is JobState.ACTIVE
    assert r.get(q.keys.job_lock(ids[2])) == "t3"
    assert q.get_job_state(ids[3]) is JobState.DELAYED
    assert q.get_job_state(ids[4]) is JobState.WAITING
    assert {"event": "drained"} not in events(r, q)


def test_unknown_entry_kind_is_refused_before_any_write(
    r: redis.Redis, q: SyncQueue, w: Runner, client: SyncRedisClient
) -> None:
    job_id = active_job(q, w)
    call = ws.finish_jobs(q.keys, [ws.Complete(job_id, "tok", "1")], now_ms=T0)
    bad = msgpack.packb([["complete", job_id, "tok", "1", -1, -1, 1000], ["explode", job_id, "tok"]])
    with pytest.raises(ReplyError, match="unknown kind"):
        client.run_script(call.script, call.keys, (call.args[0], call.args[1], bad, ""))
    assert q.get_job_state(job_id) is JobState.ACTIVE


def test_drained_only_when_everything_is_empty(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    a = active_job(q, w, token="a")
    b = active_job(q, w, token="b")
    w.finish(ws.Complete(a, "a", "1"))
    assert {"event": "drained"} not in events(r, q)  # b is still active
    w.finish(ws.Complete(b, "b", "1"))
    assert last_events(r, q, 1) == [{"event": "drained"}]
    w.finish(ws.Complete("gone", "x", "1"))  # nothing applied: no second drained
    assert [e["event"] for e in events(r, q)].count("drained") == 1
    c = active_job(q, w, token="c")
    w.finish(ws.Delay(c, "c", 100))  # to delayed: no drained, as BullMQ's moveToDelayed
    assert [e["event"] for e in events(r, q)].count("drained") == 1


def test_fetch_next_inside_finish(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    nxt = q.add("next").id
    q.add("later", delay=3000, timestamp=T0)
    spec = ws.FetchSpec(tokens=["n1", "n2"], lock_duration_ms=10_000, worker_name="w9")
    codes, fetched = w.finish(ws.Complete(job_id, "tok", "1"), now=T0 + 1, fetch=spec)
    assert codes == [0]
    assert fetched is not None
    assert [(job.id, job.token) for job in fetched.jobs] == [(nxt, "n1")]
    assert fetched.jobs[0].fields[b"pb"] == b"w9"
    assert fetched.next_delayed_ms == T0 + 3000
    assert r.get(q.keys.job_lock(nxt)) == "n1"
    assert {"event": "drained"} not in events(r, q)
    codes, fetched = w.finish(ws.Complete(nxt, "n1", "1"), now=T0 + 2, fetch=spec)
    assert fetched == ws.FetchResult(jobs=[], rate_limit_ttl_ms=0, next_delayed_ms=T0 + 3000)
    # As BullMQ's moveToFinished: a fetch that finds a delayed job pending writes no `drained`.
    assert {"event": "drained"} not in events(r, q)
    later = w.ids("l", now=T0 + 3000)
    assert later == [str(int(nxt) + 1)]
    codes, fetched = w.finish(ws.Complete(later[0], "l", "1"), now=T0 + 3001, fetch=spec)
    assert fetched == ws.FetchResult(jobs=[], rate_limit_ttl_ms=0, next_delayed_ms=0)
    assert last_events(r, q, 1) == [{"event": "drained"}]


def test_no_drained_from_a_fetch_held_back(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    spec = ws.FetchSpec(tokens=["n"], lock_duration_ms=10_000)
    job_id = active_job(q, w)
    q.pause()
    w.finish(ws.Complete(job_id, "tok", "1"), fetch=spec)
    assert {"event": "drained"} not in events(r, q)
    q.resume()
    job_id = active_job(q, w, token="t2")
    w.finish(ws.Complete(job_id, "t2", "1"))  # no fetch: drained as soon as all is empty
    assert last_events(r, q, 1) == [{"event": "drained"}]


def test_requeue_then_fetch_sees_the_rate_limit(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    r.set(q.keys.limiter, 9007199254740991, px=4000)  # what a manual rate limit writes
    codes, fetched = w.finish(ws.Requeue(job_id, "tok"), fetch=ws.FetchSpec(tokens=["n"], lock_duration_ms=1))
    assert codes == [0]
    assert fetched is not None
    assert fetched.jobs == []
    assert 0 < fetched.rate_limit_ttl_ms <= 4000
    assert r.lrange(q.keys.wait, 0, -1) == [job_id]


def test_finish_trims_the_events_stream(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    r.hset(q.keys.meta, "opts.maxLenEvents", 10)
    for i in range(300):
        r.xadd(q.keys.events, {"event": "filler", "i": i})
    job_id = active_job(q, w)
    w.finish(ws.Complete(job_id, "tok", "1"))
    assert r.xlen(q.keys.events) < 300


# --- extend_locks -----------------------------------------------------------------------------------


def test_extend_locks(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    ids = [job.id for job in q.add_bulk([("j", i) for i in range(3)])]
    w.fetch("t1", "t2", "t3", lock_duration_ms=1000)
    r.sadd(q.keys.stalled, *ids)
    r.delete(q.keys.job_lock(ids[1]))  # lost
    r.set(q.keys.job_lock(ids[2]), "someone-else", px=1000)
    call = ws.extend_locks(q.keys, [(ids[0], "t1"), (ids[1], "t2"), (ids[2], "t3")], 60_000)
    assert ws.decode_extend_locks(w.run(call)) == [ids[1], ids[2]]
    assert 1000 < r.pttl(q.keys.job_lock(ids[0])) <= 60_000
    assert r.exists(q.keys.job_lock(ids[1])) == 0
    assert r.get(q.keys.job_lock(ids[2])) == "someone-else"
    assert r.pttl(q.keys.job_lock(ids[2])) <= 1000
    assert r.smembers(q.keys.stalled) == {ids[1], ids[2]}


# --- move_stalled_jobs_to_wait ----------------------------------------------------------------------


def sweep(w: Runner, *, now: int = T0, max_stalled_count: int = 1, interval: int = 30_000) -> list[str]:
    call = ws.move_stalled_jobs_to_wait(
        w.keys, max_stalled_count=max_stalled_count, now_ms=now, stalled_interval_ms=interval
    )
    return ws.decode_stalled(w.run(call))


def test_stalled_sweep_marks_then_moves(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    lost = q.add("lost", priority=3).id
    alive = q.add("alive").id
    w.fetch("t1", "t2")  # alive (wait) then lost (prioritized)
    q.add("queued")
    r.delete(q.keys.job_lock(lost))
    assert sweep(w) == []  # mark phase
    assert r.smembers(q.keys.stalled) == {lost, alive}
    assert r.get(q.keys.stalled_check) == str(T0)
    assert 0 < r.pttl(q.keys.stalled_check) <= 30_000
    assert sweep(w) == []  # the guard: a second sweep within the interval does nothing
    r.delete(q.keys.stalled_check)
    r.delete(q.keys.marker)
    ws.decode_extend_locks(w.run(ws.extend_locks(q.keys, [(alive, "t1")], LOCK_MS)))  # SREMs alive
    assert sweep(w) == [lost]
    assert r.lrange(q.keys.active, 0, -1) == [alive]
    assert r.lindex(q.keys.wait, -1) == lost  # front of wait, priority ignored
    assert r.zcard(q.keys.prioritized) == 0
    assert r.hget(q.keys.job(lost), "stc") == "1"
    assert r.hget(q.keys.job(lost), "defa") is None
    assert r.zscore(q.keys.marker, "0") == 0.0
    assert last_events(r, q, 2) == [
        {"event": "waiting", "jobId": lost, "prev": "active"},
        {"event": "stalled", "jobId": lost},
    ]
    assert r.smembers(q.keys.stalled) == {alive}  # the new mark


def test_stalled_past_the_max_gets_a_deferred_failure(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = q.add("flaky").id
    iteration = q.add("iteration").id
    r.hset(q.keys.job(iteration), "rjk", "sched")
    r.zadd(q.keys.repeat, {"sched": T0})
    for round_ in range(2):
        w.fetch("a", "b", lock_duration_ms=1)
        r.delete(q.keys.job_lock(job_id), q.keys.job_lock(iteration))
        sweep(w, now=T0 + 2 * round_)
        r.delete(q.keys.stalled_check)
        assert sorted(sweep(w, now=T0 + 2 * round_ + 1)) == sorted([job_id, iteration])
        r.delete(q.keys.stalled_check)
    assert r.hget(q.keys.job(job_id), "stc") == "2"
    assert r.hget(q.keys.job(job_id), "defa") == "job stalled more than allowable limit"
    assert r.hget(q.keys.job(iteration), "defa") is None  # a scheduler's iteration is never failed so


def test_stalled_sweep_leaves_finished_jobs_alone(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    sweep(w)
    r.delete(q.keys.stalled_check)
    w.finish(ws.Complete(job_id, "tok", "1"))
    assert sweep(w) == []
    assert q.get_job_state(job_id) is JobState.COMPLETED


# --- progress, logs, data ---------------------------------------------------------------------------


def test_update_progress(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = q.add("p").id
    assert w.run(ws.update_progress(q.keys, job_id, '{"pct":42}')) == 0
    assert r.hget(q.keys.job(job_id), "progress") == '{"pct":42}'
    assert last_events(r, q, 1) == [{"event": "progress", "jobId": job_id, "data": '{"pct":42}'}]
    reply = w.run(ws.update_progress(q.keys, "missing", "1"))
    with pytest.raises(JobNotFoundError):
        ws.decode_code(reply, script="update_progress", job_id="missing")


def test_add_log(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = q.add("l").id
    assert [w.run(ws.add_log(q.keys, job_id, f"line {i}")) for i in range(3)] == [1, 2, 3]
    assert w.run(ws.add_log(q.keys, job_id, "line 3", 2)) == 2
    assert r.lrange(q.keys.job_logs(job_id), 0, -1) == ["line 2", "line 3"]
    assert w.run(ws.add_log(q.keys, job_id, "line 4", 5)) == 3
    assert w.run(ws.add_log(q.keys, job_id, "gone", 0)) == 0
    assert r.exists(q.keys.job_logs(job_id)) == 0
    assert w.run(ws.add_log(q.keys, "missing", "x")) == -1
    assert r.exists(q.keys.job_logs("missing")) == 0


def test_update_data(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = q.add("d", {"v": 1}).id
    assert w.run(ws.update_data(q.keys, job_id, '{"v":2}')) == 0
    assert r.hget(q.keys.job(job_id), "data") == '{"v":2}'
    assert w.run(ws.update_data(q.keys, "missing", "{}")) == -1
    assert r.exists(q.keys.job("missing")) == 0


# --- cancel_job -------------------------------------------------------------------------------------


def cancel(w: Runner, job_id: str, reason: str = "user asked") -> Reply:
    return w.run(ws.cancel_job(w.keys, job_id, reason, now_ms=T0 + 9))


@pytest.mark.parametrize(
    ("options", "state"),
    [
        ({}, "waiting"),
        ({"priority": 2}, "prioritized"),
        ({"delay": 60_000}, "delayed"),
    ],
)
def test_cancel_a_waiting_job_fails_it(
    r: redis.Redis, q: SyncQueue, w: Runner, options: dict[str, Any], state: str
) -> None:
    job_id = q.add("c", **options).id
    assert ws.decode_cancel(cancel(w, job_id), job_id=job_id) == JobState(state)
    job = r.hgetall(q.keys.job(job_id))
    assert job["failedReason"] == "cancelled: user asked"
    assert job["finishedOn"] == str(T0 + 9)
    assert r.zrange(q.keys.failed, 0, -1, withscores=True) == [(job_id, float(T0 + 9))]
    assert q.get_job_state(job_id) is JobState.FAILED
    assert r.llen(q.keys.wait) + r.zcard(q.keys.prioritized) + r.zcard(q.keys.delayed) == 0
    assert last_events(r, q, 1) == [
        {"event": "failed", "jobId": job_id, "failedReason": "cancelled: user asked", "prev": state}
    ]


def test_cancel_waiting_children_and_v5_paused(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    for job_id in ("parent", "legacy"):
        r.hset(q.keys.job(job_id), mapping={"name": "x", "data": "{}"})
    r.zadd(q.keys.waiting_children, {"parent": T0})
    r.lpush(q.keys.paused, "legacy")
    assert cancel(w, "parent") == b"waiting-children"
    assert cancel(w, "legacy") == b"waiting"
    assert r.zcard(q.keys.waiting_children) == 0
    assert r.llen(q.keys.paused) == 0
    assert r.zcard(q.keys.failed) == 2


def test_cancel_an_active_job_asks_its_worker(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    job_id = active_job(q, w)
    assert ws.decode_cancel(cancel(w, job_id, "too slow"), job_id=job_id) is JobState.ACTIVE
    entries = r.xrange(q.keys.cancels)
    assert [fields for _, fields in entries] == [{"jobId": job_id, "reason": "too slow"}]
    assert q.get_job_state(job_id) is JobState.ACTIVE
    assert r.hget(q.keys.job(job_id), "failedReason") is None


def test_cancel_finished_unknown_and_missing(r: redis.Redis, q: SyncQueue, w: Runner) -> None:
    done = active_job(q, w)
    w.finish(ws.Complete(done, "tok", "1"))
    failed = active_job(q, w)
    w.finish(ws.Fail(failed, "tok", "x"))
    r.hset(q.keys.job("orphan"), "name", "x")
    before = r.xlen(q.keys.events)
    assert cancel(w, done) == b"completed"
    assert cancel(w, failed) == b"failed"
    assert cancel(w, "orphan") == b"unknown"
    assert r.hget(q.keys.job(failed), "failedReason") == "x"
    assert r.xlen(q.keys.events) == before
    with pytest.raises(JobNotFoundError):
        ws.decode_cancel(cancel(w, "missing"), job_id="missing")
