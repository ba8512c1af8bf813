"""Job processors for ``benchmarks/throughput.py``: the same work for every Python contender.

* sandq runs ``benchmarks.processors:noop`` / ``:cpu`` / ``:spin`` (``def f(job, token)``) in its
  child processes, imported from the repository root;
* the bullmq PyPI worker runs ``bullmq_noop`` / ``bullmq_cpu`` (``async def f(job, token)``)
  in-process; ``bullmq_cpu`` does its work inline, blocking the event loop, as a CPU-bound processor
  written for that worker would.

The CPU-bound work is :func:`burn`: ``n`` iterations of 32-bit integer arithmetic, where ``n``
comes from the job's data (``throughput.py`` calibrates it to about 10 ms once, at start). It returns
a checksum that depends on every iteration, so the benchmark can check each job's return value and
no contender can skip the work. ``benchmarks/node/work.js`` computes the same function in JavaScript.
"""

from __future__ import annotations

import time
from typing import Any

MASK = 0xFFFFFFFF


def burn(n: int) -> int:
    """``n`` rounds of ``x = (x * 31 + i) mod 2**32``: pure-Python integer work, ~50-100 ns a round."""
    x = 0
    for i in range(n):
        x = (x * 31 + i) & MASK
    return x


# --- sandq (run in sandq's child processes) -----------------------------------------------------


def noop(job: Any, token: Any) -> Any:
    return job.data


def cpu(job: Any, token: Any) -> Any:
    return {"i": job.data["i"], "x": burn(job.data["n"])}


def spin(job: Any, token: Any) -> Any:
    """Spins without ever looking at its token: only a kill ends it. Other jobs (no ``spin`` key in
    their data) return at once, with the wall-clock time (ms) at which they started, so one worker can
    alternate killed jobs and quick ones, and the benchmark can tell when the quick one really started
    (its ``processedOn`` is earlier when sandq fetched it ahead, while the killed job still ran)."""
    if job.data.get("spin"):
        while True:
            pass
    return {"k": job.data["k"], "started": time.time() * 1000}


# --- the bullmq PyPI worker (in-process, asyncio) -----------------------------------------------


async def bullmq_noop(job: Any, token: Any) -> Any:
    return job.data


async def bullmq_cpu(job: Any, token: Any) -> Any:
    return {"i": job.data["i"], "x": burn(job.data["n"])}
