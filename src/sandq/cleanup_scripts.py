"""The calls of the removal scripts, as pure functions: remove a job (and its children), drain, clean,
obliterate. ``(keys, args)`` in, decoded replies out; no I/O, callers pass the time.

Removing one job is one call. The bulk removals work in bounded batches, so that Redis is never
blocked for long on a large queue: each call removes at most ``batch`` jobs and its decoder says
whether to call again.

- :func:`remove_job` / :func:`decode_remove_job`: one call; refusals raise the error of their code.
- :func:`drain` / :func:`decode_drain`: call until the decoder returns False.
- :func:`start_clean`, then :func:`clean_jobs` / :func:`decode_clean_jobs` with the cursor each step
  returns, until the step's ``next`` is None. The cutoff (now - grace) is fixed by ``start_clean``, so
  that every call of one clean judges age against the same time; the ``cleaned`` event is emitted once,
  with the total, by the last call.
- :func:`obliterate` / :func:`decode_obliterate`: the queue must be paused first; call until False.

Scripts refuse with negative codes mapped by :func:`~sandq.errors.error_for_code`. The queue-level
refusals of obliterate use codes of their own (:data:`NOT_PAUSED`, :data:`ACTIVE_JOBS`), raised as
:class:`~sandq.errors.ScriptError` with a message saying what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .connection.resp import Reply
from .errors import ConfigurationError, error_for_code
from .job import JobState
from .keys import QueueKeys
from .lua import get_script
from .scripts import ScriptCall

#: How many jobs one call of a bulk removal removes (or, for clean, looks at) by default.
DEFAULT_BATCH = 1000

#: obliterate's refusal: the queue is not paused.
NOT_PAUSED = -12
#: obliterate's refusal: jobs are active and ``force`` was not given.
ACTIVE_JOBS = -13

# The states removal scripts report (BullMQ's names in the ``removed`` event), as sandq's JobState.
_PREV_STATES: dict[str, JobState] = {
    "wait": JobState.WAITING,
    "paused": JobState.WAITING,
    "active": JobState.ACTIVE,
    "delayed": JobState.DELAYED,
    "prioritized": JobState.PRIORITIZED,
    "waiting-children": JobState.WAITING_CHILDREN,
    "completed": JobState.COMPLETED,
    "failed": JobState.FAILED,
}


def _text(value: Reply) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_batch(batch: int) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigurationError(f"a batch size must be a positive integer, not {batch!r}")
    return batch


# --- remove -------------------------------------------------------------------------------------------


def remove_job(keys: QueueKeys, job_id: str, *, remove_children: bool = True) -> ScriptCall:
    """Remove job ``job_id`` from whatever state it is in, with its children (recursively, in any
    queue) unless ``remove_children`` is False."""
    return ScriptCall(
        get_script("remove_job"),
        (keys.job(job_id), keys.repeat),
        (keys.base, job_id, "1" if remove_children else "0"),
    )


def decode_remove_job(reply: Reply, *, job_id: str) -> JobState:
    """The state the job was removed from (``UNKNOWN`` if it was in none).

    Raises JobNotFoundError (no such job), SchedulerJobError (the current iteration of a job scheduler:
    remove the scheduler instead) or LockMismatchError (the job, or one of its descendants, is
    being processed; its ``job_id`` is that job's)."""
    code, detail = int(reply[0]), _text(reply[1])
    if code == 1:
        return _PREV_STATES.get(detail, JobState.UNKNOWN)
    error = error_for_code(code, script="remove_job", job_id=detail)
    if code == -6:
        whose = f"job {job_id!r}" if detail == job_id else f"job {job_id!r} has a descendant {detail!r} that"
        error.args = (f"cannot remove: {whose} is locked by a worker (being processed) [remove_job: -6]",)
    raise error


# --- drain --------------------------------------------------------------------------------------------


def drain(keys: QueueKeys, *, include_delayed: bool = False, batch: int = DEFAULT_BATCH) -> ScriptCall:
    """Remove up to ``batch`` of the jobs waiting to run (wait, prioritized, and delayed when
    ``include_delayed``), keeping each job scheduler's current iteration."""
    return ScriptCall(
        get_script("drain"),
        (keys.wait, keys.paused, keys.prioritized, keys.delayed, keys.repeat, keys.pc),
        (keys.base, "1" if include_delayed else "0", _check_batch(batch)),
    )


def decode_drain(reply: Reply) -> bool:
    """Whether jobs may remain: True means call :func:`drain` again."""
    return int(reply) == 1


# --- clean --------------------------------------------------------------------------------------------

#: The states :func:`start_clean` accepts (BullMQ's names; ``waiting`` is accepted for ``wait``).
CLEANABLE_STATES = (
    "completed",
    "failed",
    "delayed",
    "wait",
    "paused",
    "active",
    "prioritized",
    "waiting-children",
)


def normalize_clean_state(state: str) -> str:
    """``state`` as the scripts name it (``waiting`` becomes ``wait``); ConfigurationError if it cannot
    be cleaned."""
    name = "wait" if state == "waiting" else state
    if name not in CLEANABLE_STATES:
        raise ConfigurationError(
            f"cannot clean the state {state!r}; the states are: {', '.join(CLEANABLE_STATES)} (or waiting)"
        )
    return name


@dataclass(frozen=True, slots=True)
class CleanCursor:
    """Where a clean stands between calls: the state, the cutoff (ms; jobs at or before it are old
    enough), the limit (0 = none), the jobs removed so far and the entries kept so far (the script's
    position in delayed, prioritized and the lists)."""

    state: str
    cutoff_ms: int
    limit: int = 0
    removed: int = 0
    offset: int = 0


@dataclass(frozen=True, slots=True)
class CleanStep:
    """What one call removed, and the cursor of the next call (None: the clean is complete)."""

    removed_ids: list[str]
    next: CleanCursor | None


def start_clean(state: str, *, grace_ms: int, limit: int = 0, now_ms: int) -> CleanCursor:
    """The first cursor of a clean of ``state``: jobs older than ``grace_ms`` at ``now_ms``, at most
    ``limit`` of them (0 = no limit)."""
    for name, value in (("grace_ms", grace_ms), ("limit", limit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigurationError(f"clean's {name} must be an integer >= 0, not {value!r}")
    return CleanCursor(normalize_clean_state(state), now_ms - grace_ms, limit)


def clean_jobs(keys: QueueKeys, cursor: CleanCursor, *, batch: int = DEFAULT_BATCH) -> ScriptCall:
    """One call of a clean: look at up to ``batch`` entries from ``cursor`` on, and remove the old ones."""
    return ScriptCall(
        get_script("clean_jobs"),
        (keys.suffix(cursor.state), keys.events, keys.repeat, keys.meta),
        (
            keys.base,
            cursor.state,
            cursor.cutoff_ms,
            cursor.limit,
            cursor.removed,
            cursor.offset,
            _check_batch(batch),
        ),
    )


def decode_clean_jobs(reply: Reply, cursor: CleanCursor) -> CleanStep:
    """The ids removed by the call made with ``cursor``, and the cursor of the next call, if any."""
    ids = [_text(job_id) for job_id in reply[0]]
    offset = int(reply[1])
    if offset < 0:
        return CleanStep(ids, None)
    return CleanStep(ids, replace(cursor, removed=cursor.removed + len(ids), offset=offset))


# --- obliterate ---------------------------------------------------------------------------------------


def obliterate(keys: QueueKeys, *, force: bool = False, batch: int = DEFAULT_BATCH) -> ScriptCall:
    """Delete up to ``batch`` jobs of a paused queue, and the queue's own keys once no job is left.
    Active jobs are deleted too when ``force``; otherwise they make it refuse."""
    return ScriptCall(
        get_script("obliterate"),
        (
            keys.meta,
            keys.active,
            keys.wait,
            keys.paused,
            keys.prioritized,
            keys.delayed,
            keys.waiting_children,
            keys.completed,
            keys.failed,
            keys.repeat,
            keys.cancels,
        ),
        (keys.base, "1" if force else "0", _check_batch(batch)),
    )


def decode_obliterate(reply: Reply) -> bool:
    """Whether there is more to delete: True means call :func:`obliterate` again.

    Raises QueueNotPausedError (:data:`NOT_PAUSED`) or ActiveJobsError (:data:`ACTIVE_JOBS`) when
    refused."""
    code = int(reply)
    if code < 0:
        raise error_for_code(code, script="obliterate")
    return code == 1
