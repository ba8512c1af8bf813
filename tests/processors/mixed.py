"""A processor whose behaviour each job picks, so that one worker can run different kinds of job."""

from __future__ import annotations

import time
from typing import Any

from sandq.child import CancelToken
from sandq.job import Job


def mixed(job: Job, token: CancelToken) -> Any:
    if job.data.get("spin"):
        while True:  # 100% CPU, deaf to cancels
            pass
    if job.data.get("sleep"):
        time.sleep(job.data["sleep"])
    return job.data
