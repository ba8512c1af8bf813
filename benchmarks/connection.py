"""Round trips through sandq's RedisClient next to redis-py, against one Redis, in one run.

    python benchmarks/connection.py [--redis URL] [--quick]

Three figures per contender, all of GET on one small key:

* sequential: one GET awaited (or called) after another: the latency of a round trip through the
  client, which is mostly the client's own per-command overhead once Redis is local;
* concurrent: 50 tasks (50 threads for redis-py's sync client) doing GETs on ONE shared client for a
  fixed time: how well the client serves many callers. sandq multiplexes them on one connection
  (automatic pipelining); redis-py hands each caller a pooled connection of its own;
* pipelined: one batch of 10,000 GETs (sandq ``execute_many``, redis-py ``pipeline(transaction=False)``),
  commands/s including building the batch.

The tables give the best of N rounds (contenders alternating) and sandq-under-trio's ratio to each.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import redis
import redis.asyncio

from harness import (
    LIMITS,
    BenchmarkError,
    Contender,
    Settings,
    best,
    check,
    describe,
    parse_args,
    ratio,
    run_anyio,
    run_asyncio,
    run_rounds,
    setup,
    spread,
    table,
    timeout_message,
)
from sandq.connection.client import RedisClient

CONCURRENCY = 50
BATCH = 10_000
VALUE = b"sandq-benchmark!"  # 16 bytes
WARMUP = 200

Measurement = tuple[int, float]


# --- sandq RedisClient (trio or asyncio, through anyio) ----------------------------------------


async def _sandq_sequential(url: str, key: str, duration: float) -> Measurement:
    async with RedisClient(url) as client:
        for _ in range(WARMUP):
            await client.execute("GET", key)
        count = 0
        start = time.perf_counter()
        deadline = start + duration
        while True:
            for _ in range(100):
                reply = await client.execute("GET", key)
                if reply != VALUE:
                    raise AssertionError(f"GET returned {reply!r}")
            count += 100
            now = time.perf_counter()
            if now >= deadline:
                return count, now - start


async def _sandq_concurrent(url: str, key: str, duration: float) -> Measurement:
    async with RedisClient(url) as client:
        for _ in range(WARMUP):
            await client.execute("GET", key)
        counts = [0] * CONCURRENCY
        start = time.perf_counter()
        deadline = start + duration

        async def worker(index: int) -> None:
            done = 0
            while time.perf_counter() < deadline:
                for _ in range(20):
                    reply = await client.execute("GET", key)
                    if reply != VALUE:
                        raise AssertionError(f"GET returned {reply!r}")
                done += 20
            counts[index] = done

        async with anyio.create_task_group() as group:
            for index in range(CONCURRENCY):
                group.start_soon(worker, index)
        return sum(counts), time.perf_counter() - start


async def _sandq_pipelined(url: str, key: str, duration: float) -> Measurement:
    async with RedisClient(url) as client:
        await client.execute_many([("GET", key)] * 100)
        count = 0
        start = time.perf_counter()
        deadline = start + duration
        while True:
            commands = [("GET", key) for _ in range(BATCH)]
            replies = await client.execute_many(commands)
            check(len(replies) == BATCH and replies[-1] == VALUE, "execute_many returned wrong replies")
            count += BATCH
            now = time.perf_counter()
            if now >= deadline:
                return count, now - start


def sandq(
    backend: str, measure: Callable[..., Awaitable[Measurement]], url: str, key: str, duration: float
) -> Measurement:
    return run_anyio(backend, measure, url, key, duration)


# --- redis-py, synchronous ---------------------------------------------------------------------


def redispy_sequential(url: str, key: str, duration: float) -> Measurement:
    with redis.Redis.from_url(url) as client:
        for _ in range(WARMUP):
            client.get(key)
        count = 0
        start = time.perf_counter()
        deadline = start + duration
        while True:
            for _ in range(100):
                reply = client.get(key)
                if reply != VALUE:
                    raise AssertionError(f"GET returned {reply!r}")
            count += 100
            now = time.perf_counter()
            if now >= deadline:
                return count, now - start


def redispy_threads(url: str, key: str, duration: float) -> Measurement:
    """50 threads sharing one ``redis.Redis`` (and so its connection pool)."""
    with redis.Redis.from_url(url) as client:
        counts = [0] * CONCURRENCY
        errors: list[BaseException] = []
        ready = threading.Barrier(CONCURRENCY + 1)
        go = threading.Event()
        deadline = 0.0

        def loop(index: int) -> None:
            for _ in range(WARMUP // 10):  # opens this thread's pooled connection
                client.get(key)
            ready.wait()
            go.wait()
            done = 0
            while time.perf_counter() < deadline:
                for _ in range(20):
                    reply = client.get(key)
                    if reply != VALUE:
                        raise AssertionError(f"GET returned {reply!r}")
                done += 20
            counts[index] = done

        def worker(index: int) -> None:
            try:
                loop(index)
            except BaseException as exc:
                errors.append(exc)
                ready.abort()
                raise

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(CONCURRENCY)]
        for thread in threads:
            thread.start()
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            raise errors[0] if errors else RuntimeError("a thread failed to start") from None
        start = time.perf_counter()
        deadline = start + duration
        go.set()
        for thread in threads:
            thread.join(max(0.0, start + LIMITS.timeout - time.perf_counter()))
            if thread.is_alive():
                raise BenchmarkError(timeout_message("redis-py threads"))
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        return sum(counts), elapsed


def redispy_pipelined(url: str, key: str, duration: float) -> Measurement:
    with redis.Redis.from_url(url) as client:
        client.get(key)
        count = 0
        start = time.perf_counter()
        deadline = start + duration
        while True:
            pipe = client.pipeline(transaction=False)
            for _ in range(BATCH):
                pipe.get(key)
            replies = pipe.execute()
            check(len(replies) == BATCH and replies[-1] == VALUE, "pipeline returned wrong replies")
            count += BATCH
            now = time.perf_counter()
            if now >= deadline:
                return count, now - start


# --- redis-py, asyncio -------------------------------------------------------------------------


async def _redispy_async_sequential(url: str, key: str, duration: float) -> Measurement:
    client = redis.asyncio.Redis.from_url(url)
    try:
        for _ in range(WARMUP):
            await client.get(key)
        count = 0
        start = time.perf_counter()
        deadline = start + duration
        while True:
            for _ in range(100):
                reply = await client.get(key)
                if reply != VALUE:
                    raise AssertionError(f"GET returned {reply!r}")
            count += 100
            now = time.perf_counter()
            if now >= deadline:
                return count, now - start
    finally:
        await client.aclose()


async def _redispy_async_concurrent(url: str, key: str, duration: float) -> Measurement:
    client = redis.asyncio.Redis.from_url(url)
    try:
        # Warm the pool up to CONCURRENCY connections, as the threads do for the sync client.
        await asyncio.gather(*(client.get(key) for _ in range(CONCURRENCY)))
        counts = [0] * CONCURRENCY
        start = time.perf_counter()
        deadline = start + duration

        async def worker(index: int) -> None:
            done = 0
            while time.perf_counter() < deadline:
                for _ in range(20):
                    reply = await client.get(key)
                    if reply != VALUE:
                        raise AssertionError(f"GET returned {reply!r}")
                done += 20
            counts[index] = done

        await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
        return sum(counts), time.perf_counter() - start
    finally:
        await client.aclose()


async def _redispy_async_pipelined(url: str, key: str, duration: float) -> Measurement:
    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.get(key)
        count = 0
        start = time.perf_counter()
        deadline = start + duration
        while True:
            pipe = client.pipeline(transaction=False)
            for _ in range(BATCH):
                pipe.get(key)
            replies = await pipe.execute()
            check(len(replies) == BATCH and replies[-1] == VALUE, "pipeline returned wrong replies")
            count += BATCH
            now = time.perf_counter()
            if now >= deadline:
                return count, now - start
    finally:
        await client.aclose()


def redispy_async(
    measure: Callable[..., Awaitable[Measurement]], url: str, key: str, duration: float
) -> Measurement:
    return run_asyncio(measure, url, key, duration)


# --- the run -----------------------------------------------------------------------------------

SANDQ_TRIO = "sandq RedisClient (trio)"
SANDQ_ASYNCIO = "sandq RedisClient (asyncio)"
REDISPY_SYNC = "redis-py sync"
REDISPY_ASYNC = "redis-py asyncio"


def main() -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "")
    with setup(args, "connection") as settings:
        contenders = run(settings)
    # Goals missed are reported, not an error; a contender that failed (hung, wrong result) is.
    sys.exit(1 if any(c.error is not None for c in contenders) else 0)


def run(settings: Settings) -> list[Contender]:
    describe(settings, "sandq connection benchmark: GET round trips, sandq vs redis-py")
    url, duration, rounds = settings.url, settings.duration, settings.rounds
    key = f"{settings.prefix}:key"
    with redis.Redis.from_url(url) as client:
        client.set(key, VALUE)
    print(f"  {CONCURRENCY} concurrent callers; pipelined batches of {BATCH:,} GETs")

    def bind(fn: Callable[..., Measurement], *head: Any) -> Callable[[], Measurement]:
        return functools.partial(fn, *head, url, key, duration)

    sequential = [
        Contender(SANDQ_TRIO, bind(sandq, "trio", _sandq_sequential)),
        Contender(SANDQ_ASYNCIO, bind(sandq, "asyncio", _sandq_sequential)),
        Contender(REDISPY_SYNC, bind(redispy_sequential)),
        Contender(REDISPY_ASYNC, bind(redispy_async, _redispy_async_sequential)),
    ]
    concurrent = [
        Contender(SANDQ_TRIO, bind(sandq, "trio", _sandq_concurrent)),
        Contender(SANDQ_ASYNCIO, bind(sandq, "asyncio", _sandq_concurrent)),
        Contender(REDISPY_SYNC, bind(redispy_threads)),
        Contender(REDISPY_ASYNC, bind(redispy_async, _redispy_async_concurrent)),
    ]
    pipelined = [
        Contender(SANDQ_TRIO, bind(sandq, "trio", _sandq_pipelined)),
        Contender(SANDQ_ASYNCIO, bind(sandq, "asyncio", _sandq_pipelined)),
        Contender(REDISPY_SYNC, bind(redispy_pipelined)),
        Contender(REDISPY_ASYNC, bind(redispy_async, _redispy_async_pipelined)),
    ]
    run_rounds("sequential GETs", sequential, rounds)
    run_rounds(f"concurrent GETs ({CONCURRENCY} callers, one shared client)", concurrent, rounds)
    run_rounds(f"pipelined GETs (batches of {BATCH:,})", pipelined, rounds)

    seq_base, conc_base, pipe_base = sequential[0].best, concurrent[0].best, pipelined[0].best
    rows = [
        [
            seq.name,
            best(seq),
            best(conc),
            ratio(seq_base, seq.best),
            ratio(conc_base, conc.best),
            f"{spread(seq)} / {spread(conc)}",
        ]
        for seq, conc in zip(sequential, concurrent, strict=True)
    ]
    print("\nGET round trips (ops/s, best of rounds; ratio = sandq-trio / contender, >1 means sandq faster)")
    print(
        table(
            [
                "contender",
                "sequential ops/s",
                "concurrent ops/s",
                "sandq-trio / it (seq)",
                "sandq-trio / it (conc)",
                "spread seq/conc",
            ],
            rows,
        )
    )
    print(f"\npipelined batch of {BATCH:,} GETs (commands/s, including building the batch)")
    print(
        table(
            ["contender", "commands/s", "sandq-trio / it", "spread"],
            [[c.name, best(c), ratio(pipe_base, c.best), spread(c)] for c in pipelined],
        )
    )
    print("\n(spread: how far the worst round fell below the best; a large spread means a noisy run)")
    return [*sequential, *concurrent, *pipelined]


if __name__ == "__main__":
    main()
