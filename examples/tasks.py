"""Example processors. Each is a plain function of ``(job, token)``; run one with

sandq add demo square '{"x": 7}'
sandq run examples.tasks:square --queue demo --burst
"""

from __future__ import annotations

import hashlib
import time

import sandq


def square(job: sandq.Job, token: sandq.CancelToken) -> dict[str, int]:
    """The square of ``data["x"]``."""
    x = job.data["x"]
    if not isinstance(x, int):
        raise sandq.UnrecoverableError(f"x must be an integer, not {x!r}")  # no point retrying
    return {"square": x * x}


def crunch(job: sandq.Job, token: sandq.CancelToken) -> dict[str, str]:
    """CPU-bound work: hash ``data["text"]`` ``data["rounds"]`` times, reporting progress, stopping
    early if the job is cancelled (a timeout, ``sandq cancel``, a shutdown)."""
    digest = str(job.data.get("text", "sandq")).encode()
    rounds = int(job.data.get("rounds", 200_000))
    step = max(rounds // 10, 1)
    for done in range(rounds):
        digest = hashlib.sha256(digest).digest()
        if done % step == 0:
            token.raise_if_cancelled()
            job.update_progress(100 * done // rounds)
    job.log(f"{rounds} rounds of sha256")
    return {"digest": digest.hex()}


def nap(job: sandq.Job, token: sandq.CancelToken) -> str:
    """Sleep ``data["seconds"]``, a tenth of a second at a time, unless cancelled."""
    deadline = time.monotonic() + float(job.data.get("seconds", 1))
    while time.monotonic() < deadline:
        token.raise_if_cancelled()
        time.sleep(0.1)
    return "rested"
