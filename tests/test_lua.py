"""sandq's Lua scripts against real Redis servers: every test runs on Redis 7.x and on 6.2.

The scripts are driven through SyncQueue (whose operations are the scripts' only callers) or directly,
and the keys are read back raw, as BullMQ's clients would read them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from sandq import SyncQueue
from sandq.connection.sync import SyncRedisClient
from sandq.job import JobState
from sandq.scripts import pause

T0 = 1_800_000_000_000  # a fixed creation time, so scores can be computed exactly


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


def events(r: redis.Redis, q: SyncQueue) -> list[dict[str, str]]:
    return [fields for _, fields in r.xrange(q.keys.events)]


def test_a_standard_job_as_bullmq_stores_it(r: redis.Redis, q: SyncQueue) -> None:
    job = q.add("send", {"to": "ada"}, attempts=2, timestamp=T0)
    assert job.id == "1"
    assert r.hgetall(q.keys.job("1")) == {
        "name": "send",
        "data": '{"to":"ada"}',
        "opts": '{"attempts":2,"timestamp":1800000000000}',
        "timestamp": str(T0),
        "delay": "0",
        "priority": "0",
    }
    assert r.lrange(q.keys.wait, 0, -1) == ["1"]
    assert r.get(q.keys.id) == "1"
    assert r.hgetall(q.keys.meta) == {"opts.maxLenEvents": "10000"}
    assert r.zrange(q.keys.marker, 0, -1, withscores=True) == [("0", 0.0)]
    assert events(r, q) == [
        {"event": "added", "jobId": "1", "name": "send"},
        {"event": "waiting", "jobId": "1"},
    ]


def test_fifo_and_lifo_order(r: redis.Redis, q: SyncQueue) -> None:
    for name in ("a", "b"):
        q.add(name)
    q.add("urgent", lifo=True)
    q.add("c")
    # Consumers pop from the right: urgent first, then a, b, c.
    assert r.lrange(q.keys.wait, 0, -1) == ["4", "2", "1", "3"]


def test_delayed_scores_tie_break_and_marker(r: redis.Redis, q: SyncQueue) -> None:
    fire_at = T0 + 5000
    for _ in range(3):
        q.add("later", delay=5000, timestamp=T0)
    q.add("sooner", delay=1000, timestamp=T0)
    assert r.zrange(q.keys.delayed, 0, -1, withscores=True) == [
        ("4", float((T0 + 1000) * 4096)),
        ("1", float(fire_at * 4096)),
        ("2", float(fire_at * 4096 + 1)),
        ("3", float(fire_at * 4096 + 2)),
    ]
    assert r.hget(q.keys.job("1"), "delay") == "5000"
    assert r.zrange(q.keys.marker, 0, -1, withscores=True) == [("1", float(T0 + 1000))]
    assert {"event": "delayed", "jobId": "1", "delay": str(fire_at)} in events(r, q)
    assert r.llen(q.keys.wait) == 0
    assert q.get_job_state("1") is JobState.DELAYED


def test_the_tie_break_stops_at_4095(r: redis.Redis, q: SyncQueue) -> None:
    top = (T0 + 10) * 4096 + 4095
    r.zadd(q.keys.delayed, {"crowd": top})
    job = q.add("x", delay=10, timestamp=T0)
    assert r.zscore(q.keys.delayed, job.id) == float(top)


def test_prioritized_scores_and_counter(r: redis.Redis, q: SyncQueue) -> None:
    q.add("low", priority=10)
    q.add("high", priority=1)
    q.add("max", priority=2_097_151)
    assert r.zrange(q.keys.prioritized, 0, -1, withscores=True) == [
        ("2", float(1 * 2**32 + 2)),
        ("1", float(10 * 2**32 + 1)),
        ("3", float(2_097_151 * 2**32 + 3)),
    ]
    assert r.get(q.keys.pc) == "3"
    assert events(r, q)[-1] == {"event": "waiting", "jobId": "3"}
    assert r.zscore(q.keys.marker, "0") == 0.0
    assert q.get_job_state("2") is JobState.PRIORITIZED


def test_no_marker_while_paused_or_maxed(r: redis.Redis, q: SyncQueue) -> None:
    q.pause()
    q.add("while paused")
    assert r.lrange(q.keys.wait, 0, -1) == ["1"]  # v6: paused jobs stay in wait
    assert r.exists(q.keys.marker) == 0
    q.resume()
    r.delete(q.keys.marker)
    r.hset(q.keys.meta, "concurrency", 1)
    r.lpush(q.keys.active, "busy")
    q.add("while maxed", priority=3)
    assert r.exists(q.keys.marker) == 0
    r.lpop(q.keys.active)
    q.add("with room")
    assert r.zscore(q.keys.marker, "0") == 0.0


def test_a_custom_id_that_exists_is_a_duplicate(r: redis.Redis, q: SyncQueue) -> None:
    first = q.add("first", {"v": 1}, job_id="order-1")
    before = r.hgetall(q.keys.job("order-1"))
    again = q.add("second", {"v": 2}, job_id="order-1", delay=100)
    assert (first.id, again.id) == ("order-1", "order-1")
    assert (again.name, again.data) == ("first", {"v": 1})  # the existing job, unchanged
    assert r.hgetall(q.keys.job("order-1")) == before
    assert r.get(q.keys.id) == "2"  # the counter moves anyway, as in BullMQ
    assert r.zcard(q.keys.delayed) == 0
    assert r.lrange(q.keys.wait, 0, -1) == ["order-1"]
    assert events(r, q)[-1] == {"event": "duplicated", "jobId": "order-1"}


def test_meta_keeps_a_configured_event_cap(r: redis.Redis, q: SyncQueue) -> None:
    r.hset(q.keys.meta, "opts.maxLenEvents", 500)
    q.add("x")
    assert r.hget(q.keys.meta, "opts.maxLenEvents") == "500"


def test_a_batch_equals_the_same_adds_one_by_one(r: redis.Redis, any_redis_url: str, queue_name: str) -> None:
    items = [
        ("a", {"n": 1}, {}),
        ("b", {"n": 2}, {"lifo": True}),
        ("c", {"n": 3}, {"priority": 4}),
        ("d", {"n": 4}, {"delay": 100, "timestamp": T0}),
        ("e", {"n": 5}, {"job_id": "custom"}),
        ("f", {"n": 6}, {"job_id": "custom"}),
        ("g", {"n": 7}, {}),
        ("h", {"n": 8}, {"lifo": True}),
    ]
    with (
        SyncQueue(queue_name + "bulk", any_redis_url) as bulk,
        SyncQueue(queue_name + "one", any_redis_url) as one,
    ):
        bulk_jobs = bulk.add_bulk(items)
        one_jobs = [one.add(name, data, **options) for name, data, options in items]
        assert [job.id for job in bulk_jobs] == [job.id for job in one_jobs]
        assert [job.id for job in bulk_jobs] == ["1", "2", "3", "4", "custom", "custom", "7", "8"]
        assert bulk_jobs[5].name == "e"  # the duplicate in the batch returns the first
        for key in ("wait", "prioritized", "delayed", "id", "pc", "marker"):
            b, o = bulk.keys.suffix(key), one.keys.suffix(key)
            assert r.type(b) == r.type(o), key
            dump = {
                "list": lambda k: r.lrange(k, 0, -1),
                "zset": lambda k: r.zrange(k, 0, -1, withscores=True),
            }
            reader = dump.get(r.type(b), r.get)
            assert reader(b) == reader(o), key
        assert events(r, bulk) == events(r, one)


def test_large_batches_are_pushed_in_chunks(r: redis.Redis, q: SyncQueue) -> None:
    jobs = q.add_bulk([("n", i) for i in range(12_001)] + [("l", i, {"lifo": True}) for i in range(6)])
    wait = r.lrange(q.keys.wait, 0, -1)
    assert len(wait) == 12_007
    assert wait[-6:] == [job.id for job in jobs[-6:]]  # lifo jobs on the right, in order
    assert wait[:12_001] == [job.id for job in reversed(jobs[:12_001])]
    assert r.xlen(q.keys.events) >= 10_000


def test_job_state_of_every_state(r: redis.Redis, q: SyncQueue) -> None:
    keys = q.keys
    q.add("w")
    r.lpush(keys.active, "act")
    r.zadd(keys.completed, {"done": 1})
    r.zadd(keys.failed, {"bad": 1})
    r.zadd(keys.waiting_children, {"parent": 1})
    r.lpush(keys.paused, "legacy")  # a v5 paused list
    q.add("d", delay=1000)
    q.add("p", priority=1)
    states = {
        job_id: q.get_job_state(job_id)
        for job_id in ("1", "act", "done", "bad", "parent", "legacy", "2", "3")
    }
    assert states == {
        "1": JobState.WAITING,
        "act": JobState.ACTIVE,
        "done": JobState.COMPLETED,
        "bad": JobState.FAILED,
        "parent": JobState.WAITING_CHILDREN,
        "legacy": JobState.WAITING,
        "2": JobState.DELAYED,
        "3": JobState.PRIORITIZED,
    }
    assert q.get_job_state("nope") is JobState.UNKNOWN


def test_counts(r: redis.Redis, q: SyncQueue) -> None:
    q.add_bulk([("w", 1), ("w", 2), ("d", 3, {"delay": 50}), ("p", 4, {"priority": 2})])
    r.zadd(q.keys.failed, {"x": 1})
    r.lpush(q.keys.paused, "old")
    assert q.get_job_counts() == {
        "waiting": 2,
        "active": 0,
        "delayed": 1,
        "prioritized": 1,
        "waiting-children": 0,
        "completed": 0,
        "failed": 1,
    }
    assert q.get_job_counts("paused", "wait") == {"paused": 1, "waiting": 2}


def test_pause_and_resume(r: redis.Redis, q: SyncQueue) -> None:
    q.add("x")
    q.pause()
    assert q.is_paused()
    assert r.hget(q.keys.meta, "paused") == "1"
    assert r.exists(q.keys.marker) == 0
    assert r.lrange(q.keys.wait, 0, -1) == ["1"]
    q.resume()
    assert not q.is_paused()
    assert r.zrange(q.keys.marker, 0, -1, withscores=True) == [("0", 0.0)]
    assert [e["event"] for e in events(r, q)][-2:] == ["paused", "resumed"]


def test_resume_sets_the_delay_marker_when_only_delayed_jobs_wait(r: redis.Redis, q: SyncQueue) -> None:
    q.add("later", delay=5000, timestamp=T0)
    q.pause()
    q.resume()
    assert r.zrange(q.keys.marker, 0, -1, withscores=True) == [("1", float(T0 + 5000))]


def test_resume_of_an_empty_queue_sets_no_marker(r: redis.Redis, q: SyncQueue) -> None:
    q.pause()
    q.resume()
    assert r.exists(q.keys.marker) == 0


def test_resume_can_skip_the_event(r: redis.Redis, q: SyncQueue, any_redis_url: str) -> None:
    with SyncRedisClient(any_redis_url) as client:
        call = pause(q.keys, paused=False, emit_event=False)
        assert client.run_script(call.script, call.keys, call.args) == 0
    assert events(r, q) == []


def test_resume_renames_a_v5_paused_list_when_wait_is_empty(r: redis.Redis, q: SyncQueue) -> None:
    r.hset(q.keys.meta, "paused", 1)
    r.lpush(q.keys.paused, "p1", "p2", "p3")  # p1 is the oldest (rightmost)
    q.resume()
    assert r.lrange(q.keys.wait, 0, -1) == ["p3", "p2", "p1"]
    assert r.exists(q.keys.paused) == 0
    assert r.zscore(q.keys.marker, "0") == 0.0


def test_resume_merges_a_large_v5_paused_list_oldest_first(r: redis.Redis, q: SyncQueue) -> None:
    r.lpush(q.keys.wait, "w1")  # a job added by a v6 client while paused
    legacy = [f"p{i}" for i in range(12_000)]  # p0 oldest: LPUSHed first, so rightmost
    for start in range(0, len(legacy), 1000):
        r.lpush(q.keys.paused, *legacy[start : start + 1000])
    r.hset(q.keys.meta, "paused", 1)
    q.resume()
    wait = r.lrange(q.keys.wait, 0, -1)
    assert r.exists(q.keys.paused) == 0
    assert len(wait) == 12_001
    # Popped from the right: every legacy job, oldest first, then the v6 one.
    assert list(reversed(wait)) == [*legacy, "w1"]
    assert [e["event"] for e in events(r, q)] == ["resumed"]  # once, though resume took three calls
