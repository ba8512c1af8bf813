"""A queue's events as typed records: what :class:`~sandq.queue_events.QueueEvents` yields.

Every transition of a job appends an entry to the stream ``P:Q:events`` (BullMQ's model; sandq's scripts
and BullMQ's write the same entries). :func:`parse_event` turns an entry into a frozen record, one class
per event name (:class:`CompletedEvent`, :class:`ProgressEvent`, ...; an :class:`UnknownEvent` for
names it does not know), with the JSON fields decoded; :func:`format_event` renders one as a line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, ClassVar

from .connection.resp import Reply
from .job import parse_number

_DETAIL_LIMIT = 200

# --- records --------------------------------------------------------------------------------------


def _text(raw: str | None) -> str:
    return raw if raw is not None else ""


def _maybe_text(raw: str | None) -> str | None:
    return raw


def _number(raw: str | None) -> int:
    return parse_number(raw)


def decode_json(raw: str | None) -> Any:
    """A JSON field, decoded; its raw text if it is not JSON (a bad entry must not stop a reader)."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return _clip(text)


def _clip(text: str) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"


@dataclass(frozen=True, kw_only=True)
class QueueEvent:
    """One entry of a queue's events stream.

    ``id`` is the stream entry id (``"1718000000000-0"``: ms and sequence), ``event`` the event name,
    ``job_id`` the job it concerns (None for queue-wide events), ``raw`` every field of the entry as
    text, ``event`` included. Subclasses add the event's own fields, decoded.
    """

    NAME: ClassVar[str] = ""
    #: (attribute, stream field, decoder) for the fields of this event.
    WIRE: ClassVar[tuple[tuple[str, str, Callable[[str | None], Any]], ...]] = ()

    id: str
    event: str
    job_id: str | None = None
    raw: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)

    @property
    def timestamp(self) -> int:
        """When the entry was written, in ms since the epoch (from its id)."""
        return parse_number(self.id.partition("-")[0])

    def detail(self) -> str:
        """The event's salient fields, for :func:`format_event`."""
        return ""


@dataclass(frozen=True, kw_only=True)
class AddedEvent(QueueEvent):
    """A job was stored; a ``waiting``, ``delayed`` or ``waiting-children`` event follows."""

    NAME = "added"
    WIRE = (("job_name", "name", _text),)
    job_name: str = ""

    def detail(self) -> str:
        return f"name={_clip(self.job_name)}"


@dataclass(frozen=True, kw_only=True)
class WaitingEvent(QueueEvent):
    """A job can run: it entered ``wait`` or ``prioritized``. ``prev`` is where it came from
    (``delayed``, ``active`` for a retry or a stalled job, ``waiting-children``, ...) or None when new."""

    NAME = "waiting"
    WIRE = (("prev", "prev", _maybe_text),)
    prev: str | None = None

    def detail(self) -> str:
        return f"from {self.prev}" if self.prev else ""


@dataclass(frozen=True, kw_only=True)
class WaitingChildrenEvent(QueueEvent):
    """A job waits for its children (a flow parent)."""

    NAME = "waiting-children"
    WIRE = (("prev", "prev", _maybe_text),)
    prev: str | None = None

    def detail(self) -> str:
        return f"from {self.prev}" if self.prev else ""


@dataclass(frozen=True, kw_only=True)
class DelayedEvent(QueueEvent):
    """A job was delayed (added with ``delay``, or a retry with backoff); ``fire_at`` is when it becomes
    due, in ms since the epoch (the stream field ``delay`` holds that absolute time)."""

    NAME = "delayed"
    WIRE = (("fire_at", "delay", _number),)
    fire_at: int = 0

    def detail(self) -> str:
        wait = self.fire_at - self.timestamp
        if not self.fire_at or wait <= 0:
            return "due now" if self.fire_at else ""
        return f"due in {wait}ms" if wait < 1000 else f"due in {round(wait / 1000, 1):g}s"


@dataclass(frozen=True, kw_only=True)
class ActiveEvent(QueueEvent):
    """A worker took the job."""

    NAME = "active"
    WIRE = (("prev", "prev", _maybe_text),)
    prev: str | None = None


@dataclass(frozen=True, kw_only=True)
class ProgressEvent(QueueEvent):
    """The job reported progress: ``progress`` is the value it reported (a number or any JSON)."""

    NAME = "progress"
    WIRE = (("progress", "data", decode_json),)
    progress: Any = field(default=None, hash=False)

    def detail(self) -> str:
        return _show(self.progress)


@dataclass(frozen=True, kw_only=True)
class CompletedEvent(QueueEvent):
    """The job completed; ``returnvalue`` is what its processor returned, decoded from JSON."""

    NAME = "completed"
    WIRE = (("returnvalue", "returnvalue", decode_json), ("prev", "prev", _maybe_text))
    returnvalue: Any = field(default=None, hash=False)
    prev: str | None = None

    def detail(self) -> str:
        return _show(self.returnvalue)


@dataclass(frozen=True, kw_only=True)
class FailedEvent(QueueEvent):
    """The job failed for good (no attempt left, or cancelled); ``failed_reason`` says why. A failed
    attempt that will be retried shows as ``waiting`` or ``delayed`` instead."""

    NAME = "failed"
    WIRE = (("failed_reason", "failedReason", _text), ("prev", "prev", _maybe_text))
    failed_reason: str = ""
    prev: str | None = None

    def detail(self) -> str:
        return _clip(self.failed_reason)


@dataclass(frozen=True, kw_only=True)
class RetriesExhaustedEvent(QueueEvent):
    """The job failed with all its attempts made (after its ``failed`` event)."""

    NAME = "retries-exhausted"
    WIRE = (("attempts_made", "attemptsMade", _number),)
    attempts_made: int = 0

    def detail(self) -> str:
        return f"after {self.attempts_made} attempts"


@dataclass(frozen=True, kw_only=True)
class StalledEvent(QueueEvent):
    """The job's worker lost it (its lock expired); it went back to wait."""

    NAME = "stalled"


@dataclass(frozen=True, kw_only=True)
class RemovedEvent(QueueEvent):
    """The job was removed; ``prev`` is the state it was in."""

    NAME = "removed"
    WIRE = (("prev", "prev", _maybe_text),)
    prev: str | None = None

    def detail(self) -> str:
        return f"from {self.prev}" if self.prev else ""


@dataclass(frozen=True, kw_only=True)
class DrainedEvent(QueueEvent):
    """A job finished and nothing is left waiting, prioritized or active."""

    NAME = "drained"


@dataclass(frozen=True, kw_only=True)
class PausedEvent(QueueEvent):
    """The queue was paused."""

    NAME = "paused"


@dataclass(frozen=True, kw_only=True)
class ResumedEvent(QueueEvent):
    """The queue was resumed."""

    NAME = "resumed"


@dataclass(frozen=True, kw_only=True)
class DuplicatedEvent(QueueEvent):
    """A job was added with the custom id of an existing job: nothing was added."""

    NAME = "duplicated"


@dataclass(frozen=True, kw_only=True)
class DeduplicatedEvent(QueueEvent):
    """An add was deduplicated: ``job_id`` is the job that holds the slot ``deduplication_id``,
    ``deduplicated_job_id`` the one ignored (or, in replace mode, replaced)."""

    NAME = "deduplicated"
    WIRE = (
        ("deduplication_id", "deduplicationId", _text),
        ("deduplicated_job_id", "deduplicatedJobId", _maybe_text),
    )
    deduplication_id: str = ""
    deduplicated_job_id: str | None = None

    def detail(self) -> str:
        return f"id={_clip(self.deduplication_id)} ignored={self.deduplicated_job_id}"


@dataclass(frozen=True, kw_only=True)
class DebouncedEvent(QueueEvent):
    """BullMQ v5's older twin of ``deduplicated`` (v6 writes it no more)."""

    NAME = "debounced"
    WIRE = (("debounce_id", "debounceId", _text),)
    debounce_id: str = ""

    def detail(self) -> str:
        return f"id={_clip(self.debounce_id)}"


@dataclass(frozen=True, kw_only=True)
class CleanedEvent(QueueEvent):
    """``count`` finished jobs were cleaned out of the queue."""

    NAME = "cleaned"
    WIRE = (("count", "count", _number),)
    count: int = 0

    def detail(self) -> str:
        return f"{self.count} jobs"


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(QueueEvent):
    """An event this version of sandq does not know (a newer BullMQ's, or a custom one published by an
    application): its fields are in ``raw``."""

    def detail(self) -> str:
        return _clip(" ".join(f"{k}={v}" for k, v in self.raw.items() if k not in ("event", "jobId")))


EVENT_TYPES: dict[str, type[QueueEvent]] = {
    cls.NAME: cls
    for cls in (
        AddedEvent,
        WaitingEvent,
        WaitingChildrenEvent,
        DelayedEvent,
        ActiveEvent,
        ProgressEvent,
        CompletedEvent,
        FailedEvent,
        RetriesExhaustedEvent,
        StalledEvent,
        RemovedEvent,
        DrainedEvent,
        PausedEvent,
        ResumedEvent,
        DuplicatedEvent,
        DeduplicatedEvent,
        DebouncedEvent,
        CleanedEvent,
    )
}


def parse_event(entry_id: str, fields: Mapping[str, str]) -> QueueEvent:
    """The record of one stream entry (pure). Never fails: an unknown event name gives an
    :class:`UnknownEvent`, a JSON field that is not JSON keeps its text, a bad number reads as 0."""
    name = fields.get("event", "")
    cls = EVENT_TYPES.get(name, UnknownEvent)
    values = {attr: decode(fields.get(wire)) for attr, wire, decode in cls.WIRE}
    return cls(id=entry_id, event=name, job_id=fields.get("jobId"), raw=dict(fields), **values)


def reply_text(raw: Reply) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def parse_entries(entries: Sequence[Reply]) -> list[QueueEvent]:
    """Records of the entries of an XRANGE reply, or of one stream in an XREAD reply (pure)."""
    events = []
    for entry_id, flat in entries:
        pairs = flat or []
        fields = {reply_text(pairs[i]): reply_text(pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)}
        events.append(parse_event(reply_text(entry_id), fields))
    return events


def _clock(ms: int, tz: tzinfo | None) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{ms % 1000:03d}"


def format_event(event: QueueEvent, *, tz: tzinfo | None = None) -> str:
    """One line for an event: time (local, or in ``tz``), event name, job id, salient fields::

    2025-06-10 14:03:07.412  completed          job 17  {"square":49}
    """
    job = f"job {event.job_id}" if event.job_id is not None else "-"
    line = f"{_clock(event.timestamp, tz)}  {event.event or '?':<18} {job}"
    detail = event.detail()
    return f"{line}  {detail}" if detail else line
