"""Job options: frozen, keyword-only records with validation, and their stored (BullMQ) form.

Users pass options as snake_case keywords (``queue.add("resize", data, delay=5000, attempts=3)``).
They are validated here, before anything reaches Redis, and stored in the job hash as BullMQ stores them:
a JSON ``opts`` object with camelCase keys, ``backoff`` normalised to ``{type, delay[, jitter]}`` and the
abbreviated keys (``kl`` for keepLogs). sandq's own ``timeout`` is stored as ``timeout`` (ms); BullMQ
clients carry unknown keys through untouched.

Reading is lenient: :meth:`JobOptions.from_stored` accepts whatever a BullMQ client (v5 or v6) wrote and
never raises; values it cannot use fall back to their defaults and stay visible in ``Job.opts``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import InvalidJobIdError, InvalidOptionError

#: Highest priority value BullMQ's score packing allows (2**21 - 1); 1 is the most urgent, 0 means none.
MAX_PRIORITY = 2_097_151

#: Stored (abbreviated) option keys and the long names BullMQ clients use for them.
ABBREVIATIONS = {
    "kl": "keepLogs",
    "de": "deduplication",
    "fpof": "failParentOnFailure",
    "cpof": "continueParentOnFailure",
    "idof": "ignoreDependencyOnFailure",
    "rdof": "removeDependencyOnFailure",
    "tm": "telemetryMetadata",
    "omc": "omitContext",
}

_ABBREVIATE = {long: short for short, long in ABBREVIATIONS.items()}

BackoffType = Literal["fixed", "exponential"]


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """How long to wait before a retry. ``fixed``: ``delay`` ms each time. ``exponential``: ``delay``,
    then twice that, four times, ... With ``jitter`` j (0..1) the wait is drawn from [w*(1-j), w)."""

    type: BackoffType = "fixed"
    delay: int = 0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.type not in ("fixed", "exponential"):
            raise InvalidOptionError(
                f"backoff type must be 'fixed' or 'exponential', not {self.type!r} "
                "(custom backoff strategies are not supported)"
            )
        _check_int("backoff delay", self.delay, minimum=0)
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, int | float):
            raise InvalidOptionError(f"backoff jitter must be a number from 0 to 1, not {self.jitter!r}")
        if not 0 <= self.jitter <= 1:
            raise InvalidOptionError(f"backoff jitter must be from 0 to 1, not {self.jitter!r}")

    @classmethod
    def coerce(cls, value: Backoff | int | Mapping[str, Any]) -> Backoff:
        """A Backoff from BullMQ's shapes: a number of ms (fixed), or ``{"type", "delay", "jitter"}``."""
        if isinstance(value, Backoff):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(type="fixed", delay=value)
        if isinstance(value, Mapping):
            unknown = set(value) - {"type", "delay", "jitter"}
            if unknown:
                raise InvalidOptionError(f"unknown backoff key(s): {sorted(unknown)}")
            return cls(
                type=value.get("type", "fixed"), delay=value.get("delay", 0), jitter=value.get("jitter", 0.0)
            )
        raise InvalidOptionError(
            f"backoff must be a number of ms or {{'type', 'delay', 'jitter'}}, not {value!r}"
        )

    def to_stored(self) -> dict[str, Any]:
        stored: dict[str, Any] = {"type": self.type, "delay": self.delay}
        if self.jitter:
            stored["jitter"] = self.jitter
        return stored


@dataclass(frozen=True, kw_only=True)
class KeepJobs:
    """Retention of finished jobs: keep at most ``count`` and/or none older than ``age`` seconds;
    ``limit`` caps how many are removed in one go (BullMQ's default is 1000)."""

    age: int | None = None
    count: int | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        for name in ("age", "count", "limit"):
            value = getattr(self, name)
            if value is not None:
                _check_int(f"retention {name}", value, minimum=0)

    def to_stored(self) -> dict[str, int]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}


Retention = bool | int | KeepJobs


def _coerce_retention(name: str, value: Retention | Mapping[str, Any]) -> Retention:
    if isinstance(value, bool | KeepJobs):
        return value
    if isinstance(value, int):
        _check_int(name, value, minimum=0)
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"age", "count", "limit"}
        if unknown:
            raise InvalidOptionError(f"unknown {name} key(s): {sorted(unknown)}")
        return KeepJobs(**value)
    raise InvalidOptionError(f"{name} must be a bool, a count or {{'age', 'count', 'limit'}}, not {value!r}")


def _stored_retention(value: Retention) -> bool | int | dict[str, int]:
    return value.to_stored() if isinstance(value, KeepJobs) else value


def _check_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(f"{name} must be an integer, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum:,}" if maximum is not None else f"at least {minimum}"
        raise InvalidOptionError(f"{name} must be {bound}, not {value}")


def validate_job_id(job_id: str) -> str:
    """Return ``job_id`` if it can be a custom id, else raise InvalidJobIdError.

    Refused: all-digit ids such as ``"123"`` (they would collide with automatic ids; ``"0123"`` is fine,
    since it does not print back the same as a number) and ids containing ``:``.
    """
    if not isinstance(job_id, str):
        raise InvalidJobIdError(f"a job id must be a string, not {job_id!r}")
    try:
        numeric = str(int(job_id)) == job_id
    except ValueError:
        numeric = False
    if numeric:
        raise InvalidJobIdError(
            f"custom job id {job_id!r} is a plain integer, which is reserved for automatic ids; "
            "use a non-numeric id such as 'order-123'"
        )
    if ":" in job_id:
        raise InvalidJobIdError(f"custom job id {job_id!r} must not contain ':'")
    return job_id


@dataclass(frozen=True, kw_only=True)
class JobOptions:
    """Options of one job, validated. Every field has a default; ``JobOptions()`` is a plain job.

    - ``job_id``: a custom id (None: the queue's counter). Adding an id that exists returns that job.
    - ``delay``: ms before the job may run. ``priority``: 1 (most urgent) .. 2,097,151; 0 = none.
    - ``lifo``: run before the jobs already waiting. ``timestamp``: creation time in ms (default: now).
    - ``attempts``: total tries (0 and 1 both mean one try, no retries). ``backoff``: wait between tries.
    - ``remove_on_complete`` / ``remove_on_fail``: True (remove at once), False (keep), a count to keep,
      or a KeepJobs record / ``{"age": seconds, "count": n}``. None (the default): the worker's setting.
    - ``keep_logs``: keep only the newest n log lines. ``timeout``: ms a run may take (sandq only).
    """

    job_id: str | None = None
    delay: int = 0
    priority: int = 0
    lifo: bool = False
    attempts: int = 0
    backoff: Backoff | None = None
    remove_on_complete: Retention | None = None
    remove_on_fail: Retention | None = None
    keep_logs: int | None = None
    timestamp: int | None = None
    timeout: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.job_id is not None:
            if self.job_id == "":
                object.__setattr__(self, "job_id", None)
            else:
                validate_job_id(self.job_id)
        _check_int("delay", self.delay, minimum=0)
        _check_int("priority", self.priority, minimum=0, maximum=MAX_PRIORITY)
        if not isinstance(self.lifo, bool):
            raise InvalidOptionError(f"lifo must be True or False, not {self.lifo!r}")
        _check_int("attempts", self.attempts, minimum=0)
        if self.backoff is not None:
            object.__setattr__(self, "backoff", Backoff.coerce(self.backoff))
        for name in ("remove_on_complete", "remove_on_fail"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _coerce_retention(name, getattr(self, name)))
        if self.keep_logs is not None:
            _check_int("keep_logs", self.keep_logs, minimum=0)
        if self.timestamp is not None:
            _check_int("timestamp", self.timestamp, minimum=0)
        if self.timeout is not None:
            _check_int("timeout", self.timeout, minimum=1)

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> JobOptions:
        """Options from user keywords, with a clear error for a name that is not an option."""
        if not options:
            return _DEFAULT
        unknown = set(options) - _USER_FIELDS
        if unknown:
            raise InvalidOptionError(
                f"unknown job option(s) {sorted(unknown)}; the options are: {', '.join(sorted(_USER_FIELDS))}"
            )
        return cls(**options)

    def to_stored(self) -> dict[str, Any]:
        """The ``opts`` object as BullMQ stores it (camelCase, abbreviated keys, normalised backoff)."""
        stored: dict[str, Any] = {_ABBREVIATE.get(key, key): value for key, value in self.extra.items()}
        stored["attempts"] = self.attempts
        if self.job_id is not None:
            stored["jobId"] = self.job_id
        if self.delay:
            stored["delay"] = self.delay
        if self.priority:
            stored["priority"] = self.priority
        if self.lifo:
            stored["lifo"] = True
        if self.timestamp is not None:
            stored["timestamp"] = self.timestamp
        if self.backoff is not None:
            stored["backoff"] = self.backoff.to_stored()
        if self.remove_on_complete is not None:
            stored["removeOnComplete"] = _stored_retention(self.remove_on_complete)
        if self.remove_on_fail is not None:
            stored["removeOnFail"] = _stored_retention(self.remove_on_fail)
        if self.keep_logs is not None:
            stored["kl"] = self.keep_logs
        if self.timeout is not None:
            stored["timeout"] = self.timeout
        return stored

    def stored_json(self) -> tuple[dict[str, Any], str]:
        """:meth:`to_stored`, and that as JSON text; computed once per JobOptions (they are frozen)."""
        cached: tuple[dict[str, Any], str] | None = self.__dict__.get("_stored_json")
        if cached is None:
            stored = self.to_stored()
            try:
                text = _JSON.encode(stored)
            except (TypeError, ValueError) as exc:
                raise InvalidOptionError(f"job options cannot be stored as JSON: {exc}") from None
            cached = (stored, text)
            object.__setattr__(self, "_stored_json", cached)
        return cached

    def read_back(self) -> dict[str, Any]:
        """The opts as a reader sees them once stored (abbreviations expanded), as a fresh dict."""
        cached: dict[str, Any] | None = self.__dict__.get("_read_back")
        if cached is None:
            cached = {ABBREVIATIONS.get(key, key): value for key, value in self.stored_json()[0].items()}
            object.__setattr__(self, "_read_back", cached)
        return {key: dict(value) if type(value) is dict else value for key, value in cached.items()}

    def wire(self) -> tuple[str, str, str, str, int, str]:
        """What add_jobs needs of these options: custom id ("" for none), timestamp ("" for now),
        delay, priority, lifo (0/1) and the opts JSON; computed once per JobOptions."""
        cached: tuple[str, str, str, str, int, str] | None = self.__dict__.get("_wire")
        if cached is None:
            cached = (
                self.job_id or "",
                "" if self.timestamp is None else str(self.timestamp),
                str(self.delay),
                str(self.priority),
                1 if self.lifo else 0,
                self.stored_json()[1],
            )
            object.__setattr__(self, "_wire", cached)
        return cached

    @classmethod
    def from_stored(cls, opts: Mapping[str, Any]) -> JobOptions:
        """Options read back from a job's ``opts`` (long or abbreviated keys); never raises.

        Keys sandq does not model (``repeat``, ``parent``, ``deduplication``, ...) are kept in ``extra``.
        """
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in opts.items():
            name = _STORED_TO_FIELD.get(ABBREVIATIONS.get(key, key))
            if name is None:
                extra[ABBREVIATIONS.get(key, key)] = value
            else:
                values[name] = _lenient(name, value)
        valid: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            try:
                cls(**{name: value})
            except (InvalidOptionError, InvalidJobIdError, TypeError):
                extra[_FIELD_TO_STORED[name]] = value
                continue
            valid[name] = value
        return cls(**valid, extra=extra)


_DEFAULT = JobOptions()
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

_FIELD_TO_STORED = {
    "job_id": "jobId",
    "delay": "delay",
    "priority": "priority",
    "lifo": "lifo",
    "attempts": "attempts",
    "backoff": "backoff",
    "remove_on_complete": "removeOnComplete",
    "remove_on_fail": "removeOnFail",
    "keep_logs": "keepLogs",
    "timestamp": "timestamp",
    "timeout": "timeout",
}
_STORED_TO_FIELD = {stored: name for name, stored in _FIELD_TO_STORED.items()}
_USER_FIELDS = set(_FIELD_TO_STORED)


def _lenient(name: str, value: Any) -> Any:
    """Coerce a stored value towards the field's type (BullMQ clients may store 3.0 for 3, or null)."""
    if value is None:
        return None
    if name in ("delay", "priority", "attempts", "keep_logs", "timestamp", "timeout"):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(float(value))
            except ValueError:
                return value
    if name == "backoff" and isinstance(value, Mapping):
        return {key: value[key] for key in ("type", "delay", "jitter") if key in value}
    if name == "job_id" and isinstance(value, int | float):
        return str(value)
    return value


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from ``"250ms"``, ``"30s"``, ``"5m"``, ``"2h"``, ``"1d"`` or plain seconds (``"1.5"``)."""
    value = text.strip().lower()
    for unit in ("ms", "s", "m", "h", "d"):
        if value.endswith(unit):
            number, scale = value[: -len(unit)], _DURATION_UNITS[unit]
            break
    else:
        number, scale = value, 1.0
    try:
        seconds = float(number) * scale
    except ValueError:
        raise InvalidOptionError(
            f"{text!r} is not a duration: use e.g. 250ms, 30s, 5m, 2h or a number of seconds"
        ) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidOptionError(f"{text!r} is not a duration: it must be a finite, non-negative time")
    return seconds


def duration_ms(text: str) -> int:
    """:func:`parse_duration`, in whole milliseconds."""
    return round(parse_duration(text) * 1000)


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    """Settings of a worker (``sandq run`` / :class:`sandq.Worker`); durations in seconds.

    - ``concurrency``: child processes, each running one job at a time.
    - ``timeout``: the limit of one run when a job has no ``timeout`` option (None: no limit).
    - ``kill_grace``: after a cancel (timeout, user cancel, lost lock, shutdown), how long a child has
      to stop by itself before its process group is killed.
    - ``lock_duration``: how long a job's lock lives unless renewed (renewed every half of it).
    - ``stalled_interval``: how often the stalled-job sweep runs; ``max_stalled_count``: how often a
      job may stall before it is failed.
    - ``shutdown_timeout``: on SIGTERM/SIGINT, how long running jobs may take to finish.
    - ``drain_delay``: the longest wait on an empty queue before looking again.
    - ``remove_on_complete`` / ``remove_on_fail``: retention for jobs that have no such option.
    - ``limiter``: ``(max_jobs, per_seconds)``: a rate limit shared by the queue's workers.
    - ``preload``: modules the zygote imports before forking children (numpy, torch, ...).
    - ``name``: the worker's name (shown by ``getWorkers`` and in a job's ``pb`` field).
    - ``burst``: stop once no job is waiting or running (delayed jobs are left for a later run).
    """

    concurrency: int = 1
    timeout: float | None = None
    kill_grace: float = 5.0
    lock_duration: float = 30.0
    stalled_interval: float = 30.0
    max_stalled_count: int = 1
    shutdown_timeout: float = 30.0
    drain_delay: float = 5.0
    remove_on_complete: Retention = False
    remove_on_fail: Retention = False
    limiter: tuple[int, float] | None = None
    stack_trace_limit: int = 10
    preload: tuple[str, ...] = ()
    prefix: str = "bull"
    name: str | None = None
    burst: bool = False

    def __post_init__(self) -> None:
        _check_int("concurrency", self.concurrency, minimum=1)
        _check_int("max_stalled_count", self.max_stalled_count, minimum=0)
        _check_int("stack_trace_limit", self.stack_trace_limit, minimum=0)
        for name in ("kill_grace", "lock_duration", "stalled_interval", "shutdown_timeout", "drain_delay"):
            _check_seconds(name, getattr(self, name))
        if self.timeout is not None:
            _check_seconds("timeout", self.timeout, positive=True)
        if self.lock_duration <= 0 or self.stalled_interval <= 0:
            raise InvalidOptionError("lock_duration and stalled_interval must be more than 0")
        object.__setattr__(
            self, "remove_on_complete", _coerce_retention("remove_on_complete", self.remove_on_complete)
        )
        object.__setattr__(self, "remove_on_fail", _coerce_retention("remove_on_fail", self.remove_on_fail))
        if self.limiter is not None:
            max_jobs, per = self.limiter
            _check_int("limiter max", max_jobs, minimum=1)
            _check_seconds("limiter duration", per, positive=True)
        object.__setattr__(self, "preload", tuple(self.preload))
        if self.name is not None and (not self.name or any(c.isspace() for c in self.name)):
            raise InvalidOptionError(f"a worker name must be non-empty and without spaces, not {self.name!r}")


def _check_seconds(name: str, value: object, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidOptionError(f"{name} must be a number of seconds, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise InvalidOptionError(f"{name} must be {'more than' if positive else 'at least'} 0, not {value}")
