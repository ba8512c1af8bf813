"""A job as stored in Redis: the ``Job`` record, read leniently from the job hash, and ``JobState``.

The hash is BullMQ's (see the fields below); sandq reads what BullMQ v5 and v6 clients write: numbers
that may be written as ``"3"``, ``"3.0"`` or ``"3e+8"``, v5's ``stalledCounter`` and ``attemptsMade``
field names, and abbreviated option keys (``kl``, ``de``, ...), which ``opts`` shows under their long
names as BullMQ's readers do.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Protocol

from .errors import JobDataError, MalformedJobError, SandqError
from .options import ABBREVIATIONS, JobOptions


class JobChannel(Protocol):
    """Where a running job's updates go: inside a child process, the pipe to the supervisor."""

    def send_progress(self, job: Job, progress_json: str) -> None: ...

    def send_log(self, job: Job, line: str) -> None: ...

    def send_data(self, job: Job, data_json: str) -> None: ...


class JobState(str, enum.Enum):
    """Where a job is. ``WAITING`` covers jobs in ``wait`` (and in a v5 ``paused`` list)."""

    WAITING = "waiting"
    ACTIVE = "active"
    DELAYED = "delayed"
    PRIORITIZED = "prioritized"
    WAITING_CHILDREN = "waiting-children"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise JobDataError(f"the job's {what} cannot be stored as JSON: {exc}") from None


def parse_number(raw: bytes | str | None, default: int = 0) -> int:
    """An integer field, read leniently: ``"12"``, ``"12.0"``, ``"3e+8"``; ``default`` when absent or
    unreadable (a garbled counter must not make a job unreadable)."""
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        return default
    return int(number) if math.isfinite(number) else default


def _text(raw: bytes | None) -> str | None:
    return raw.decode("utf-8", "replace") if raw is not None else None


def _json_field(job_id: str, fields: Mapping[bytes, bytes], name: str, default: Any) -> Any:
    raw = fields.get(name.encode())
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise MalformedJobError(job_id, name, f"is not JSON: {exc}") from None


def decode_opts(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Stored opts with abbreviated keys expanded (``kl`` -> ``keepLogs``)."""
    return {ABBREVIATIONS.get(key, key): value for key, value in raw.items()}


def hash_to_dict(reply: Sequence[bytes] | Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """A flat HGETALL reply ``[field, value, ...]`` (or an already-built mapping) as a dict."""
    if isinstance(reply, Mapping):
        return dict(reply)
    return dict(zip(reply[0::2], reply[1::2], strict=True))


@dataclass(frozen=True, kw_only=True)
class Job:
    """One job, as read from (or just written to) Redis.

    ``opts`` is the stored options object (BullMQ's camelCase keys); ``options`` is the same as a
    validated :class:`~sandq.options.JobOptions`. Times are ms since the epoch; ``None`` when unset.
    """

    id: str
    name: str
    data: Any
    opts: dict[str, Any] = field(default_factory=dict)
    timestamp: int = 0
    delay: int = 0
    priority: int = 0
    progress: Any = 0
    attempts_made: int = 0
    attempts_started: int = 0
    stalled_counter: int = 0
    processed_on: int | None = None
    finished_on: int | None = None
    returnvalue: Any = None
    failed_reason: str | None = None
    stacktrace: tuple[str, ...] = ()
    parent_key: str | None = None
    parent: dict[str, Any] | None = None
    repeat_job_key: str | None = None
    deduplication_id: str | None = None
    deferred_failure: str | None = None
    processed_by: str | None = None

    @property
    def options(self) -> JobOptions:
        return JobOptions.from_stored(self.opts)

    # --- inside a processor -------------------------------------------------------------------

    def update_progress(self, progress: Any) -> None:
        """Report progress (a number, or any JSON value): written to the job and a ``progress`` event."""
        text = _to_json(progress, "progress")
        self._channel("update_progress").send_progress(self, text)
        object.__setattr__(self, "progress", progress)

    def log(self, line: str) -> None:
        """Add a line to the job's log (``queue.get_job_logs``, dashboards)."""
        self._channel("log").send_log(self, str(line))

    def update_data(self, data: Any) -> None:
        """Replace the job's data (it must be JSON-serialisable)."""
        text = _to_json(data, "data")
        self._channel("update_data").send_data(self, text)
        object.__setattr__(self, "data", data)

    def bind(self, channel: JobChannel) -> Job:
        """Attach the channel that :meth:`update_progress`, :meth:`log` and :meth:`update_data` use
        (done by the child process for the job it runs); returns the job itself."""
        object.__setattr__(self, "_bound_channel", channel)
        return self

    def _channel(self, method: str) -> JobChannel:
        channel: JobChannel | None = self.__dict__.get("_bound_channel")
        if channel is None:
            raise SandqError(f"Job.{method}() works inside a processor, on the job it is running")
        return channel

    @classmethod
    def added(
        cls,
        job_id: str,
        *,
        name: str,
        data: Any,
        opts: dict[str, Any],
        timestamp: int,
        delay: int,
        priority: int,
    ) -> Job:
        """The record of a job just added: a fast constructor for bulk adds (a frozen dataclass'
        ``__init__`` costs four times as much), equal to ``Job(id=job_id, ...)``."""
        values = _ADDED_DEFAULTS.copy()
        values["id"] = job_id
        values["name"] = name
        values["data"] = data
        values["opts"] = opts
        values["timestamp"] = timestamp
        values["delay"] = delay
        values["priority"] = priority
        job = object.__new__(cls)
        object.__setattr__(job, "__dict__", values)
        return job

    @classmethod
    def from_hash(cls, job_id: str, reply: Sequence[bytes] | Mapping[bytes, bytes]) -> Job:
        """Read a job hash (flat HGETALL reply or mapping). Raises MalformedJobError for a field that
        must be JSON (``data``, ``opts``, ``progress``, ``returnvalue``, ``stacktrace``, ``parent``)
        and is not."""
        fields = hash_to_dict(reply)
        opts = _json_field(job_id, fields, "opts", {})
        if not isinstance(opts, dict):
            raise MalformedJobError(job_id, "opts", "is not a JSON object")
        stacktrace = _json_field(job_id, fields, "stacktrace", [])
        parent = _json_field(job_id, fields, "parent", None)
        processed_on = fields.get(b"processedOn")
        finished_on = fields.get(b"finishedOn")
        attempts_made = fields.get(b"atm") or fields.get(b"attemptsMade")
        return cls(
            id=job_id,
            name=_text(fields.get(b"name")) or "",
            data=_json_field(job_id, fields, "data", {}),
            opts=decode_opts(opts),
            timestamp=parse_number(fields.get(b"timestamp")),
            delay=parse_number(fields.get(b"delay")),
            priority=parse_number(fields.get(b"priority")),
            progress=_json_field(job_id, fields, "progress", 0),
            attempts_made=parse_number(attempts_made),
            attempts_started=parse_number(fields.get(b"ats")),
            stalled_counter=parse_number(fields.get(b"stc") or fields.get(b"stalledCounter")),
            processed_on=parse_number(processed_on) if processed_on else None,
            finished_on=parse_number(finished_on) if finished_on else None,
            returnvalue=_json_field(job_id, fields, "returnvalue", None),
            failed_reason=_text(fields.get(b"failedReason")),
            stacktrace=tuple(str(line) for line in stacktrace) if isinstance(stacktrace, list) else (),
            parent_key=_text(fields.get(b"parentKey")),
            parent=parent if isinstance(parent, dict) else None,
            repeat_job_key=_text(fields.get(b"rjk")),
            deduplication_id=_text(fields.get(b"deid")),
            deferred_failure=_text(fields.get(b"defa")),
            processed_by=_text(fields.get(b"pb")),
        )


_ADDED_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Job) if f.default is not MISSING}
