"""Running a real sandq Worker under trio for the length of a test block."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from sandq.supervisor.worker import Worker


@asynccontextmanager
async def running(
    redis_url: str, queue: str, processor: str, *, processor_module: str = "basic", **options: Any
) -> AsyncIterator[Worker]:
    """A Worker of ``queue`` running ``processors.<processor_module>:<processor>`` (imported from the
    current directory: the tests chdir into tests/), shut down without waiting for running jobs."""
    options.setdefault("drain_delay", 0.2)
    worker = Worker(queue, f"processors.{processor_module}:{processor}", redis_url, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        try:
            yield worker
        finally:
            worker.shutdown()
            worker.shutdown()  # the second request: do not wait for running jobs
