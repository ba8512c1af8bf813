"""Moving a queue's jobs through states with sandq's worker scripts, for tests that need active,
completed or failed jobs without running a worker."""

from __future__ import annotations

import sandq
from sandq import worker_scripts as ws
from sandq.connection.resp import Reply
from sandq.queue import now_ms
from sandq.scripts import ScriptCall


def run_script(queue: sandq.SyncQueue, call: ScriptCall) -> Reply:
    return queue.client.run_script(call.script, call.keys, call.args)


def take(queue: sandq.SyncQueue, count: int = 1, *, lock_ms: int = 30_000) -> list[ws.FetchedJob]:
    """Move up to ``count`` jobs to active, locked as a worker would hold them."""
    tokens = [f"t{i}" for i in range(count)]
    call = ws.move_to_active(queue.keys, tokens, now_ms=now_ms(), lock_duration_ms=lock_ms)
    return ws.decode_fetch(run_script(queue, call)).jobs


def finish(queue: sandq.SyncQueue, count: int = 1, *, fail: bool = False, attempts: int = 0) -> list[str]:
    """Take ``count`` jobs and complete them (result "ok") or fail them ("boom"); their ids."""
    entries: list[ws.FinishEntry] = []
    for job in take(queue, count):
        if fail:
            entries.append(ws.Fail(job.id, job.token, "boom", attempts=attempts))
        else:
            entries.append(ws.Complete(job.id, job.token, '"ok"'))
    codes, _ = ws.decode_finish(run_script(queue, ws.finish_jobs(queue.keys, entries, now_ms=now_ms())))
    assert codes == [0] * len(entries)
    return [entry.job_id for entry in entries]
