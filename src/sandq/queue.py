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
from .ops import NO_DATA, GlobalRateLimit, JobLogs, QueueOps, drive_async
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

    # --- getters ---------------------------------------------------------------------------------

    async def get_jobs(
        self, states: str | Sequence[str] | None = None, start: int = 0, end: int = -1, *, asc: bool = False
    ) -> list[Job]:
        """The jobs in ``states`` (a state or several; default all), positions ``start..end`` of each
        state (inclusive, ``-1`` = the last), newest first, or oldest first with ``asc``. States:
        waiting, active, delayed, prioritized, waiting-children, completed, failed (``wait`` and
        ``paused`` read as waiting). Each state is paged on its own and the pages are joined, as
        BullMQ's ``getJobs`` does; a job removed while it is read is left out."""
        return await drive_async(self.client, self._ops.get_jobs(states, start, end, asc=asc))

    async def get_waiting(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        return await self.get_jobs("waiting", start, end, asc=asc)

    async def get_active(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        return await self.get_jobs("active", start, end, asc=asc)

    async def get_delayed(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        """Delayed jobs, the one due last first (``asc``: due first first)."""
        return await self.get_jobs("delayed", start, end, asc=asc)

    async def get_prioritized(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        """Prioritized jobs, the one that runs last first (``asc``: in the order they will run)."""
        return await self.get_jobs("prioritized", start, end, asc=asc)

    async def get_waiting_children(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        return await self.get_jobs("waiting-children", start, end, asc=asc)

    async def get_completed(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        """Completed jobs, the last finished first (``asc``: the first finished first)."""
        return await self.get_jobs("completed", start, end, asc=asc)

    async def get_failed(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        """Failed jobs, the last failed first (``asc``: the first failed first)."""
        return await self.get_jobs("failed", start, end, asc=asc)

    async def get_job_logs(self, job_id: str, start: int = 0, end: int = -1, *, asc: bool = True) -> JobLogs:
        """Lines ``start..end`` of a job's log, oldest first (newest first without ``asc``), and how
        many lines it holds. A job without a log (or no such job) has none."""
        return await drive_async(self.client, self._ops.get_job_logs(job_id, start, end, asc=asc))

    async def get_counts_per_priority(self, *priorities: int) -> dict[int, int]:
        """Waiting jobs per priority (0 = no priority: the jobs in wait)."""
        return await drive_async(self.client, self._ops.get_counts_per_priority(priorities))

    # --- job actions -----------------------------------------------------------------------------

    async def retry(
        self,
        job_id: str,
        *,
        state: str | None = None,
        reset_attempts_made: bool = False,
        reset_attempts_started: bool = False,
    ) -> JobState:
        """Run a finished job again: it leaves completed or failed (only ``state``, if given), loses its
        result, finish time and failure, and is queued as a new job would be. Its attempts count on
        from where they were unless reset (so a job that used all its ``attempts`` gets one more run;
        reset to give it all of them). Returns the state it left. Raises JobNotFoundError, or
        JobNotInStateError when it has not finished."""
        op = self._ops.retry(
            job_id,
            state=state,
            reset_attempts_made=reset_attempts_made,
            reset_attempts_started=reset_attempts_started,
            now_ms=now_ms(),
        )
        return await drive_async(self.client, op)

    async def retry_jobs(
        self, state: str = "failed", *, limit: int | None = None, reset_attempts_made: bool = False
    ) -> int:
        """Run again every job of ``state`` (failed or completed) finished before now, oldest first, at
        most ``limit``; in batches of 1000 per call. Returns how many were retried."""
        op = self._ops.retry_jobs(
            state, limit=limit, reset_attempts_made=reset_attempts_made, now_ms=now_ms()
        )
        return await drive_async(self.client, op)

    async def promote(self, job_id: str) -> None:
        """Run a delayed job now. Raises JobNotFoundError, or JobNotInStateError if it is not delayed."""
        await drive_async(self.client, self._ops.promote(job_id))

    async def promote_jobs(self, *, limit: int | None = None) -> int:
        """Run every delayed job now (at most ``limit``, the ones due first); how many were promoted."""
        return await drive_async(self.client, self._ops.promote_jobs(limit=limit))

    async def change_priority(self, job_id: str, priority: int, *, lifo: bool = False) -> None:
        """Give a job a new priority (0 = none, 1 = most urgent). A waiting job is queued again under
        it (ahead of the jobs of that priority with ``lifo``); a job in another state keeps the
        priority for when it is next queued. Raises JobNotFoundError."""
        await drive_async(self.client, self._ops.change_priority(job_id, priority, lifo=lifo))

    async def change_delay(self, job_id: str, delay: int) -> None:
        """Make a delayed job due ``delay`` ms from now. Raises JobNotFoundError, or
        JobNotInStateError if it is not delayed."""
        await drive_async(self.client, self._ops.change_delay(job_id, delay, now_ms=now_ms()))

    async def update_data(self, job_id: str, data: Any) -> None:
        """Replace a job's data (JSON-serialisable). Raises JobNotFoundError."""
        await drive_async(self.client, self._ops.update_data(job_id, data))

    # --- removal -----------------------------------------------------------------------------------

    async def remove(self, job_id: str, *, remove_children: bool = True) -> JobState:
        """Remove a job from wherever it is, with its logs; a flow parent's children too (unless
        ``remove_children=False``), and a flow child is detached from its parent (a parent with no
        other pending child moves on). Emits ``removed``. Returns the state it was in. Raises
        JobNotFoundError, LockMismatchError when a worker holds it (or one of its descendants), or
        SchedulerJobError for a scheduler's current iteration."""
        return await drive_async(self.client, self._ops.remove(job_id, remove_children=remove_children))

    async def drain(self, *, delayed: bool = False) -> None:
        """Remove every waiting and prioritized job (and delayed ones with ``delayed``), except each
        job scheduler's next iteration; running jobs are not touched. In batches of 1000 per call."""
        await drive_async(self.client, self._ops.drain(delayed=delayed))

    async def clean(self, grace: int, limit: int = 0, state: str = "completed") -> list[str]:
        """Remove up to ``limit`` jobs (0: all) of ``state`` older than ``grace`` ms (finished ones by
        their finish time, others by their creation time); never a locked active job. States:
        completed, failed, waiting (or wait), paused, delayed, prioritized, active, waiting-children.
        Returns the ids removed; emits one ``cleaned`` event with the count."""
        return await drive_async(self.client, self._ops.clean(grace, limit, state, now_ms=now_ms()))

    async def obliterate(self, *, force: bool = False) -> None:
        """Pause the queue, then delete it: every job in every state, its logs, events, meta and
        counters. Raises ActiveJobsError while jobs run, unless ``force`` (their workers then lose
        their locks and write nothing). Batched: a large queue never blocks Redis for long."""
        await drive_async(self.client, self._ops.obliterate(force=force))

    # --- global limits ---------------------------------------------------------------------------

    async def set_global_concurrency(self, concurrency: int | None) -> None:
        """At most ``concurrency`` jobs active at once across all workers (sandq's and BullMQ's);
        None removes the limit."""
        await drive_async(self.client, self._ops.set_global_concurrency(concurrency))

    async def get_global_concurrency(self) -> int | None:
        return await drive_async(self.client, self._ops.get_global_concurrency())

    async def set_global_rate_limit(self, max: int | None, duration: int = 0) -> None:
        """At most ``max`` jobs started per ``duration`` ms across all workers; None removes the
        limit."""
        limit = None if max is None else GlobalRateLimit(max, duration)
        await drive_async(self.client, self._ops.set_global_rate_limit(limit))

    async def get_global_rate_limit(self) -> GlobalRateLimit | None:
        return await drive_async(self.client, self._ops.get_global_rate_limit())

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
