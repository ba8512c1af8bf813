"""``SyncQueue``: the producer API of :class:`sandq.Queue`, synchronous, for Flask, Django and scripts.

Same operations (:mod:`sandq.ops`), same Lua, same results; driven over redis-py's connections.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from .connection.settings import RedisSettings
from .connection.sync import SyncRedisClient
from .errors import ConfigurationError
from .job import Job, JobState
from .ops import NO_DATA, GlobalRateLimit, JobLogs, QueueOps, drive_sync
from .options import JobOptions
from .queue import now_ms


class SyncQueue:
    """A queue, used synchronously. ``connection`` is a URL, RedisSettings, a SyncRedisClient (shared,
    not closed by the queue) or None for sandq's default Redis. Thread-safe."""

    def __init__(
        self,
        name: str,
        connection: SyncRedisClient | RedisSettings | str | None = None,
        *,
        prefix: str = "bull",
    ) -> None:
        self._ops = QueueOps(name, prefix)
        self.name = name
        self.prefix = prefix
        self.keys = self._ops.keys
        if isinstance(connection, SyncRedisClient):
            self.client, self._owns_client = connection, False
        elif connection is None or isinstance(connection, RedisSettings | str):
            self.client, self._owns_client = SyncRedisClient(connection), True
        else:
            raise ConfigurationError(
                f"connection must be a URL, RedisSettings or SyncRedisClient, not {connection!r}"
            )

    def add(self, name: str, data: Any = NO_DATA, **options: Any) -> Job:
        """Add a job and return it; see :meth:`sandq.Queue.add`."""
        return drive_sync(self.client, self._ops.add(name, data, JobOptions.from_kwargs(options), now_ms()))

    def add_bulk(self, jobs: Iterable[Mapping[str, Any] | Sequence[Any]]) -> list[Job]:
        """Add many jobs atomically in one round trip; see :meth:`sandq.Queue.add_bulk`."""
        return drive_sync(self.client, self._ops.add_bulk(jobs, now_ms()))

    def get_job(self, job_id: str) -> Job | None:
        return drive_sync(self.client, self._ops.get_job(job_id))

    def get_job_state(self, job_id: str) -> JobState:
        return drive_sync(self.client, self._ops.get_job_state(job_id))

    def get_job_counts(self, *states: str) -> dict[str, int]:
        return drive_sync(self.client, self._ops.get_job_counts(states))

    def pause(self) -> None:
        drive_sync(self.client, self._ops.pause())

    def resume(self) -> None:
        drive_sync(self.client, self._ops.resume())

    def cancel(self, job_id: str, reason: str = "cancelled by request") -> JobState:
        """Cancel a job wherever it is; see :meth:`sandq.Queue.cancel`."""
        return drive_sync(self.client, self._ops.cancel(job_id, reason, now_ms()))

    # --- getters and actions: see the methods of the same names on :class:`sandq.Queue` ----------

    def get_jobs(
        self, states: str | Sequence[str] | None = None, start: int = 0, end: int = -1, *, asc: bool = False
    ) -> list[Job]:
        return drive_sync(self.client, self._ops.get_jobs(states, start, end, asc=asc))

    def get_waiting(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        return self.get_jobs("waiting", start, end, asc=asc)

    def get_active(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        return self.get_jobs("active", start, end, asc=asc)

    def get_delayed(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        return self.get_jobs("delayed", start, end, asc=asc)

    def get_prioritized(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        return self.get_jobs("prioritized", start, end, asc=asc)

    def get_waiting_children(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        return self.get_jobs("waiting-children", start, end, asc=asc)

    def get_completed(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        return self.get_jobs("completed", start, end, asc=asc)

    def get_failed(self, start: int = 0, end: int = -1, *, asc: bool = False) -> list[Job]:
        return self.get_jobs("failed", start, end, asc=asc)

    def get_job_logs(self, job_id: str, start: int = 0, end: int = -1, *, asc: bool = True) -> JobLogs:
        return drive_sync(self.client, self._ops.get_job_logs(job_id, start, end, asc=asc))

    def get_counts_per_priority(self, *priorities: int) -> dict[int, int]:
        return drive_sync(self.client, self._ops.get_counts_per_priority(priorities))

    def retry(
        self,
        job_id: str,
        *,
        state: str | None = None,
        reset_attempts_made: bool = False,
        reset_attempts_started: bool = False,
    ) -> JobState:
        op = self._ops.retry(
            job_id,
            state=state,
            reset_attempts_made=reset_attempts_made,
            reset_attempts_started=reset_attempts_started,
            now_ms=now_ms(),
        )
        return drive_sync(self.client, op)

    def retry_jobs(
        self, state: str = "failed", *, limit: int | None = None, reset_attempts_made: bool = False
    ) -> int:
        op = self._ops.retry_jobs(
            state, limit=limit, reset_attempts_made=reset_attempts_made, now_ms=now_ms()
        )
        return drive_sync(self.client, op)

    def promote(self, job_id: str) -> None:
        drive_sync(self.client, self._ops.promote(job_id))

    def promote_jobs(self, *, limit: int | None = None) -> int:
        return drive_sync(self.client, self._ops.promote_jobs(limit=limit))

    def change_priority(self, job_id: str, priority: int, *, lifo: bool = False) -> None:
        drive_sync(self.client, self._ops.change_priority(job_id, priority, lifo=lifo))

    def change_delay(self, job_id: str, delay: int) -> None:
        drive_sync(self.client, self._ops.change_delay(job_id, delay, now_ms=now_ms()))

    def update_data(self, job_id: str, data: Any) -> None:
        drive_sync(self.client, self._ops.update_data(job_id, data))

    def remove(self, job_id: str, *, remove_children: bool = True) -> JobState:
        return drive_sync(self.client, self._ops.remove(job_id, remove_children=remove_children))

    def drain(self, *, delayed: bool = False) -> None:
        drive_sync(self.client, self._ops.drain(delayed=delayed))

    def clean(self, grace: int, limit: int = 0, state: str = "completed") -> list[str]:
        return drive_sync(self.client, self._ops.clean(grace, limit, state, now_ms=now_ms()))

    def obliterate(self, *, force: bool = False) -> None:
        drive_sync(self.client, self._ops.obliterate(force=force))

    def set_global_concurrency(self, concurrency: int | None) -> None:
        drive_sync(self.client, self._ops.set_global_concurrency(concurrency))

    def get_global_concurrency(self) -> int | None:
        return drive_sync(self.client, self._ops.get_global_concurrency())

    def set_global_rate_limit(self, max: int | None, duration: int = 0) -> None:
        limit = None if max is None else GlobalRateLimit(max, duration)
        drive_sync(self.client, self._ops.set_global_rate_limit(limit))

    def get_global_rate_limit(self) -> GlobalRateLimit | None:
        return drive_sync(self.client, self._ops.get_global_rate_limit())

    def is_paused(self) -> bool:
        return drive_sync(self.client, self._ops.is_paused())

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> SyncQueue:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncQueue {self.keys.qualified_name!r}>"
