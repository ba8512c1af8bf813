"""Interoperability with the ``bullmq`` PyPI client: both clients on one Redis, in both directions.

sandq must speak BullMQ's Redis data model (v6): a job either client adds is read back by the other with
the same name, data, options and state; both share the id counter, the wait/prioritized/delayed orderings,
the events stream and the queue's meta; pausing with one is seen by the other.

bullmq runs on asyncio; each bullmq step here is an ``asyncio.run`` of its own (:func:`bull`), from plain
sync tests (next to :class:`sandq.SyncQueue`) or, in the trio tests that drive the async
:class:`sandq.Queue`, from a worker thread (:func:`bull_in_thread`). Raw keys are inspected with
redis-py. Every client opened is closed.

Known, deliberate differences that the tests pin (see the comments where they are asserted):

- bullmq's Python client stores ``"delay": 0`` in every job's opts; sandq leaves ``delay`` out when 0.
- bullmq's reader (``Job.fromJSON``) adds ``attempts``/``delay`` defaults and ``backoff: None`` to the
  options it reads; the expected bullmq views below include them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import bullmq
import pytest
import redis
import trio

import sandq
from sandq import Backoff, JobOptions, JobState, KeepJobs

from bullmq_peer import bull, bull_add

T = TypeVar("T")

#: A fixed creation time (ms) for jobs whose scores the tests compute.
TS = 1_700_000_000_000
MAX_PRIORITY = 2_097_151


# -- helpers -----------------------------------------------------------------------------------------


async def bull_in_thread(redis_url: str, queue_name: str, work: Callable[[bullmq.Queue], Awaitable[T]]) -> T:
    """:func:`bull` from a trio test: asyncio gets a worker thread of its own."""
    return await trio.to_thread.run_sync(bull, redis_url, queue_name, work)


def bull_view(job: Any) -> dict[str, Any]:
    """The fields of a bullmq Job that the tests compare."""
    return {
        "id": job.id,
        "name": job.name,
        "data": job.data,
        "opts": job.opts,
        "timestamp": job.timestamp,
        "delay": job.delay,
        "priority": job.priority,
    }


def key(queue_name: str, suffix: str) -> str:
    return f"bull:{queue_name}:{suffix}"


def job_events(raw: redis.Redis, queue_name: str, job_id: str) -> list[list[tuple[str, str]]]:
    """The events of one job, in order, as (field, value) pairs with the job id replaced by ``<id>``
    (field order kept: it is part of the stream entry's shape)."""
    entries = raw.xrange(key(queue_name, "events"))
    return [
        [(field, "<id>" if field == "jobId" else value) for field, value in fields.items()]
        for _, fields in entries
        if fields.get("jobId") == job_id
    ]


def last_event(raw: redis.Redis, queue_name: str) -> dict[str, str]:
    entries = raw.xrevrange(key(queue_name, "events"), count=1)
    assert entries, "the events stream is empty"
    fields: dict[str, str] = entries[0][1]
    return fields


def stored_opts(raw: redis.Redis, queue_name: str, job_id: str) -> dict[str, Any]:
    text = raw.hget(key(queue_name, job_id), "opts")
    assert text is not None, f"job {job_id} has no opts field"
    opts: dict[str, Any] = json.loads(text)
    return opts


@pytest.fixture
def squeue(redis_url: str, queue_name: str) -> Iterator[sandq.SyncQueue]:
    with sandq.SyncQueue(queue_name, redis_url) as queue:
        yield queue


# -- sandq adds, bullmq reads ------------------------------------------------------------------------

#: bullmq's reader adds these to whatever opts it reads.
BULL_READ_DEFAULTS: dict[str, Any] = {"attempts": 0, "delay": 0, "backoff": None}


@pytest.mark.parametrize(
    ("options", "expected_opts", "state"),
    [
        pytest.param({}, {}, "waiting", id="plain"),
        pytest.param(
            {"attempts": 3, "backoff": 1000},
            {"attempts": 3, "backoff": {"type": "fixed", "delay": 1000}},
            "waiting",
            id="attempts-backoff-number",
        ),
        pytest.param(
            {"attempts": 5, "backoff": {"type": "exponential", "delay": 500}},
            {"attempts": 5, "backoff": {"type": "exponential", "delay": 500}},
            "waiting",
            id="backoff-exponential",
        ),
        pytest.param(
            {"backoff": Backoff(type="exponential", delay=250, jitter=0.5)},
            {"backoff": {"type": "exponential", "delay": 250, "jitter": 0.5}},
            "waiting",
            id="backoff-jitter",
        ),
        pytest.param(
            {"remove_on_complete": True, "remove_on_fail": True},
            {"removeOnComplete": True, "removeOnFail": True},
            "waiting",
            id="remove-bool",
        ),
        pytest.param(
            {"remove_on_complete": 100, "remove_on_fail": 0},
            {"removeOnComplete": 100, "removeOnFail": 0},
            "waiting",
            id="remove-count",
        ),
        pytest.param(
            {"remove_on_complete": {"age": 3600, "count": 10}, "remove_on_fail": KeepJobs(age=60)},
            {"removeOnComplete": {"age": 3600, "count": 10}, "removeOnFail": {"age": 60}},
            "waiting",
            id="remove-keepjobs",
        ),
        pytest.param({"keep_logs": 25}, {"keepLogs": 25}, "waiting", id="keep-logs"),
        pytest.param({"job_id": "order-17"}, {"jobId": "order-17"}, "waiting", id="job-id"),
        pytest.param({"delay": 5000}, {"delay": 5000}, "delayed", id="delay"),
        pytest.param({"priority": 3}, {"priority": 3}, "prioritized", id="priority"),
        pytest.param({"lifo": True}, {"lifo": True}, "waiting", id="lifo"),
        pytest.param({"timestamp": TS}, {"timestamp": TS}, "waiting", id="timestamp"),
        pytest.param({"timeout": 900}, {"timeout": 900}, "waiting", id="sandq-timeout-carried"),
        pytest.param(
            {
                "job_id": "everything",
                "delay": 2000,
                "priority": 9,
                "lifo": True,
                "attempts": 4,
                "backoff": {"type": "fixed", "delay": 10},
                "remove_on_complete": {"count": 3},
                "remove_on_fail": 7,
                "keep_logs": 2,
                "timestamp": TS,
            },
            {
                "jobId": "everything",
                "delay": 2000,
                "priority": 9,
                "lifo": True,
                "attempts": 4,
                "backoff": {"type": "fixed", "delay": 10},
                "removeOnComplete": {"count": 3},
                "removeOnFail": 7,
                "keepLogs": 2,
                "timestamp": TS,
            },
            "delayed",
            id="everything",
        ),
    ],
)
def test_sandq_job_read_by_bullmq(
    *,
    redis_url: str,
    queue_name: str,
    squeue: sandq.SyncQueue,
    options: dict[str, Any],
    expected_opts: dict[str, Any],
    state: str,
) -> None:
    data = {"n": 1, "tags": ["a", "b"], "nested": {"ok": True, "none": None}}
    added = squeue.add("resize", data, **options)

    async def read(queue: bullmq.Queue) -> tuple[dict[str, Any], str]:
        job = await queue.getJob(added.id)
        assert job is not None, f"bullmq cannot find job {added.id}"
        return bull_view(job), await queue.getJobState(added.id)

    view, bull_state = bull(redis_url, queue_name, read)
    assert view == {
        "id": added.id,
        "name": "resize",
        "data": data,
        "opts": {**BULL_READ_DEFAULTS, **expected_opts},
        "timestamp": added.timestamp,
        "delay": options.get("delay", 0),
        "priority": options.get("priority", 0),
    }
    if "timestamp" in options:
        assert view["timestamp"] == TS
    if "job_id" in options:
        assert view["id"] == options["job_id"]
    assert bull_state == state
    assert squeue.get_job_state(added.id) == state


def test_sandq_keep_logs_stored_as_kl(raw: redis.Redis, queue_name: str, squeue: sandq.SyncQueue) -> None:
    job = squeue.add("logs", {}, keep_logs=12)
    opts = stored_opts(raw, queue_name, job.id)
    assert opts["kl"] == 12
    assert "keepLogs" not in opts
    # Read back by sandq under the long name, as bullmq's reader does.
    read = squeue.get_job(job.id)
    assert read is not None
    assert read.opts["keepLogs"] == 12
    assert read.options.keep_logs == 12


def test_sandq_add_returns_opts_with_long_names(
    redis_url: str, queue_name: str, squeue: sandq.SyncQueue
) -> None:
    async def add(q: bullmq.Queue) -> dict[str, Any]:
        job = await q.add("logs", {}, {"keepLogs": 5})
        return dict(job.opts)

    bull_returned = bull(redis_url, queue_name, add)
    assert bull_returned["keepLogs"] == 5
    assert "kl" not in bull_returned

    added = squeue.add("logs", {}, keep_logs=5)
    read = squeue.get_job(added.id)
    assert read is not None
    assert read.opts == {"attempts": 0, "keepLogs": 5}
    assert added.opts == read.opts


@pytest.mark.parametrize(
    "data",
    [{}, [], "text", 0, 12.5, None, True, {"unicode": "é✓", "deep": [[{"x": [1, 2]}]]}],
    ids=["empty-dict", "empty-list", "string", "zero", "float", "null", "true", "unicode-nested"],
)
def test_sandq_data_read_by_bullmq(
    redis_url: str, queue_name: str, squeue: sandq.SyncQueue, data: Any
) -> None:
    added = squeue.add("data", data)

    async def read(queue: bullmq.Queue) -> Any:
        job = await queue.getJob(added.id)
        assert job is not None
        return job.data

    assert bull(redis_url, queue_name, read) == data


def test_sandq_add_without_data_is_empty_object_for_bullmq(
    redis_url: str, queue_name: str, raw: redis.Redis, squeue: sandq.SyncQueue
) -> None:
    added = squeue.add("nodata")
    assert raw.hget(key(queue_name, added.id), "data") == "{}"

    async def read(queue: bullmq.Queue) -> Any:
        job = await queue.getJob(added.id)
        assert job is not None
        return job.data

    assert bull(redis_url, queue_name, read) == {}


async def test_async_sandq_jobs_read_by_bullmq(redis_url: str, queue_name: str) -> None:
    """sandq's async Queue under trio; bullmq reads from a worker thread, including an unknown id."""
    async with sandq.Queue(queue_name, redis_url) as queue:
        plain = await queue.add("plain", {"i": 1})
        delayed = await queue.add("later", {"i": 2}, delay=60_000, attempts=2)
        prio = await queue.add("urgent", {"i": 3}, priority=1, remove_on_complete=True)
        assert await queue.get_job_state("no-such-job") == JobState.UNKNOWN
        assert await queue.get_job("no-such-job") is None

    async def read(q: bullmq.Queue) -> dict[str, Any]:
        jobs = {}
        for job_id in (plain.id, delayed.id, prio.id):
            job = await q.getJob(job_id)
            assert job is not None
            jobs[job_id] = (job.name, job.data, job.opts, await q.getJobState(job_id))
        jobs["missing"] = (await q.getJob("no-such-job"), await q.getJobState("no-such-job"))
        return jobs

    seen = await bull_in_thread(redis_url, queue_name, read)
    assert seen == {
        plain.id: ("plain", {"i": 1}, BULL_READ_DEFAULTS, "waiting"),
        delayed.id: ("later", {"i": 2}, {**BULL_READ_DEFAULTS, "attempts": 2, "delay": 60_000}, "delayed"),
        prio.id: (
            "urgent",
            {"i": 3},
            {**BULL_READ_DEFAULTS, "priority": 1, "removeOnComplete": True},
            "prioritized",
        ),
        "missing": (None, "unknown"),
    }


async def test_job_counts_and_states_agree(redis_url: str, queue_name: str) -> None:
    """Jobs from both clients in one queue: sandq's and bullmq's counts and states are the same."""
    async with sandq.Queue(queue_name, redis_url) as queue:
        sandq_ids = [
            (await queue.add("a", {})).id,
            (await queue.add("b", {}, lifo=True)).id,
            (await queue.add("c", {}, delay=60_000)).id,
            (await queue.add("d", {}, priority=4)).id,
            (await queue.add("e", {}, job_id="custom-e")).id,
        ]

        async def add_and_count(
            q: bullmq.Queue,
        ) -> tuple[list[str], dict[str, int], dict[str, int], list[str]]:
            ids = [
                (await q.add("f", {}, {})).id,
                (await q.add("g", {}, {"delay": 30_000})).id,
                (await q.add("h", {}, {"delay": 90_000, "priority": 2})).id,
                (await q.add("i", {}, {"priority": 1})).id,
                (await q.add("j", {}, {"priority": 7, "jobId": "custom-j"})).id,
            ]
            every = await q.getJobCounts()
            some = await q.getJobCounts("waiting", "prioritized", "delayed")
            states = [await q.getJobState(job_id) for job_id in [*sandq_ids, *ids, "missing"]]
            return ids, every, some, states

        bull_ids, bull_counts, bull_some, bull_states = await bull_in_thread(
            redis_url, queue_name, add_and_count
        )

        sandq_counts = await queue.get_job_counts()
        sandq_some = await queue.get_job_counts("waiting", "prioritized", "delayed")
        sandq_states = [
            str(await queue.get_job_state(job_id)) for job_id in [*sandq_ids, *bull_ids, "missing"]
        ]

    expected = {
        "waiting": 4,
        "active": 0,
        "delayed": 3,
        "prioritized": 3,
        "waiting-children": 0,
        "completed": 0,
        "failed": 0,
    }
    assert sandq_counts == expected
    assert bull_counts == expected
    assert sandq_some == bull_some == {"waiting": 4, "prioritized": 3, "delayed": 3}
    assert sandq_states == bull_states
    assert sandq_states == [
        "waiting",
        "waiting",
        "delayed",
        "prioritized",
        "waiting",
        "waiting",
        "delayed",
        "delayed",
        "prioritized",
        "prioritized",
        "unknown",
    ]


# -- bullmq adds, sandq reads ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opts", "expected_opts", "expected_options", "state"),
    [
        pytest.param({}, {}, JobOptions(), JobState.WAITING, id="plain"),
        pytest.param(
            {"delay": 5000}, {"delay": 5000}, JobOptions(delay=5000), JobState.DELAYED, id="delayed"
        ),
        pytest.param(
            {"priority": 8},
            {"priority": 8},
            JobOptions(priority=8),
            JobState.PRIORITIZED,
            id="prioritized",
        ),
        pytest.param(
            {"jobId": "b-custom"},
            {"jobId": "b-custom"},
            JobOptions(job_id="b-custom"),
            JobState.WAITING,
            id="job-id",
        ),
        pytest.param({"lifo": True}, {"lifo": True}, JobOptions(lifo=True), JobState.WAITING, id="lifo"),
        pytest.param(
            {"attempts": 3, "backoff": 2000},
            {"attempts": 3, "backoff": {"type": "fixed", "delay": 2000}},
            JobOptions(attempts=3, backoff=Backoff(type="fixed", delay=2000)),
            JobState.WAITING,
            id="attempts-backoff-number",
        ),
        pytest.param(
            {"attempts": 6, "backoff": {"type": "exponential", "delay": 100, "jitter": 0.25}},
            {"attempts": 6, "backoff": {"type": "exponential", "delay": 100, "jitter": 0.25}},
            JobOptions(attempts=6, backoff=Backoff(type="exponential", delay=100, jitter=0.25)),
            JobState.WAITING,
            id="backoff-exponential-jitter",
        ),
        pytest.param(
            {"removeOnComplete": True, "removeOnFail": False},
            {"removeOnComplete": True, "removeOnFail": False},
            JobOptions(remove_on_complete=True, remove_on_fail=False),
            JobState.WAITING,
            id="remove-bool",
        ),
        pytest.param(
            {"removeOnComplete": 50, "removeOnFail": 500},
            {"removeOnComplete": 50, "removeOnFail": 500},
            JobOptions(remove_on_complete=50, remove_on_fail=500),
            JobState.WAITING,
            id="remove-count",
        ),
        pytest.param(
            {"removeOnComplete": {"age": 3600, "count": 100}, "removeOnFail": {"age": 86400}},
            {"removeOnComplete": {"age": 3600, "count": 100}, "removeOnFail": {"age": 86400}},
            JobOptions(remove_on_complete=KeepJobs(age=3600, count=100), remove_on_fail=KeepJobs(age=86400)),
            JobState.WAITING,
            id="remove-keepjobs",
        ),
        pytest.param(
            {"keepLogs": 10}, {"keepLogs": 10}, JobOptions(keep_logs=10), JobState.WAITING, id="keep-logs"
        ),
        pytest.param(
            {"timestamp": TS}, {"timestamp": TS}, JobOptions(timestamp=TS), JobState.WAITING, id="timestamp"
        ),
        pytest.param(
            {"delay": 1500, "priority": 2, "timestamp": TS, "jobId": "b-both", "attempts": 2},
            {"delay": 1500, "priority": 2, "timestamp": TS, "jobId": "b-both", "attempts": 2},
            JobOptions(delay=1500, priority=2, timestamp=TS, job_id="b-both", attempts=2),
            JobState.DELAYED,
            id="delayed-and-prioritized",
        ),
    ],
)
def test_bullmq_job_read_by_sandq(
    *,
    redis_url: str,
    queue_name: str,
    squeue: sandq.SyncQueue,
    opts: dict[str, Any],
    expected_opts: dict[str, Any],
    expected_options: JobOptions,
    state: JobState,
) -> None:
    data = {"file": "a.png", "sizes": [64, 128], "meta": {"é": None}}
    job_id = bull_add(redis_url, queue_name, "thumbnail", data, opts)

    job = squeue.get_job(job_id)
    assert job is not None
    assert job.id == job_id
    assert job.name == "thumbnail"
    assert job.data == data
    # bullmq's Python client stores attempts and delay (0) with every job.
    assert job.opts == {"attempts": 0, "delay": 0, **expected_opts}
    assert job.options == expected_options
    assert job.delay == opts.get("delay", 0)
    assert job.priority == opts.get("priority", 0)
    if "timestamp" in opts:
        assert job.timestamp == TS
    else:
        assert job.timestamp > TS
    assert job.attempts_made == 0
    assert squeue.get_job_state(job_id) == state


def test_bullmq_unmodelled_options_survive_in_sandq(
    redis_url: str, queue_name: str, squeue: sandq.SyncQueue
) -> None:
    """Options sandq does not model stay visible in ``Job.opts`` (long names) and ``options.extra``."""
    opts = {"stackTraceLimit": 3, "sizeLimit": 1024, "deduplication": {"id": "dedupe-1"}}
    job_id = bull_add(redis_url, queue_name, "x", {}, opts)
    job = squeue.get_job(job_id)
    assert job is not None
    assert job.opts == {"attempts": 0, "delay": 0, **opts}
    assert dict(job.options.extra) == opts
    assert job.deduplication_id == "dedupe-1"


def test_bullmq_numeric_custom_id_is_readable_by_sandq(
    redis_url: str, queue_name: str, squeue: sandq.SyncQueue
) -> None:
    """bullmq lets a custom id be all digits (sandq refuses to add one); sandq still reads the job."""
    job_id = bull_add(redis_url, queue_name, "n", {"k": 1}, {"jobId": "987654"})
    assert job_id == "987654"
    job = squeue.get_job("987654")
    assert job is not None
    assert job.data == {"k": 1}
    assert job.opts["jobId"] == "987654"
    assert job.options.job_id is None  # not a valid sandq custom id: kept in extra
    assert job.options.extra["jobId"] == "987654"
    assert squeue.get_job_state("987654") == JobState.WAITING


async def test_bullmq_jobs_read_by_async_sandq(redis_url: str, queue_name: str) -> None:
    async def add(q: bullmq.Queue) -> list[str]:
        return [
            (await q.add("one", {"i": 1}, {"attempts": 2, "keepLogs": 3})).id,
            (await q.add("two", ["x"], {"delay": 10_000, "jobId": "b-two"})).id,
            (await q.add("three", "s", {"priority": 5, "removeOnFail": {"count": 2}})).id,
        ]

    ids = await bull_in_thread(redis_url, queue_name, add)
    async with sandq.Queue(queue_name, redis_url) as queue:
        jobs = [await queue.get_job(job_id) for job_id in ids]
        states = [await queue.get_job_state(job_id) for job_id in ids]
    assert all(job is not None for job in jobs)
    read = [(job.id, job.name, job.data, job.options) for job in jobs if job is not None]
    assert read == [
        (ids[0], "one", {"i": 1}, JobOptions(attempts=2, keep_logs=3)),
        ("b-two", "two", ["x"], JobOptions(delay=10_000, job_id="b-two")),
        (ids[2], "three", "s", JobOptions(priority=5, remove_on_fail=KeepJobs(count=2))),
    ]
    assert states == [JobState.WAITING, JobState.DELAYED, JobState.PRIORITIZED]


def test_job_hash_fields_match(
    redis_url: str, queue_name: str, raw: redis.Redis, squeue: sandq.SyncQueue
) -> None:
    """The same add from each client writes the same hash fields and values (but for opts' delay)."""
    data = {"a": [1, 2, 3], "b": "text"}
    for extra in ({}, {"delay": 700}, {"priority": 12}):
        bull_opts = {"timestamp": TS, "attempts": 2, **extra}
        sandq_job = squeue.add("same", data, timestamp=TS, attempts=2, **extra)
        bull_id = bull_add(redis_url, queue_name, "same", data, bull_opts)
        sandq_hash = raw.hgetall(key(queue_name, sandq_job.id))
        bull_hash = raw.hgetall(key(queue_name, bull_id))
        assert set(sandq_hash) == set(bull_hash) == {"name", "data", "opts", "timestamp", "delay", "priority"}
        sandq_opts = json.loads(sandq_hash.pop("opts"))
        bull_opts_stored = json.loads(bull_hash.pop("opts"))
        assert sandq_hash == bull_hash
        assert sandq_hash["timestamp"] == str(TS)
        # Difference: bullmq always stores "delay" in opts, sandq only when it is not 0.
        assert bull_opts_stored == {"delay": 0, **sandq_opts}
        assert sandq_opts == {"timestamp": TS, "attempts": 2, **extra}


# -- ordering ----------------------------------------------------------------------------------------


def test_wait_list_order_interleaved(
    redis_url: str, queue_name: str, raw: redis.Redis, squeue: sandq.SyncQueue
) -> None:
    """FIFO jobs are LPUSHed and lifo jobs RPUSHed onto wait by both clients; workers take from the right."""
    s1 = squeue.add("s1").id
    b2 = bull_add(redis_url, queue_name, "b2", {})
    s3 = squeue.add("s3", lifo=True).id
    b4 = bull_add(redis_url, queue_name, "b4", {}, {"lifo": True})
    s5 = squeue.add("s5").id
    b6 = bull_add(redis_url, queue_name, "b6", {})
    s7 = squeue.add("s7", lifo=True).id
    assert raw.lrange(key(queue_name, "wait"), 0, -1) == [b6, s5, b2, s1, s3, b4, s7]
    # Run order (from the right): the lifo jobs newest first, then the FIFO jobs oldest first.
    assert raw.lrange(key(queue_name, "wait"), 0, -1)[::-1] == [s7, b4, s3, s1, b2, s5, b6]


def test_prioritized_scores_interleaved(
    redis_url: str, queue_name: str, raw: redis.Redis, squeue: sandq.SyncQueue
) -> None:
    """score = priority * 2**32 + the queue's pc counter, which both clients increment."""
    s1 = squeue.add("s1", priority=5).id
    b2 = bull_add(redis_url, queue_name, "b2", {}, {"priority": 5})
    s3 = squeue.add("s3", priority=1).id
    b4 = bull_add(redis_url, queue_name, "b4", {}, {"priority": MAX_PRIORITY})
    s5 = squeue.add("s5", priority=5).id
    b6 = bull_add(redis_url, queue_name, "b6", {}, {"priority": 1})
    s7 = squeue.add("s7", priority=MAX_PRIORITY).id
    scores = raw.zrange(key(queue_name, "prioritized"), 0, -1, withscores=True, score_cast_func=int)
    assert scores == [
        (s3, 1 * 2**32 + 3),
        (b6, 1 * 2**32 + 6),
        (s1, 5 * 2**32 + 1),
        (b2, 5 * 2**32 + 2),
        (s5, 5 * 2**32 + 5),
        (b4, MAX_PRIORITY * 2**32 + 4),
        (s7, MAX_PRIORITY * 2**32 + 7),
    ]
    assert raw.get(key(queue_name, "pc")) == "7"


def test_delayed_scores_same_timestamp_fifo(
    redis_url: str, queue_name: str, raw: redis.Redis, squeue: sandq.SyncQueue
) -> None:
    """score = (timestamp + delay) * 4096 + n: jobs due in the same ms keep their order across clients."""
    delay = 60_000
    fire_at = TS + delay
    s1 = squeue.add("s1", delay=delay, timestamp=TS).id
    b2 = bull_add(redis_url, queue_name, "b2", {}, {"delay": delay, "timestamp": TS})
    s3 = squeue.add("s3", delay=delay, timestamp=TS).id
    b4 = bull_add(redis_url, queue_name, "b4", {}, {"delay": delay, "timestamp": TS})
    # Due one ms later (sandq), and one ms earlier via a later timestamp and shorter delay (bullmq).
    s5 = squeue.add("s5", delay=delay + 1, timestamp=TS).id
    b6 = bull_add(redis_url, queue_name, "b6", {}, {"delay": delay - 2, "timestamp": TS + 1})
    s7 = squeue.add("s7", delay=delay - 1, timestamp=TS).id
    scores = raw.zrange(key(queue_name, "delayed"), 0, -1, withscores=True, score_cast_func=int)
    assert scores == [
        (b6, (fire_at - 1) * 4096),
        (s7, (fire_at - 1) * 4096 + 1),
        (s1, fire_at * 4096),
        (b2, fire_at * 4096 + 1),
        (s3, fire_at * 4096 + 2),
        (b4, fire_at * 4096 + 3),
        (s5, (fire_at + 1) * 4096),
    ]
    # Both point the delay marker at the earliest fire time.
    assert int(raw.zscore(key(queue_name, "marker"), "1") or 0) == fire_at - 1
    # The delayed events carry the fire time, from both clients.
    for job_id, due in ((s1, fire_at), (b2, fire_at), (s5, fire_at + 1), (b6, fire_at - 1)):
        assert job_events(raw, queue_name, job_id)[-1] == [
            ("event", "delayed"),
            ("jobId", "<id>"),
            ("delay", str(due)),
        ]


# -- duplicate custom ids ----------------------------------------------------------------------------


def test_sandq_add_of_bullmq_id_returns_existing_job(
    redis_url: str, queue_name: str, raw: redis.Redis, squeue: sandq.SyncQueue
) -> None:
    bull_id = bull_add(redis_url, queue_name, "orig", {"from": "bullmq"}, {"jobId": "dup-1", "attempts": 2})
    assert bull_id == "dup-1"
    before = raw.hgetall(key(queue_name, "dup-1"))

    job = squeue.add("other", {"from": "sandq"}, job_id="dup-1", delay=1000, priority=3)

    assert job.id == "dup-1"
    assert job.name == "orig"
    assert job.data == {"from": "bullmq"}
    assert job.opts == {"attempts": 2, "delay": 0, "jobId": "dup-1"}
    assert raw.hgetall(key(queue_name, "dup-1")) == before
    assert raw.lrange(key(queue_name, "wait"), 0, -1) == ["dup-1"]
    assert raw.zcard(key(queue_name, "delayed")) == 0
    assert raw.zcard(key(queue_name, "prioritized")) == 0
    assert last_event(raw, queue_name) == {"event": "duplicated", "jobId": "dup-1"}
    assert [e[0][1] for e in job_events(raw, queue_name, "dup-1")] == ["added", "waiting", "duplicated"]
    # Both adds took a number from the id counter, as BullMQ's scripts do.
    assert raw.get(key(queue_name, "id")) == "2"


def test_bullmq_add_of_sandq_id_returns_existing_id(
    redis_url: str, queue_name: str, raw: redis.Redis, squeue: sandq.SyncQueue
) -> None:
    squeue.add("orig", {"from": "sandq"}, job_id="dup-2", priority=4)
    before = raw.hgetall(key(queue_name, "dup-2"))

    async def add_again(q: bullmq.Queue) -> tuple[str, Any]:
        job = await q.add("other", {"from": "bullmq"}, {"jobId": "dup-2"})
        stored = await q.getJob("dup-2")
        assert stored is not None
        return str(job.id), (stored.name, stored.data, stored.priority)

    returned_id, stored = bull(redis_url, queue_name, add_again)
    assert returned_id == "dup-2"
    assert stored == ("orig", {"from": "sandq"}, 4)
    assert raw.hgetall(key(queue_name, "dup-2")) == before
    assert raw.zcard(key(queue_name, "prioritized")) == 1
    assert raw.llen(key(queue_name, "wait")) == 0
    assert last_event(raw, queue_name) == {"event": "duplicated", "jobId": "dup-2"}
    assert raw.get(key(queue_name, "id")) == "2"

    # And a sandq duplicate of its own id writes the very same event as bullmq's duplicate did.
    again = squeue.add("third", {}, job_id="dup-2")
    assert again.data == {"from": "sandq"}
    events = job_events(raw, queue_name, "dup-2")
    assert events[-1] == events[-2] == [("event", "duplicated"), ("jobId", "<id>")]


# -- the shared id counter ---------------------------------------------------------------------------


async def test_auto_ids_share_the_counter(redis_url: str, queue_name: str, raw: redis.Redis) -> None:
    """Automatic ids from both clients come from one counter; custom ids take a number too."""

    async def bull_one(q: bullmq.Queue) -> str:
        return str((await q.add("b", {"by": "bullmq"}, {})).id)

    async def bull_custom(q: bullmq.Queue) -> str:
        return str((await q.add("b", {"by": "bullmq"}, {"jobId": "b-custom"})).id)

    async def bull_bulk(q: bullmq.Queue) -> list[str]:
        jobs = await q.addBulk(
            [{"name": "b", "data": {"by": "bullmq"}}, {"name": "b", "data": {"by": "bullmq"}}]
        )
        return [str(job.id) for job in jobs]

    async with sandq.Queue(queue_name, redis_url) as queue:
        ids = [(await queue.add("s", {"by": "sandq"})).id]
        ids.append(await bull_in_thread(redis_url, queue_name, bull_one))
        ids.append((await queue.add("s", {"by": "sandq"}, job_id="s-custom")).id)  # takes 3
        ids.append(await bull_in_thread(redis_url, queue_name, bull_one))
        ids.append(await bull_in_thread(redis_url, queue_name, bull_custom))  # takes 5
        ids.append((await queue.add("s", {"by": "sandq"})).id)
        ids.extend(job.id for job in await queue.add_bulk([("s", {"by": "sandq"}), ("s", {"by": "sandq"})]))
        ids.extend(await bull_in_thread(redis_url, queue_name, bull_bulk))
        ids.append((await queue.add("s", {"by": "sandq"})).id)
        by = {}
        for job_id in ids:
            job = await queue.get_job(job_id)
            assert job is not None
            by[job_id] = job.data["by"]

    assert ids == ["1", "2", "s-custom", "4", "b-custom", "6", "7", "8", "9", "10", "11"]
    assert len(set(ids)) == len(ids)
    assert raw.get(key(queue_name, "id")) == "11"
    assert by == {
        "1": "sandq",
        "2": "bullmq",
        "s-custom": "sandq",
        "4": "bullmq",
        "b-custom": "bullmq",
        "6": "sandq",
        "7": "sandq",
        "8": "sandq",
        "9": "bullmq",
        "10": "bullmq",
        "11": "sandq",
    }


# -- pause / resume ----------------------------------------------------------------------------------


async def test_sandq_pause_seen_by_bullmq(redis_url: str, queue_name: str, raw: redis.Redis) -> None:
    async with sandq.Queue(queue_name, redis_url) as queue:
        first = (await queue.add("before", {})).id
        assert raw.zscore(key(queue_name, "marker"), "0") is not None
        await queue.pause()
        assert await queue.is_paused()
        assert raw.hget(key(queue_name, "meta"), "paused") == "1"

        async def while_paused(q: bullmq.Queue) -> tuple[bool, str, str, dict[str, int]]:
            job = await q.add("during", {"n": 2}, {})
            return (
                await q.isPaused(),
                str(job.id),
                await q.getJobState(job.id),
                await q.getJobCounts("waiting"),
            )

        bull_paused, during, bull_state, bull_counts = await bull_in_thread(
            redis_url, queue_name, while_paused
        )
        assert bull_paused is True
        # v6: jobs added to a paused queue stay in wait; there is no paused list and no ready marker.
        assert raw.lrange(key(queue_name, "wait"), 0, -1) == [during, first]
        assert raw.exists(key(queue_name, "paused")) == 0
        assert raw.zscore(key(queue_name, "marker"), "0") is None
        assert bull_state == "waiting"
        assert await queue.get_job_state(during) == JobState.WAITING
        assert bull_counts == await queue.get_job_counts("waiting") == {"waiting": 2}

        await queue.resume()
        assert not await queue.is_paused()

    async def after_resume(q: bullmq.Queue) -> bool:
        return bool(await q.isPaused())

    assert await bull_in_thread(redis_url, queue_name, after_resume) is False
    assert raw.hexists(key(queue_name, "meta"), "paused") is False
    assert raw.zscore(key(queue_name, "marker"), "0") is not None
    assert raw.lrange(key(queue_name, "wait"), 0, -1) == [during, first]
    events = [fields["event"] for _, fields in raw.xrange(key(queue_name, "events"))]
    assert events.count("paused") == 1
    assert events.count("resumed") == 1


def test_bullmq_pause_seen_by_sandq(
    redis_url: str, queue_name: str, raw: redis.Redis, squeue: sandq.SyncQueue
) -> None:
    first = bull_add(redis_url, queue_name, "before", {})

    async def pause(q: bullmq.Queue) -> None:
        await q.pause()

    async def resume(q: bullmq.Queue) -> bool:
        await q.resume()
        return bool(await q.isPaused())

    bull(redis_url, queue_name, pause)
    assert squeue.is_paused() is True
    during = squeue.add("during", {}).id
    assert raw.lrange(key(queue_name, "wait"), 0, -1) == [during, first]
    assert raw.exists(key(queue_name, "paused")) == 0
    assert raw.zscore(key(queue_name, "marker"), "0") is None
    assert squeue.get_job_state(during) == JobState.WAITING
    # A delayed job still sets the delay marker while paused, with either client.
    delayed = squeue.add("later", {}, delay=5000, timestamp=TS).id
    assert raw.zscore(key(queue_name, "marker"), "1") == TS + 5000

    assert bull(redis_url, queue_name, resume) is False
    assert squeue.is_paused() is False
    assert raw.zscore(key(queue_name, "marker"), "0") is not None
    assert squeue.get_job_state(delayed) == JobState.DELAYED


def test_pause_events_same_shape(redis_url: str, queue_name: str, raw: redis.Redis) -> None:
    """``paused`` / ``resumed`` events: the same entry from both clients."""
    names = [f"{queue_name}s", f"{queue_name}b"]
    with sandq.SyncQueue(names[0], redis_url) as queue:
        queue.pause()
        queue.resume()

    async def pause_resume(q: bullmq.Queue) -> None:
        await q.pause()
        await q.resume()

    bull(redis_url, names[1], pause_resume)
    sandq_events = [list(fields.items()) for _, fields in raw.xrange(key(names[0], "events"))]
    bull_events = [list(fields.items()) for _, fields in raw.xrange(key(names[1], "events"))]
    assert sandq_events == bull_events == [[("event", "paused")], [("event", "resumed")]]
    assert raw.hget(key(names[0], "meta"), "paused") is None
    assert raw.hget(key(names[1], "meta"), "paused") is None


def test_maxed_queue_withholds_marker_for_both(
    redis_url: str, queue_name: str, raw: redis.Redis, squeue: sandq.SyncQueue
) -> None:
    """With global concurrency reached, neither client writes the ready marker."""

    async def set_concurrency(q: bullmq.Queue) -> None:
        await q.setGlobalConcurrency(1)

    bull(redis_url, queue_name, set_concurrency)
    raw.rpush(key(queue_name, "active"), "busy")
    squeue.add("s", {})
    assert raw.zscore(key(queue_name, "marker"), "0") is None
    bull_add(redis_url, queue_name, "b", {})
    assert raw.zscore(key(queue_name, "marker"), "0") is None
    raw.delete(key(queue_name, "active"))
    squeue.add("s2", {})
    assert raw.zscore(key(queue_name, "marker"), "0") == 0
    assert raw.llen(key(queue_name, "wait")) == 3


# -- events ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sandq_options", "bull_opts", "kinds"),
    [
        pytest.param({}, {}, ["added", "waiting"], id="plain"),
        pytest.param({"lifo": True}, {"lifo": True}, ["added", "waiting"], id="lifo"),
        pytest.param({"priority": 6}, {"priority": 6}, ["added", "waiting"], id="prioritized"),
        pytest.param(
            {"delay": 4321, "timestamp": TS},
            {"delay": 4321, "timestamp": TS},
            ["added", "delayed"],
            id="delayed",
        ),
        pytest.param(
            {"job_id": "evt-custom", "attempts": 2},
            {"jobId": "evt-custom-b", "attempts": 2},
            ["added", "waiting"],
            id="custom-id",
        ),
    ],
)
def test_add_events_same_shape(
    *,
    redis_url: str,
    queue_name: str,
    raw: redis.Redis,
    squeue: sandq.SyncQueue,
    sandq_options: dict[str, Any],
    bull_opts: dict[str, Any],
    kinds: list[str],
) -> None:
    sandq_id = squeue.add("evt", {"x": 1}, **sandq_options).id
    bull_id = bull_add(redis_url, queue_name, "evt", {"x": 1}, bull_opts)
    sandq_events = job_events(raw, queue_name, sandq_id)
    bull_events = job_events(raw, queue_name, bull_id)
    assert sandq_events == bull_events
    assert [entry[0] for entry in sandq_events] == [("event", kind) for kind in kinds]
    assert sandq_events[0] == [("event", "added"), ("jobId", "<id>"), ("name", "evt")]


# -- meta --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["sandq", "bullmq"])
def test_meta_max_len_events(
    redis_url: str, queue_name: str, raw: redis.Redis, squeue: sandq.SyncQueue, first: str
) -> None:
    def add_with(client: str) -> None:
        if client == "sandq":
            squeue.add("m", {})
        else:
            bull_add(redis_url, queue_name, "m", {})

    assert raw.exists(key(queue_name, "meta")) == 0
    add_with(first)
    assert raw.hgetall(key(queue_name, "meta")) == {"opts.maxLenEvents": "10000"}
    add_with("bullmq" if first == "sandq" else "sandq")
    assert raw.hgetall(key(queue_name, "meta")) == {"opts.maxLenEvents": "10000"}


def test_meta_max_len_events_kept_when_set(
    redis_url: str, queue_name: str, raw: redis.Redis, squeue: sandq.SyncQueue
) -> None:
    raw.hset(key(queue_name, "meta"), "opts.maxLenEvents", "50")
    squeue.add("m", {}, delay=10)
    bull_add(redis_url, queue_name, "m", {}, {"priority": 1})
    squeue.add("m", {})
    assert raw.hgetall(key(queue_name, "meta")) == {"opts.maxLenEvents": "50"}
