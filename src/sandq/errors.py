"""Every exception sandq raises, in one tree.

::

    SandqError
    ├── ConfigurationError          a bad URL, queue name or setting; fix the call
    │   ├── InvalidOptionError      a job option failed validation (also a ValueError)
    │   ├── InvalidJobIdError       a custom job id BullMQ's model cannot hold
    │   └── EmbeddedRedisError      no Redis configured and the embedded one cannot start
    ├── JobDataError                job data that cannot be stored as JSON (also a ValueError)
    ├── MalformedJobError           a job hash in Redis that cannot be read as a job
    ├── JobFailedError              the job that wait_until_finished waited for failed
    ├── JobControl                  raised by a processor to steer its job (not a failure of sandq)
    │   ├── UnrecoverableError      fail the job now, whatever attempts are left
    │   ├── DelayedError            the job is put back as delayed, without spending an attempt
    │   ├── RateLimitError          the queue is rate limited: the job goes back to wait
    │   ├── WaitingChildrenError    the job waits for its children before it finishes
    │   └── JobCancelled            raised by CancelToken.raise_if_cancelled()
    ├── WorkerError                 the worker cannot go on
    │   ├── ProcessorLoadError      ``module:function`` cannot be imported or called
    │   └── ProtocolViolation       a child sent bytes that are not the pipe protocol
    └── RedisError                  something Redis said, or could not say
        ├── RedisConnectionError    Redis cannot be reached; nothing was sent
        │   └── ConnectionLostError the connection broke with commands in flight:
        │                           their outcome is unknown
        ├── ReplyError              Redis answered a command with an error reply
        └── ScriptError             a sandq Lua script refused a transition (negative code)
            ├── JobNotFoundError        (-1) the job does not exist
            ├── LockMissingError        (-2) the job's lock is gone
            ├── JobNotInStateError      (-3) the job is not in the state the call expects
            ├── PendingDependenciesError(-4) the job still waits for children
            ├── ParentNotFoundError     (-5) the parent job does not exist
            ├── LockMismatchError       (-6) another worker holds the job's lock
            ├── ParentConflictError     (-7) the job already belongs to another parent
            ├── SchedulerJobError       (-8) the job is a scheduler's current iteration
            ├── FailedChildrenError     (-9) the job has failed children
            ├── SchedulerConflictError  (-10, -11) no free slot for a scheduler iteration
            ├── QueueNotPausedError     (-12) obliterate needs the queue paused
            └── ActiveJobsError         (-13) obliterate refused: jobs are running

Scripts report refusals as negative integers; :func:`error_for_code` is the one place that turns a code
into an exception, so that every caller sees the same message for the same refusal.
"""

from __future__ import annotations


class SandqError(Exception):
    """Base class of every sandq error."""


class ConfigurationError(SandqError):
    """A setting cannot work: a malformed Redis URL, an invalid queue name, an unknown option.

    Raised before anything is sent to Redis. Fix the call or the configuration.
    """


class InvalidOptionError(ConfigurationError, ValueError):
    """A job option has the wrong type or is out of range. The message names the option."""


class InvalidJobIdError(ConfigurationError, ValueError):
    """A custom job id that BullMQ's model cannot hold: all digits (it would collide with auto ids),
    or containing ``:`` (it would break key parsing). Choose another id, e.g. prefix it with letters."""


class EmbeddedRedisError(ConfigurationError):
    """No Redis was configured, none answers on localhost:6379, and the embedded server cannot start.

    The message says how to install a ``redis-server`` binary or how to point sandq at a Redis.
    """


class JobDataError(SandqError, ValueError):
    """Job data (or a value to be stored) that cannot be encoded as JSON. Nothing was written."""


class MalformedJobError(SandqError):
    """A job hash in Redis that sandq cannot read (for example ``data`` that is not JSON).

    ``job_id`` and ``field`` say where the problem is; the hash is left as it is.
    """

    def __init__(self, job_id: str, field: str, reason: str) -> None:
        super().__init__(f"job {job_id!r}: field {field!r} {reason}")
        self.job_id = job_id
        self.field = field


class JobFailedError(SandqError):
    """Raised by ``QueueEvents.wait_until_finished`` when the job it waits for ends in ``failed``: its
    last attempt failed, or it was cancelled. ``job_id`` names the job and ``failed_reason`` is the
    reason stored with it; the job's stacktrace is in the job (``queue.get_job``)."""

    def __init__(self, job_id: str, failed_reason: str) -> None:
        super().__init__(f"job {job_id!r} failed: {failed_reason}")
        self.job_id = job_id
        self.failed_reason = failed_reason


class JobControl(SandqError):
    """Base of the exceptions a processor raises on purpose to steer its job."""


class UnrecoverableError(JobControl):
    """Raise it in a processor to fail the job at once: no retry, whatever ``attempts`` says."""


class DelayedError(JobControl):
    """Raise it in a processor to put the job back as delayed by ``delay_ms`` without spending an
    attempt (the processor may also return ``sandq.Delay(ms)``)."""

    def __init__(self, delay_ms: int = 0, message: str = "") -> None:
        super().__init__(message or f"delayed by {delay_ms} ms")
        self.delay_ms = delay_ms


class RateLimitError(JobControl):
    """Raise it in a processor when the resource it calls is rate limited: the job goes back to wait
    without spending an attempt, and the worker fetches nothing for ``delay_ms``."""

    def __init__(self, delay_ms: int = 0, message: str = "") -> None:
        super().__init__(message or f"rate limited for {delay_ms} ms")
        self.delay_ms = delay_ms


class WaitingChildrenError(JobControl):
    """Raise it in a processor that has added children: the job waits for them, then runs again."""


class JobCancelled(JobControl):
    """Raised by ``token.raise_if_cancelled()`` once the job has been cancelled (a timeout, a user's
    cancel, a lost lock, a shutdown). ``reason`` says which. Let it propagate: the job ends by the
    cancel whatever the processor does next."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"job cancelled: {reason}")
        self.reason = reason


class WorkerError(SandqError):
    """The worker cannot go on, e.g. its children keep failing to start. The message says why."""


class ProcessorLoadError(WorkerError, ConfigurationError):
    """``module:function`` cannot be imported, has no such attribute, or is not callable.

    Raised before any job is fetched; the message is one line naming the module and the cause.
    """


class ProtocolViolation(WorkerError):
    """A child sent bytes that are not sandq's pipe protocol (a frame too large, not msgpack, an
    unknown message). The child is killed and its job failed; the worker carries on."""


class RedisError(SandqError):
    """Something went wrong talking to Redis."""


class RedisConnectionError(RedisError):
    """Redis cannot be reached (refused, unresolvable, authentication failed, gave up reconnecting).

    Raised before a command was sent, so retrying it is safe.
    """


class ConnectionLostError(RedisConnectionError):
    """The connection broke while commands were in flight.

    Redis may or may not have run them: the outcome is unknown. The client reconnects on the next
    command; decide whether to repeat this one (sandq's scripts are safe to repeat where it matters).
    """


class ReplyError(RedisError):
    """Redis answered with an error reply, e.g. ``WRONGTYPE`` or ``NOSCRIPT``.

    ``code`` is the first word of the reply (``WRONGTYPE``); the message is Redis's text.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = message.split(" ", 1)[0] if message else ""


class ScriptError(RedisError):
    """A sandq Lua script refused the transition and returned a negative code.

    ``code`` is that code, ``job_id`` the job concerned (when there is one), ``script`` the script.
    """

    def __init__(self, message: str, *, code: int, job_id: str | None = None, script: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.job_id = job_id
        self.script = script


class JobNotFoundError(ScriptError):
    """The job does not exist (-1): it was never added, or it has been removed."""


class LockMissingError(ScriptError):
    """The job's lock has expired or was never taken (-2)."""


class JobNotInStateError(ScriptError):
    """The job is not in the state the operation needs (-3), e.g. promoting a job that is not delayed."""


class PendingDependenciesError(ScriptError):
    """The job still has children that have not finished (-4)."""


class ParentNotFoundError(ScriptError):
    """The parent job named in the options does not exist (-5)."""


class LockMismatchError(ScriptError):
    """Another worker holds the job's lock (-6)."""


class ParentConflictError(ScriptError):
    """The job id already exists under another live parent (-7)."""


class SchedulerJobError(ScriptError):
    """The job is the current iteration of a job scheduler (-8); remove the scheduler instead."""


class FailedChildrenError(ScriptError):
    """The job has children that failed (-9)."""


class SchedulerConflictError(ScriptError):
    """A job scheduler found no free id for its next iteration (-10 cron, -11 every)."""


class QueueNotPausedError(ScriptError):
    """The queue must be paused for this operation (-12); ``Queue.obliterate`` pauses it first."""


class ActiveJobsError(ScriptError):
    """Jobs of the queue are running (-13): wait for them, or obliterate with ``force=True``."""


_CODES: dict[int, tuple[type[ScriptError], str]] = {
    -1: (JobNotFoundError, "job {job} does not exist"),
    -2: (LockMissingError, "job {job} has no lock (it expired or was never taken)"),
    -3: (JobNotInStateError, "job {job} is not in the state {script} expects"),
    -4: (PendingDependenciesError, "job {job} has pending children"),
    -5: (ParentNotFoundError, "the parent of job {job} does not exist"),
    -6: (LockMismatchError, "job {job} is locked by another worker"),
    -7: (ParentConflictError, "job {job} already belongs to another parent"),
    -8: (SchedulerJobError, "job {job} is the current iteration of a job scheduler"),
    -9: (FailedChildrenError, "job {job} has failed children"),
    -10: (SchedulerConflictError, "a scheduler iteration with this id already exists"),
    -11: (SchedulerConflictError, "every slot for the scheduler's next iteration is taken"),
    -12: (QueueNotPausedError, "{script} refused: the queue is not paused (pause it first)"),
    -13: (ActiveJobsError, "{script} refused: the queue has active jobs (wait for them, or use force=True)"),
}


def error_for_code(code: int, *, script: str, job_id: str | None = None) -> ScriptError:
    """Return the exception for a negative script reply ``code`` (the only place codes are mapped)."""
    kind, template = _CODES.get(code, (ScriptError, "{script} returned the unknown code {code}"))
    job = repr(job_id) if job_id is not None else "(unknown)"
    message = template.format(job=job, script=script, code=code)
    return kind(f"{message} [{script}: {code}]", code=code, job_id=job_id, script=script)
