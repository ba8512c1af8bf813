"""Processors of the interop scenarios (``tests/test_snapshot.py``, ``tests/test_interop_scenarios.py``).

The same functions run under both workers: ``sandq run processors.scenarios:NAME`` calls them with a
sandq ``Job``, and the bullmq Worker of ``tests/snapshot.py`` calls them with a view of its own Job that
offers the same few things (:class:`ScenarioJob`). What a job does is read from its data, so that a
whole scenario needs one processor.
"""

from __future__ import annotations

import time
from typing import Any, Protocol


class ScenarioJob(Protocol):
    """What these processors use of a job: a sandq Job has it, and so has the bullmq adapter."""

    id: str
    name: str
    data: Any
    attempts_made: int

    def update_progress(self, progress: Any) -> None: ...

    def log(self, line: str) -> None: ...


def echo(job: ScenarioJob, token: Any) -> Any:
    """Returns what it was given, and how many attempts had been made before this one."""
    return {"name": job.name, "data": job.data, "attempt": job.attempts_made}


def flaky(job: ScenarioJob, token: Any) -> Any:
    """Raises ValueError until ``attempts_made`` reaches ``data["succeed_on"]`` (without it: always)."""
    succeed_on = job.data.get("succeed_on")
    if succeed_on is None or job.attempts_made < succeed_on:
        raise ValueError(f"{job.name}: attempt {job.attempts_made + 1} failed")
    return {"succeeded_on": job.attempts_made + 1}


def report(job: ScenarioJob, token: Any) -> Any:
    """Reports progress twice (a number, then an object) and writes two log lines."""
    job.update_progress(50)
    job.log(f"{job.name}: started")
    job.log(f"{job.name}: working on {job.data}")
    job.update_progress({"done": True, "step": job.data.get("step")})
    return "reported"


def hold(job: ScenarioJob, token: Any) -> Any:
    """Logs that it started, then sleeps for ``data["seconds"]`` (the stalled tests kill it meanwhile)."""
    job.log(f"{job.name}: holding")
    time.sleep(job.data.get("seconds", 30))
    return "held"
