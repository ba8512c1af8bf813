"""One slot of the worker: a child process, and the job it runs.

Theory of operation
-------------------
A slot's task sends ``Run`` to its child and then reads the child's messages until ``Done``, the child
dies, or it has to be killed. Three deadlines can end the wait, all on the trio clock:

- the job's time limit: then the slot cancels the job with reason ``timeout``;
- after any cancel (timeout, a user's cancel, a lost lock, shutdown), the kill grace: then the slot
  SIGKILLs the child's process group;
- a cancel requested by another task (``request_cancel``) wakes the wait at once.

Messages carrying another token than the current job's are dropped: a late message of a cancelled job
can never complete or overwrite anything. Progress, log and data updates are handed to the worker's
writer (never awaited on Redis here, so an unreachable Redis cannot hold a deadline up). A slot whose
child died gets a fresh one from the zygote before it takes another job.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

import trio

from ..errors import ProtocolViolation
from ..protocol import Cancel, Done, Failure, JobPayload, Log, Outcome, Progress, Run, UpdateData
from .children import Child, ChildGone
from .settle import TIMEOUT, Decision, RunningJob, settle

if TYPE_CHECKING:
    from .worker import Worker

#: At most this much of a job's captured stdout/stderr goes into its log, as the last lines.
OUTPUT_TAIL_LINES = 50


class Slot:
    """A child process and the job it is running (if any)."""

    def __init__(self, index: int, worker: Worker) -> None:
        self.index = index
        self.worker = worker
        self.child: Child | None = None
        self.job: RunningJob | None = None  # the job running now
        self.assigned: RunningJob | None = None  # the job running or about to run: the slot is busy
        self.short = False  # the last job took under PREFETCH_BELOW: a next one may be fetched ahead
        self.cancel_reason: str | None = None
        self._wake: trio.CancelScope | None = None
        self.inbox_send, self.inbox = trio.open_memory_channel[RunningJob](2)  # running + prefetched

    def request_cancel(self, reason: str) -> None:
        """Cancel the running job (if any, and not already cancelled) with ``reason``."""
        if self.job is None or self.cancel_reason is not None:
            return
        self.cancel_reason = reason
        if self._wake is not None:
            self._wake.cancel()

    async def run(self, job: RunningJob, child: Child) -> Decision:
        """Run ``job`` on ``child`` and decide how it ends."""
        self.job, self.cancel_reason = job, None
        options = self.worker.options
        timeout_ms = job.timeout_ms
        if timeout_ms is None and options.timeout is not None:
            timeout_ms = round(options.timeout * 1000)
        outcome: Outcome | None = None
        returncode: int | None = None
        try:
            if job.malformed is None and job.deferred_failure is None:
                outcome, returncode = await self._drive(job, child, timeout_ms)
        finally:
            self.job = None
        output = child.take_output()
        if output:
            lines = output.splitlines()[-OUTPUT_TAIL_LINES:]
            self.worker.write_logs(job, lines)
        return settle(
            job,
            outcome=outcome,
            cancel_reason=self.cancel_reason,
            returncode=returncode,
            timeout_ms=timeout_ms,
            stack_trace_limit=options.stack_trace_limit,
        )

    async def _drive(
        self, job: RunningJob, child: Child, timeout_ms: int | None
    ) -> tuple[Outcome | None, int | None]:
        worker = self.worker
        now = trio.current_time()
        deadline = now + timeout_ms / 1000 if timeout_ms else math.inf
        kill_at = math.inf
        cancel_sent = False
        try:
            await child.send(Run(job.token, _payload(job, worker.queue_name)))
        except ChildGone:
            return None, await child.wait()
        except ProtocolViolation as exc:  # e.g. data over the frame limit: the job can never run
            return Failure("ProtocolViolation", f"the job cannot be sent to a child: {exc}", "", True), None
        while True:
            if self.cancel_reason is not None and not cancel_sent:
                cancel_sent = True
                kill_at = trio.current_time() + worker.kill_grace  # read now: a second shutdown zeroes it
                with contextlib.suppress(
                    ChildGone, trio.BrokenResourceError, trio.ClosedResourceError, OSError
                ):
                    await child.send(Cancel(job.token, self.cancel_reason))
            now = trio.current_time()
            if now >= kill_at:
                child.kill()
                return None, await child.wait()
            if self.cancel_reason is None and now >= deadline:
                self.cancel_reason = TIMEOUT
                continue
            wake_at = kill_at if self.cancel_reason is not None else deadline
            with trio.CancelScope(deadline=wake_at) as scope:
                self._wake = scope
                try:
                    message = await child.receive()
                except ChildGone:
                    return None, await child.wait()
                finally:
                    self._wake = None
            if scope.cancelled_caught:
                continue
            if getattr(message, "token", None) != job.token:
                continue  # a late message of an earlier job, or not about a job at all
            if isinstance(message, Done):
                return message.outcome, None
            if isinstance(message, Progress):
                worker.write_progress(job, message.progress_json)
            elif isinstance(message, Log):
                worker.write_logs(job, [message.line])
            elif isinstance(message, UpdateData):
                worker.write_data(job, message.data_json)


def _payload(job: RunningJob, queue: str) -> JobPayload:
    return JobPayload(
        id=job.id,
        name=job.name,
        data_json=job.data_json,
        opts_json=job.opts_json,
        timestamp=job.timestamp,
        attempts_made=job.attempts_made,
        attempts_started=job.attempts_started,
        processed_on=job.processed_on,
        progress_json=job.progress_json,
        queue=queue,
    )
