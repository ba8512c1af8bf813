"""The benchmark job for RQ (run by ``rq.Worker``'s work horses or in ``rq.SimpleWorker``): see
``common.job_result``. RQ imports it by name (``rq_tasks.job``) from PYTHONPATH, which the suite sets.
"""

from __future__ import annotations

from typing import Any

from common import job_result


def job(data: dict[str, Any]) -> dict[str, Any]:
    return job_result(data)
