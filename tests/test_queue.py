"""The producer API: sandq.Queue under trio and asyncio, and sandq.SyncQueue, against a real Redis."""

from __future__ import annotations

import anyio
import pytest
import redis
import trio

import sandq
from sandq import JobState, Queue, RedisClient, SyncQueue
from sandq.errors import (
    ConfigurationError,
    InvalidJobIdError,
    InvalidOptionError,
    JobDataError,
    JobNotFoundError,
    RedisConnectionError,
)


def queue_keys(url: str, name: str) -> list[str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return sorted(client.scan_iter(f"*:{name}:*"))
    finally:
        client.close()


async def test_add_and_read_back(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url) as queue:
        job = await queue.add("resize", {"w": 200}, attempts=3, backoff={"type": "exponential", "delay": 50})
        read = await queue.get_job(job.id)
        assert read == job
        assert read.options.attempts == 3
        assert read.opts["backoff"] == {"type": "exponential", "delay": 50}
        assert await queue.get_job_state(job.id) is JobState.WAITING
        assert (await queue.get_job_counts("waiting"))["waiting"] == 1
        assert await queue.get_job("missing") is None
        assert await queue.get_job_state("missing") is JobState.UNKNOWN


async def test_add_without_data_stores_an_empty_object(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url) as queue:
        job = await queue.add("ping")
        none = await queue.add("none", None)
        assert job.data == {}
        assert (await queue.get_job(job.id)).data == {}  # type: ignore[union-attr]
        assert (await queue.get_job(none.id)).data is None  # type: ignore[union-attr]


async def test_bad_input_is_refused_and_nothing_is_written(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url) as queue:
        with pytest.raises(JobDataError, match="cannot be stored as JSON"):
            await queue.add("x", {"when": object()})
        with pytest.raises(InvalidOptionError, match="priority"):
            await queue.add("x", {}, priority=-1)
        with pytest.raises(InvalidOptionError, match=r"unknown job option\(s\) \['retries'\]"):
            await queue.add("x", {}, retries=3)
        with pytest.raises(InvalidJobIdError):
            await queue.add("x", {}, job_id="42")
        with pytest.raises(JobDataError):
            await queue.add_bulk([("ok", 1), ("bad", {1, 2})])
        with pytest.raises(ConfigurationError, match="unknown job state"):
            await queue.get_job_counts("finished")
    assert queue_keys(redis_url, queue_name) == []


async def test_bulk_add_is_one_round_trip(redis_url: str, queue_name: str) -> None:
    async with RedisClient(redis_url) as client:
        queue = Queue(queue_name, client)
        await client.ping()
        before = client.statistics().commands
        jobs = await queue.add_bulk([("n", i) for i in range(500)])
        assert client.statistics().commands - before == 1
        assert [job.data for job in jobs] == list(range(500))
        assert len({job.id for job in jobs}) == 500
        await queue.close()  # a shared client stays open
        assert await client.ping()


async def test_pause_resume(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url) as queue:
        assert not await queue.is_paused()
        await queue.pause()
        assert await queue.is_paused()
        await queue.resume()
        assert not await queue.is_paused()


async def test_concurrent_adds_from_many_tasks(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url) as queue:
        ids: list[str] = []

        async def producer(n: int) -> None:
            for i in range(20):
                ids.append((await queue.add("job", {"p": n, "i": i})).id)

        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(producer, n)
        assert sorted(ids, key=int) == [str(i) for i in range(1, 201)]
        assert await queue.get_job_counts("waiting") == {"waiting": 200}


def test_queue_under_asyncio(redis_url: str, queue_name: str) -> None:
    async def main() -> tuple[str, JobState, dict[str, int]]:
        async with Queue(queue_name, redis_url) as queue:
            job = await queue.add("from-asyncio", {"ok": True}, delay=1000)
            return job.id, await queue.get_job_state(job.id), await queue.get_job_counts("delayed")

    job_id, state, counts = anyio.run(main, backend="asyncio")
    assert (job_id, state, counts) == ("1", JobState.DELAYED, {"delayed": 1})


def test_sync_queue_matches_the_async_one(redis_url: str, queue_name: str) -> None:
    with SyncQueue(queue_name, redis_url) as queue:
        job = queue.add("x", [1, 2], priority=2, job_id="sync-1")
        assert queue.get_job("sync-1") == job
        assert queue.get_job_state("sync-1") is JobState.PRIORITIZED
        bulk = queue.add_bulk([{"name": "y", "data": 1}, ("z", 2, {"lifo": True})])
        assert [j.name for j in bulk] == ["y", "z"]
        assert queue.get_job_counts("prioritized", "waiting") == {"prioritized": 1, "waiting": 2}
        queue.pause()
        assert queue.is_paused()
        queue.resume()

    async def read() -> sandq.Job | None:
        async with Queue(queue_name, redis_url) as queue:
            return await queue.get_job("sync-1")

    assert anyio.run(read) == job


def test_sync_queue_with_a_shared_client(redis_url: str, queue_name: str) -> None:
    with sandq.SyncRedisClient(redis_url) as client:
        SyncQueue(queue_name, client).add("a")
        SyncQueue(queue_name, client).close()  # does not close the shared client
        assert client.ping()


def test_default_connection_comes_from_the_environment(
    redis_url: str, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDQ_REDIS_URL", redis_url)
    with SyncQueue(queue_name) as queue:
        queue.add("env")

    async def count() -> dict[str, int]:
        async with Queue(queue_name) as queue:
            return await queue.get_job_counts("waiting")

    assert anyio.run(count) == {"waiting": 1}


async def test_hash_tagged_prefix(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url, prefix="{sq}") as queue:
        job = await queue.add("tagged")
        assert queue.keys.job(job.id) == f"{{sq}}:{queue_name}:1"
        assert await queue.get_job(job.id) == job


async def test_connection_errors_are_sandq_errors() -> None:
    async with Queue("q", "redis://127.0.0.1:1/0") as queue:
        with pytest.raises(RedisConnectionError):
            await queue.add("x")


def test_bad_queue_names_and_connections() -> None:
    with pytest.raises(ConfigurationError):
        Queue("a:b", "redis://localhost")
    with pytest.raises(ConfigurationError):
        Queue("q", 42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        SyncQueue("q", object())  # type: ignore[arg-type]


async def test_cancel_of_jobs_that_are_not_running(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url) as queue:
        waiting = await queue.add("w")
        delayed = await queue.add("d", delay=60_000)
        assert await queue.cancel(waiting.id, "not needed") is JobState.WAITING
        assert await queue.cancel(delayed.id) is JobState.DELAYED
        for job_id, reason in (
            (waiting.id, "cancelled: not needed"),
            (delayed.id, "cancelled: cancelled by request"),
        ):
            job = await queue.get_job(job_id)
            assert job is not None
            assert job.failed_reason == reason
            assert await queue.get_job_state(job_id) is JobState.FAILED
        # A finished job says so and stays as it is.
        assert await queue.cancel(waiting.id, "again") is JobState.FAILED
        assert (await queue.get_job(waiting.id)).failed_reason == "cancelled: not needed"  # type: ignore[union-attr]
        with pytest.raises(JobNotFoundError):
            await queue.cancel("nope")
        assert await queue.get_job_counts("waiting", "delayed", "failed") == {
            "waiting": 0,
            "delayed": 0,
            "failed": 2,
        }


def test_sync_cancel(redis_url: str, queue_name: str) -> None:
    with SyncQueue(queue_name, redis_url) as queue:
        job = queue.add("p", priority=3)
        assert queue.cancel(job.id, "stop") is JobState.PRIORITIZED
        assert queue.get_job_state(job.id) is JobState.FAILED
