"""How a job ends (pure): from what its child reported, or how the child died, and whether and why the
job was cancelled, to the transition that finishes it in Redis.

The rules, in order:

1. A job whose lock was lost is left alone (``Forget``): another worker may own it now.
2. A job cancelled for shutdown goes back to wait without spending an attempt (``Requeue``).
3. Once a job has been cancelled, what its processor then returned or raised does not matter: a
   ``timeout`` fails it and it is retried per its attempts and backoff; a user's cancel fails it with
   ``cancelled: <reason>`` and no retry.
4. A child that died during the job fails it with a reason naming the exit, retried per its attempts.
5. Otherwise the processor's outcome decides: a value completes the job; an error is retried while
   attempts are left (unless unrecoverable); ``Delay`` postpones it without spending an attempt; a rate
   limit puts it back in wait, also without spending one.
"""

from __future__ import annotations

import functools
import json
import random
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeAlias

from ..backoff import backoff_delay
from ..job import parse_number
from ..protocol import Delay, Failure, Ok, Outcome, RateLimited, WaitingChildren

TIMEOUT = "timeout"
LOCK_LOST = "lock_lost"
SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class RunningJob:
    """What the supervisor knows of a job it has fetched: enough to run it and to finish it."""

    id: str
    token: str
    name: str
    data_json: str
    opts_json: str
    opts: Mapping[str, Any]
    timestamp: int
    attempts_made: int
    attempts_started: int
    processed_on: int
    progress_json: str
    stacktrace: tuple[str, ...]
    deferred_failure: str | None
    malformed: str | None = None

    @property
    def attempts(self) -> int:
        return _int_option(self.opts.get("attempts"), 0)

    @property
    def timeout_ms(self) -> int | None:
        value = _int_option(self.opts.get("timeout"), 0)
        return value if value > 0 else None

    @property
    def lifo(self) -> bool:
        return self.opts.get("lifo") is True


def read_fetched(job_id: str, token: str, fields: Mapping[bytes, bytes]) -> RunningJob:
    """A fetched job from its hash. Never raises: what cannot be read is named in ``malformed``, and
    such a job is failed without running."""
    opts_raw = fields.get(b"opts", b"{}")
    opts, malformed = _read_opts(opts_raw)
    if b"name" not in fields and malformed is None:
        malformed = "malformed job: it has no name"
    stacktrace: tuple[str, ...] = ()
    trace_raw = fields.get(b"stacktrace")
    if trace_raw:
        try:
            trace = json.loads(trace_raw)
        except ValueError:
            trace = None
        if isinstance(trace, list):
            stacktrace = tuple(str(line) for line in trace)
    defa = fields.get(b"defa")
    return RunningJob(
        id=job_id,
        token=token,
        name=_text(fields.get(b"name", b"")),
        data_json=_text(fields.get(b"data", b"{}")),
        opts_json=_text(opts_raw),
        opts=opts,
        timestamp=parse_number(fields.get(b"timestamp")),
        attempts_made=parse_number(fields.get(b"atm") or fields.get(b"attemptsMade")),
        attempts_started=parse_number(fields.get(b"ats")),
        processed_on=parse_number(fields.get(b"processedOn")),
        progress_json=_text(fields.get(b"progress", b"0")),
        stacktrace=stacktrace,
        deferred_failure=_text(defa) if defa else None,
        malformed=malformed,
    )


@functools.lru_cache(maxsize=256)
def _read_opts(raw: bytes) -> tuple[Mapping[str, Any], str | None]:
    """A job's opts, parsed once per distinct text (jobs of a queue mostly share theirs). The mapping
    is shared between jobs: read it, never change it."""
    try:
        decoded = json.loads(raw)
    except ValueError as exc:
        return {}, f"malformed job: its opts are not JSON ({exc})"
    if not isinstance(decoded, dict):
        return {}, "malformed job: its opts are not a JSON object"
    return MappingProxyType(decoded), None


@dataclass(frozen=True, slots=True)
class Complete:
    returnvalue_json: str


@dataclass(frozen=True, slots=True)
class Fail:
    reason: str
    stacktrace: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Retry:
    delay_ms: int
    reason: str
    stacktrace: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Postpone:
    """Back to delayed for ``delay_ms``, without spending an attempt."""

    delay_ms: int


@dataclass(frozen=True, slots=True)
class Requeue:
    """Back to the front of wait, without spending an attempt; ``pause_ms``: fetch nothing for that long
    (the processor reported a rate limit)."""

    pause_ms: int = 0


@dataclass(frozen=True, slots=True)
class Forget:
    """Write nothing: the lock was lost, the job may belong to another worker now."""


Decision: TypeAlias = Complete | Fail | Retry | Postpone | Requeue | Forget


def exit_reason(returncode: int) -> str:
    """``crashed (signal 11, SIGSEGV)`` or ``exit(3)``: how a child's exit reads in a failure reason."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"crashed (signal {-returncode}, {name}): the process running the job died"
    return f"exit({returncode}): the process running the job exited"


def settle(
    job: RunningJob,
    *,
    outcome: Outcome | None,
    cancel_reason: str | None = None,
    returncode: int | None = None,
    timeout_ms: int | None = None,
    stack_trace_limit: int = 10,
    rng: random.Random | None = None,
) -> Decision:
    """The transition that ends ``job``: see the module's docstring for the rules."""
    if cancel_reason == LOCK_LOST:
        return Forget()
    if cancel_reason == SHUTDOWN:
        return Requeue()
    if job.malformed is not None:
        return Fail(job.malformed, job.stacktrace)
    if job.deferred_failure is not None:
        return Fail(job.deferred_failure, job.stacktrace)
    if cancel_reason == TIMEOUT:
        limit = f" of {timeout_ms / 1000:g}s" if timeout_ms else ""
        reason = f"timeout: the job ran past its time limit{limit}"
        return _retry_or_fail(job, reason, None, stack_trace_limit, rng)
    if cancel_reason is not None:
        return Fail(f"cancelled: {cancel_reason}", job.stacktrace)
    if outcome is None:
        reason = exit_reason(returncode if returncode is not None else 0)
        return _retry_or_fail(job, reason, None, stack_trace_limit, rng)
    if isinstance(outcome, Ok):
        return Complete(outcome.value_json)
    if isinstance(outcome, Failure):
        reason = outcome.message or outcome.type
        if outcome.unrecoverable:
            return Fail(reason, _trace(job, outcome.traceback, stack_trace_limit))
        return _retry_or_fail(job, reason, outcome.traceback, stack_trace_limit, rng)
    if isinstance(outcome, Delay):
        return Postpone(outcome.delay_ms)
    if isinstance(outcome, RateLimited):
        return Requeue(pause_ms=outcome.delay_ms)
    if isinstance(outcome, WaitingChildren):
        return Fail("waiting for children is not supported by this worker yet", job.stacktrace)
    raise TypeError(f"unknown outcome {outcome!r}")


def _retry_or_fail(
    job: RunningJob, reason: str, traceback: str | None, limit: int, rng: random.Random | None
) -> Decision:
    trace = _trace(job, traceback, limit)
    if job.attempts_made + 1 < job.attempts:
        delay = backoff_delay(job.opts.get("backoff"), job.attempts_made + 1, rng)
        return Retry(delay, reason, trace)
    return Fail(reason, trace)


def _trace(job: RunningJob, traceback: str | None, limit: int) -> tuple[str, ...]:
    if not limit:
        return ()
    lines = job.stacktrace if traceback is None else (*job.stacktrace, traceback)
    return tuple(lines[-limit:])


def _int_option(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return default


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
