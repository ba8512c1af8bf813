"""``Queue``: add jobs to a queue and read them back, from trio or asyncio programs.

The work is done by the sans-IO operations of :mod:`sandq.ops`; this class drives them over the async
client. Its synchronous twin is :class:`sandq.SyncQueue`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from .connection.client import RedisClient, as_client
from .connection.settings import RedisSettings
from .job import Job, JobState
from .ops import NO_DATA, QueueOps, drive_async
from .options import JobOptions


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Queue:
    """A queue in BullMQ's Redis model.

    ``connection`` is a Redis URL, a :class:`RedisSettings`, a :class:`RedisClient` (shared, not closed
    by the queue), or None for sandq's default (``SANDQ_REDIS_URL``, else localhost:6379, else the
    embedded server). Connects on first use; close it with ``await queue.close()`` or ``async with``.
    """

    def __init__(
        self,
        name: str,
        connection: RedisClient | RedisSettings | str | None = None,
        *,
        prefix: str = "bull",
    ) -> None:
        self._ops = QueueOps(name, prefix)
        self.name = name
        self.prefix = prefix
        self.keys = self._ops.keys
        self.client, self._owns_client = as_client(connection)

    async def add(self, name: str, data: Any = NO_DATA, **options: Any) -> Job:
        """Add a job and return it. ``data`` must be JSON-serialisable; ``options`` are those of
        :class:`~sandq.options.JobOptions` (``delay=``, ``priority=``, ``job_id=``, ``attempts=``, ...).

        With a ``job_id`` that already exists, nothing is added and the existing job is returned.
        """
        op = self._ops.add(name, data, JobOptions.from_kwargs(options), now_ms())
        return await drive_async(self.client, op)

    async def add_bulk(self, jobs: Iterable[Mapping[str, Any] | Sequence[Any]]) -> list[Job]:
        """Add many jobs atomically in one round trip. Each item is ``{"name", "data", "options"}`` or
        ``(name, data)`` / ``(name, data, options)``; options as for :meth:`add`. All are validated
        first: if any is invalid, none is added."""
        return await drive_async(self.client, self._ops.add_bulk(jobs, now_ms()))

    async def get_job(self, job_id: str) -> Job | None:
        """The job, or None if there is no such job."""
        return await drive_async(self.client, self._ops.get_job(job_id))

    async def get_job_state(self, job_id: str) -> JobState:
        """Where the job is; ``JobState.UNKNOWN`` if it is nowhere."""
        return await drive_async(self.client, self._ops.get_job_state(job_id))

    async def get_job_counts(self, *states: str) -> dict[str, int]:
        """Jobs per state, for the states named (default: waiting, active, delayed, prioritized,
        waiting-children, completed, failed)."""
        return await drive_async(self.client, self._ops.get_job_counts(states))

    async def pause(self) -> None:
        """Stop workers from taking new jobs (jobs keep arriving in wait)."""
        await drive_async(self.client, self._ops.pause())

    async def resume(self) -> None:
        """Let workers take jobs again."""
        await drive_async(self.client, self._ops.resume())

    async def cancel(self, job_id: str, reason: str = "cancelled by request") -> JobState:
        """Cancel a job, wherever it is. Running: the worker holding it (on any machine) sends its
        child ``cancel(reason)`` and kills it after the grace; the job fails with ``cancelled:
        <reason>``. Waiting, prioritized or delayed: it is failed at once with that reason. Returns the
        state the job was in (``COMPLETED``/``FAILED``: it had already finished; nothing changed).
        Raises JobNotFoundError for an unknown job."""
        return await drive_async(self.client, self._ops.cancel(job_id, reason, now_ms()))

    async def is_paused(self) -> bool:
        return await drive_async(self.client, self._ops.is_paused())

    async def close(self) -> None:
        """Close the queue's connections (unless the client was passed in, shared)."""
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> Queue:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Queue {self.keys.qualified_name!r}>"
