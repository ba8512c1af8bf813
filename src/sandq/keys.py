"""Key naming for a queue in BullMQ's Redis model (pure; no I/O).

A queue ``Q`` under prefix ``P`` keeps every key under ``P:Q:``: ``P:Q:wait``, ``P:Q:meta``, and the job
hashes ``P:Q:<job id>``. A hash-tagged prefix such as ``{bull}`` puts all of a queue's keys in one Redis
Cluster slot, which the Lua scripts need because they build job keys from the prefix.
"""

from __future__ import annotations

from .errors import ConfigurationError

#: Queue-level keys, by their suffix after ``P:Q:``.
QUEUE_KEY_SUFFIXES = (
    "wait",
    "paused",
    "active",
    "prioritized",
    "pc",
    "delayed",
    "waiting-children",
    "completed",
    "failed",
    "stalled",
    "stalled-check",
    "limiter",
    "meta",
    "events",
    "marker",
    "id",
    "repeat",
)


def validate_queue_name(name: str) -> str:
    """Return ``name`` if BullMQ's model can hold it as a queue name, else raise ConfigurationError."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError("a queue name must be a non-empty string")
    if ":" in name:
        raise ConfigurationError(f"queue name {name!r} must not contain ':'")
    return name


class QueueKeys:
    """The Redis keys of one queue. ``keys.wait``, ``keys.job("42")``, ``keys.base`` (``P:Q:``)."""

    __slots__ = (
        "active",
        "base",
        "cancels",
        "completed",
        "delayed",
        "events",
        "failed",
        "id",
        "limiter",
        "marker",
        "meta",
        "name",
        "paused",
        "pc",
        "prefix",
        "prioritized",
        "qualified_name",
        "repeat",
        "stalled",
        "stalled_check",
        "wait",
        "waiting_children",
    )

    def __init__(self, name: str, prefix: str = "bull") -> None:
        validate_queue_name(name)
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError("a key prefix must be a non-empty string")
        self.name = name
        self.prefix = prefix
        self.qualified_name = f"{prefix}:{name}"
        self.base = f"{prefix}:{name}:"
        base = self.base
        self.wait = base + "wait"
        self.paused = base + "paused"
        self.active = base + "active"
        self.prioritized = base + "prioritized"
        self.pc = base + "pc"
        self.delayed = base + "delayed"
        self.waiting_children = base + "waiting-children"
        self.completed = base + "completed"
        self.failed = base + "failed"
        self.stalled = base + "stalled"
        self.stalled_check = base + "stalled-check"
        self.limiter = base + "limiter"
        self.meta = base + "meta"
        self.events = base + "events"
        self.marker = base + "marker"
        self.id = base + "id"
        self.repeat = base + "repeat"
        # sandq's own key: a stream of cancel requests for running jobs. Custom job ids cannot contain
        # ':', so no job key can ever be named like it.
        self.cancels = base + "sandq:cancels"

    def job(self, job_id: str) -> str:
        """The job hash key ``P:Q:<job_id>``."""
        return self.base + job_id

    def job_lock(self, job_id: str) -> str:
        return f"{self.base}{job_id}:lock"

    def job_logs(self, job_id: str) -> str:
        return f"{self.base}{job_id}:logs"

    def suffix(self, suffix: str) -> str:
        """The queue key with the given suffix, e.g. ``suffix("waiting-children")``."""
        return self.base + suffix

    def __repr__(self) -> str:
        return f"QueueKeys({self.name!r}, prefix={self.prefix!r})"
