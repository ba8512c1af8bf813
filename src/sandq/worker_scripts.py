"""The calls of the worker's Lua scripts, as pure functions: ``(keys, args)`` in, decoded replies out.

The worker side of BullMQ's model, in sandq's own scripts (``sandq/lua``):

- ``move_to_active``: fetch up to N jobs in one call, each with its own lock token.
- ``finish_jobs``: a batch of :class:`Complete` / :class:`Fail` / :class:`Retry` / :class:`Delay` /
  :class:`Requeue` entries in one call, each applied (or refused with a code) on its own, plus an
  optional fetch-next (:class:`FetchSpec`), so that a busy worker needs one round trip per batch.
- ``extend_locks``, ``move_stalled_jobs_to_wait``: lock renewal and the stalled sweep.
- ``update_progress``, ``add_log``, ``update_data``: a running job's updates.
- ``cancel_job``: ``Queue.cancel`` from any process.

Nothing here performs I/O; callers pass the time. Refusals are negative codes: decoders of
single-job scripts raise :func:`~sandq.errors.error_for_code`'s exception, while :func:`decode_finish`
returns the code of each entry so that one refused entry does not hide the others.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import msgpack

from .connection.resp import Reply
from .errors import error_for_code
from .job import JobState, hash_to_dict, parse_number
from .keys import QueueKeys
from .lua import get_script
from .options import KeepJobs
from .scripts import ScriptCall, state_keys

# --- retention --------------------------------------------------------------------------------------

#: BullMQ's default for how many finished jobs one finish may delete by age.
DEFAULT_REMOVE_LIMIT = 1000

#: Retention as the scripts take it: ``(count, age, limit)``. count -1 = keep all, 0 = delete the job at
#: once, n = keep the newest n; age -1 = no age limit, else seconds; limit = most deletions by age per call.
KeepTriple: TypeAlias = tuple[int, int, int]

KEEP_ALL: KeepTriple = (-1, -1, DEFAULT_REMOVE_LIMIT)
REMOVE_AT_ONCE: KeepTriple = (0, -1, DEFAULT_REMOVE_LIMIT)


def _lenient_int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str | bytes) and value:
        return parse_number(value, -1)
    return None


def retention(value: object, worker_default: object = None) -> KeepTriple:
    """Map BullMQ's ``removeOnComplete`` / ``removeOnFail`` forms to ``(count, age, limit)``.

    ``value`` is the job's option as stored (absent = None) and ``worker_default`` the worker's, used
    when the job has none: ``True`` deletes at once (count 0), ``False`` keeps all, a number n keeps
    the newest n, ``{"age": seconds, "count": n, "limit": m}`` (or a :class:`~sandq.options.KeepJobs`)
    keeps by age and/or count. Unreadable values keep everything (a job is never lost by mistake).
    """
    if value is None:
        if worker_default is None:
            return KEEP_ALL
        return retention(worker_default)
    if value is True:
        return REMOVE_AT_ONCE
    if value is False:
        return KEEP_ALL
    if isinstance(value, KeepJobs):
        value = value.to_stored()
    if isinstance(value, Mapping):
        count = _lenient_int(value.get("count"))
        age = _lenient_int(value.get("age"))
        limit = _lenient_int(value.get("limit"))
        return (
            count if count is not None and count >= 0 else -1,
            age if age is not None and age >= 0 else -1,
            limit if limit is not None and limit > 0 else DEFAULT_REMOVE_LIMIT,
        )
    count = _lenient_int(value)
    if count is None or count < 0:
        return KEEP_ALL
    return (count, -1, DEFAULT_REMOVE_LIMIT)


def _keep_wire(keep: KeepJobs | KeepTriple) -> KeepTriple:
    if isinstance(keep, KeepJobs):
        return retention(keep)
    return keep


# --- fetching ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchedJob:
    """A job moved to active for this worker: its id, the lock token it holds, and its hash."""

    id: str
    token: str
    fields: dict[bytes, bytes]


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a fetch returned.

    ``rate_limit_ttl_ms`` > 0: the queue's rate limit is reached; fetch again after that long.
    ``next_delayed_ms``: the fire time of the earliest delayed job (0: none, or paused/maxed), so the
    caller knows how long it may block on the marker.
    """

    jobs: list[FetchedJob]
    rate_limit_ttl_ms: int
    next_delayed_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSpec:
    """How to fetch: one lock token per job wanted (so ``len(tokens)`` is the most fetched), the lock
    duration, the worker's name ("" = none) and its rate limiter ``(max_jobs, duration_ms)``."""

    tokens: Sequence[str]
    lock_duration_ms: int
    worker_name: str = ""
    limiter: tuple[int, int] | None = None

    def wire(self) -> tuple[list[str], int, str, int, int]:
        """The spec in the scripts' order: tokens, lock duration, name, limiter max, limiter duration."""
        limit_max, limit_duration = self.limiter or (0, 0)
        return (
            list(self.tokens),
            self.lock_duration_ms,
            self.worker_name,
            limit_max,
            limit_duration,
        )


_FETCH_KEYS = ("wait", "active", "prioritized", "pc", "delayed", "limiter", "meta", "marker", "events")


def _keys(keys: QueueKeys, names: Sequence[str]) -> tuple[str, ...]:
    return tuple(keys.suffix(name) for name in names)


def move_to_active(
    keys: QueueKeys,
    tokens: Sequence[str],
    *,
    now_ms: int,
    lock_duration_ms: int,
    worker_name: str = "",
    limiter: tuple[int, int] | None = None,
) -> ScriptCall:
    """Fetch up to ``len(tokens)`` jobs; job i gets lock token ``tokens[i]``. ``limiter`` is the
    worker's rate limit ``(max_jobs, duration_ms)``; the queue's global limit (meta) applies anyway."""
    spec = FetchSpec(
        tokens=tokens, lock_duration_ms=lock_duration_ms, worker_name=worker_name, limiter=limiter
    )
    tokens_list, lock_duration, name, limit_max, limit_duration = spec.wire()
    return ScriptCall(
        get_script("move_to_active"),
        _keys(keys, _FETCH_KEYS),
        (keys.base, now_ms, lock_duration, name, msgpack.packb(tokens_list), limit_max, limit_duration),
    )


def decode_fetch(reply: Reply) -> FetchResult:
    """The reply of ``move_to_active`` (or the fetch part of ``finish_jobs``)."""
    jobs, ttl, next_delayed = reply
    return FetchResult(
        jobs=[
            FetchedJob(id=job_id.decode(), token=token.decode(), fields=hash_to_dict(flat))
            for job_id, token, flat in jobs
        ],
        rate_limit_ttl_ms=int(ttl),
        next_delayed_ms=int(next_delayed),
    )


# --- finishing --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Complete:
    """The job succeeded: to ``completed`` with its return value (JSON text; ``"null"`` for none)."""

    job_id: str
    token: str
    returnvalue_json: str = "null"
    keep: KeepJobs | KeepTriple = KEEP_ALL

    def wire(self) -> list[Any]:
        return ["complete", self.job_id, self.token, self.returnvalue_json, *_keep_wire(self.keep)]


@dataclass(frozen=True, slots=True)
class Fail:
    """The job failed for good: to ``failed``. ``stacktrace_json`` is the job's whole stacktrace list,
    as JSON, as it should be stored ("" leaves the field as it is; see :func:`stacktrace_json`);
    ``attempts`` is the job's ``attempts`` option, for the ``retries-exhausted`` event."""

    job_id: str
    token: str
    failed_reason: str
    stacktrace_json: str = ""
    keep: KeepJobs | KeepTriple = KEEP_ALL
    attempts: int = 0

    def wire(self) -> list[Any]:
        return [
            "fail",
            self.job_id,
            self.token,
            self.failed_reason,
            self.stacktrace_json,
            *_keep_wire(self.keep),
            self.attempts,
        ]


@dataclass(frozen=True, slots=True)
class Retry:
    """The job failed with attempts left: spend an attempt and try again after ``delay_ms`` (delayed),
    or at once (0: back to wait, at the front when ``lifo``, or to prioritized)."""

    job_id: str
    token: str
    delay_ms: int
    failed_reason: str
    stacktrace_json: str = ""
    lifo: bool = False

    def wire(self) -> list[Any]:
        return [
            "retry",
            self.job_id,
            self.token,
            self.delay_ms,
            self.failed_reason,
            self.stacktrace_json,
            1 if self.lifo else 0,
        ]


@dataclass(frozen=True, slots=True)
class Delay:
    """Put the job back as delayed by ``delay_ms`` without spending an attempt (DelayedError)."""

    job_id: str
    token: str
    delay_ms: int

    def wire(self) -> list[Any]:
        return ["delay", self.job_id, self.token, self.delay_ms]


@dataclass(frozen=True, slots=True)
class Requeue:
    """Put the job back at the front of wait (or of its priority), no attempt spent: on shutdown, and
    for a job whose processor hit a rate limit."""

    job_id: str
    token: str

    def wire(self) -> list[Any]:
        return ["requeue", self.job_id, self.token]


FinishEntry: TypeAlias = Complete | Fail | Retry | Delay | Requeue


def stacktrace_json(stacktrace: Sequence[str]) -> str:
    """A stacktrace list as the JSON text the ``stacktrace`` field holds."""
    return json.dumps(list(stacktrace), separators=(",", ":"), ensure_ascii=False)


_FINISH_KEYS = (*_FETCH_KEYS, "stalled", "completed", "failed")


def finish_jobs(
    keys: QueueKeys, entries: Sequence[FinishEntry], *, now_ms: int, fetch: FetchSpec | None = None
) -> ScriptCall:
    """Apply ``entries`` in order in one call; then fetch new jobs when ``fetch`` is given."""
    packed_fetch: bytes | str = ""
    if fetch is not None:
        packed_fetch = msgpack.packb(list(fetch.wire()))
    return ScriptCall(
        get_script("finish_jobs"),
        _keys(keys, _FINISH_KEYS),
        (keys.base, now_ms, msgpack.packb([entry.wire() for entry in entries]), packed_fetch),
    )


def decode_finish(reply: Reply) -> tuple[list[int], FetchResult | None]:
    """One code per entry (0 done; -1 missing, -2 lock missing, -3 not active, -6 lock held by another
    token: see :func:`~sandq.errors.error_for_code`), and the fetch result if a fetch was asked for."""
    codes, fetched = reply
    return [int(code) for code in codes], (decode_fetch(fetched) if isinstance(fetched, list) else None)


# --- locks and stalled jobs -------------------------------------------------------------------------


def extend_locks(keys: QueueKeys, locks: Sequence[tuple[str, str]], duration_ms: int) -> ScriptCall:
    """Renew each ``(job_id, token)`` lock that still holds its token for ``duration_ms``."""
    return ScriptCall(
        get_script("extend_locks"),
        (keys.stalled,),
        (keys.base, duration_ms, msgpack.packb([list(lock) for lock in locks])),
    )


def decode_extend_locks(reply: Reply) -> list[str]:
    """The ids of the jobs whose lock could not be renewed (lost, or held by another token)."""
    return [job_id.decode() for job_id in reply]


def move_stalled_jobs_to_wait(
    keys: QueueKeys, *, max_stalled_count: int, now_ms: int, stalled_interval_ms: int
) -> ScriptCall:
    """The stalled sweep (a no-op when another one ran within ``stalled_interval_ms``)."""
    return ScriptCall(
        get_script("move_stalled_jobs_to_wait"),
        _keys(keys, ("stalled", "wait", "active", "stalled-check", "meta", "marker", "events", "repeat")),
        (keys.base, now_ms, max_stalled_count, stalled_interval_ms),
    )


def decode_stalled(reply: Reply) -> list[str]:
    """The ids of the stalled jobs the sweep moved back to wait."""
    return [job_id.decode() for job_id in reply]


# --- a running job's updates ------------------------------------------------------------------------


def update_progress(keys: QueueKeys, job_id: str, progress_json: str) -> ScriptCall:
    return ScriptCall(
        get_script("update_progress"), (keys.job(job_id), keys.events, keys.meta), (job_id, progress_json)
    )


def add_log(keys: QueueKeys, job_id: str, line: str, keep_logs: int | None = None) -> ScriptCall:
    """Append ``line``; with ``keep_logs``, keep only the newest that many lines."""
    return ScriptCall(
        get_script("add_log"),
        (keys.job(job_id), keys.job_logs(job_id)),
        (job_id, line, "" if keep_logs is None else keep_logs),
    )


def update_data(keys: QueueKeys, job_id: str, data_json: str) -> ScriptCall:
    return ScriptCall(get_script("update_data"), (keys.job(job_id),), (data_json,))


def decode_code(reply: Reply, *, script: str, job_id: str) -> int:
    """A non-negative reply as an int (``add_log``: the lines kept); a negative one raises its error."""
    code = int(reply)
    if code < 0:
        raise error_for_code(code, script=script, job_id=job_id)
    return code


# --- cancel -----------------------------------------------------------------------------------------


def cancel_job(keys: QueueKeys, job_id: str, reason: str, *, now_ms: int) -> ScriptCall:
    """Cancel a job: an active one through the cancels stream, a waiting one by failing it."""
    return ScriptCall(
        get_script("cancel_job"),
        (
            *state_keys(keys),
            keys.events,
            keys.cancels,
            keys.meta,
        ),
        (keys.base, job_id, reason, now_ms),
    )


def decode_cancel(reply: Reply, *, job_id: str) -> JobState:
    """The state the job was in when cancelled; a missing job raises JobNotFoundError."""
    if isinstance(reply, int):
        raise error_for_code(reply, script="cancel_job", job_id=job_id)
    return JobState(reply.decode())
