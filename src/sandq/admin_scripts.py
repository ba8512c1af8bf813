"""The calls of the scripts that operate on jobs already in a queue: retry, promote, change priority,
change delay; and the plain-command reads of the getters (ranges of states, logs, counts per priority).

Pure like :mod:`sandq.scripts`: builders return a :class:`~sandq.scripts.ScriptCall` or the commands to
pipeline, decoders turn replies into results or raise the refusal's error. No I/O; callers pass ``now_ms``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .connection.resp import Arg, Reply
from .errors import ConfigurationError, ReplyError, ScriptError, error_for_code
from .keys import QueueKeys
from .lua import get_script
from .scripts import ScriptCall

# --- refusals -----------------------------------------------------------------------------------


def refusal(code: int, *, script: str, job_id: str, expected: str) -> ScriptError:
    """The error for a negative reply of ``script`` about ``job_id``; for -3 (wrong state) the message
    says which state the job had to be in (``expected``, e.g. "delayed")."""
    error = error_for_code(code, script=script, job_id=job_id)
    if code == -3:
        error.args = (f"job {job_id!r} is not {expected} [{script}: -3]",)
    return error


def _checked(replies: Reply, job_ids: Sequence[str], *, script: str, expected: str) -> list[Any]:
    """Per-id replies; the first negative one raises (after the others were applied: each id is its own
    transition, as with BullMQ's one-job calls)."""
    results = list(replies)
    for job_id, result in zip(job_ids, results, strict=True):
        if isinstance(result, int) and result < 0:
            raise refusal(result, script=script, job_id=job_id, expected=expected)
    return results


# --- retry --------------------------------------------------------------------------------------

FINISHED_STATES = ("completed", "failed")


def _retry_keys(keys: QueueKeys) -> tuple[str, ...]:
    return (
        keys.completed,
        keys.failed,
        keys.wait,
        keys.meta,
        keys.active,
        keys.marker,
        keys.prioritized,
        keys.pc,
        keys.events,
    )


def _finished_state(state: str | None) -> str:
    if state is None:
        return ""
    if state not in FINISHED_STATES:
        raise ConfigurationError(f"only completed or failed jobs can be retried, not {state!r} ones")
    return state


def _retry(
    keys: QueueKeys, state: str, reset: tuple[bool, bool], now_ms: int, *, limit: int, job_ids: Sequence[str]
) -> ScriptCall:
    made, started = reset
    return ScriptCall(
        get_script("retry_jobs"),
        _retry_keys(keys),
        (keys.base, state, "1" if made else "0", "1" if started else "0", now_ms, limit, *job_ids),
    )


def retry_jobs(
    keys: QueueKeys,
    job_ids: Sequence[str],
    *,
    state: str | None = None,
    reset_attempts_made: bool = False,
    reset_attempts_started: bool = False,
    now_ms: int,
) -> ScriptCall:
    """Run the finished jobs ``job_ids`` again (each from whichever of completed/failed holds it, or only
    from ``state``)."""
    reset = (reset_attempts_made, reset_attempts_started)
    return _retry(keys, _finished_state(state), reset, now_ms, limit=0, job_ids=job_ids)


def retry_all(
    keys: QueueKeys,
    state: str,
    *,
    limit: int,
    reset_attempts_made: bool = False,
    reset_attempts_started: bool = False,
    now_ms: int,
) -> ScriptCall:
    """Run again up to ``limit`` jobs of ``state`` (completed or failed) that finished at or before
    ``now_ms``, oldest first. Call again while it returns ``limit`` ids."""
    if limit < 1:
        raise ConfigurationError(f"limit must be at least 1, not {limit}")
    reset = (reset_attempts_made, reset_attempts_started)
    return _retry(keys, _finished_state(state), reset, now_ms, limit=limit, job_ids=())


def decode_retry(reply: Reply, job_ids: Sequence[str]) -> list[str]:
    """The state each job left ("completed" or "failed"); a missing or unfinished job raises."""
    results = _checked(reply, job_ids, script="retry_jobs", expected="completed or failed")
    return [result.decode() for result in results]


def decode_ids(reply: Reply) -> list[str]:
    """The ids a limit-mode call moved."""
    return [job_id.decode() for job_id in reply]


# --- promote ------------------------------------------------------------------------------------


def _promote_keys(keys: QueueKeys) -> tuple[str, ...]:
    return (
        keys.delayed,
        keys.wait,
        keys.active,
        keys.prioritized,
        keys.pc,
        keys.marker,
        keys.events,
        keys.meta,
    )


def promote_jobs(keys: QueueKeys, job_ids: Sequence[str]) -> ScriptCall:
    """Run the delayed jobs ``job_ids`` now."""
    return ScriptCall(get_script("promote_jobs"), _promote_keys(keys), (keys.base, 0, *job_ids))


def promote_all(keys: QueueKeys, *, limit: int) -> ScriptCall:
    """Run now the ``limit`` delayed jobs due first. Call again while it returns ``limit`` ids."""
    if limit < 1:
        raise ConfigurationError(f"limit must be at least 1, not {limit}")
    return ScriptCall(get_script("promote_jobs"), _promote_keys(keys), (keys.base, limit))


def decode_promote(reply: Reply, job_ids: Sequence[str]) -> None:
    _checked(reply, job_ids, script="promote_jobs", expected="delayed")


# --- change_priority / change_delay -------------------------------------------------------------


def change_priority(keys: QueueKeys, job_id: str, priority: int, *, lifo: bool = False) -> ScriptCall:
    return ScriptCall(
        get_script("change_priority"),
        (keys.wait, keys.active, keys.prioritized, keys.pc, keys.marker, keys.meta, keys.paused),
        (keys.base, job_id, priority, "1" if lifo else "0"),
    )


def change_delay(keys: QueueKeys, job_id: str, delay_ms: int, *, now_ms: int) -> ScriptCall:
    return ScriptCall(
        get_script("change_delay"),
        (keys.delayed, keys.marker, keys.events, keys.meta),
        (keys.base, job_id, delay_ms, now_ms),
    )


def decode_code(reply: Reply, *, script: str, job_id: str, expected: str) -> None:
    """Raise the error of a negative reply."""
    if isinstance(reply, int) and reply < 0:
        raise refusal(reply, script=script, job_id=job_id, expected=expected)


# --- reads (plain commands) ---------------------------------------------------------------------

#: The states ``get_jobs`` reads, each as (key suffix, kind); "waiting" also reads a v5 ``paused`` list.
RANGE_STATES: dict[str, tuple[tuple[str, str], ...]] = {
    "waiting": (("wait", "list"), ("paused", "list")),
    "active": (("active", "list"),),
    "delayed": (("delayed", "zset"),),
    "prioritized": (("prioritized", "zset"),),
    "waiting-children": (("waiting-children", "zset"),),
    "completed": (("completed", "zset"),),
    "failed": (("failed", "zset"),),
}

#: What ``get_jobs()`` reads when no state is named.
ALL_STATES = tuple(RANGE_STATES)


def range_state(state: str) -> str:
    """Accept BullMQ's spellings (``wait``, ``paused`` as in v5) and sandq's."""
    state = {"wait": "waiting", "paused": "waiting"}.get(state, state)
    if state not in RANGE_STATES:
        raise ConfigurationError(f"unknown job state {state!r}; the states are: {', '.join(RANGE_STATES)}")
    return state


def range_commands(
    keys: QueueKeys, states: Sequence[str], start: int, end: int, *, asc: bool
) -> list[list[Arg]]:
    """The commands that read positions ``start..end`` (inclusive; negative counts from the end) of each
    state, in BullMQ's order: newest first (a list's head, a sorted set's highest score), or oldest
    first with ``asc``. Each state is paged on its own, as BullMQ's getJobs does."""
    commands: list[list[Arg]] = []
    for state in states:
        for suffix, kind in RANGE_STATES[state]:
            key = keys.suffix(suffix)
            if kind == "zset":
                commands.append(["ZRANGE" if asc else "ZREVRANGE", key, start, end])
            elif asc:
                # A list's oldest job is at its tail: positions counted from the tail.
                commands.append(["LRANGE", key, -end - 1, -start - 1])
            else:
                commands.append(["LRANGE", key, start, end])
    return commands


def decode_ranges(replies: Sequence[Any], commands: Sequence[Sequence[Arg]], *, asc: bool) -> list[str]:
    """The ids the range commands returned, in order, each once; legacy v5 list markers ("0:...")
    skipped."""
    ids: dict[str, None] = {}
    for reply, command in zip(replies, commands, strict=True):
        if isinstance(reply, ReplyError):
            raise reply
        found = [raw.decode() for raw in reply]
        if asc and command[0] == "LRANGE":
            found.reverse()
        for job_id in found:
            if not job_id.startswith("0:"):
                ids[job_id] = None
    return list(ids)


def priority_count_commands(keys: QueueKeys, priorities: Sequence[int]) -> list[list[Arg]]:
    """Per priority: priority 0 counts ``wait`` (and a v5 ``paused`` list), others count their band of
    ``prioritized`` scores."""
    commands: list[list[Arg]] = []
    for priority in priorities:
        if priority < 0:
            raise ConfigurationError(f"a priority is 0 or more, not {priority}")
        if priority == 0:
            commands += [["LLEN", keys.wait], ["LLEN", keys.paused]]
        else:
            low = priority * 2**32
            commands.append(["ZCOUNT", keys.prioritized, low, low + 2**32 - 1])
    return commands


def decode_priority_counts(priorities: Sequence[int], replies: Sequence[Any]) -> dict[int, int]:
    counts: dict[int, int] = {}
    position = 0
    for priority in priorities:
        width = 2 if priority == 0 else 1
        values = replies[position : position + width]
        for value in values:
            if isinstance(value, ReplyError):
                raise value
        counts[priority] = sum(int(value) for value in values)
        position += width
    return counts


def log_commands(keys: QueueKeys, job_id: str, start: int, end: int, *, asc: bool) -> list[list[Arg]]:
    """The lines ``start..end`` of a job's log (oldest first, or newest first without ``asc``) and
    the number of lines."""
    key = keys.job_logs(job_id)
    if asc:
        return [["LRANGE", key, start, end], ["LLEN", key]]
    return [["LRANGE", key, -end - 1, -start - 1], ["LLEN", key]]


def decode_logs(replies: Sequence[Any], *, asc: bool) -> tuple[list[str], int]:
    lines = [line.decode("utf-8", "replace") for line in replies[0]]
    if not asc:
        lines.reverse()
    return lines, int(replies[1])
