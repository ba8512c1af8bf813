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
from .ops import NO_DATA, QueueOps, drive_sync
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
