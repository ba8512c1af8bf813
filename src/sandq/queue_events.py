"""``QueueEvents``: a queue's events stream as an async iterator of typed records (:mod:`sandq.events`),
and ``wait_until_finished``, for trio and asyncio programs alike (anyio underneath).

Theory of operation
-------------------
* **Iteration** reads with ``XREAD BLOCK`` on a dedicated connection, from a cursor: the id of the
  last entry read. Entries are buffered and delivered one by one; :attr:`QueueEvents.last_id` is the id
  of the last one delivered. ``last_event_id="$"`` ("from now") is resolved to the stream's last entry
  when the ``async with`` block opens (or at the first read without one), so that nothing written
  between opening and the first read is missed. ``"0"`` replays what the stream still holds.
* **Redis going away**: a read that loses its connection is simply read again from the same cursor,
  through the client's own reconnect (capped backoff, up to ``reconnect_timeout``), so an event is
  neither lost nor delivered twice. Only when the client gives up does the error come out.
* **wait_until_finished** has a cursor of its own, shared by all the waiters of the moment. A waiter
  registers, then (if it is the first) fixes the cursor at the stream's last entry, then reads the job's
  state from Redis: a job that finished before that is seen there, one that finishes after is seen in
  the stream (the script that finishes a job writes its state and its event atomically). One waiter at
  a time reads the stream, handing the ``completed``/``failed`` events to every waiter of that job; when
  it is done (its own job finished, or it timed out or was cancelled) it hands the reading over to
  another waiter. The cursor is dropped when the last waiter leaves.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import anyio

from .connection.client import RedisClient, as_client
from .connection.resp import Arg, Reply
from .connection.settings import RedisSettings
from .errors import (
    ConfigurationError,
    ConnectionLostError,
    JobFailedError,
    JobNotFoundError,
    RedisConnectionError,
)
from .events import QueueEvent, decode_json, parse_entries, reply_text
from .job import Job
from .keys import QueueKeys

_READ_COUNT = 500
_STREAM_ID = re.compile(r"\d+(-\d+)?")


class _Waiter:
    __slots__ = ("job_id", "outcome", "wake")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.outcome: tuple[bool, Any] | None = None  # (completed?, return value or failed reason)
        self.wake: anyio.Event | None = None

    def settle(self, completed: bool, value: Any) -> None:
        if self.outcome is None:
            self.outcome = (completed, value)
        if self.wake is not None:
            self.wake.set()


class QueueEvents:
    """The events of queue ``name``, as an async iterator of :class:`QueueEvent` records::

        async with QueueEvents("images", "redis://localhost:6379/0") as events:
            async for event in events:
                print(format_event(event))

    ``connection`` is a URL, a :class:`RedisSettings`, a :class:`RedisClient` (shared, not closed here)
    or None for sandq's default Redis. ``last_event_id``: ``"$"`` (events from when the ``async with``
    block opens), ``"0"`` (everything the stream still holds), or an entry id to resume after, such as
    a former reader's :attr:`last_id`. ``block_ms``: how long one XREAD waits before it is renewed.
    Iteration ends when :meth:`aclose` is called (from any task).
    """

    def __init__(
        self,
        name: str,
        connection: RedisClient | RedisSettings | str | None = None,
        *,
        prefix: str = "bull",
        last_event_id: str = "$",
        block_ms: int = 10_000,
    ) -> None:
        if last_event_id != "$" and not _STREAM_ID.fullmatch(str(last_event_id)):
            raise ConfigurationError(f"last_event_id must be '$', '0' or a stream id, not {last_event_id!r}")
        if not isinstance(block_ms, int) or isinstance(block_ms, bool) or block_ms <= 0:
            raise ConfigurationError(f"block_ms must be a positive integer, not {block_ms!r}")
        self.keys = QueueKeys(name, prefix)
        self.name = name
        self.prefix = prefix
        self.block_ms = block_ms
        self.client, self._owns_client = as_client(connection)
        if self._owns_client:
            # As BullMQ's QueueEvents names its connection, for dashboards listing connections.
            encoded = base64.b64encode(name.encode()).decode()
            self.client.dedicated_name = f"{prefix}:{encoded}:qe"
        start = None if last_event_id == "$" else str(last_event_id)
        self._cursor: str | None = start  # the id of the last entry read
        self._last_id: str | None = start  # the id of the last event delivered
        self._buffer: deque[QueueEvent] = deque()
        self._iterating = False
        self._closed = False
        self._scopes: set[anyio.CancelScope] = set()
        self._waiters: dict[str, list[_Waiter]] = {}
        self._watch_cursor: str | None = None
        self._watch_lock = anyio.Lock()
        self._watch_reading = False

    @property
    def last_id(self) -> str | None:
        """The id of the last event delivered (the starting point before the first); pass it as
        ``last_event_id`` to a new reader to carry on from there. None while ``"$"`` is unresolved."""
        return self._last_id

    # --- iteration ------------------------------------------------------------------------------

    async def _open(self) -> None:
        """Fix the starting point (``"$"`` becomes the stream's last entry id). ``async with`` does it;
        without it, the first read does."""
        if self._cursor is None:
            self._cursor = self._last_id = await self._stream_last_id()

    def __aiter__(self) -> QueueEvents:
        return self

    async def __anext__(self) -> QueueEvent:
        if self._iterating:
            raise anyio.BusyResourceError("reading from")
        self._iterating = True
        try:
            while not self._buffer:
                if self._closed:
                    raise StopAsyncIteration
                await self._open()
                assert self._cursor is not None
                entries = await self._read(self._cursor)
                if entries:
                    self._buffer.extend(parse_entries(entries))
                    self._cursor = self._buffer[-1].id
            if self._closed:
                raise StopAsyncIteration
            event = self._buffer.popleft()
            self._last_id = event.id
            return event
        finally:
            self._iterating = False

    # --- waiting for a job -----------------------------------------------------------------------

    async def wait_until_finished(
        self,
        job_or_id: Job | str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (BullMQ's waitUntilFinished has one too)
    ) -> Any:
        """Wait until the job has finished; return its return value (decoded from JSON).

        Raises :class:`~sandq.errors.JobFailedError` if it failed for good (a failed attempt that is
        retried does not count), JobNotFoundError if there is no such job (never added, or removed:
        with ``remove_on_complete=True`` call this before the job finishes), TimeoutError after
        ``timeout`` seconds. Works whether the job finished before the call or after, and for any
        number of concurrent waiters, independently of the iteration.
        """
        job_id = job_or_id.id if isinstance(job_or_id, Job) else str(job_or_id)
        if self._closed:
            raise RedisConnectionError("this QueueEvents has been closed")
        waiter = _Waiter(job_id)
        self._waiters.setdefault(job_id, []).append(waiter)
        try:
            with anyio.fail_after(timeout):
                await self._fix_watch_cursor()
                if waiter.outcome is None:
                    finished = await self._finished(job_id)
                    if finished is not None:
                        waiter.settle(*finished)
                await self._watch(waiter)
        finally:
            waiters = self._waiters[job_id]
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[job_id]
            if not self._waiters:
                self._watch_cursor = None
        assert waiter.outcome is not None
        completed, value = waiter.outcome
        if not completed:
            raise JobFailedError(job_id, str(value))
        return value

    async def _fix_watch_cursor(self) -> None:
        async with self._watch_lock:
            if self._watch_cursor is None:
                self._watch_cursor = await self._stream_last_id()

    async def _finished(self, job_id: str) -> tuple[bool, Any] | None:
        """How the job ended, read atomically from its hash and the finished sets; None if it has not
        finished; JobNotFoundError if it does not exist."""
        keys = self.keys
        job_key = keys.job(job_id)
        commands: list[Sequence[Arg]] = [
            ("MULTI",),
            ("EXISTS", job_key),
            ("ZSCORE", keys.completed, job_id),
            ("ZSCORE", keys.failed, job_id),
            ("HMGET", job_key, "returnvalue", "failedReason"),
            ("EXEC",),
        ]
        replies = await self._retrying(lambda: self.client.execute_many(commands))
        exists, completed, failed, (returnvalue, failed_reason) = replies[-1]
        if not exists:
            raise JobNotFoundError(f"job {job_id!r} does not exist", code=-1, job_id=job_id)
        if completed is not None:
            return True, decode_json(reply_text(returnvalue) if returnvalue is not None else None)
        if failed is not None:
            return False, reply_text(failed_reason) if failed_reason is not None else ""
        return None

    async def _watch(self, waiter: _Waiter) -> None:
        """Until the waiter's job has finished: read the stream for every waiter, or wait for the
        reader's news or for the reading to be handed over."""
        while waiter.outcome is None:
            if self._closed:
                raise RedisConnectionError("this QueueEvents has been closed")
            if self._watch_reading:
                waiter.wake = anyio.Event()
                try:
                    await waiter.wake.wait()
                finally:
                    waiter.wake = None
                continue
            self._watch_reading = True
            try:
                while waiter.outcome is None and not self._closed:
                    assert self._watch_cursor is not None
                    entries = await self._read(self._watch_cursor)
                    for entry_id, flat in entries or ():
                        self._watch_cursor = reply_text(entry_id)
                        self._dispatch(flat or [])
            finally:
                self._watch_reading = False
                self._hand_over()

    def _hand_over(self) -> None:
        """Wake one waiter that waits for the reader, so that it takes the reading over."""
        for waiters in self._waiters.values():
            for waiter in waiters:
                if waiter.wake is not None and waiter.outcome is None:
                    waiter.wake.set()
                    return

    def _dispatch(self, flat: Sequence[Reply]) -> None:
        fields = {reply_text(flat[i]): reply_text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
        name = fields.get("event")
        if name not in ("completed", "failed"):
            return
        for waiter in self._waiters.get(fields.get("jobId", ""), ()):
            if name == "completed":
                waiter.settle(True, decode_json(fields.get("returnvalue")))
            else:
                waiter.settle(False, fields.get("failedReason", ""))

    # --- Redis ------------------------------------------------------------------------------------

    async def _stream_last_id(self) -> str:
        reply = await self._retrying(
            lambda: self.client.execute("XREVRANGE", self.keys.events, "+", "-", "COUNT", 1)
        )
        return reply_text(reply[0][0]) if reply else "0-0"

    async def _read(self, cursor: str) -> list[Reply] | None:
        """Entries after ``cursor`` (None when the wait ran out, or the reader was closed)."""
        args = ("XREAD", "COUNT", _READ_COUNT, "BLOCK", self.block_ms, "STREAMS", self.keys.events, cursor)
        reply: Reply = None
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                reply = await self._retrying(lambda: self.client.execute_blocking(*args))
            except RedisConnectionError:
                if not self._closed:
                    raise
            finally:
                self._scopes.discard(scope)
        if reply is None:
            return None
        entries: list[Reply] = reply[0][1]
        return entries

    async def _retrying(self, call: Callable[[], Any]) -> Any:
        """``call()``, again after a lost connection (every call here only reads, so repeating it is
        safe), through the client's reconnect; gives up, raising, after the client's
        ``reconnect_timeout`` of failures in a row."""
        first_failure: float | None = None
        delay = 0.0
        while True:
            try:
                return await call()
            except ConnectionLostError:
                if self._closed:
                    raise RedisConnectionError("this QueueEvents has been closed") from None
                now = anyio.current_time()
                settings = self.client.settings
                limit = settings.reconnect_timeout if settings is not None else 30.0
                if first_failure is None:
                    first_failure = now
                elif now - first_failure > limit:
                    raise
                await anyio.sleep(delay)
                delay = min(1.0, max(0.05, delay * 2))

    # --- closing ----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop: iteration ends, waiters raise RedisConnectionError, and the connections close (unless
        the client was passed in, shared). Safe to call from any task, and more than once."""
        if self._closed:
            return
        self._closed = True
        for scope in list(self._scopes):
            scope.cancel()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if waiter.wake is not None:
                    waiter.wake.set()
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> QueueEvents:
        try:
            await self._open()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<QueueEvents {self.keys.qualified_name!r} after {self._last_id or '$'}>"
