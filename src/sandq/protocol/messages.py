"""Every message of the pipe protocol between the supervisor and a child, as frozen records.

One set per direction (like h11's events): the supervisor sends :data:`ToChild` messages, a child sends
:data:`FromChild` messages, and a ``Done`` carries one :data:`Outcome`. The records hold plain values
only; :mod:`sandq.protocol.framing` turns them into bytes and back.

Job data, options and progress travel as the JSON text stored in Redis: the supervisor never parses
a job's data, the child decodes it. Every message about a job carries the job's lock token, so that
the supervisor can drop whatever a child says about a job it no longer runs (fencing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class JobPayload:
    """What a child needs to run a job: the stored fields, JSON texts left as they are in Redis."""

    id: str
    name: str
    data_json: str
    opts_json: str
    timestamp: int
    attempts_made: int
    attempts_started: int
    processed_on: int
    progress_json: str
    queue: str


# --- supervisor -> child ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    """Run ``job``; every message about it carries ``token`` (the job's lock token)."""

    token: str
    job: JobPayload


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cooperative cancel of the job holding ``token``: ``timeout``, ``lock_lost``, ``shutdown`` or a
    user's text. A child ignores a cancel for any other token."""

    token: str
    reason: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Take no more jobs: exit (code 0) once the current job, if any, is done."""


# --- child -> supervisor ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The child is up and waits for jobs."""

    pid: int


@dataclass(frozen=True, slots=True)
class InitFailed:
    """The child cannot run jobs: ``error`` is one line, ``traceback`` the details. Never reused."""

    error: str
    traceback: str


@dataclass(frozen=True, slots=True)
class Progress:
    """``job.update_progress(value)``: the value as JSON text."""

    token: str
    progress_json: str


@dataclass(frozen=True, slots=True)
class Log:
    """``job.log(line)``."""

    token: str
    line: str


@dataclass(frozen=True, slots=True)
class UpdateData:
    """``job.update_data(data)``: the new data as JSON text."""

    token: str
    data_json: str


@dataclass(frozen=True, slots=True)
class Done:
    """The job ended; ``outcome`` says how."""

    token: str
    outcome: Outcome


# --- outcomes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ok:
    """The processor returned a value: ``value_json`` is its JSON text (the job's returnvalue)."""

    value_json: str


@dataclass(frozen=True, slots=True)
class Failure:
    """The processor raised (or its result could not be stored). ``unrecoverable``: no retry."""

    type: str
    message: str
    traceback: str
    unrecoverable: bool


@dataclass(frozen=True, slots=True)
class Delay:
    """Put the job back as delayed by ``delay_ms``, without spending an attempt."""

    delay_ms: int


@dataclass(frozen=True, slots=True)
class RateLimited:
    """The processor hit a rate limit: the job goes back to wait; fetch nothing for ``delay_ms``."""

    delay_ms: int


@dataclass(frozen=True, slots=True)
class WaitingChildren:
    """The job waits for its children, then runs again."""


ToChild: TypeAlias = Run | Cancel | Stop
FromChild: TypeAlias = Ready | InitFailed | Progress | Log | UpdateData | Done
Outcome: TypeAlias = Ok | Failure | Delay | RateLimited | WaitingChildren
Message: TypeAlias = ToChild | FromChild
