"""QueueEvents against a real Redis: events written by sandq's producer and worker, and by the ``bullmq``
PyPI client's Worker, read back as the same typed records; replay from "0" and from now;
wait_until_finished in every case; the same reader under asyncio; a Redis that goes away."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import pathlib
import time
from collections.abc import Callable
from typing import Any

import anyio
import bullmq
import pytest
import redis
import trio
import trio.testing

from sandq import JobState, Queue
from sandq.connection.client import RedisClient
from sandq.connection.settings import RedisSettings
from sandq.errors import ConfigurationError, JobFailedError, JobNotFoundError, RedisConnectionError
from sandq.events import (
    ActiveEvent,
    AddedEvent,
    CompletedEvent,
    DeduplicatedEvent,
    DelayedEvent,
    DrainedEvent,
    DuplicatedEvent,
    FailedEvent,
    PausedEvent,
    ProgressEvent,
    QueueEvent,
    RemovedEvent,
    ResumedEvent,
    RetriesExhaustedEvent,
    UnknownEvent,
    WaitingChildrenEvent,
    WaitingEvent,
    format_event,
    parse_event,
)
from sandq.queue_events import QueueEvents

from servers import RedisServer, binaries, system_binary
from worker_runs import running

TESTS = pathlib.Path(__file__).parent
UTC = datetime.timezone.utc


@pytest.fixture
def in_tests_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(TESTS)  # the worker imports processors from the current directory


async def take(events: QueueEvents, count: int, *, within: float = 10) -> list[QueueEvent]:
    got: list[QueueEvent] = []
    with trio.fail_after(within):
        async for event in events:
            got.append(event)
            if len(got) == count:
                break
    return got


async def take_until(
    events: QueueEvents, done: Callable[[QueueEvent], bool], *, within: float = 20
) -> list[QueueEvent]:
    got: list[QueueEvent] = []
    with trio.fail_after(within):
        async for event in events:
            got.append(event)
            if done(event):
                break
    return got


class Collected:
    """Events a reader task appends, and a wait for their number to reach a count."""

    def __init__(self) -> None:
        self.events: list[QueueEvent] = []
        self._changed = trio.Event()

    async def read(self, events: QueueEvents) -> None:
        async for event in events:
            self.events.append(event)
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, count: int, *, within: float = 10) -> None:
        with trio.fail_after(within):
            while len(self.events) < count:
                await self._changed.wait()


def shape(events: list[QueueEvent], job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """A job's events without what differs between runs (ids, times): type and decoded fields."""
    return [
        (
            type(event).__name__,
            {
                f.name: getattr(event, f.name)
                for f in dataclasses.fields(event)
                if f.name not in ("id", "event", "job_id", "raw")
            },
        )
        for event in events
        if event.job_id == job_id
    ]


# --- producer events ---------------------------------------------------------------------------


async def test_producer_events_are_typed_records_from_now(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url) as queue:
        earlier = await queue.add("earlier", {})
        async with QueueEvents(queue_name, redis_url) as events:
            plain = await queue.add("plain", {"n": 1})
            later = await queue.add("later", {}, delay=5000)
            urgent = await queue.add("urgent", {}, priority=3)
            custom = await queue.add("custom", {}, job_id="my-id")
            await queue.add("custom", {}, job_id="my-id")
            await queue.pause()
            await queue.resume()
            got = await take(events, 11)

    assert earlier.id not in {event.job_id for event in got}
    assert [(type(e), e.job_id) for e in got] == [
        (AddedEvent, plain.id),
        (WaitingEvent, plain.id),
        (AddedEvent, later.id),
        (DelayedEvent, later.id),
        (AddedEvent, urgent.id),
        (WaitingEvent, urgent.id),
        (AddedEvent, custom.id),
        (WaitingEvent, custom.id),
        (DuplicatedEvent, custom.id),
        (PausedEvent, None),
        (ResumedEvent, None),
    ]
    added, waiting, _, delayed = got[:4]
    assert isinstance(added, AddedEvent)
    assert added.job_name == "plain"
    assert added.raw == {"event": "added", "jobId": plain.id, "name": "plain"}
    assert isinstance(waiting, WaitingEvent)
    assert waiting.prev is None
    assert isinstance(delayed, DelayedEvent)
    assert delayed.fire_at == later.timestamp + 5000
    assert [event.event for event in got[-2:]] == ["paused", "resumed"]
    ids = [event.id for event in got]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    assert len(set(ids)) == len(ids)
    assert events.last_id == got[-1].id
    assert abs(got[0].timestamp - time.time() * 1000) < 60_000
    assert "due in 5s" in format_event(delayed)


async def test_replay_from_zero_from_now_and_from_an_id(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url) as queue:
        first = await queue.add("first", {})
        second = await queue.add("second", {})
        async with QueueEvents(queue_name, redis_url) as from_now:
            third = await queue.add("third", {})
            async with QueueEvents(queue_name, redis_url, last_event_id="0") as replay:
                replayed = await take(replay, 6)
            now = await take(from_now, 2)
        async with QueueEvents(queue_name, redis_url, last_event_id=replayed[1].id) as resumed:
            after = await take(resumed, 4)

    assert [e.job_id for e in replayed] == [first.id, first.id, second.id, second.id, third.id, third.id]
    assert [e.job_id for e in now] == [third.id, third.id]
    assert [e.id for e in now] == [e.id for e in replayed[4:]]
    assert after == replayed[2:]
    with pytest.raises(ConfigurationError, match="last_event_id"):
        QueueEvents(queue_name, redis_url, last_event_id="latest")
    with pytest.raises(ConfigurationError, match="block_ms"):
        QueueEvents(queue_name, redis_url, block_ms=0)


async def test_an_empty_or_missing_stream_from_now_sees_the_first_event(
    redis_url: str, queue_name: str
) -> None:
    async with (
        QueueEvents(queue_name, redis_url, block_ms=100) as events,
        Queue(queue_name, redis_url) as queue,
    ):
        assert events.last_id == "0-0"
        job = await queue.add("only", {})
        got = await take(events, 2)
    assert [(type(e), e.job_id) for e in got] == [(AddedEvent, job.id), (WaitingEvent, job.id)]


# --- a worker's events -------------------------------------------------------------------------


@pytest.mark.usefixtures("in_tests_dir")
async def test_a_worker_run_reads_back_with_progress_and_returnvalue_decoded(
    redis_url: str, queue_name: str
) -> None:
    async with QueueEvents(queue_name, redis_url) as events, Queue(queue_name, redis_url) as queue:
        job = await queue.add("updates", {"x": 1})
        async with running(redis_url, queue_name, "updates"):
            got = await take_until(events, lambda e: isinstance(e, DrainedEvent))
        # Finished before the call: read from the job itself.
        assert await events.wait_until_finished(job, timeout=5) == "ok"

    assert shape(got, job.id) == [
        ("AddedEvent", {"job_name": "updates"}),
        ("WaitingEvent", {"prev": None}),
        ("ActiveEvent", {"prev": "waiting"}),
        ("ProgressEvent", {"progress": 50}),
        ("ProgressEvent", {"progress": {"done": True}}),
        ("CompletedEvent", {"returnvalue": "ok", "prev": "active"}),
    ]
    assert isinstance(got[-1], DrainedEvent)
    assert got[-1].job_id is None
    lines = [format_event(event, tz=UTC) for event in got]
    assert lines[3].endswith(f"progress           job {job.id}  50")
    assert lines[4].endswith(f'progress           job {job.id}  {{"done":true}}')
    assert lines[5].endswith(f'completed          job {job.id}  "ok"')
    assert lines[6].endswith("drained            -")
    stamp = datetime.datetime.fromtimestamp(got[5].timestamp / 1000, UTC)
    assert lines[5].startswith(f"{stamp:%Y-%m-%d %H:%M:%S}.{got[5].timestamp % 1000:03d}  ")


@pytest.mark.usefixtures("in_tests_dir")
async def test_several_waiters_get_their_jobs_return_values(redis_url: str, queue_name: str) -> None:
    results: dict[str, Any] = {}
    async with QueueEvents(queue_name, redis_url) as events, Queue(queue_name, redis_url) as queue:
        jobs = await queue.add_bulk([("mixed", {"n": n}) for n in range(3)])

        all_done = trio.Event()

        async def wait(key: str, job: Any) -> None:
            results[key] = await events.wait_until_finished(job, timeout=20)
            if len(results) == 4:
                all_done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait, "a", jobs[0])
            nursery.start_soon(wait, "a again", jobs[0].id)
            nursery.start_soon(wait, "b", jobs[1].id)
            nursery.start_soon(wait, "c", jobs[2])
            await trio.testing.wait_all_tasks_blocked()
            async with running(redis_url, queue_name, "mixed", processor_module="mixed"):
                with trio.fail_after(20):
                    await all_done.wait()
    assert results == {"a": {"n": 0}, "a again": {"n": 0}, "b": {"n": 1}, "c": {"n": 2}}


@pytest.mark.usefixtures("in_tests_dir")
async def test_a_job_that_fails_for_good_raises_with_its_reason(redis_url: str, queue_name: str) -> None:
    async with QueueEvents(queue_name, redis_url) as events, Queue(queue_name, redis_url) as queue:
        job = await queue.add("fail", {"x": 1}, attempts=2)
        async with running(redis_url, queue_name, "fail"):
            with pytest.raises(JobFailedError) as info:
                await events.wait_until_finished(job.id, timeout=20)
        got = await take_until(events, lambda e: isinstance(e, RetriesExhaustedEvent))
    assert info.value.job_id == job.id
    assert info.value.failed_reason == "bad input {'x': 1}"
    assert str(info.value) == f"job {job.id!r} failed: bad input {{'x': 1}}"
    # The first attempt's failure was retried (waiting, prev active): the waiter did not stop there.
    assert [type(e).__name__ for e in got if e.job_id == job.id] == [
        "AddedEvent",
        "WaitingEvent",
        "ActiveEvent",
        "WaitingEvent",
        "ActiveEvent",
        "FailedEvent",
        "RetriesExhaustedEvent",
    ]
    assert isinstance(got[-1], RetriesExhaustedEvent)
    assert got[-1].attempts_made == 2


# --- wait_until_finished without a worker -------------------------------------------------------


async def test_wait_until_finished_missing_timeout_cancelled_and_handover(
    redis_url: str, queue_name: str
) -> None:
    async with (
        QueueEvents(queue_name, redis_url, block_ms=200) as events,
        Queue(queue_name, redis_url) as queue,
    ):
        with pytest.raises(JobNotFoundError) as missing:
            await events.wait_until_finished("nope")
        assert missing.value.job_id == "nope"

        job = await queue.add("never-run", {})
        start = trio.current_time()
        with pytest.raises(TimeoutError):
            await events.wait_until_finished(job, timeout=0.3)
        assert 0.25 < trio.current_time() - start < 5

        # Cancelled while waited for: the failure arrives through the stream.
        outcomes: dict[str, BaseException] = {}

        reader_done = trio.Event()

        async def wait(key: str, job_id: str, limit: float | None) -> None:
            try:
                await events.wait_until_finished(job_id, timeout=limit)
            except (JobFailedError, TimeoutError) as exc:
                outcomes[key] = exc
            if key == "reader":
                reader_done.set()

        other = await queue.add("other", {})
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                # The first waiter reads the stream, then times out: the second takes the reading over.
                nursery.start_soon(wait, "reader", job.id, 0.3)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(wait, "second", other.id, None)
                with trio.fail_after(5):
                    await reader_done.wait()
                assert await queue.cancel(other.id, "no longer needed") == JobState.WAITING
        assert isinstance(outcomes["reader"], TimeoutError)
        second = outcomes["second"]
        assert isinstance(second, JobFailedError)
        assert second.failed_reason == "cancelled: no longer needed"

        # Failed before the call: read from the job itself.
        with pytest.raises(JobFailedError, match="cancelled: no longer needed"):
            await events.wait_until_finished(other.id, timeout=5)


# --- the same under asyncio --------------------------------------------------------------------


def test_the_reader_and_waiters_under_asyncio(redis_url: str, queue_name: str) -> None:
    async def main() -> tuple[list[QueueEvent], BaseException, list[QueueEvent]]:
        async with QueueEvents(queue_name, redis_url) as events, Queue(queue_name, redis_url) as queue:
            job = await queue.add("async", {"n": 1})
            waiter = asyncio.ensure_future(events.wait_until_finished(job.id, timeout=10))
            first = await asyncio.wait_for(_take_asyncio(events, 2), 10)
            await queue.cancel(job.id, "asyncio says so")
            (failure,) = await asyncio.wait_for(asyncio.gather(waiter, return_exceptions=True), 10)
            with pytest.raises(TimeoutError):
                await events.wait_until_finished((await queue.add("late", {})).id, timeout=0.2)

            # aclose from another task ends an iteration blocked in XREAD.
            rest: list[QueueEvent] = []
            three = asyncio.Event()  # failed; added and waiting of "late"

            async def read_all() -> None:
                async for event in events:
                    rest.append(event)
                    if len(rest) == 3:
                        three.set()

            reader = asyncio.ensure_future(read_all())
            await asyncio.wait_for(three.wait(), 10)
            await events.aclose()
            await asyncio.wait_for(reader, 5)
            return first, failure, rest

    first, failure, rest = asyncio.run(main())
    assert [type(e) for e in first] == [AddedEvent, WaitingEvent]
    assert isinstance(failure, JobFailedError)
    assert failure.failed_reason == "cancelled: asyncio says so"
    assert [type(e) for e in rest] == [FailedEvent, AddedEvent, WaitingEvent]
    assert isinstance(rest[0], FailedEvent)
    assert rest[0].prev == "waiting"


async def _take_asyncio(events: QueueEvents, count: int) -> list[QueueEvent]:
    got: list[QueueEvent] = []
    async for event in events:
        got.append(event)
        if len(got) == count:
            break
    return got


# --- the bullmq PyPI client's Worker -----------------------------------------------------------


def bullmq_run(redis_url: str, queue_name: str) -> tuple[str, str]:
    """Add a good and a bad job with bullmq and run them with a bullmq Worker doing what the sandq
    processors ``updates`` and ``fail`` do; the two ids."""

    async def process(job: Any, token: str) -> Any:
        if job.name == "bad":
            raise RuntimeError(f"bad input {job.data!r}")
        await job.updateProgress(50)
        await job.updateProgress({"done": True})
        return "ok"

    async def main() -> tuple[str, str]:
        queue = bullmq.Queue(queue_name, {"connection": redis_url})
        worker = bullmq.Worker(queue_name, process, {"connection": redis_url, "drainDelay": 1})
        try:
            good = await queue.add("good", {"x": 1})
            bad = await queue.add("bad", {"x": 1}, {"attempts": 2})
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                states = {await queue.getJobState(good.id), await queue.getJobState(bad.id)}
                if states == {"completed", "failed"}:
                    break
                await asyncio.sleep(0.02)
            return str(good.id), str(bad.id)
        finally:
            await worker.close()
            await queue.close()

    return asyncio.run(main())


@pytest.mark.usefixtures("in_tests_dir")
async def test_bullmq_and_sandq_workers_give_the_same_records(redis_url: str, queue_name: str) -> None:
    bull_queue, good_queue, bad_queue = f"{queue_name}b", f"{queue_name}g", f"{queue_name}f"
    good_id, bad_id = await trio.to_thread.run_sync(bullmq_run, redis_url, bull_queue)
    async with QueueEvents(bull_queue, redis_url, last_event_id="0") as events:
        from_bullmq = await take_until(events, lambda e: isinstance(e, RetriesExhaustedEvent))
        assert await events.wait_until_finished(good_id, timeout=5) == "ok"
        with pytest.raises(JobFailedError, match=r"bad input \{'x': 1\}"):
            await events.wait_until_finished(bad_id, timeout=5)

    async with (
        QueueEvents(good_queue, redis_url) as good_events,
        QueueEvents(bad_queue, redis_url) as bad_events,
        Queue(good_queue, redis_url) as goods,
        Queue(bad_queue, redis_url) as bads,
    ):
        good = await goods.add("good", {"x": 1})
        bad = await bads.add("bad", {"x": 1}, attempts=2)
        async with running(redis_url, good_queue, "updates"), running(redis_url, bad_queue, "fail"):
            from_sandq_good = await take_until(good_events, lambda e: isinstance(e, CompletedEvent))
            from_sandq_bad = await take_until(bad_events, lambda e: isinstance(e, RetriesExhaustedEvent))

    expected_good = shape(from_sandq_good, good.id)
    expected_bad = shape(from_sandq_bad, bad.id)
    assert expected_good[-1] == ("CompletedEvent", {"returnvalue": "ok", "prev": "active"})
    assert expected_bad[-2] == ("FailedEvent", {"failed_reason": "bad input {'x': 1}", "prev": "active"})
    assert shape(from_bullmq, good_id) == expected_good
    assert shape(from_bullmq, bad_id) == expected_bad


def test_bullmq_admin_events_are_typed_too(redis_url: str, queue_name: str) -> None:
    """Deduplication, removal and flows, written by bullmq's own scripts."""

    async def main() -> tuple[list[str], list[QueueEvent]]:
        queue = bullmq.Queue(queue_name, {"connection": redis_url})
        flows = bullmq.FlowProducer({"connection": redis_url})
        try:
            kept = await queue.add("kept", {}, {"deduplication": {"id": "d1"}})
            await queue.add("dropped", {}, {"deduplication": {"id": "d1"}})
            await queue.remove(kept.id)
            child = {"name": "child", "queueName": f"{queue_name}c", "data": {}}
            tree = await flows.add({"name": "parent", "queueName": queue_name, "children": [child]})
            parent_id = str(tree["job"].id) if tree else ""
        finally:
            await flows.close()
            await queue.close()
        async with QueueEvents(queue_name, redis_url, last_event_id="0") as events:
            got = await asyncio.wait_for(_take_asyncio(events, 6), 10)
        return [str(kept.id), parent_id], got

    (kept_id, parent_id), got = asyncio.run(main())
    names = [type(e).__name__ for e in got]
    assert names[:2] == ["AddedEvent", "WaitingEvent"]
    dedup = got[2]
    assert isinstance(dedup, DeduplicatedEvent)
    assert (dedup.job_id, dedup.deduplication_id) == (kept_id, "d1")
    assert dedup.deduplicated_job_id not in (None, kept_id)
    removed = got[3]
    assert isinstance(removed, RemovedEvent)
    assert (removed.job_id, removed.prev) == (kept_id, "wait")
    assert [type(e) for e in got[4:]] == [AddedEvent, WaitingChildrenEvent]
    assert {e.job_id for e in got[4:]} == {parent_id}
    assert "id=d1 ignored=" in format_event(dedup)


# --- unknown and malformed entries -------------------------------------------------------------


async def test_unknown_and_malformed_entries_stay_readable(redis_url: str, queue_name: str) -> None:
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"bull:{queue_name}:events"
    try:
        raw.xadd(key, {"event": "my-thing", "jobId": "7", "color": "blue"})
        raw.xadd(key, {"event": "completed", "jobId": "8", "returnvalue": "{not json", "prev": "active"})
        raw.xadd(key, {"event": "progress", "jobId": "8", "data": '{"a": [1, 2]}'})
        raw.xadd(key, {"event": "retries-exhausted", "jobId": "8", "attemptsMade": "3e+0"})
        raw.xadd(key, {"nothing": "here"})
        raw.xadd(key, {"event": "cleaned", "count": "12"})
    finally:
        raw.close()
    async with QueueEvents(queue_name, redis_url, last_event_id="0") as events:
        custom, completed, progress, exhausted, nameless, cleaned = await take(events, 6)

    assert isinstance(custom, UnknownEvent)
    assert (custom.event, custom.job_id) == ("my-thing", "7")
    assert custom.raw == {"event": "my-thing", "jobId": "7", "color": "blue"}
    assert isinstance(completed, CompletedEvent)
    assert completed.returnvalue == "{not json"
    assert isinstance(progress, ProgressEvent)
    assert progress.progress == {"a": [1, 2]}
    assert isinstance(exhausted, RetriesExhaustedEvent)
    assert exhausted.attempts_made == 3
    assert isinstance(nameless, UnknownEvent)
    assert (nameless.event, nameless.job_id) == ("", None)
    assert format_event(cleaned).endswith("cleaned            -  12 jobs")
    assert format_event(custom).endswith("my-thing           job 7  color=blue")
    assert "  ?" in format_event(nameless)
    assert format_event(nameless).endswith("-  nothing=here")


def test_parse_and_format_are_pure() -> None:
    failed = parse_event(
        "1700000000123-4", {"event": "failed", "jobId": "9", "failedReason": "line one\nline two"}
    )
    assert isinstance(failed, FailedEvent)
    assert failed.timestamp == 1_700_000_000_123
    assert format_event(failed, tz=UTC) == (
        "2023-11-14 22:13:20.123  failed             job 9  line one\\nline two"
    )
    big = parse_event("1-0", {"event": "completed", "jobId": "1", "returnvalue": '"' + "x" * 500 + '"'})
    line = format_event(big, tz=UTC)
    assert line.endswith("…")
    assert len(line) < 300
    active = parse_event("1700000000000-0", {"event": "active", "jobId": "3", "prev": "waiting"})
    assert active == ActiveEvent(
        id="1700000000000-0",
        event="active",
        job_id="3",
        prev="waiting",
        raw={"event": "active", "jobId": "3", "prev": "waiting"},
    )
    assert hash(active) == hash(parse_event(active.id, dict(active.raw)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        active.prev = "x"  # type: ignore[misc]


# --- closing and Redis going away --------------------------------------------------------------


async def test_aclose_ends_iteration_and_leaves_a_shared_client_open(redis_url: str, queue_name: str) -> None:
    async with RedisClient(redis_url) as client:
        events = QueueEvents(queue_name, client)
        ended = trio.Event()

        async def read() -> None:
            async for _ in events:
                pass
            ended.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(anyio.BusyResourceError):
                await events.__anext__()
            waiter_error: list[BaseException] = []

            async def wait() -> None:
                try:
                    await events.wait_until_finished(job.id)
                except RedisConnectionError as exc:
                    waiter_error.append(exc)

            async with Queue(queue_name, client) as queue:
                job = await queue.add("never", {})
            nursery.start_soon(wait)
            await trio.testing.wait_all_tasks_blocked()
            await events.aclose()
            with trio.fail_after(5):
                await ended.wait()
        assert "closed" in str(waiter_error[0])
        assert await client.ping()
        with pytest.raises(StopAsyncIteration):
            await events.__anext__()


async def test_a_killed_connection_is_read_again_from_the_last_id(redis_url: str, queue_name: str) -> None:
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    collected = Collected()
    try:
        async with QueueEvents(queue_name, redis_url) as events, Queue(queue_name, redis_url) as queue:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collected.read, events)
                first = await queue.add("first", {})
                await collected.wait_for(2)
                await trio.testing.wait_all_tasks_blocked()
                # The reader's connection carries BullMQ's QueueEvents name.
                name = f"bull:{base64.b64encode(queue_name.encode()).decode()}:qe"
                readers = [c for c in admin.client_list() if c["name"] == name]
                assert len(readers) == 1
                assert readers[0]["cmd"] == "xread"
                admin.client_kill_filter(_id=readers[0]["id"])
                second = await queue.add("second", {})
                await collected.wait_for(4)
                nursery.cancel_scope.cancel()
            assert events.client.statistics().connections == 3  # XREVRANGE's, XREAD's, XREAD's again
    finally:
        admin.close()
    assert [(type(e), e.job_id) for e in collected.events] == [
        (AddedEvent, first.id),
        (WaitingEvent, first.id),
        (AddedEvent, second.id),
        (WaitingEvent, second.id),
    ]


async def test_a_redis_restart_loses_and_repeats_nothing(queue_name: str) -> None:
    binary = system_binary() or binaries()["redis-6.2"]
    assert binary is not None
    server = RedisServer(binary, "--appendonly", "yes", "--appendfsync", "always")
    collected = Collected()
    try:
        settings = RedisSettings.from_url(server.url, reconnect_timeout=20)
        async with QueueEvents(queue_name, settings, block_ms=500) as events, trio.open_nursery() as nursery:
            nursery.start_soon(collected.read, events)
            async with Queue(queue_name, server.url) as queue:
                before = await queue.add("before", {})
            await collected.wait_for(2)
            await trio.to_thread.run_sync(server.stop)
            await trio.to_thread.run_sync(server.start)
            async with Queue(queue_name, server.url) as queue:  # while the reader may still be away
                after = await queue.add("after", {})
            await collected.wait_for(4, within=20)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        kept = redis.Redis.from_url(server.url)
        try:
            assert kept.xlen(f"bull:{queue_name}:events") == 4  # the restart kept the first two entries
        finally:
            kept.close()
    finally:
        server.close()
    assert [(type(e), e.job_id) for e in collected.events] == [
        (AddedEvent, before.id),
        (WaitingEvent, before.id),
        (AddedEvent, after.id),
        (WaitingEvent, after.id),
    ]
