"""sandq: a multiprocess, sandboxed job runtime for Python on BullMQ's Redis data model.

Layout (dependencies point down this list; nothing below imports what is above it):

    cli, cli_admin the ``sandq`` command
    supervisor/    the worker (trio): fetching, finishing, locks, stalled jobs, cancels, the child pool
    child/         what runs in the child processes; imports neither trio nor a Redis client
    protocol/      the pipe protocol between supervisor and children, pure
    queue_events   QueueEvents (anyio): the events stream as typed records (events), wait_until_finished
    queue, sync    Queue (async, anyio) and SyncQueue (redis-py): thin drivers of ...
    ops            ... the queue operations, as sans-IO generators over Redis calls
    *scripts       pure (keys, args) builders and reply decoders for the Lua scripts in lua/: adding
                   (scripts), working (worker_scripts), operating (admin_scripts, cleanup_scripts)
    connection/    the only Redis I/O: RESP client, its sync twin, settings, the embedded default
    job, options   the Job record and JobState; validated job options
    keys, errors   key naming; the exception tree

Public names are imported lazily (PEP 562), so ``import sandq`` costs nothing: a processor module or a
child process that only needs ``sandq.errors`` never loads anyio, trio or a Redis client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Worker": "sandq.supervisor.worker",
    "WorkerOptions": "sandq.options",
    "CancelToken": "sandq.child.api",
    "Delay": "sandq.child.api",
    "JobCancelled": "sandq.errors",
    "Queue": "sandq.queue",
    "QueueEvents": "sandq.queue_events",
    "QueueEvent": "sandq.events",
    "SyncQueue": "sandq.sync",
    "Job": "sandq.job",
    "JobState": "sandq.job",
    "JobOptions": "sandq.options",
    "Backoff": "sandq.options",
    "KeepJobs": "sandq.options",
    "RedisClient": "sandq.connection.client",
    "SyncRedisClient": "sandq.connection.sync",
    "RedisSettings": "sandq.connection.settings",
    "SandqError": "sandq.errors",
    "ConfigurationError": "sandq.errors",
    "InvalidOptionError": "sandq.errors",
    "InvalidJobIdError": "sandq.errors",
    "EmbeddedRedisError": "sandq.errors",
    "JobDataError": "sandq.errors",
    "MalformedJobError": "sandq.errors",
    "RedisError": "sandq.errors",
    "RedisConnectionError": "sandq.errors",
    "ConnectionLostError": "sandq.errors",
    "ReplyError": "sandq.errors",
    "ScriptError": "sandq.errors",
    "JobNotFoundError": "sandq.errors",
    "JobNotInStateError": "sandq.errors",
    "LockMismatchError": "sandq.errors",
    "QueueNotPausedError": "sandq.errors",
    "ActiveJobsError": "sandq.errors",
    "JobFailedError": "sandq.errors",
    "JobControl": "sandq.errors",
    "UnrecoverableError": "sandq.errors",
    "DelayedError": "sandq.errors",
    "RateLimitError": "sandq.errors",
    "WaitingChildrenError": "sandq.errors",
    "WorkerError": "sandq.errors",
    "ProcessorLoadError": "sandq.errors",
    "ProtocolViolation": "sandq.errors",
}

__all__ = [
    "ActiveJobsError",
    "Backoff",
    "CancelToken",
    "ConfigurationError",
    "ConnectionLostError",
    "Delay",
    "DelayedError",
    "EmbeddedRedisError",
    "InvalidJobIdError",
    "InvalidOptionError",
    "Job",
    "JobCancelled",
    "JobControl",
    "JobDataError",
    "JobFailedError",
    "JobNotFoundError",
    "JobNotInStateError",
    "JobOptions",
    "JobState",
    "KeepJobs",
    "LockMismatchError",
    "MalformedJobError",
    "ProcessorLoadError",
    "ProtocolViolation",
    "Queue",
    "QueueEvent",
    "QueueEvents",
    "QueueNotPausedError",
    "RateLimitError",
    "RedisClient",
    "RedisConnectionError",
    "RedisError",
    "RedisSettings",
    "ReplyError",
    "SandqError",
    "ScriptError",
    "SyncQueue",
    "SyncRedisClient",
    "UnrecoverableError",
    "WaitingChildrenError",
    "Worker",
    "WorkerError",
    "WorkerOptions",
    "__version__",
]

if TYPE_CHECKING:
    from .child.api import CancelToken as CancelToken
    from .child.api import Delay as Delay
    from .connection.client import RedisClient as RedisClient
    from .connection.settings import RedisSettings as RedisSettings
    from .connection.sync import SyncRedisClient as SyncRedisClient
    from .errors import (
        ActiveJobsError as ActiveJobsError,
    )
    from .errors import (
        ConfigurationError as ConfigurationError,
    )
    from .errors import (
        ConnectionLostError as ConnectionLostError,
    )
    from .errors import (
        DelayedError as DelayedError,
    )
    from .errors import (
        EmbeddedRedisError as EmbeddedRedisError,
    )
    from .errors import (
        InvalidJobIdError as InvalidJobIdError,
    )
    from .errors import (
        InvalidOptionError as InvalidOptionError,
    )
    from .errors import (
        JobCancelled as JobCancelled,
    )
    from .errors import (
        JobControl as JobControl,
    )
    from .errors import (
        JobDataError as JobDataError,
    )
    from .errors import (
        JobFailedError as JobFailedError,
    )
    from .errors import (
        JobNotFoundError as JobNotFoundError,
    )
    from .errors import (
        JobNotInStateError as JobNotInStateError,
    )
    from .errors import (
        LockMismatchError as LockMismatchError,
    )
    from .errors import (
        MalformedJobError as MalformedJobError,
    )
    from .errors import (
        ProcessorLoadError as ProcessorLoadError,
    )
    from .errors import (
        ProtocolViolation as ProtocolViolation,
    )
    from .errors import (
        QueueNotPausedError as QueueNotPausedError,
    )
    from .errors import (
        RateLimitError as RateLimitError,
    )
    from .errors import (
        RedisConnectionError as RedisConnectionError,
    )
    from .errors import (
        RedisError as RedisError,
    )
    from .errors import (
        ReplyError as ReplyError,
    )
    from .errors import (
        SandqError as SandqError,
    )
    from .errors import (
        ScriptError as ScriptError,
    )
    from .errors import (
        UnrecoverableError as UnrecoverableError,
    )
    from .errors import (
        WaitingChildrenError as WaitingChildrenError,
    )
    from .errors import (
        WorkerError as WorkerError,
    )
    from .events import QueueEvent as QueueEvent
    from .job import Job as Job
    from .job import JobState as JobState
    from .options import Backoff as Backoff
    from .options import JobOptions as JobOptions
    from .options import KeepJobs as KeepJobs
    from .options import WorkerOptions as WorkerOptions
    from .queue import Queue as Queue
    from .queue_events import QueueEvents as QueueEvents
    from .supervisor.worker import Worker as Worker
    from .sync import SyncQueue as SyncQueue


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sandq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
