"""Driving the ``bullmq`` PyPI client (asyncio) from tests, each call on a fresh event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import bullmq

T = TypeVar("T")


def bull(redis_url: str, queue_name: str, work: Callable[[bullmq.Queue], Awaitable[T]]) -> T:
    """Run ``work(queue)`` with a bullmq Queue on a fresh asyncio loop; the queue is always closed."""

    async def main() -> T:
        queue = bullmq.Queue(queue_name, {"connection": redis_url})
        try:
            return await work(queue)
        finally:
            await queue.close()

    return asyncio.run(main())


def bull_add(
    redis_url: str, queue_name: str, name: str, data: Any, opts: dict[str, Any] | None = None
) -> str:
    """Add one job with bullmq; its id."""

    async def work(queue: bullmq.Queue) -> str:
        return str((await queue.add(name, data, opts or {})).id)

    return bull(redis_url, queue_name, work)
