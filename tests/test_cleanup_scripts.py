"""The removal scripts (remove with children, drain, clean, obliterate) against real Redis servers.

Jobs are made with SyncQueue or with the ``bullmq`` PyPI client (flows, schedulers, dedup), moved to
active and finished with sandq's worker scripts, and every script is run through its pure builder
(:mod:`sandq.cleanup_scripts`). The cross-checks build the same data twice, let bullmq's own Queue
methods act on one copy and sandq's scripts on the other, and compare every key of both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import bullmq
import pytest
import redis

from sandq import SyncQueue
from sandq import cleanup_scripts as cs
from sandq import worker_scripts as ws
from sandq.connection.resp import Reply
from sandq.connection.sync import SyncRedisClient
from sandq.errors import (
    ActiveJobsError,
    ConfigurationError,
    JobNotFoundError,
    LockMismatchError,
    QueueNotPausedError,
    SchedulerJobError,
)
from sandq.job import JobState
from sandq.keys import QueueKeys
from sandq.lua import all_scripts
from sandq.scripts import ScriptCall

from bullmq_peer import bull, bull_add

T0 = 1_800_000_000_000
OLD = 1_600_000_000_000  # long before any test runs
NEW = 2_600_000_000_000  # long after: never old enough
LOCK_MS = 30_000


# --- pure: builders and decoders ------------------------------------------------------------------


def test_builders_name_their_keys_and_arguments() -> None:
    keys = QueueKeys("q", prefix="p")
    call = cs.remove_job(keys, "7", remove_children=False)
    assert (call.script.name, call.keys, call.args) == (
        "remove_job",
        ("p:q:7", "p:q:repeat"),
        ("p:q:", "7", "0"),
    )
    assert cs.remove_job(keys, "7").args[2] == "1"
    call = cs.drain(keys, include_delayed=True, batch=50)
    assert call.keys == ("p:q:wait", "p:q:paused", "p:q:prioritized", "p:q:delayed", "p:q:repeat", "p:q:pc")
    assert call.args == ("p:q:", "1", 50)
    call = cs.obliterate(keys, force=True)
    assert call.keys[0] == "p:q:meta"
    assert call.keys[-1] == keys.cancels
    assert call.args == ("p:q:", "1", cs.DEFAULT_BATCH)
    cursor = cs.start_clean("waiting", grace_ms=1000, limit=5, now_ms=T0)
    assert cursor == cs.CleanCursor("wait", T0 - 1000, 5)
    call = cs.clean_jobs(keys, cursor, batch=10)
    assert call.keys == ("p:q:wait", "p:q:events", "p:q:repeat", "p:q:meta")
    assert call.args == ("p:q:", "wait", T0 - 1000, 5, 0, 0, 10)


def test_scripts_are_shipped_with_their_key_counts() -> None:
    scripts = all_scripts()
    expected = {"remove_job": 2, "drain": 6, "clean_jobs": 4, "obliterate": 11}
    assert {name: scripts[name].numkeys for name in expected} == expected
    for name in expected:
        assert "--#include" not in scripts[name].source
        assert '"TIME"' not in scripts[name].source
        assert scripts[name].source.count("local function detachFromParent(") == 1


@pytest.mark.parametrize("batch", [0, -1, True, 2.5])
def test_batch_must_be_a_positive_integer(batch: Any) -> None:
    with pytest.raises(ConfigurationError, match="batch"):
        cs.drain(QueueKeys("q"), batch=batch)


def test_clean_refuses_unknown_states_and_negative_numbers() -> None:
    with pytest.raises(ConfigurationError, match="cannot clean the state 'stalled'"):
        cs.start_clean("stalled", grace_ms=0, now_ms=T0)
    with pytest.raises(ConfigurationError, match="grace_ms"):
        cs.start_clean("completed", grace_ms=-1, now_ms=T0)
    with pytest.raises(ConfigurationError, match="limit"):
        cs.start_clean("completed", grace_ms=0, limit=-5, now_ms=T0)
    assert [cs.normalize_clean_state(s) for s in ("waiting", "wait", "waiting-children")] == [
        "wait",
        "wait",
        "waiting-children",
    ]


def test_decoders() -> None:
    assert cs.decode_remove_job([1, b"wait"], job_id="1") is JobState.WAITING
    assert cs.decode_remove_job([1, b"paused"], job_id="1") is JobState.WAITING
    assert cs.decode_remove_job([1, b"waiting-children"], job_id="1") is JobState.WAITING_CHILDREN
    assert cs.decode_remove_job([1, b"unknown"], job_id="1") is JobState.UNKNOWN
    with pytest.raises(JobNotFoundError):
        cs.decode_remove_job([-1, b"1"], job_id="1")
    with pytest.raises(SchedulerJobError):
        cs.decode_remove_job([-8, b"1"], job_id="1")
    with pytest.raises(LockMismatchError, match="'p' has a descendant 'c'") as caught:
        cs.decode_remove_job([-6, b"c"], job_id="p")
    assert caught.value.job_id == "c"
    assert cs.decode_drain(1) is True
    assert cs.decode_drain(0) is False
    assert cs.decode_obliterate(1) is True
    assert cs.decode_obliterate(0) is False
    with pytest.raises(QueueNotPausedError, match="not paused") as refused:
        cs.decode_obliterate(cs.NOT_PAUSED)
    assert refused.value.code == cs.NOT_PAUSED
    with pytest.raises(ActiveJobsError, match="force=True"):
        cs.decode_obliterate(cs.ACTIVE_JOBS)


def test_decode_clean_advances_the_cursor() -> None:
    cursor = cs.CleanCursor("delayed", T0, limit=10)
    step = cs.decode_clean_jobs([[b"a", b"b"], 3], cursor)
    assert step == cs.CleanStep(["a", "b"], cs.CleanCursor("delayed", T0, 10, removed=2, offset=3))
    assert cs.decode_clean_jobs([[b"c"], -1], step.next or cursor) == cs.CleanStep(["c"], None)


# --- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture
def r(any_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(any_redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def client(any_redis_url: str) -> Iterator[SyncRedisClient]:
    with SyncRedisClient(any_redis_url) as c:
        yield c


@pytest.fixture
def q(client: SyncRedisClient, queue_name: str) -> SyncQueue:
    return SyncQueue(queue_name, client)


class Scripts:
    """The removal scripts (and the worker scripts that set up states) of one client."""

    def __init__(self, client: SyncRedisClient) -> None:
        self.client = client
        self.calls = 0

    def run(self, call: ScriptCall) -> Reply:
        self.calls += 1
        return self.client.run_script(call.script, call.keys, call.args)

    def remove(self, keys: QueueKeys, job_id: str, *, children: bool = True) -> JobState:
        return cs.decode_remove_job(
            self.run(cs.remove_job(keys, job_id, remove_children=children)), job_id=job_id
        )

    def drain(self, keys: QueueKeys, *, delayed: bool = False, batch: int = cs.DEFAULT_BATCH) -> int:
        """Drain to the end; the number of calls it took."""
        calls = 1
        while cs.decode_drain(self.run(cs.drain(keys, include_delayed=delayed, batch=batch))):
            calls += 1
        return calls

    def clean(
        self, keys: QueueKeys, state: str, *, grace: int = 0, limit: int = 0, now: int = T0, batch: int = 1000
    ) -> tuple[list[str], int]:
        """Clean to the end: the removed ids and the number of calls."""
        cursor: cs.CleanCursor | None = cs.start_clean(state, grace_ms=grace, limit=limit, now_ms=now)
        removed: list[str] = []
        calls = 0
        while cursor is not None:
            step = cs.decode_clean_jobs(self.run(cs.clean_jobs(keys, cursor, batch=batch)), cursor)
            removed += step.removed_ids
            cursor = step.next
            calls += 1
        return removed, calls

    def obliterate(self, keys: QueueKeys, *, force: bool = False, batch: int = cs.DEFAULT_BATCH) -> int:
        calls = 1
        while cs.decode_obliterate(self.run(cs.obliterate(keys, force=force, batch=batch))):
            calls += 1
        return calls

    def fetch(self, keys: QueueKeys, *tokens: str, now: int = T0) -> list[str]:
        call = ws.move_to_active(keys, tokens, now_ms=now, lock_duration_ms=LOCK_MS)
        return [job.id for job in ws.decode_fetch(self.run(call)).jobs]

    def finish(self, keys: QueueKeys, *entries: ws.FinishEntry, now: int = T0) -> None:
        codes, _ = ws.decode_finish(self.run(ws.finish_jobs(keys, entries, now_ms=now)))
        assert codes == [0] * len(entries)


@pytest.fixture
def s(client: SyncRedisClient) -> Scripts:
    return Scripts(client)


def events(r: redis.Redis, keys: QueueKeys) -> list[dict[str, str]]:
    return [fields for _, fields in r.xrange(keys.events)]


def completed_jobs(q: SyncQueue, s: Scripts, count: int, *, now: int, fail: bool = False) -> list[str]:
    """``count`` jobs (created at T0) finished (completed, or failed) at ``now``, without locks."""
    ids = [job.id for job in q.add_bulk([("done", {"n": n}, {"timestamp": T0}) for n in range(count)])]
    assert s.fetch(q.keys, *["0"] * count, now=now) == ids
    if fail:
        s.finish(q.keys, *(ws.Fail(job_id, "0", "boom") for job_id in ids), now=now)
    else:
        s.finish(q.keys, *(ws.Complete(job_id, "0", "1") for job_id in ids), now=now)
    return ids


def flow(url: str, tree: dict[str, Any]) -> None:
    """Add a flow with bullmq's FlowProducer."""

    async def main() -> None:
        producer = bullmq.FlowProducer({"connection": url})
        try:
            await producer.add(tree)
        finally:
            await producer.close()

    asyncio.run(main())


def node(name: str, queue: str, job_id: str, *children: dict[str, Any], **opts: Any) -> dict[str, Any]:
    return {
        "name": name,
        "queueName": queue,
        "data": {"n": name},
        "opts": {"jobId": job_id, "timestamp": T0, **opts},
        "children": list(children),
    }


def dump(r: redis.Redis, names: dict[str, str], *, with_events: bool = False) -> dict[str, Any]:
    """Every key of the queues ``names`` (queue name -> label), with its type and contents; queue names
    are replaced by their labels in keys and values, so that two copies of the same data compare equal."""

    longest_first = sorted(names.items(), key=lambda item: -len(item[0]))

    def norm(text: str) -> str:
        for name, label in longest_first:
            text = text.replace(name, label)
        return text

    out: dict[str, Any] = {}
    for name in names:
        for key in r.scan_iter(f"bull:{name}:*", count=1000):
            kind = r.type(key)
            if kind == "stream":
                if not with_events:
                    continue
                value: Any = [{k: norm(v) for k, v in fields.items()} for _, fields in r.xrange(key)]
            elif kind == "hash":
                value = {k: norm(v) for k, v in r.hgetall(key).items()}
            elif kind == "list":
                value = [norm(v) for v in r.lrange(key, 0, -1)]
            elif kind == "zset":
                value = [(norm(m), score) for m, score in r.zrange(key, 0, -1, withscores=True)]
            elif kind == "set":
                value = sorted(norm(v) for v in r.smembers(key))
            else:
                value = norm(r.get(key) or "")
            out[norm(key)] = (kind, value)
    return out


# --- remove -----------------------------------------------------------------------------------------


def test_remove_a_waiting_job(r: redis.Redis, q: SyncQueue, s: Scripts) -> None:
    keep = q.add("keep").id
    job_id = q.add("gone", {"x": 1}).id
    r.rpush(q.keys.job_logs(job_id), "a line")
    assert s.remove(q.keys, job_id) is JobState.WAITING
    assert r.lrange(q.keys.wait, 0, -1) == [keep]
    assert r.exists(q.keys.job(job_id), q.keys.job_logs(job_id)) == 0
    assert events(r, q.keys)[-1] == {"event": "removed", "jobId": job_id, "prev": "wait"}
    with pytest.raises(JobNotFoundError, match=repr(job_id)):
        s.remove(q.keys, job_id)
    with pytest.raises(JobNotFoundError):
        s.remove(q.keys, "never-added")


def test_remove_from_every_state(r: redis.Redis, q: SyncQueue, s: Scripts) -> None:
    completed, failed = completed_jobs(q, s, 1, now=T0)[0], completed_jobs(q, s, 1, now=T0, fail=True)[0]
    active = q.add("a").id
    assert s.fetch(q.keys, "tok") == [active]
    delayed = q.add("d", delay=60_000).id
    prioritized = q.add("p", priority=4).id
    r.delete(q.keys.job_lock(active))  # its lock expired: nothing protects it any more
    r.sadd(q.keys.stalled, active)
    legacy = "legacy"  # a v5 paused list
    r.hset(q.keys.job(legacy), mapping={"name": "l", "data": "{}"})
    r.lpush(q.keys.paused, legacy)
    nowhere = "orphan"
    r.hset(q.keys.job(nowhere), mapping={"name": "o", "data": "{}"})
    expected = {
        delayed: JobState.DELAYED,
        prioritized: JobState.PRIORITIZED,
        completed: JobState.COMPLETED,
        failed: JobState.FAILED,
        active: JobState.ACTIVE,
        legacy: JobState.WAITING,
        nowhere: JobState.UNKNOWN,
    }
    assert {job_id: s.remove(q.keys, job_id) for job_id in expected} == expected
    prevs = {e["jobId"]: e["prev"] for e in events(r, q.keys) if e["event"] == "removed"}
    assert prevs == {
        delayed: "delayed",
        prioritized: "prioritized",
        completed: "completed",
        failed: "failed",
        active: "active",
        legacy: "paused",
        nowhere: "unknown",
    }
    for key in (q.keys.delayed, q.keys.prioritized, q.keys.completed, q.keys.failed, q.keys.active):
        assert r.exists(key) == 0, key
    assert r.smembers(q.keys.stalled) == set()
    assert r.exists(*(q.keys.job(job_id) for job_id in expected)) == 0


def test_remove_refuses_a_locked_job(r: redis.Redis, q: SyncQueue, s: Scripts) -> None:
    job_id = q.add("busy").id
    assert s.fetch(q.keys, "tok") == [job_id]
    with pytest.raises(LockMismatchError, match=f"job {job_id!r} is locked") as caught:
        s.remove(q.keys, job_id)
    assert caught.value.job_id == job_id
    assert r.lrange(q.keys.active, 0, -1) == [job_id]
    assert r.exists(q.keys.job(job_id), q.keys.job_lock(job_id)) == 2


def test_remove_deletes_the_dedup_key_only_when_it_names_the_job(
    r: redis.Redis, q: SyncQueue, s: Scripts
) -> None:
    mine = q.add("a").id
    theirs = q.add("b").id
    r.hset(q.keys.job(mine), "deid", "d1")
    r.hset(q.keys.job(theirs), "deid", "d2")
    r.set(q.keys.suffix("de:d1"), mine, px=60_000)  # a throttle key goes too
    r.hset(q.keys.suffix("dn:d1"), "name", "next")
    r.set(q.keys.suffix("de:d2"), "someone-else")
    s.remove(q.keys, mine)
    s.remove(q.keys, theirs)
    assert r.exists(q.keys.suffix("de:d1"), q.keys.suffix("dn:d1")) == 0
    assert r.get(q.keys.suffix("de:d2")) == "someone-else"


def test_remove_refuses_the_current_scheduler_iteration(redis_url: str, queue_name: str) -> None:
    schedule = {"every": 60_000, "startDate": NEW}
    current = str(
        bull(redis_url, queue_name, lambda queue: queue.upsertJobScheduler("every-min", schedule)).id
    )
    keys = QueueKeys(queue_name)
    old = "repeat:every-min:1"  # an earlier iteration, still waiting
    with SyncRedisClient(redis_url) as client:
        client.execute("HSET", keys.job(old), "name", "every-min", "data", "{}", "rjk", "every-min")
        client.execute("LPUSH", keys.wait, old)
        s = Scripts(client)
        with pytest.raises(SchedulerJobError, match=repr(current)):
            s.remove(keys, current)
        assert s.remove(keys, old) is JobState.WAITING  # an earlier iteration is an ordinary job
        assert client.execute("EXISTS", keys.job(current)) == 1


def test_remove_a_parent_with_its_children_in_two_queues(redis_url: str, queue_name: str) -> None:
    a, b = f"{queue_name}a", f"{queue_name}b"
    flow(
        redis_url,
        node("root", a, "root", node("mid", b, "mid", node("leaf", a, "leaf")), node("kid", a, "kid")),
    )
    ka, kb = QueueKeys(a), QueueKeys(b)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with SyncRedisClient(redis_url) as client:
        s = Scripts(client)
        # leaf is active without a lock; kid has completed, and (as BullMQ's worker would) moved from
        # the parent's dependencies to its processed hash
        assert s.fetch(ka, "0", "0") == ["leaf", "kid"]
        s.finish(ka, ws.Complete("kid", "0", '"ok"'))
        r.srem(ka.job("root") + ":dependencies", ka.job("kid"))
        r.hset(ka.job("root") + ":processed", ka.job("kid"), '"ok"')
        assert s.remove(ka, "root") is JobState.WAITING_CHILDREN
    left = dump(r, {a: "A", b: "B"})
    assert sorted(left) == ["bull:A:id", "bull:A:marker", "bull:A:meta", "bull:B:id", "bull:B:meta"]
    removed_a = {(e["jobId"], e["prev"]) for e in events(r, ka) if e["event"] == "removed"}
    removed_b = [(e["jobId"], e["prev"]) for e in events(r, kb) if e["event"] == "removed"]
    assert removed_a == {("kid", "completed"), ("leaf", "active"), ("root", "waiting-children")}
    assert events(r, ka)[-1] == {"event": "removed", "jobId": "root", "prev": "waiting-children"}
    assert removed_b == [("mid", "waiting-children")]
    assert not [e for e in events(r, ka) if e["event"] == "waiting" and e["jobId"] == "root"]
    r.close()


def test_remove_refuses_a_locked_descendant_unless_children_stay(redis_url: str, queue_name: str) -> None:
    a, b = f"{queue_name}a", f"{queue_name}b"
    flow(redis_url, node("root", a, "root", node("mid", b, "mid", node("leaf", b, "leaf"))))
    ka, kb = QueueKeys(a), QueueKeys(b)
    with SyncRedisClient(redis_url) as client:
        s = Scripts(client)
        assert s.fetch(kb, "tok") == ["leaf"]
        with pytest.raises(LockMismatchError, match="descendant 'leaf'"):
            s.remove(ka, "root")
        # also when the locked job hangs under a finished child (here retried by hand after it failed)
        client.execute("SREM", ka.job("root") + ":dependencies", kb.job("mid"))
        client.execute("HSET", ka.job("root") + ":processed", kb.job("mid"), "1")
        client.execute("SREM", kb.job("mid") + ":dependencies", kb.job("leaf"))
        client.execute("HSET", kb.job("mid") + ":failed", kb.job("leaf"), "boom")
        with pytest.raises(LockMismatchError, match="descendant 'leaf'"):
            s.remove(ka, "root")
        assert client.execute("EXISTS", ka.job("root"), kb.job("mid"), kb.job("leaf")) == 3
        assert s.remove(ka, "root", children=False) is JobState.WAITING_CHILDREN
        assert client.execute("EXISTS", ka.job("root"), kb.job("mid"), kb.job("leaf")) == 2


def test_removing_the_last_child_requeues_the_parent(redis_url: str, queue_name: str) -> None:
    a, b = f"{queue_name}a", f"{queue_name}b"
    flow(redis_url, node("p1", a, "p1", node("c1", b, "c1"), node("c2", b, "c2")))
    flow(redis_url, node("p2", a, "p2", node("c3", b, "c3"), priority=3))
    ka, kb = QueueKeys(a), QueueKeys(b)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with SyncRedisClient(redis_url) as client:
        s = Scripts(client)
        r.delete(ka.marker)
        assert s.remove(kb, "c1", children=False) is JobState.WAITING
        assert r.zrange(ka.waiting_children, 0, -1) == ["p1", "p2"]
        assert r.smembers(ka.job("p1") + ":dependencies") == {kb.job("c2")}
        assert r.exists(ka.marker) == 0
        s.remove(kb, "c2")
        assert r.lrange(ka.wait, 0, -1) == ["p1"]
        assert r.zrange(ka.marker, 0, -1) == ["0"]
        assert events(r, ka)[-1] == {"event": "waiting", "jobId": "p1", "prev": "waiting-children"}
        SyncQueue(a, client).pause()
        s.remove(kb, "c3")
        assert r.zrange(ka.prioritized, 0, -1, withscores=True) == [("p2", 3 * 2**32 + 1)]
        assert r.exists(ka.marker) == 0  # the parent's queue is paused: no wake-up
        assert r.zcard(ka.waiting_children) == 0
    r.close()


# --- cross-checks with bullmq's Queue.remove ---------------------------------------------------------


def test_flow_removal_matches_bullmq(redis_url: str, queue_name: str) -> None:
    """The same flows, removed step by step by bullmq and by sandq, leave the same keys."""
    ours = {f"{queue_name}x1": "A", f"{queue_name}x2": "B"}
    theirs = {f"{queue_name}y1": "A", f"{queue_name}y2": "B"}
    for a, b in (list(ours), list(theirs)):
        bull_add(redis_url, a, "plain", {}, {"timestamp": T0})  # a re-queued parent goes before it
        flow(redis_url, node("p", a, "p", node("c1", a, "c1"), node("c2", b, "c2")))
        flow(redis_url, node("q", a, "q", node("d1", b, "d1"), node("d2", a, "d2", node("e1", b, "e1"))))
        flow(redis_url, node("u", a, "u", node("f1", b, "f1")))
    steps = [("A", "c1", False), ("B", "c2", True), ("A", "q", True), ("A", "u", False)]
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with SyncRedisClient(redis_url) as client:
        s = Scripts(client)
        for label, job_id, children in steps:
            (name,) = [n for n, lab in ours.items() if lab == label]
            s.remove(QueueKeys(name), job_id, children=children)
            (other,) = [n for n, lab in theirs.items() if lab == label]
            opts = {"removeChildren": children}
            assert bull(redis_url, other, lambda queue, j=job_id, o=opts: queue.remove(j, o)) == 1
            assert dump(r, ours) == dump(r, theirs), (label, job_id)
    # The events match too (siblings go in set order, so compared as sets), except that bullmq, removing
    # a parent with its children, re-queues the parent when its last child goes (event `waiting`), then
    # reports it removed from "wait". Here q (whose last child is d2) and d2 (whose last child is e1).
    ours_events, theirs_events = dump(r, ours, with_events=True), dump(r, theirs, with_events=True)
    for stream in ("bull:A:events", "bull:B:events"):
        expected = []
        for event in theirs_events[stream][1]:
            if event["event"] == "waiting" and event["jobId"] in ("q", "d2"):
                continue
            if event["event"] == "removed" and event["jobId"] in ("q", "d2"):
                expected.append({**event, "prev": "waiting-children"})
                continue
            expected.append(event)
        assert sorted(map(str, ours_events[stream][1])) == sorted(map(str, expected)), stream
    assert {"event": "waiting", "jobId": "p", "prev": "waiting-children"} in ours_events["bull:A:events"][1]
    r.close()


# --- drain ------------------------------------------------------------------------------------------


def test_drain_removes_waiting_jobs_and_keeps_the_rest(r: redis.Redis, q: SyncQueue, s: Scripts) -> None:
    done = completed_jobs(q, s, 2, now=T0)
    active = q.add("a").id
    assert s.fetch(q.keys, "tok") == [active]
    waiting = [job.id for job in q.add_bulk([("w", n) for n in range(3)])]
    q.add("lifo", lifo=True)
    prioritized = [q.add("p", priority=n).id for n in (1, 2)]
    delayed = q.add("d", delay=60_000).id
    r.lpush(q.keys.paused, "v5")
    r.hset(q.keys.job("v5"), "name", "v5")
    before = len(events(r, q.keys))
    assert s.drain(q.keys) == 1
    assert r.exists(q.keys.wait, q.keys.paused, q.keys.prioritized, q.keys.pc) == 0
    assert r.zrange(q.keys.delayed, 0, -1) == [delayed]
    assert r.zrange(q.keys.completed, 0, -1) == done
    assert r.lrange(q.keys.active, 0, -1) == [active]
    assert r.exists(*(q.keys.job(job_id) for job_id in [*waiting, *prioritized, "v5"])) == 0
    assert len(events(r, q.keys)) == before  # no events
    s.drain(q.keys, delayed=True)
    assert r.exists(q.keys.delayed, q.keys.job(delayed)) == 0
    assert r.exists(q.keys.job(active), *(q.keys.job(job_id) for job_id in done)) == 3


def test_drain_keeps_scheduler_iterations_in_place(redis_url: str, queue_name: str) -> None:
    async def work(queue: bullmq.Queue) -> tuple[str, str]:
        await queue.add("w1", {}, {"timestamp": T0})
        now = await queue.upsertJobScheduler("now", {"every": 60_000})  # its first run is due: in wait
        later = await queue.upsertJobScheduler("later", {"every": 60_000, "startDate": NEW})  # delayed
        await queue.add("w2", {}, {"timestamp": T0, "delay": 60_000})
        return str(now.id), str(later.id)

    now_id, later_id = bull(redis_url, queue_name, work)
    keys = QueueKeys(queue_name)
    q = SyncQueue(queue_name, redis_url)
    q.add_bulk([("more", n) for n in range(5)])
    q.add("last", lifo=True)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with SyncRedisClient(redis_url) as client:
        s = Scripts(client)
        assert s.drain(keys, delayed=True, batch=2) >= 4
    assert r.lrange(keys.wait, 0, -1) == [now_id]
    assert r.zrange(keys.delayed, 0, -1) == [later_id]
    assert r.zcard(keys.repeat) == 2
    assert r.exists(keys.job(now_id), keys.job(later_id)) == 2
    q.close()
    r.close()


def test_drain_works_in_batches(r: redis.Redis, q: SyncQueue, s: Scripts) -> None:
    q.add_bulk([("w", n) for n in range(2000)])
    q.add_bulk([("p", n, {"priority": 1 + n % 5}) for n in range(700)])
    q.add_bulk([("d", n, {"delay": 60_000}) for n in range(300)])
    lengths = []
    while cs.decode_drain(s.run(cs.drain(q.keys, include_delayed=True, batch=500))):
        lengths.append(r.llen(q.keys.wait) + r.zcard(q.keys.prioritized) + r.zcard(q.keys.delayed))
    assert lengths == [2500, 2000, 1500, 1000, 500]  # 500 jobs a call; the sixth call ends it
    assert r.exists(q.keys.wait, q.keys.prioritized, q.keys.delayed, q.keys.pc) == 0
    assert r.exists(q.keys.job("1"), q.keys.job("3000")) == 0


def test_drain_matches_bullmq(redis_url: str, queue_name: str) -> None:
    ours = {f"{queue_name}x1": "A", f"{queue_name}x2": "B"}
    theirs = {f"{queue_name}y1": "A", f"{queue_name}y2": "B"}
    for a, b in (list(ours), list(theirs)):
        q = SyncQueue(a, redis_url)
        q.add_bulk([("w", n, {"timestamp": T0}) for n in range(4)])
        q.add("lifo", lifo=True, timestamp=T0)
        q.add_bulk([("p", n, {"priority": n + 1, "timestamp": T0}) for n in range(3)])
        q.add("d", delay=5000, timestamp=T0)
        q.close()
        bull_add(redis_url, a, "dedup", {}, {"deduplication": {"id": "dd"}, "timestamp": T0})
        flow(redis_url, node("same", a, "same", node("k1", a, "k1")))  # the parent goes too
        flow(redis_url, node("far", b, "far", node("k2", a, "k2")))  # the parent is re-queued
        flow(redis_url, node("half", b, "half", node("k3", a, "k3"), node("k4", b, "k4")))
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert dump(r, ours) == dump(r, theirs)
    (a_ours, _), (a_theirs, _) = list(ours), list(theirs)
    with SyncRedisClient(redis_url) as client:
        Scripts(client).drain(QueueKeys(a_ours))
    bull(redis_url, a_theirs, lambda queue: queue.drain())
    ours_dump, theirs_dump = dump(r, ours), dump(r, theirs)
    assert theirs_dump.pop("bull:A:pc") == ("string", "3")  # bullmq leaves the counter of an empty set
    assert ours_dump == theirs_dump
    assert ours_dump["bull:B:wait"] == ("list", ["k4", "far"])
    assert "bull:A:same" not in ours_dump
    assert "bull:A:de:dd" not in ours_dump
    assert ours_dump["bull:A:delayed"][1][0][0] == "9"
    with SyncRedisClient(redis_url) as client:
        Scripts(client).drain(QueueKeys(a_ours), delayed=True)
    bull(redis_url, a_theirs, lambda queue: queue.drain(True))
    ours_dump, theirs_dump = dump(r, ours, with_events=True), dump(r, theirs, with_events=True)
    assert theirs_dump.pop("bull:A:pc") == ("string", "3")
    assert ours_dump == theirs_dump
    assert "bull:A:delayed" not in ours_dump
    r.close()


# --- clean ------------------------------------------------------------------------------------------


def test_clean_finished_jobs_by_grace_and_limit(r: redis.Redis, q: SyncQueue, s: Scripts) -> None:
    old = completed_jobs(q, s, 3, now=T0 - 10_000)
    recent = completed_jobs(q, s, 2, now=T0 - 100)
    failed = completed_jobs(q, s, 2, now=T0 - 10_000, fail=True)
    assert s.clean(q.keys, "completed", grace=1000, limit=2) == (old[:2], 1)
    assert s.clean(q.keys, "completed", grace=1000) == (old[2:], 1)
    assert r.zrange(q.keys.completed, 0, -1) == recent
    assert s.clean(q.keys, "failed", grace=1000) == (failed, 1)
    assert r.exists(*(q.keys.job(job_id) for job_id in [*old, *failed])) == 0
    cleaned = [e for e in events(r, q.keys) if e["event"] == "cleaned"]
    assert all(set(e) == {"event", "count"} for e in cleaned)
    assert [e["count"] for e in cleaned] == ["2", "1", "2"]
    assert s.clean(q.keys, "completed", grace=0, now=T0 - 200) == ([], 1)
    assert events(r, q.keys)[-1] == {"event": "cleaned", "count": "0"}


def test_clean_waiting_and_delayed_jobs_by_timestamp(r: redis.Redis, q: SyncQueue, s: Scripts) -> None:
    # old and new jobs interleaved, and the scan in small batches: each call resumes after the kept ones
    stamps = [OLD, NEW, NEW, OLD, NEW, OLD, OLD, NEW]
    waiting = [q.add("w", timestamp=stamp).id for stamp in stamps]
    delayed = [q.add("d", timestamp=stamp, delay=1000).id for stamp in stamps]
    prioritized = [q.add("p", timestamp=stamp, priority=2).id for stamp in stamps]
    old = {i for i, stamp in enumerate(stamps) if stamp == OLD}
    removed, calls = s.clean(q.keys, "waiting", batch=3)
    assert sorted(removed, key=int) == [waiting[i] for i in sorted(old)]
    assert calls == 3
    assert r.lrange(q.keys.wait, 0, -1) == [waiting[i] for i in reversed(range(8)) if i not in old]
    removed, _ = s.clean(q.keys, "delayed", batch=2)
    assert sorted(removed, key=int) == [delayed[i] for i in sorted(old)]
    assert r.zrange(q.keys.delayed, 0, -1) == [delayed[i] for i in range(8) if i not in old]
    removed, _ = s.clean(q.keys, "prioritized", limit=3, batch=2)
    assert removed == [prioritized[i] for i in sorted(old)][:3]
    assert [e["count"] for e in events(r, q.keys) if e["event"] == "cleaned"] == ["4", "4", "3"]


def test_clean_active_never_takes_a_locked_job(r: redis.Redis, q: SyncQueue, s: Scripts) -> None:
    ids = [job.id for job in q.add_bulk([("a", n) for n in range(3)])]
    assert s.fetch(q.keys, "t1", "t2", "t3", now=T0 - 5000) == ids
    r.delete(q.keys.job_lock(ids[1]))  # expired
    r.sadd(q.keys.stalled, *ids)
    assert s.clean(q.keys, "active", grace=1000) == ([ids[1]], 1)
    assert r.lrange(q.keys.active, 0, -1) == [ids[2], ids[0]]
    assert r.smembers(q.keys.stalled) == {ids[0], ids[2]}
    assert s.clean(q.keys, "active", grace=1000, now=T0 - 5000 + 500) == ([], 1)


def test_clean_skips_the_current_scheduler_iteration(redis_url: str, queue_name: str) -> None:
    async def work(queue: bullmq.Queue) -> str:
        await queue.add("old", {}, {"timestamp": OLD})
        return str((await queue.upsertJobScheduler("now", {"every": 60_000})).id)

    current = bull(redis_url, queue_name, work)
    keys = QueueKeys(queue_name)
    with SyncRedisClient(redis_url) as client:
        removed, _ = Scripts(client).clean(keys, "wait", now=NEW)
        assert removed == ["1"]
        assert client.execute("LRANGE", keys.wait, 0, -1) == [current.encode()]


def test_clean_works_in_batches(r: redis.Redis, q: SyncQueue, s: Scripts) -> None:
    ids = completed_jobs(q, s, 3000, now=T0 - 10_000)
    first, calls = s.clean(q.keys, "completed", limit=1200, batch=500)
    assert (len(set(first)), calls) == (1200, 3)  # 500 + 500 + 200
    assert r.zcard(q.keys.completed) == 1800
    rest, calls = s.clean(q.keys, "completed", batch=500)
    assert (len(rest), calls) == (1800, 4)  # 500 + 500 + 500 + 300
    assert sorted(first + rest, key=int) == ids
    assert r.exists(q.keys.completed) == 0
    counts = [e["count"] for e in events(r, q.keys) if e["event"] == "cleaned"]
    assert counts == ["1200", "1800"]  # one event per clean, with its total


def test_clean_matches_bullmq(redis_url: str, queue_name: str) -> None:
    ours, theirs = {f"{queue_name}x": "Q"}, {f"{queue_name}y": "Q"}
    now = int(time.time() * 1000)
    for name in (*ours, *theirs):
        q = SyncQueue(name, redis_url)
        with SyncRedisClient(redis_url) as client:
            s = Scripts(client)
            completed_jobs(q, s, 3, now=OLD)
            completed_jobs(q, s, 2, now=NEW)
            completed_jobs(q, s, 3, now=OLD, fail=True)
        q.add_bulk([("w", n, {"timestamp": OLD if n % 2 else NEW}) for n in range(6)])
        q.add_bulk([("d", n, {"timestamp": OLD if n % 2 else NEW, "delay": 10}) for n in range(4)])
        q.add_bulk([("p", n, {"timestamp": OLD if n % 3 else NEW, "priority": 1 + n}) for n in range(4)])
        q.close()
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert dump(r, ours) == dump(r, theirs)
    mine, other = next(iter(ours)), next(iter(theirs))
    cases = [
        ("completed", 2),
        ("completed", 0),
        ("failed", 0),
        ("wait", 0),
        ("delayed", 0),
        ("prioritized", 0),
    ]
    with SyncRedisClient(redis_url) as client:
        s = Scripts(client)
        for state, limit in cases:
            removed, _ = s.clean(QueueKeys(mine), state, grace=60_000, limit=limit, now=now)
            bull_removed = bull(redis_url, other, lambda queue, n=limit, st=state: queue.clean(60_000, n, st))
            assert sorted(removed) == sorted(bull_removed), state
            assert dump(r, ours, with_events=True) == dump(r, theirs, with_events=True), state
    r.close()


# --- obliterate ---------------------------------------------------------------------------------------


def test_obliterate_refusals(r: redis.Redis, q: SyncQueue, s: Scripts) -> None:
    q.add("a")
    with pytest.raises(QueueNotPausedError, match="not paused") as not_paused:
        s.obliterate(q.keys)
    assert not_paused.value.code == cs.NOT_PAUSED
    q.add("b")
    assert s.fetch(q.keys, "tok") == ["1"]
    q.pause()
    with pytest.raises(ActiveJobsError, match="active jobs") as active:
        s.obliterate(q.keys)
    assert active.value.code == cs.ACTIVE_JOBS
    assert r.llen(q.keys.wait) == 1
    assert r.exists(q.keys.job("1"), q.keys.job("2")) == 2


def test_obliterate_deletes_every_key_of_the_queue(r: redis.Redis, q: SyncQueue, s: Scripts) -> None:
    completed_jobs(q, s, 2, now=T0)
    completed_jobs(q, s, 2, now=T0, fail=True)
    active = q.add("a").id
    assert s.fetch(q.keys, "tok") == [active]
    q.add_bulk([("w", n) for n in range(3)])
    q.add("p", priority=2)
    q.add("d", delay=1000)
    q.cancel(active)  # sandq's cancels stream
    r.hset(q.keys.job("wc"), "name", "parent")
    r.zadd(q.keys.waiting_children, {"wc": T0})
    r.sadd(q.keys.job("wc") + ":dependencies", "bull:elsewhere:1")
    r.zadd(q.keys.repeat, {"sched": NEW})
    r.hset(q.keys.suffix("repeat:sched"), "name", "sched")
    r.set(q.keys.limiter, 3, px=60_000)
    r.set(q.keys.stalled_check, T0)
    r.sadd(q.keys.stalled, active)
    r.hset(q.keys.suffix("metrics:completed"), "count", 2)
    r.lpush(q.keys.suffix("metrics:completed:data"), 2)
    r.hset(q.keys.job(active), "deid", "dd")
    r.set(q.keys.suffix("de:dd"), active)
    q.pause()
    assert s.obliterate(q.keys, force=True) == 1
    assert r.keys(f"*{q.name}*") == []


def test_obliterate_works_in_batches(r: redis.Redis, q: SyncQueue, s: Scripts) -> None:
    q.add_bulk([("w", n) for n in range(2500)])
    q.add_bulk([("d", n, {"delay": 1000}) for n in range(500)])
    q.pause()
    remaining = []
    while cs.decode_obliterate(s.run(cs.obliterate(q.keys, batch=700))):
        remaining.append(r.llen(q.keys.wait) + r.zcard(q.keys.delayed))
    assert remaining == [2300, 1600, 900, 200]
    assert r.keys(f"*{q.name}*") == []


def test_obliterate_matches_bullmq(redis_url: str, queue_name: str) -> None:
    ours, theirs = (
        {f"{queue_name}x": "Q", f"{queue_name}xo": "O"},
        {f"{queue_name}y": "Q", f"{queue_name}yo": "O"},
    )
    for name, outside in (list(ours), list(theirs)):
        q = SyncQueue(name, redis_url)
        with SyncRedisClient(redis_url) as client:
            s = Scripts(client)
            completed_jobs(q, s, 3, now=T0)
            completed_jobs(q, s, 2, now=T0, fail=True)
            q.add("a", timestamp=T0)
            assert s.fetch(q.keys, "tok", now=T0) == ["6"]
            q.add_bulk([("w", n, {"timestamp": T0}) for n in range(4)])
            q.add("p", priority=3, timestamp=T0)
            q.add("d", delay=50, timestamp=T0)
        q.close()

        async def work(queue: bullmq.Queue) -> None:
            await queue.upsertJobScheduler("later", {"every": 60_000, "startDate": NEW}, "tick", {"t": 1})
            await queue.add("dedup", {}, {"deduplication": {"id": "dd"}, "timestamp": T0})

        bull(redis_url, name, work)
        flow(redis_url, node("same", name, "same", node("k1", name, "k1")))
        flow(redis_url, node("far", outside, "far", node("k2", name, "k2")))
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert sorted(dump(r, ours)) == sorted(dump(r, theirs))  # (the iteration's opts hold the time)
    mine, other = next(iter(ours)), next(iter(theirs))
    with SyncRedisClient(redis_url) as client:
        SyncQueue(mine, client).pause()
        Scripts(client).obliterate(QueueKeys(mine), force=True, batch=3)
    bull(redis_url, other, lambda queue: queue.obliterate(True))
    ours_dump = dump(r, ours, with_events=True)
    assert ours_dump == dump(r, theirs, with_events=True)
    assert [key for key in ours_dump if key.startswith("bull:Q:")] == []
    assert ours_dump["bull:O:wait"] == ("list", ["far"])  # the parent elsewhere runs without its child
    r.close()
