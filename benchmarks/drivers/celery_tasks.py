"""The Celery app and benchmark task (see ``common.job_result``), shared by the driver (producer) and the
``celery -A celery_tasks worker`` it starts, which read the measurement's Redis URL and queue name from
the environment (``SANDQ_BENCH_REDIS``, ``SANDQ_BENCH_QUEUE``).

Redis is both broker and result backend. Tasks go to a queue, exchange and routing key named after the
measurement's queue, and every broker and result key is prefixed with ``<queue>:`` (the transport's
and the backend's ``global_keyprefix``), so that all the keys of a measurement contain its name.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from common import job_result

QUEUE = os.environ["SANDQ_BENCH_QUEUE"]
REDIS = os.environ["SANDQ_BENCH_REDIS"]
PREFIX = f"{QUEUE}:"

app = Celery("sandq_bench", broker=REDIS, backend=REDIS)
app.conf.update(
    broker_transport_options={"global_keyprefix": PREFIX},
    result_backend_transport_options={"global_keyprefix": PREFIX},
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    broker_connection_retry_on_startup=True,
)


@app.task(name="job")
def job(data: dict[str, Any]) -> dict[str, Any]:
    return job_result(data)
