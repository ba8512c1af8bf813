"""A child's loop: run jobs one at a time, as the supervisor asks over the pipe protocol.

Theory of operation. Two threads share the protocol socket:

* the **reader thread** (a daemon) reads frames. ``Run`` creates the job's CancelToken at once (so a
  ``Cancel`` that follows right behind it is not lost) and queues the job for the main thread;
  ``Cancel`` cancels the token of the job it names, and is ignored for any other token; ``Stop`` queues
  the end of the loop behind the current job. End of file means the supervisor is gone: the process
  exits at once (code 1; code 0 after a ``Stop``). A frame that is not the protocol does the same.
* the **main thread** runs the jobs: it builds the :class:`~sandq.job.Job` (data, options and progress
  decoded from their JSON text), bound to a channel that relays ``update_progress``/``log``/
  ``update_data`` as frames carrying the job's token, calls the processor with ``(job, token)`` or
  ``(job)`` (chosen once from its signature), runs a coroutine on one asyncio loop kept for the child's
  life, and maps the result or exception to an outcome. It flushes stdout and stderr before it sends
  ``Done``, so that the supervisor, which drains the output pipe when it sees ``Done``, attributes the
  job's prints to the job.

Writes come from the main thread and from any thread user code starts; a lock keeps frames whole.
``SystemExit`` in a processor ends the process with its code, as it would in a script.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import queue
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import (
    DelayedError,
    JobDataError,
    MalformedJobError,
    ProtocolViolation,
    RateLimitError,
    UnrecoverableError,
    WaitingChildrenError,
)
from ..job import Job, decode_opts
from ..protocol import (
    Cancel,
    Done,
    Failure,
    FromChild,
    InitFailed,
    JobPayload,
    Log,
    Ok,
    Outcome,
    Progress,
    RateLimited,
    Ready,
    Run,
    ToChildReader,
    UpdateData,
    WaitingChildren,
    encode,
)
from ..protocol import Delay as DelayOutcome
from .api import CancelToken, Delay

if TYPE_CHECKING:
    import asyncio

_RECV_SIZE = 64 * 1024  # under malloc's mmap threshold: a recv of 256 KiB cost an mmap per message
_MAX_MS = 2**53  # a delay past this is not a delay
_STOP = object()


class _Writer:
    """Sends frames to the supervisor, whole, from any thread. If the supervisor is gone, so is the child."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, message: FromChild) -> None:
        """Raises ProtocolViolation (from ``encode``) for a message larger than a frame may be."""
        data = encode(message)
        with self._lock:
            try:
                self._sock.sendall(data)
            except OSError:
                os._exit(1)


class _Channel:
    """The JobChannel of one job: every update carries that job's token."""

    __slots__ = ("_token", "_writer")

    def __init__(self, writer: _Writer, token: str) -> None:
        self._writer = writer
        self._token = token

    def _send(self, message: FromChild, what: str) -> None:
        try:
            self._writer.send(message)
        except ProtocolViolation as exc:
            raise JobDataError(f"the job's {what} is too large to send: {exc}") from None

    def send_progress(self, job: Job, progress_json: str) -> None:
        self._send(Progress(self._token, progress_json), "progress")

    def send_log(self, job: Job, line: str) -> None:
        self._send(Log(self._token, line), "log line")

    def send_data(self, job: Job, data_json: str) -> None:
        self._send(UpdateData(self._token, data_json), "data")


def takes_token(processor: Callable[..., Any]) -> bool:
    """Whether ``processor`` is called as ``processor(job, token)`` rather than ``processor(job)``:
    it accepts two positional arguments (or ``*args``, or its signature cannot be read)."""
    try:
        parameters = inspect.signature(processor).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


def _load_fflush() -> Callable[[None], object] | None:
    """libc's ``fflush``, to flush what C code printed through stdio, where there is a libc."""
    if os.name != "posix":
        return None
    try:
        import ctypes

        fflush: Callable[[None], object] = ctypes.CDLL(None).fflush
    except (OSError, AttributeError):  # pragma: no cover
        return None
    return fflush


_fflush = _load_fflush()


def flush_output() -> None:
    """Push out whatever the process has buffered for stdout and stderr (Python's and C's)."""
    # sys.__stdout__ too: a logging handler made at import time may still hold the original streams
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(Exception):  # a broken stream must not keep the job from ending
                stream.flush()
    if _fflush is not None:
        _fflush(None)


def _exit_code(exc: SystemExit) -> int:
    """The exit status ``sys.exit(code)`` gives a script: None -> 0, an int as it is, else 1 (printed)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _milliseconds(value: object) -> int:
    """A delay given by user code, as the int the protocol carries (0 if it is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(0, min(int(value), _MAX_MS))


def _user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` from the processor's frame on (this module's and asyncio's left out)."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module != __name__ and not module.startswith("asyncio"):
            break
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _failure(exc: BaseException, *, unrecoverable: bool) -> Failure:
    try:
        message = str(exc)
    except Exception:
        message = f"<{type(exc).__name__} whose str() failed>"
    return Failure(type(exc).__name__, message, _user_traceback(exc), unrecoverable)


def _json_field(payload: JobPayload, field: str, text: str, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MalformedJobError(payload.id, field, f"is not JSON: {exc}") from None


def _build_job(payload: JobPayload) -> Job:
    """The Job user code sees. Raises MalformedJobError for data, opts or progress that is not JSON."""
    data = _json_field(payload, "data", payload.data_json, {})
    stored_opts = _json_field(payload, "opts", payload.opts_json, {})
    if not isinstance(stored_opts, dict):
        raise MalformedJobError(payload.id, "opts", "is not a JSON object")
    opts = decode_opts(stored_opts)
    delay, priority = opts.get("delay", 0), opts.get("priority", 0)
    return Job(
        id=payload.id,
        name=payload.name,
        data=data,
        opts=opts,
        timestamp=payload.timestamp,
        delay=delay if type(delay) is int else 0,
        priority=priority if type(priority) is int else 0,
        progress=_json_field(payload, "progress", payload.progress_json, 0),
        attempts_made=payload.attempts_made,
        attempts_started=payload.attempts_started,
        processed_on=payload.processed_on or None,
    )


def _result_outcome(job_id: str, result: Any) -> Outcome:
    if isinstance(result, Delay):
        return DelayOutcome(result.delay_ms)
    try:
        value_json = json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        message = f"the result of job {job_id} cannot be stored as JSON: {exc}"
        return Failure("TypeError", message, traceback.format_exc(), False)
    return Ok(value_json)


class _Server:
    def __init__(self, sock: socket.socket, processor: Callable[..., Any]) -> None:
        self._sock = sock
        self._writer = _Writer(sock)
        self._processor = processor
        self._takes_token = takes_token(processor)
        self._is_async = inspect.iscoroutinefunction(processor)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: queue.SimpleQueue[tuple[Run, CancelToken] | object] = queue.SimpleQueue()
        self._tokens: dict[str, CancelToken] = {}  # jobs received and not finished, by lock token
        self._stopping = False

    # --- reader thread ------------------------------------------------------------------------

    def read_forever(self) -> None:
        reader = ToChildReader()
        try:
            while True:
                data = self._sock.recv(_RECV_SIZE)
                if not data:
                    os._exit(0 if self._stopping else 1)
                reader.feed(data)
                while (message := reader.next_message()) is not None:
                    if isinstance(message, Run):
                        token = CancelToken()
                        self._tokens[message.token] = token
                        self._jobs.put((message, token))
                    elif isinstance(message, Cancel):
                        cancel_token = self._tokens.get(message.token)
                        if cancel_token is not None:
                            cancel_token.cancel(message.reason)
                    else:
                        self._stopping = True
                        self._jobs.put(_STOP)
        except BaseException as exc:
            print(f"sandq child {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            os._exit(1)

    # --- main thread --------------------------------------------------------------------------

    def serve(self) -> int:
        self._writer.send(Ready(os.getpid()))
        threading.Thread(target=self.read_forever, name="sandq-child-reader", daemon=True).start()
        while True:
            item = self._jobs.get()
            if not isinstance(item, tuple):
                flush_output()
                return 0
            run, token = item
            try:
                outcome = self._run(run, token)
            except SystemExit as exc:
                code = _exit_code(exc)
                flush_output()
                return code
            finally:
                self._tokens.pop(run.token, None)
            flush_output()
            try:
                self._writer.send(Done(run.token, outcome))
            except ProtocolViolation as exc:
                message = f"the result of job {run.job.id} is too large to send: {exc}"
                self._writer.send(Done(run.token, Failure("JobDataError", message, "", False)))

    def _run(self, run: Run, token: CancelToken) -> Outcome:
        try:
            job = _build_job(run.job)
        except MalformedJobError as exc:
            return Failure(type(exc).__name__, str(exc), "", True)
        job.bind(_Channel(self._writer, run.token))
        try:
            result = self._processor(job, token) if self._takes_token else self._processor(job)
            if self._is_async or inspect.iscoroutine(result):
                result = self._await(result)
        except SystemExit:
            raise
        except UnrecoverableError as exc:
            return _failure(exc, unrecoverable=True)
        except DelayedError as exc:
            return DelayOutcome(_milliseconds(exc.delay_ms))
        except RateLimitError as exc:
            return RateLimited(_milliseconds(exc.delay_ms))
        except WaitingChildrenError:
            return WaitingChildren()
        except BaseException as exc:
            return _failure(exc, unrecoverable=False)
        return _result_outcome(run.job.id, result)

    def _await(self, awaitable: Any) -> Any:
        if self._loop is None:
            import asyncio

            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop.run_until_complete(awaitable)


def serve(sock: socket.socket, processor: Callable[..., Any]) -> int:
    """Run jobs from ``sock`` (a connected stream socket to the supervisor) with ``processor`` until
    ``Stop``; return the exit status for the process. Sends ``Ready`` first (``InitFailed`` if the
    processor is not callable). Exits the process directly (``os._exit``) if the supervisor goes away.
    """
    sock.setblocking(True)
    if not callable(processor):
        message = f"the processor is not callable: it is {type(processor).__name__!r} object"
        _Writer(sock).send(InitFailed(message, ""))
        return 1
    try:
        return _Server(sock, processor).serve()
    except BaseException:
        traceback.print_exc()
        flush_output()
        return 1
