"""The processor of the Node interop tests: does what ``job.data["do"]`` lists, exactly as ``act`` in
``tests/node/peer.mjs`` does for a Node worker, so that one job behaves the same on either side.

Actions: ``{"progress": x}``, ``{"log": "line"}``, ``{"log_attempt": true}`` (logs ``attempt N at
<ms>``), ``{"sleep": ms}``, ``{"throw": "message"}``, ``{"fail_until": n, "message": "..."}`` (raises
while ``attempts_made < n``), ``{"hang_on_first_start": true}`` (never returns on the job's first start;
a cancel ends the wait). Returns ``data["return"]`` when present, else the job's name and counters.
"""

from __future__ import annotations

import time
from typing import Any

from sandq.child import CancelToken
from sandq.job import Job


def act(job: Job, token: CancelToken) -> Any:
    data = job.data if isinstance(job.data, dict) else {}
    for step in data.get("do", []):
        if "progress" in step:
            job.update_progress(step["progress"])
        elif "log" in step:
            job.log(step["log"])
        elif "log_attempt" in step:
            job.log(f"attempt {job.attempts_made} at {time.time_ns() // 1_000_000}")
        elif "sleep" in step:
            time.sleep(step["sleep"] / 1000)
        elif "throw" in step:
            raise RuntimeError(step["throw"])
        elif "fail_until" in step:
            if job.attempts_made < step["fail_until"]:
                raise RuntimeError(step.get("message") or f"attempt {job.attempts_made} fails")
        elif "hang_on_first_start" in step:
            if job.attempts_started <= 1:
                token.wait(3600)
                return {"cancelled": token.reason}
        else:
            raise ValueError(f"unknown action {step!r}")
    if "return" in data:
        return data["return"]
    return {"name": job.name, "attemptsMade": job.attempts_made, "attemptsStarted": job.attempts_started}
