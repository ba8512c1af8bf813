"""The calls of sandq's Lua scripts, as pure functions: ``(keys, args)`` in, decoded replies out.

Each script in ``sandq/lua`` has a builder here returning a :class:`ScriptCall` and, where its reply
needs it, a decoder. Nothing here performs I/O; callers pass the time (``now_ms``). The connection
layer runs a ScriptCall with EVALSHA; tests check builders and decoders without Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

from .connection.resp import Arg, Reply
from .errors import ReplyError
from .job import JobState
from .keys import QueueKeys
from .lua import Script, get_script


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One script invocation: the script, its KEYS and its ARGV."""

    script: Script
    keys: tuple[str, ...]
    args: tuple[Arg, ...]

    def __post_init__(self) -> None:
        if len(self.keys) != self.script.numkeys:
            raise ValueError(f"{self.script.name} takes {self.script.numkeys} keys, got {len(self.keys)}")


class NewJob(NamedTuple):
    """A job ready to be written, its fields in add_jobs' wire order (numbers as decimal text)."""

    custom_id: str
    name: str
    timestamp: str
    delay: str
    priority: str
    lifo: int
    data_json: str
    opts_json: str


# --- add_jobs -----------------------------------------------------------------------------------


def add_jobs(keys: QueueKeys, jobs: Sequence[NewJob]) -> ScriptCall:
    """Add ``jobs`` (one or many) atomically in one call."""
    packed = msgpack.packb(jobs)
    return ScriptCall(
        get_script("add_jobs"),
        (
            keys.wait,
            keys.meta,
            keys.id,
            keys.delayed,
            keys.prioritized,
            keys.pc,
            keys.active,
            keys.events,
            keys.marker,
        ),
        (keys.base, packed),
    )


def decode_add_jobs(reply: Reply) -> list[tuple[str, list[bytes] | None]]:
    """Per job, in order: its id, and the existing hash (flat) when the id was a duplicate."""
    return [
        (entry[0].decode(), entry[1]) if isinstance(entry, list) else (entry.decode(), None)
        for entry in reply
    ]


# --- get_job_state ------------------------------------------------------------------------------


def state_keys(keys: QueueKeys) -> tuple[str, ...]:
    """The keys a script reads to tell where a job is, in the order it looks (get_job_state, and the
    first keys of cancel_job)."""
    return (
        keys.completed,
        keys.failed,
        keys.delayed,
        keys.prioritized,
        keys.active,
        keys.wait,
        keys.paused,
        keys.waiting_children,
    )


def get_job_state(keys: QueueKeys, job_id: str) -> ScriptCall:
    return ScriptCall(get_script("get_job_state"), state_keys(keys), (job_id,))


def decode_job_state(reply: Reply) -> JobState:
    return JobState(reply.decode() if isinstance(reply, bytes) else str(reply))


# --- pause --------------------------------------------------------------------------------------


def pause(keys: QueueKeys, *, paused: bool, emit_event: bool = True) -> ScriptCall:
    """Pause (``paused=True``) or resume the queue."""
    return ScriptCall(
        get_script("pause"),
        (keys.meta, keys.wait, keys.paused, keys.prioritized, keys.delayed, keys.marker, keys.events),
        ("paused" if paused else "resumed", "1" if emit_event else "0"),
    )


def decode_pause(reply: Reply) -> int:
    """How many v5 ``paused`` jobs are still to be moved back (resume again until 0)."""
    return int(reply)


# --- counts (plain commands, pipelined) ---------------------------------------------------------

#: States that can be counted, and the key suffix and command that count them.
COUNTABLE_STATES: dict[str, tuple[str, str]] = {
    "waiting": ("wait", "LLEN"),
    "active": ("active", "LLEN"),
    "paused": ("paused", "LLEN"),
    "delayed": ("delayed", "ZCARD"),
    "prioritized": ("prioritized", "ZCARD"),
    "waiting-children": ("waiting-children", "ZCARD"),
    "completed": ("completed", "ZCARD"),
    "failed": ("failed", "ZCARD"),
}

#: What ``get_job_counts()`` counts when no state is named (as BullMQ does).
DEFAULT_COUNT_STATES = (
    "waiting",
    "active",
    "delayed",
    "prioritized",
    "waiting-children",
    "completed",
    "failed",
)


def normalize_state(state: str) -> str:
    """Accept BullMQ's spellings (``wait``) and sandq's; reject what cannot be counted."""
    state = {"wait": "waiting"}.get(state, state)
    if state not in COUNTABLE_STATES:
        from .errors import ConfigurationError

        raise ConfigurationError(
            f"unknown job state {state!r}; the states are: {', '.join(COUNTABLE_STATES)}"
        )
    return state


def count_commands(keys: QueueKeys, states: Sequence[str]) -> list[list[Arg]]:
    """One LLEN/ZCARD per state (already normalised)."""
    commands: list[list[Arg]] = []
    for state in states:
        suffix, command = COUNTABLE_STATES[state]
        commands.append([command, keys.suffix(suffix)])
    return commands


def decode_counts(states: Sequence[str], replies: Sequence[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state, reply in zip(states, replies, strict=True):
        if isinstance(reply, ReplyError):
            raise reply
        counts[state] = int(reply)
    return counts
