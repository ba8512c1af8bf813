"""The supervisor: ``Worker`` runs a queue's jobs in sandboxed child processes, under trio.

Theory of operation
-------------------
The worker is the only process that talks to Redis. Every duty is its own task in one nursery, so a
crash in any of them propagates:

- **slots** (one per child): run a job on their child, decide how it ended (``settle``), hand the
  decision to the finisher, and get a fresh child when theirs died.
- **fetcher**: when slots are free, moves up to that many jobs to active in one script call; with
  nothing to fetch it blocks on the queue's ``marker`` (BZPOPMIN, BullMQ's wake-up protocol) until a
  job arrives, the next delayed job is due, or ``drain_delay`` passes; a rate limit makes it wait.
- **finisher**: writes the decisions that are ready in one ``finish_jobs`` call, and in the same call
  fetches jobs for the slots that are free: a busy worker needs one round trip per batch of jobs.
- **writer**: progress, log and data updates, in order, batched into one round trip.
- **lock renewer**: every ``lock_duration / 2`` renews the locks of all running jobs in one call; a
  job whose renewal is refused is cancelled with ``lock_lost`` and never written again.
- **stalled checker**: BullMQ's two-phase sweep every ``stalled_interval`` (shared by all workers).
- **cancel listener**: reads sandq's cancel stream and cancels the jobs this worker runs.

Free slots are *claimed* by whichever of the fetcher and the finisher fetches for them, with no await
between looking and claiming, so a slot is never fetched for twice. Redis outages: every duty retries
with backoff; children keep computing meanwhile, and a result is written once Redis is back (if the
lock still holds; otherwise the script refuses it and the stalled checker recovers the job).

Shutdown (``shutdown()``, or SIGINT/SIGTERM with ``handle_signals``): stop fetching, let running jobs
finish within ``shutdown_timeout``, then cancel the rest with ``shutdown`` and kill them after the
grace; they go back to wait without spending an attempt. A second request skips the wait.
"""

from __future__ import annotations

import base64
import functools
import logging
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from .. import worker_scripts as ws
from ..connection.client import RedisClient, as_client
from ..connection.resp import Reply
from ..connection.settings import RedisSettings
from ..errors import RedisConnectionError, ReplyError, WorkerError
from ..keys import QueueKeys
from ..options import WorkerOptions
from ..scripts import ScriptCall
from .children import Zygote, open_zygote
from .settle import (
    LOCK_LOST,
    SHUTDOWN,
    Complete,
    Decision,
    Fail,
    Forget,
    Postpone,
    Requeue,
    Retry,
    RunningJob,
    read_fetched,
    settle,
)
from .slot import Slot

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

logger = logging.getLogger("sandq.worker")

_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
#: A slot whose last job took less than this (seconds) gets its next job fetched ahead of time.
PREFETCH_BELOW = 0.05
_MAX_SPAWN_FAILURES = 5


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def worker_client_name(prefix: str, queue: str, name: str | None) -> str:
    """BullMQ's worker connection name, ``P:<base64(Q)>[:w:<name>]``, which Node's ``getWorkers``
    (and dashboards) list."""
    encoded = base64.b64encode(queue.encode()).decode()
    return f"{prefix}:{encoded}" + (f":w:{name}" if name else "")


def python_worker_client_name(prefix: str, queue: str, name: str | None) -> str:
    """The name the ``bullmq`` PyPI client gives its workers and lists in ``get_workers``:
    ``P:Q[:w:<name>]``."""
    return f"{prefix}:{queue}" + (f":w:{name}" if name else "")


class Worker:
    """Runs the jobs of ``queue`` with ``processor`` (``"module:function"``) in child processes.

    ``connection``: a URL, RedisSettings or RedisClient (default: sandq's default Redis). Options are
    those of :class:`~sandq.options.WorkerOptions`. Run it under trio: ``await worker.run()``; stop it
    with :meth:`shutdown` (or a signal, with ``handle_signals=True``).
    """

    def __init__(
        self,
        queue: str,
        processor: str,
        connection: RedisClient | RedisSettings | str | None = None,
        **options: Any,
    ) -> None:
        self.options = WorkerOptions(**options)
        self.queue_name = queue
        self.processor = processor
        self.keys = QueueKeys(queue, self.options.prefix)
        self.redis, self._owns_redis = as_client(connection)
        self.redis.dedicated_name = worker_client_name(self.options.prefix, queue, self.options.name)
        self.kill_grace = self.options.kill_grace
        self._zygote: Zygote | None = None
        self._slots: list[Slot] = []
        self._free: list[Slot] = []
        self._after_finish: list[Slot] = []  # idle, kept for the finisher's fetch
        self._slot_freed = trio.Event()
        # job id -> the job and the slot running it, or about to (a prefetched job waits in its inbox)
        self._active: dict[str, tuple[Slot, RunningJob]] = {}
        self._cancelled_before_start: dict[str, str] = {}
        self._results_send, self._results = trio.open_memory_channel[tuple[RunningJob, Decision]](math.inf)
        self._writes_send, self._writes = trio.open_memory_channel[ScriptCall](math.inf)
        self._token_base = uuid.uuid4().hex
        self._token_count = 0
        self._paused_until = 0.0
        self._stopping = False
        self._stopping_event = trio.Event()
        self._immediate = trio.Event()
        self._spawn_failures = 0
        self._requeue_unstarted = False
        self._unfinished = 0  # results sent to the finisher and not yet written
        self._writes_queued = 0
        self._writes_done = 0
        self._writes_progress = trio.Event()
        self._changed = trio.Event()
        self.jobs_finished = 0

    # --- public -------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop: the first call lets running jobs finish (within ``shutdown_timeout``), a second one
        cancels and kills them at once. They go back to wait without spending an attempt."""
        if self._stopping:
            self._immediate.set()
            return
        self._stopping = True
        self._stopping_event.set()
        self._slot_freed.set()

    async def run(
        self, *, handle_signals: bool = False, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until :meth:`shutdown`. Raises ProcessorLoadError (before touching any job) when the
        processor cannot be loaded, WorkerError when children keep failing to start."""
        try:
            await self._run(handle_signals, task_status)
        except BaseExceptionGroup as group:
            # One duty failed (the others were cancelled): raise its error as itself.
            leaf = _only_leaf(group)
            if leaf is None:
                raise
            raise leaf from None

    async def _run(self, handle_signals: bool, task_status: trio.TaskStatus[None]) -> None:
        try:
            async with (
                open_zygote(self.processor, preload=self.options.preload, cwd=os.getcwd()) as zygote,
                trio.open_nursery() as nursery,
            ):
                self._zygote = zygote
                await self.redis.ping()
                # The named marker connection, open from the start: getWorkers lists a busy worker too.
                await self.redis.open_blocking_connection()
                for index in range(self.options.concurrency):
                    slot = Slot(index, self)
                    self._slots.append(slot)
                    await nursery.start(self._serve_slot, slot)
                if handle_signals:
                    nursery.start_soon(self._watch_signals)
                nursery.start_soon(self._writer)
                nursery.start_soon(self._lock_renewer)
                nursery.start_soon(self._stalled_checker)
                nursery.start_soon(self._cancel_listener)
                nursery.start_soon(self._fetcher)
                nursery.start_soon(self._finisher)
                settings = await self.redis.resolve_settings()
                logger.info(
                    "processing queue %s (%s) at %s with %s, %d %s",
                    self.queue_name,
                    self.keys.qualified_name,
                    settings.address,
                    self.processor,
                    self.options.concurrency,
                    "child" if self.options.concurrency == 1 else "children",
                )
                task_status.started()
                await self._stopping_event.wait()
                await self._drain()
                logger.info("stopped after %d job(s)", self.jobs_finished)
                nursery.cancel_scope.cancel()
        finally:
            if self._owns_redis:
                await self.redis.aclose()

    # --- slots --------------------------------------------------------------------------------

    async def _spawn(self) -> Any:
        assert self._zygote is not None
        while True:
            try:
                child = await self._zygote.spawn()
            except WorkerError as exc:
                self._spawn_failures += 1
                if self._spawn_failures >= _MAX_SPAWN_FAILURES:
                    raise WorkerError(
                        f"children failed to start {self._spawn_failures} times in a row; last: {exc}"
                    ) from exc
                logger.warning("a child failed to start (%s); trying again", exc)
                await trio.sleep(_BACKOFF[min(self._spawn_failures, len(_BACKOFF) - 1)])
                continue
            self._spawn_failures = 0
            return child

    async def _serve_slot(
        self, slot: Slot, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        slot.child = await self._spawn()
        task_status.started()
        self._release(slot)
        next_job: RunningJob | None = None
        while True:
            job = next_job if next_job is not None else await slot.inbox.receive()
            slot.assigned = job
            decision = await self._run_on(slot, job)
            self._active.pop(job.id, None)
            # A job prefetched for this slot (see _claim_for_finish) starts right away.
            try:
                next_job = slot.inbox.receive_nowait()
            except trio.WouldBlock:
                next_job = None
            slot.assigned = next_job
            child = slot.child
            if child is not None and child.alive:
                if next_job is None:
                    # Kept for the finisher, which fetches this slot's next job in the call that
                    # writes this one's result: one round trip per job instead of two.
                    self._after_finish.append(slot)
                self._send_result(job, decision)
            else:
                self._send_result(job, decision)
                slot.child = await self._spawn()
                if next_job is None:
                    self._release(slot)

    async def _run_on(self, slot: Slot, job: RunningJob) -> Decision:
        """Run ``job`` on the slot's child, unless it was cancelled (or shutdown began) before it
        started: then it ends as the cancel says, without running."""
        if self._requeue_unstarted:
            return Requeue()
        reason = self._cancelled_before_start.pop(job.id, None)
        if reason is not None:
            return settle(job, outcome=None, cancel_reason=reason)
        child = slot.child
        assert child is not None
        started = trio.current_time()
        decision = await slot.run(job, child)
        slot.short = trio.current_time() - started < PREFETCH_BELOW
        return decision

    def _cancel(self, job_id: str, reason: str) -> None:
        """Cancel a job this worker holds: running, or fetched and not yet started."""
        entry = self._active.get(job_id)
        if entry is None:
            return
        slot = entry[0]
        if slot.job is not None and slot.job.id == job_id:
            slot.request_cancel(reason)
        else:
            self._cancelled_before_start.setdefault(job_id, reason)

    def _send_result(self, job: RunningJob, decision: Decision) -> None:
        # Counted until written: an item handed to a waiting receiver is in no buffer meanwhile.
        self._unfinished += 1
        self._results_send.send_nowait((job, decision))

    def _release(self, slot: Slot) -> None:
        if slot not in self._free:
            self._free.append(slot)
        self._slot_freed.set()
        self._notify()

    def _claim_free(self) -> list[Slot]:
        if self._stopping or trio.current_time() < self._paused_until:
            return []
        claimed, self._free = self._free, []
        return claimed

    def _claim_for_finish(self) -> list[Slot]:
        """The finisher's claim: the slots kept for it, any other free ones, and busy slots whose
        jobs are short (the last took under PREFETCH_BELOW) and that have no job waiting: for those
        the next job is prefetched, so that their child starts it as soon as the current one ends,
        without waiting for a round trip to Redis. A long job never has a job waiting behind it."""
        kept, self._after_finish = self._after_finish, []
        if self._stopping or trio.current_time() < self._paused_until:
            for slot in kept:
                self._release(slot)
            return []
        idle = kept + self._claim_free()
        ahead = [slot for slot in idle if slot.short]  # a second job, to wait behind the first
        busy = [
            slot
            for slot in self._slots
            if slot.assigned is not None and slot.short and not slot.inbox.statistics().current_buffer_used
        ]
        return idle + busy + ahead

    def _next_token(self) -> str:
        self._token_count += 1
        return f"{self._token_base}:{self._token_count}"

    def _dispatch(self, claimed: list[Slot], fetched: ws.FetchResult | None) -> None:
        """Hand fetched jobs to the claimed slots (in order); the slots left over are free again."""
        jobs = fetched.jobs if fetched is not None else []
        for slot, item in zip(claimed, jobs, strict=False):
            # Registered now, not when the slot's task gets to it: an item handed to a waiting task
            # is in no buffer meanwhile, and shutdown must still see it.
            job = read_fetched(item.id, item.token, item.fields)
            self._active[item.id] = (slot, job)
            if slot.assigned is None:
                slot.assigned = job
                # Claimed busy to prefetch, it went idle meanwhile: it is taken again now.
                if slot in self._after_finish:
                    self._after_finish.remove(slot)
                if slot in self._free:
                    self._free.remove(slot)
            slot.inbox_send.send_nowait(job)
        for slot in claimed[len(jobs) :]:
            # Idle: free again. A slot claimed busy to prefetch stays busy, or, if it went idle
            # meanwhile, stays kept for the finisher, which has its result to write.
            if slot.assigned is None and slot not in self._after_finish:
                self._release(slot)
        if fetched is not None and fetched.rate_limit_ttl_ms > 0:
            self._paused_until = trio.current_time() + fetched.rate_limit_ttl_ms / 1000

    def _fetch_spec(self, claimed: Sequence[Slot]) -> ws.FetchSpec | None:
        if not claimed:
            return None
        return ws.FetchSpec(
            tokens=[self._next_token() for _ in claimed],
            lock_duration_ms=round(self.options.lock_duration * 1000),
            worker_name=self.options.name or "",
            limiter=self._limiter(),
        )

    def _limiter(self) -> tuple[int, int] | None:
        if self.options.limiter is None:
            return None
        max_jobs, per = self.options.limiter
        return max_jobs, round(per * 1000)

    # --- fetcher ------------------------------------------------------------------------------

    async def _fetcher(self) -> None:
        while not self._stopping:
            claimed = self._claim_free()
            if not claimed:
                self._slot_freed = trio.Event()
                wait = self._paused_until - trio.current_time()
                with trio.move_on_after(max(wait, 0) if wait > 0 else math.inf):
                    await self._slot_freed.wait()
                continue
            spec = self._fetch_spec(claimed)
            assert spec is not None
            try:
                reply = await self._call(
                    ws.move_to_active(
                        self.keys,
                        spec.tokens,
                        now_ms=wall_ms(),
                        lock_duration_ms=spec.lock_duration_ms,
                        worker_name=spec.worker_name,
                        limiter=spec.limiter,
                    )
                )
            except RedisConnectionError as exc:
                for slot in claimed:
                    self._release(slot)
                logger.warning("fetching jobs: %s", exc)
                await trio.sleep(1)
                continue
            except BaseException:
                for slot in claimed:
                    self._release(slot)
                raise
            fetched = ws.decode_fetch(reply)
            self._dispatch(claimed, fetched)
            if fetched.jobs or fetched.rate_limit_ttl_ms:
                continue
            if self.options.burst and self._idle():
                logger.info("no job waiting or running: stopping (--burst)")
                self.shutdown()
                return
            await self._wait_for_marker(fetched.next_delayed_ms)

    def _idle(self) -> bool:
        """Nothing running, nothing about to run, nothing left to write."""
        return (
            not self._active
            and len(self._free) + len(self._after_finish) == len(self._slots)
            and not self._unfinished
        )

    async def _wait_for_marker(self, next_delayed_ms: int) -> None:
        timeout = 0.1 if self.options.burst else self.options.drain_delay
        if next_delayed_ms:
            timeout = min(timeout, max((next_delayed_ms - wall_ms()) / 1000, 0.001))
        timeout = max(timeout, 0.001)
        try:
            await self.redis.execute_blocking("BZPOPMIN", self.keys.marker, f"{timeout:.3f}")
        except RedisConnectionError as exc:
            logger.warning("waiting for jobs: %s", exc)
            await trio.sleep(1)

    # --- finisher -----------------------------------------------------------------------------

    async def _finisher(self) -> None:
        async for first in self._results:
            batch = [first]
            while True:
                try:
                    batch.append(self._results.receive_nowait())
                except trio.WouldBlock:
                    break
            try:
                await self._finish(batch)
            finally:
                self._unfinished -= len(batch)
                self._notify()

    async def _finish(self, batch: list[tuple[RunningJob, Decision]]) -> None:
        entries: list[ws.FinishEntry] = []
        for job, decision in batch:
            entry = self._entry(job, decision)
            if entry is not None:
                entries.append(entry)
            if isinstance(decision, Requeue) and decision.pause_ms:
                self._paused_until = max(self._paused_until, trio.current_time() + decision.pause_ms / 1000)
            self._log_decision(job, decision)
        self.jobs_finished += len(batch)
        if not entries:
            for slot in self._after_finish:
                self._release(slot)
            self._after_finish = []
            return
        await self._writes_flushed(self._writes_queued)  # a job's updates land before its finish
        delay = 0
        while True:
            claimed = self._claim_for_finish()
            spec = self._fetch_spec(claimed)
            try:
                reply = await self.redis.run_script(
                    *_unpack(ws.finish_jobs(self.keys, entries, now_ms=wall_ms(), fetch=spec))
                )
            except RedisConnectionError as exc:
                for slot in claimed:
                    self._release(slot)
                logger.warning("could not write %d finished job(s), retrying: %s", len(entries), exc)
                await trio.sleep(_BACKOFF[min(delay, len(_BACKOFF) - 1)])
                delay += 1
                continue
            except BaseException:
                for slot in claimed:
                    self._release(slot)
                raise
            codes, fetched = ws.decode_finish(reply)
            for entry, code in zip(entries, codes, strict=True):
                if code != 0:
                    logger.warning(
                        "job %s could not be finished (code %s): its lock is gone", entry.job_id, code
                    )
            self._dispatch(claimed, fetched)
            return

    def _entry(self, job: RunningJob, decision: Decision) -> ws.FinishEntry | None:
        if isinstance(decision, Forget):
            return None
        if isinstance(decision, Complete):
            keep = ws.retention(job.opts.get("removeOnComplete"), self.options.remove_on_complete)
            return ws.Complete(job.id, job.token, decision.returnvalue_json, keep)
        if isinstance(decision, Fail):
            keep = ws.retention(job.opts.get("removeOnFail"), self.options.remove_on_fail)
            trace = ws.stacktrace_json(decision.stacktrace)
            return ws.Fail(job.id, job.token, decision.reason, trace, keep, job.attempts)
        if isinstance(decision, Retry):
            trace = ws.stacktrace_json(decision.stacktrace)
            return ws.Retry(job.id, job.token, decision.delay_ms, decision.reason, trace, job.lifo)
        if isinstance(decision, Postpone):
            return ws.Delay(job.id, job.token, decision.delay_ms)
        return ws.Requeue(job.id, job.token)

    def _log_decision(self, job: RunningJob, decision: Decision) -> None:
        if isinstance(decision, Complete):
            if logger.isEnabledFor(logging.INFO):
                value = decision.returnvalue_json
                logger.info(
                    "job %s (%s) completed: %s",
                    job.id,
                    job.name,
                    value if len(value) < 200 else value[:197] + "...",
                )
        elif isinstance(decision, Fail):
            logger.info("job %s (%s) failed: %s", job.id, job.name, decision.reason)
        elif isinstance(decision, Retry):
            logger.info(
                "job %s (%s) will be retried in %d ms: %s",
                job.id,
                job.name,
                decision.delay_ms,
                decision.reason,
            )
        elif isinstance(decision, Forget):
            logger.warning(
                "job %s (%s) lost its lock; leaving it to the worker that holds it", job.id, job.name
            )

    # --- writer: progress, logs, data -------------------------------------------------------------

    def write_progress(self, job: RunningJob, progress_json: str) -> None:
        self._enqueue_write(ws.update_progress(self.keys, job.id, progress_json))

    def write_logs(self, job: RunningJob, lines: Sequence[str]) -> None:
        keep = job.opts.get("kl")
        keep_logs = keep if isinstance(keep, int) and not isinstance(keep, bool) and keep > 0 else None
        for line in lines:
            self._enqueue_write(ws.add_log(self.keys, job.id, line, keep_logs))

    def write_data(self, job: RunningJob, data_json: str) -> None:
        self._enqueue_write(ws.update_data(self.keys, job.id, data_json))

    def _enqueue_write(self, call: ScriptCall) -> None:
        self._writes_queued += 1
        self._writes_send.send_nowait(call)

    async def _writer(self) -> None:
        async for first in self._writes:
            batch = [first]
            while True:
                try:
                    batch.append(self._writes.receive_nowait())
                except trio.WouldBlock:
                    break
            calls = [_unpack(call) for call in batch]
            await self._retrying(functools.partial(self.redis.run_scripts, calls), "job updates")
            self._writes_done += len(batch)
            self._writes_progress.set()
            self._writes_progress = trio.Event()

    async def _writes_flushed(self, target: int) -> None:
        """Wait until the first ``target`` updates ever queued are written."""
        while self._writes_done < target:
            await self._writes_progress.wait()

    # --- locks, stalled jobs, cancels ------------------------------------------------------------------

    async def _lock_renewer(self) -> None:
        period = self.options.lock_duration / 2
        duration_ms = round(self.options.lock_duration * 1000)
        while True:
            await trio.sleep(period)
            pairs = [(job_id, job.token) for job_id, (_, job) in self._active.items()]
            if not pairs:
                continue
            try:
                reply = await self._call(ws.extend_locks(self.keys, pairs, duration_ms))
            except RedisConnectionError as exc:
                logger.warning("could not renew %d lock(s): %s", len(pairs), exc)
                continue
            for job_id in ws.decode_extend_locks(reply):
                self._cancel(job_id, LOCK_LOST)

    async def _stalled_checker(self) -> None:
        while True:
            try:
                reply = await self._call(
                    ws.move_stalled_jobs_to_wait(
                        self.keys,
                        max_stalled_count=self.options.max_stalled_count,
                        now_ms=wall_ms(),
                        stalled_interval_ms=round(self.options.stalled_interval * 1000),
                    )
                )
                moved = ws.decode_stalled(reply)
                if moved:
                    logger.warning("moved %d stalled job(s) back to wait: %s", len(moved), ", ".join(moved))
            except RedisConnectionError as exc:
                logger.warning("stalled-job check: %s", exc)
            await trio.sleep(self.options.stalled_interval)

    async def _cancel_listener(self) -> None:
        # Its own client, named as the PyPI client names its workers (the marker connection has the
        # name Node's clients look for), so that each client's getWorkers lists this worker once.
        name = python_worker_client_name(self.options.prefix, self.queue_name, self.options.name)
        async with RedisClient(await self.redis.resolve_settings(), client_name=name) as listener:
            await self._listen_for_cancels(listener)

    async def _listen_for_cancels(self, listener: RedisClient) -> None:
        last = "$"
        while True:
            try:
                reply = await listener.execute_blocking(
                    "XREAD", "BLOCK", 5000, "STREAMS", self.keys.cancels, last
                )
            except RedisConnectionError as exc:
                logger.warning("cancel listener: %s", exc)
                await trio.sleep(1)
                continue
            for _stream, entries in reply or ():
                for entry_id, flat in entries:
                    last = entry_id.decode()
                    fields = dict(zip(flat[0::2], flat[1::2], strict=True))
                    job_id = fields.get(b"jobId", b"").decode()
                    reason = fields.get(b"reason", b"").decode() or "cancelled"
                    if job_id in self._active:
                        logger.info("cancelling job %s: %s", job_id, reason)
                        self._cancel(job_id, reason)

    # --- shutdown -----------------------------------------------------------------------------

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                first = not self._stopping
                logger.warning(
                    "%s: %s",
                    signal.Signals(signum).name,
                    "finishing running jobs (again to stop at once)" if first else "stopping now",
                )
                self.shutdown()

    async def _drain(self) -> None:
        """Let running jobs end (up to shutdown_timeout, or until a second request), then cancel the
        rest with ``shutdown`` (killed after the grace, or at once after a second request), and wait
        until every result is written."""
        if not self._immediate.is_set():
            with trio.move_on_after(self.options.shutdown_timeout):
                async with trio.open_nursery() as nursery:

                    async def until_idle() -> None:
                        await self._wait_idle()
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(until_idle)
                    await self._immediate.wait()
                    nursery.cancel_scope.cancel()
        if self._immediate.is_set():
            self.kill_grace = 0
        self._requeue_unstarted = True
        for slot in self._slots:
            slot.request_cancel(SHUTDOWN)
        await self._wait_idle()
        while self._unfinished:
            await self._changed.wait()
        await self._writes_flushed(self._writes_queued)

    async def _wait_idle(self) -> None:
        while self._active:
            await self._changed.wait()

    def _notify(self) -> None:
        """Wake whoever waits for the worker's state to change (jobs ending, results written)."""
        self._changed.set()
        self._changed = trio.Event()

    # --- Redis, with retries ------------------------------------------------------------------

    async def _call(self, call: ScriptCall) -> Reply:
        return await self.redis.run_script(call.script, call.keys, call.args)

    async def _retrying(self, attempt: Callable[[], Awaitable[Any]], what: str) -> Any:
        failures = 0
        while True:
            try:
                return await attempt()
            except RedisConnectionError as exc:
                logger.warning("could not write %s, retrying: %s", what, exc)
            except ReplyError as exc:
                logger.warning("could not write %s: %s", what, exc)
                return None
            await trio.sleep(_BACKOFF[min(failures, len(_BACKOFF) - 1)])
            failures += 1


def _only_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside (nested) groups, or None if there are several."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 else None


def _unpack(call: ScriptCall) -> tuple[Any, ...]:
    return call.script, call.keys, call.args
