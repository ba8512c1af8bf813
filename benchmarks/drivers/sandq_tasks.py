"""The benchmark job for sandq (run in sandq's child processes): see ``common.job_result``."""

from __future__ import annotations

from typing import Any

from common import job_result


def job(job: Any, token: Any) -> dict[str, Any]:
    return job_result(job.data)
