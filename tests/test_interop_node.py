"""sandq and Node ``bullmq`` (6.x and 5.81.3) on one Redis, in both directions.

- **Scenarios** (each for both Node versions and both directions: Node producer -> ``sandq run`` worker,
  sandq ``SyncQueue`` producer -> Node Worker): plain, LIFO, custom and duplicate custom ids, delayed,
  prioritized, retries with fixed and exponential (jittered) backoff, a failure with its stack trace,
  progress, logs, removeOnComplete/removeOnFail. They run as one batch of jobs per version and direction
  (the ``batch`` fixture); each test checks its part, read back through Node's getters and the events
  stream. Pause/resume and a stalled job (a worker process killed mid-job, recovered by the other side)
  have runs of their own.
- **Comparison**: the same jobs run on a Node-run queue (Node producer and worker) and on a sandq-run
  queue (sandq producer and worker). Node's getters (counts, getJobs pages, job fields, logs,
  getWorkers) and Node's QueueEvents must give the same answers for both, ids and times normalised.

Both sides run the same processor: ``act`` in ``tests/node/peer.mjs`` and ``tests/processors/interop.py``
do what ``job.data["do"]`` lists. Node is driven through ``node_peer.NodePeer``; the sandq worker is the
real ``sandq run`` in a subprocess. Without node on the PATH every test here is skipped.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import pytest
import redis

from sandq import JobState, SyncQueue

from node_peer import VERSIONS, NodePeer, node_install

TESTS = pathlib.Path(__file__).parent
SANDQ = os.path.join(os.path.dirname(sys.executable), "sandq")
PROCESSOR = "processors.interop:act"
WORKER_NAME = "peer"
DIRECTIONS = ("node-to-sandq", "sandq-to-node")
FINISHED = (JobState.COMPLETED, JobState.FAILED, JobState.UNKNOWN)


# --- plumbing --------------------------------------------------------------------------------------


@pytest.fixture(scope="session", params=VERSIONS, ids=[f"bullmq{v}" for v in VERSIONS])
def node(request: pytest.FixtureRequest) -> pathlib.Path:
    """The folder of one Node bullmq install (installed on first use; skips without node)."""
    return node_install(request.param)


@contextmanager
def fresh_queue(redis_url: str) -> Iterator[str]:
    """A queue name for a module-scoped fixture (``queue_name`` is per test); its keys are deleted after."""
    name = f"n{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        doomed = list(client.scan_iter(f"*{name}*", count=1000))
        if doomed:
            client.delete(*doomed)
    finally:
        client.close()


def wait_until(
    condition: Callable[[], bool], within: float = 15.0, log: Callable[[], str] | None = None
) -> None:
    """Poll ``condition`` until true; on a timeout, fail with ``log()`` (a worker's log) if given."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {within}s: {condition}\n{log() if log else ''}")
        time.sleep(0.02)


class SandqWorker:
    """``sandq run processors.interop:act`` in a subprocess (named ``peer``), its log in a file."""

    def __init__(self, redis_url: str, queue: str, *args: str) -> None:
        self._log: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in close())
        command = [SANDQ, "run", PROCESSOR, "--queue", queue, "--redis", redis_url, "--name", WORKER_NAME]
        self.process = subprocess.Popen(
            [*command, *args], cwd=TESTS, stdout=self._log, stderr=subprocess.STDOUT, text=True
        )

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def stop(self) -> None:
        """SIGTERM, and the clean exit a shutdown promises."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(15) == 0, self.log()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


@contextmanager
def sandq_worker(redis_url: str, queue: str, *args: str) -> Iterator[SandqWorker]:
    worker = SandqWorker(redis_url, queue, *args)
    try:
        yield worker
    finally:
        worker.close()


@dataclass(frozen=True)
class Spec:
    """One job to add, the same from either side: sandq's option names, converted for Node."""

    key: str
    name: str
    data: Any = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def node(self) -> dict[str, Any]:
        names = {
            "job_id": "jobId",
            "remove_on_complete": "removeOnComplete",
            "remove_on_fail": "removeOnFail",
            "keep_logs": "keepLogs",
        }
        opts = {names.get(key, key): value for key, value in self.options.items()}
        return {"name": self.name, "data": self.data, "opts": opts}


def add_jobs(side: str, peer: NodePeer | None, queue: SyncQueue, specs: Sequence[Spec]) -> dict[str, str]:
    """Add ``specs`` in order from ``side`` ("node" or "sandq"); their ids by key."""
    if side == "node":
        assert peer is not None
        ids = peer.call("add", queue=queue.name, jobs=[spec.node() for spec in specs])
    else:
        ids = [queue.add(spec.name, spec.data, **spec.options).id for spec in specs]
    return {spec.key: job_id for spec, job_id in zip(specs, ids, strict=True)}


def all_finished(queue: SyncQueue, ids: Sequence[str]) -> Callable[[], bool]:
    return lambda: all(queue.get_job_state(job_id) in FINISHED for job_id in ids)


def stream(raw: redis.Redis, queue: str) -> list[tuple[int, dict[str, str]]]:
    """The queue's events: (ms of the entry id, fields), oldest first."""
    entries: list[tuple[str, dict[str, str]]] = raw.xrange(f"bull:{queue}:events")  # type: ignore[assignment]
    return [(int(entry_id.split("-")[0]), fields) for entry_id, fields in entries]


def events_of(entries: Sequence[tuple[int, dict[str, str]]], job_id: str) -> list[dict[str, str]]:
    return [fields for _, fields in entries if fields.get("jobId") == job_id]


def node_worker_options(**extra: Any) -> dict[str, Any]:
    return {"name": WORKER_NAME, "concurrency": 1, "drainDelay": 1, **extra}


# --- the scenario batch ------------------------------------------------------------------------------

ATTEMPT_LOG = [{"log_attempt": True}]
BATCH = [
    Spec("plain1", "plain", {"text": "héllo wörld ☃", "n": [1, 2.5, None]}),
    Spec("plain2", "plain", {"i": 2}),
    Spec("lifo", "lifo", {"i": 3}, {"lifo": True}),
    Spec("custom", "custom", {"v": 1}, {"job_id": "order-7"}),
    Spec("duplicate", "custom", {"v": 2}, {"job_id": "order-7"}),
    Spec("fixed", "retry", {"do": [*ATTEMPT_LOG, {"fail_until": 2}]}, {"attempts": 3, "backoff": 150}),
    Spec(
        "expo",
        "retry",
        {"do": [*ATTEMPT_LOG, {"fail_until": 2}]},
        {"attempts": 3, "backoff": {"type": "exponential", "delay": 200, "jitter": 0.25}},
    ),
    Spec("fails", "fail", {"do": [{"throw": "boom"}]}),
    Spec("progress", "progress", {"do": [{"progress": 50}, {"progress": {"done": True}}], "return": "ok"}),
    Spec("logs", "logs", {"do": [{"log": "one"}, {"log": "two"}, {"log": "three"}]}),
    Spec("keep_logs", "logs", {"do": [{"log": "one"}, {"log": "two"}, {"log": "three"}]}, {"keep_logs": 2}),
    Spec("remove_done", "removed", {}, {"remove_on_complete": True}),
    Spec("remove_failed", "removed", {"do": [{"throw": "gone"}]}, {"remove_on_fail": True}),
    Spec("kept", "kept", {}, {"remove_on_complete": {"age": 3600, "count": 100}}),
    Spec("prio_low", "prio", {"p": 5}, {"priority": 5}),
    Spec("prio_high", "prio", {"p": 1}, {"priority": 1}),
    Spec("prio_low2", "prio", {"p": 5}, {"priority": 5}),
    Spec("delayed", "delayed", {}, {"delay": 300}),
]
#: The order of first runs, at concurrency 1: LIFO first, then the wait list in order, then by priority.
#: The delayed job is left out: when it is promoted depends on how fast the worker starts.
FIRST_RUNS = [
    "lifo",
    "plain1",
    "plain2",
    "custom",
    "fixed",
    "expo",
    "fails",
    "progress",
    "logs",
    "keep_logs",
    "remove_done",
    "remove_failed",
    "kept",
    "prio_high",
    "prio_low",
    "prio_low2",
]


@dataclass
class Outcome:
    """What a batch left behind, as Node reads it."""

    direction: str
    queue: str
    ids: dict[str, str]
    jobs: dict[str, Any]  # key -> Node's job record with its state (None: no such job)
    logs: dict[str, Any]  # key -> getJobLogs (asc), and key + ":desc"
    events: list[tuple[int, dict[str, str]]]
    id_counter: str | None

    @property
    def worker(self) -> str:
        return "sandq" if self.direction == "node-to-sandq" else "node"

    def first_runs(self) -> list[str]:
        by_id = {job_id: key for key, job_id in self.ids.items() if key not in ("duplicate", "delayed")}
        order: list[str] = []
        for _, fields in self.events:
            key = by_id.get(fields.get("jobId", ""))
            if fields["event"] == "active" and key is not None and key not in order:
                order.append(key)
        return order


@pytest.fixture(scope="module", params=DIRECTIONS)
def batch(request: pytest.FixtureRequest, node: pathlib.Path, redis_url: str) -> Outcome:
    """BATCH added on one side and run by the other's worker (concurrency 1), then read by Node."""
    direction: str = request.param
    with (
        fresh_queue(redis_url) as name,
        NodePeer(node, redis_url) as peer,
        SyncQueue(name, redis_url) as queue,
    ):
        if direction == "node-to-sandq":
            ids = add_jobs("node", peer, queue, BATCH)
            with sandq_worker(redis_url, name) as worker:
                wait_until(all_finished(queue, list(ids.values())), log=worker.log)
                worker.stop()
        else:
            ids = add_jobs("sandq", None, queue, BATCH)
            peer.call("worker.start", queue=name, options=node_worker_options())
            wait_until(all_finished(queue, list(ids.values())))
            assert peer.call("worker.stop", queue=name)["errors"] == []
        keys = [spec.key for spec in BATCH]
        steps: list[dict[str, Any]] = [{"op": "job", "queue": name, "id": ids[key]} for key in keys]
        steps += [{"op": "logs", "queue": name, "id": ids[key]} for key in keys]
        steps += [{"op": "logs", "queue": name, "id": ids[key], "asc": False} for key in keys]
        read = peer.batch(steps)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            entries = stream(client, name)
            counter: str | None = client.get(f"bull:{name}:id")  # type: ignore[assignment]
        finally:
            client.close()
    n = len(keys)
    return Outcome(
        direction=direction,
        queue=name,
        ids=ids,
        jobs=dict(zip(keys, read[:n], strict=True)),
        logs={
            **dict(zip(keys, read[n : 2 * n], strict=True)),
            **{f"{key}:desc": logs for key, logs in zip(keys, read[2 * n :], strict=True)},
        },
        events=entries,
        id_counter=counter,
    )


def test_plain_jobs_complete_with_their_data_and_return_values(batch: Outcome) -> None:
    for key, spec in (("plain1", BATCH[0]), ("plain2", BATCH[1])):
        job = batch.jobs[key]
        assert job["state"] == "completed"
        assert job["id"].isdigit()
        assert job["name"] == "plain"
        assert job["data"] == spec.data
        assert job["returnvalue"] == {"name": "plain", "attemptsMade": 0, "attemptsStarted": 1}
        assert (job["attemptsMade"], job["attemptsStarted"]) == (1, 1)
        assert job["finishedOn"] >= job["processedOn"] >= job["timestamp"] > 0
        assert job["processedBy"] == WORKER_NAME
        assert [e["event"] for e in events_of(batch.events, job["id"])] == [
            "added",
            "waiting",
            "active",
            "completed",
        ]


def test_lifo_runs_first_then_the_wait_list_in_order(batch: Outcome) -> None:
    runs = [key for key in batch.first_runs() if not key.startswith("prio")]
    assert runs == [key for key in FIRST_RUNS if not key.startswith("prio")]


def test_prioritized_jobs_run_after_the_wait_list_by_priority(batch: Outcome) -> None:
    assert batch.first_runs() == FIRST_RUNS
    assert [batch.jobs[key]["priority"] for key in ("prio_high", "prio_low", "prio_low2")] == [1, 5, 5]
    assert all(batch.jobs[key]["state"] == "completed" for key in ("prio_high", "prio_low", "prio_low2"))


def test_custom_id_and_a_duplicate_of_it(batch: Outcome) -> None:
    assert batch.ids["custom"] == batch.ids["duplicate"] == "order-7"
    job = batch.jobs["custom"]
    assert job["data"] == {"v": 1}  # the duplicate changed nothing
    assert job["opts"]["jobId"] == "order-7"
    assert (job["state"], job["attemptsStarted"]) == ("completed", 1)
    kinds = [e["event"] for e in events_of(batch.events, "order-7")]
    assert kinds.count("added") == 1
    assert kinds.count("duplicated") == 1
    assert kinds.count("active") == 1
    assert batch.id_counter == str(len(BATCH))  # the counter moves on every add, custom ids included


def test_delayed_job_waits_its_delay(batch: Outcome) -> None:
    job = batch.jobs["delayed"]
    assert job["state"] == "completed"
    assert job["processedOn"] - job["timestamp"] >= 300
    assert job["opts"]["delay"] == 300
    events = events_of(batch.events, job["id"])
    assert [e["event"] for e in events] == ["added", "delayed", "waiting", "active", "completed"]
    assert int(events[1]["delay"]) == job["timestamp"] + 300
    assert events[2]["prev"] == "delayed"


def attempt_times(logs: dict[str, Any]) -> list[int]:
    lines = logs["logs"]
    assert [line.split(" at ")[0] for line in lines] == [f"attempt {n}" for n in range(len(lines))]
    return [int(line.split(" at ")[1]) for line in lines]


#: How much later than the worker's clock reading a script may run (and write its event) on a busy machine.
LATENCY_MS = 50


def retry_waits(batch: Outcome, job_id: str) -> list[int]:
    """The backoff of each retry, less the latency of the script call: a ``delayed`` event's due time
    (the worker's now + backoff) less the time Redis wrote the event. Never more than the backoff."""
    return [
        int(f["delay"]) - ms for ms, f in batch.events if f.get("jobId") == job_id and f["event"] == "delayed"
    ]


def check_retried(batch: Outcome, key: str) -> dict[str, Any]:
    job: dict[str, Any] = batch.jobs[key]
    assert job["state"] == "completed"
    assert job["returnvalue"] == {"name": "retry", "attemptsMade": 2, "attemptsStarted": 3}
    assert (job["attemptsMade"], job["attemptsStarted"]) == (3, 3)
    assert job["failedReason"] == "attempt 1 fails"
    assert len(job["stacktrace"]) == 2
    kinds = [e["event"] for e in events_of(batch.events, job["id"])]
    assert kinds == ["added", "waiting", *["active", "delayed", "waiting"] * 2, "active", "completed"]
    return job


def test_retries_with_fixed_backoff(batch: Outcome) -> None:
    job = check_retried(batch, "fixed")
    assert job["opts"]["backoff"] == {"type": "fixed", "delay": 150}
    for wait in retry_waits(batch, job["id"]):
        assert 150 - LATENCY_MS <= wait <= 150
    times = attempt_times(batch.logs["fixed"])
    assert [later - earlier >= 150 for earlier, later in itertools.pairwise(times)] == [True, True]


def test_retries_with_exponential_backoff_and_jitter(batch: Outcome) -> None:
    job = check_retried(batch, "expo")
    assert job["opts"]["backoff"] == {"type": "exponential", "delay": 200, "jitter": 0.25}
    first, second = retry_waits(batch, job["id"])
    assert 150 - LATENCY_MS <= first <= 200  # 200 ms, less up to a quarter of it
    assert 300 - LATENCY_MS <= second <= 400  # 400 ms, less up to a quarter of it
    times = attempt_times(batch.logs["expo"])  # an attempt starts no sooner than its backoff allows
    assert times[1] - times[0] >= 150
    assert times[2] - times[1] >= 300


def test_failure_with_its_stack_trace(batch: Outcome) -> None:
    job = batch.jobs["fails"]
    assert job["state"] == "failed"
    assert job["failedReason"] == "boom"
    assert (job["attemptsMade"], job["attemptsStarted"]) == (1, 1)
    (trace,) = job["stacktrace"]
    if batch.worker == "node":
        assert trace.startswith("Error: boom\n    at ")
    else:
        assert trace.startswith("Traceback (most recent call last):")
        assert trace.rstrip().endswith("RuntimeError: boom")
    assert events_of(batch.events, job["id"])[-2:] == [
        {"event": "failed", "jobId": job["id"], "failedReason": "boom", "prev": "active"},
        {"event": "retries-exhausted", "jobId": job["id"], "attemptsMade": "1"},
    ]


def test_progress(batch: Outcome) -> None:
    job = batch.jobs["progress"]
    assert (job["state"], job["returnvalue"], job["progress"]) == ("completed", "ok", {"done": True})
    updates = [json.loads(e["data"]) for e in events_of(batch.events, job["id"]) if e["event"] == "progress"]
    assert updates == [50, {"done": True}]


def test_logs(batch: Outcome) -> None:
    assert batch.logs["logs"] == {"logs": ["one", "two", "three"], "count": 3}
    assert batch.logs["logs:desc"] == {"logs": ["three", "two", "one"], "count": 3}
    assert batch.logs["plain1"] == {"logs": [], "count": 0}
    assert batch.logs["keep_logs"] == {"logs": ["two", "three"], "count": 2}  # keepLogs: the newest 2
    assert batch.jobs["keep_logs"]["opts"]["keepLogs"] == 2


def test_remove_on_complete_and_on_fail(batch: Outcome) -> None:
    assert batch.jobs["remove_done"] is None
    assert batch.jobs["remove_failed"] is None
    finals = {
        key: events_of(batch.events, batch.ids[key])[-1]["event"] for key in ("remove_done", "remove_failed")
    }
    assert finals == {"remove_done": "completed", "remove_failed": "retries-exhausted"}
    kept = batch.jobs["kept"]
    assert kept["state"] == "completed"
    assert kept["opts"]["removeOnComplete"] == {"age": 3600, "count": 100}


# --- pause and resume --------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_pause_and_resume_with_jobs_waiting(
    direction: str, node: pathlib.Path, redis_url: str, queue_name: str, raw: redis.Redis
) -> None:
    """The producer's side pauses the queue and adds jobs; the other side's worker takes none of them
    until the producer's side resumes it."""
    specs = [Spec(f"j{i}", "paused", {"i": i}) for i in range(3)]
    with NodePeer(node, redis_url) as peer, SyncQueue(queue_name, redis_url) as queue:
        if direction == "node-to-sandq":
            peer.call("pause", queue=queue_name)
            ids = add_jobs("node", peer, queue, specs)
            assert queue.is_paused()
            with sandq_worker(redis_url, queue_name) as worker:
                # Listed once it has looked for jobs, found none it may take, and waits for the marker.
                wait_until(lambda: len(peer.call("workers", queue=queue_name)) == 1, log=worker.log)
                time.sleep(0.2)
                # Node 5.x pauses by moving wait to a `paused` list, where its later adds go too.
                assert queue.get_job_counts("waiting", "paused", "active") in (
                    {"waiting": 3, "paused": 0, "active": 0},
                    {"waiting": 0, "paused": 3, "active": 0},
                )
                peer.call("resume", queue=queue_name)
                wait_until(all_finished(queue, list(ids.values())), log=worker.log)
                worker.stop()
        else:
            queue.pause()
            ids = add_jobs("sandq", None, queue, specs)
            assert peer.call("paused", queue=queue_name) is True
            peer.call("worker.start", queue=queue_name, options=node_worker_options())
            time.sleep(0.2)
            counts = peer.call("counts", queue=queue_name, states=["waiting", "active"])
            assert counts.pop("paused", 0) == 0  # Node 5.x counts its `paused` list with wait
            assert counts == {"waiting": 3, "active": 0}
            queue.resume()
            wait_until(all_finished(queue, list(ids.values())))
            peer.call("worker.stop", queue=queue_name)
        assert peer.call("paused", queue=queue_name) is False
        assert not queue.is_paused()
        assert [queue.get_job_state(job_id) for job_id in ids.values()] == [JobState.COMPLETED] * 3
    entries = stream(raw, queue_name)
    kinds = [fields["event"] for _, fields in entries]
    assert kinds.index("paused") < kinds.index("resumed") < kinds.index("active")
    runs = [fields["jobId"] for _, fields in entries if fields["event"] == "active"]
    assert runs == list(ids.values())


# --- a stalled job -----------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_stalled_job_is_recovered_by_the_other_side(
    direction: str, node: pathlib.Path, redis_url: str, queue_name: str, raw: redis.Redis
) -> None:
    """A worker process is killed mid-job (its lock left to expire); the other side's stalled checker
    moves the job back to wait and its worker finishes it. ``node-to-sandq``: Node adds and runs the
    job and is killed, sandq recovers it; ``sandq-to-node``: the other way round. The killed worker has
    a short stalled interval too: each sweep holds the queue's shared ``stalled-check`` key for the
    sweeping worker's own interval, which would keep the rescuer's sweeps off for that long."""
    spec = Spec("victim", "victim", {"do": [{"hang_on_first_start": True}]})
    with SyncQueue(queue_name, redis_url) as queue:
        if direction == "node-to-sandq":
            victim = NodePeer(node, redis_url)
            try:
                (job_id,) = add_jobs("node", victim, queue, [spec]).values()
                victim.call(
                    "worker.start",
                    queue=queue_name,
                    options=node_worker_options(lockDuration=1000, stalledInterval=300),
                )
                wait_until(lambda: queue.get_job_state(job_id) is JobState.ACTIVE)
                victim.kill()
            finally:
                victim.close()
            with sandq_worker(redis_url, queue_name, "--stalled-interval", "300ms") as rescuer:
                wait_until(lambda: queue.get_job_state(job_id) is JobState.COMPLETED, log=rescuer.log)
                rescuer.stop()
        else:
            (job_id,) = add_jobs("sandq", None, queue, [spec]).values()
            with sandq_worker(
                redis_url, queue_name, "--lock-duration", "1s", "--stalled-interval", "300ms"
            ) as killed:
                wait_until(lambda: queue.get_job_state(job_id) is JobState.ACTIVE, log=killed.log)
                killed.kill()
            with NodePeer(node, redis_url) as rescuer:
                options = node_worker_options(stalledInterval=300, lockDuration=5000, maxStalledCount=1)
                rescuer.call("worker.start", queue=queue_name, options=options)
                wait_until(lambda: queue.get_job_state(job_id) is JobState.COMPLETED)
                assert rescuer.call("worker.stop", queue=queue_name)["errors"] == []
        done = queue.get_job(job_id)
    assert done is not None
    assert done.returnvalue == {"name": "victim", "attemptsMade": 0, "attemptsStarted": 2}
    assert (done.stalled_counter, done.attempts_started, done.attempts_made) == (1, 2, 1)
    kinds = [fields["event"] for fields in events_of(stream(raw, queue_name), job_id)]
    assert kinds == ["added", "waiting", "active", "waiting", "stalled", "active", "completed"]


# --- Node's getters and QueueEvents on a sandq-run queue and a Node-run one ---------------------------

#: Run first, to the end (one job stays delayed for a minute).
COMPARE_FIRST = [
    Spec(
        "steps",
        "steps",
        {
            "do": [{"progress": 40}, {"log": "first"}, {"log": "second"}, {"progress": {"at": "end"}}],
            "return": {"ok": 1},
        },
    ),
    Spec("plain", "plain", {"x": 1}),
    Spec("bad", "bad", {"do": [{"throw": "boom"}]}),
    Spec("exhausted", "exhausted", {"do": [{"throw": "again"}]}, {"attempts": 2, "backoff": 50}),
    Spec("retry_later", "later", {"do": [{"fail_until": 5}]}, {"attempts": 3, "backoff": 60_000}),
]
#: Then a job that stays active while the getters run.
COMPARE_HANG = [Spec("hang", "hang", {"do": [{"hang_on_first_start": True}]})]
#: Then jobs that stay waiting, prioritized and delayed (the worker is busy with the hanging job).
COMPARE_LAST = [
    Spec("waiting", "waiting", {"w": 1}),
    Spec("prioritized", "prioritized", {"p": 3}, {"priority": 3}),
    Spec("delayed", "delayed", {"d": 1}, {"delay": 3_600_000}),
]
COMPARE = COMPARE_FIRST + COMPARE_HANG + COMPARE_LAST
STATES = ["active", "completed", "delayed", "failed", "prioritized", "waiting", "waiting-children"]


@dataclass
class Views:
    """Node's answers for one queue (getters, QueueEvents), with ids and times normalised."""

    ids: dict[str, str]
    counts: dict[str, int]
    default_counts: dict[str, int]
    pages: dict[str, list[str]]
    jobs: dict[str, Any]
    logs: list[Any]
    workers: list[str]
    paused: bool
    events: dict[str, list[dict[str, Any]]]


def normalise_job(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A job record with what may differ between two runs replaced by what must not: times by whether
    they are set, stack traces (JavaScript or Python) by their length. ``delay: 0`` is dropped from
    opts (sandq does not store it; Node reads its absence as 0)."""
    if record is None:
        return None
    job = dict(record)
    for name in ("timestamp", "processedOn", "finishedOn"):
        job[name] = bool(job.get(name))
    job["stacktrace"] = len(job.get("stacktrace") or [])
    job["opts"] = {k: v for k, v in job["opts"].items() if not (k == "delay" and v == 0)}
    return job


def normalise_event(fields: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    event = {k: names.get(v, v) if k == "jobId" else v for k, v in fields.items()}
    if event["event"] == "delayed":
        event["delay"] = "<time>"
    return event


def node_views(peer: NodePeer, queue: str, ids: dict[str, str]) -> list[Any]:
    """Every getter the comparison looks at, in one round trip (see Views for the order)."""
    steps: list[dict[str, Any]] = [
        {"op": "counts", "queue": queue, "states": STATES},
        {"op": "counts", "queue": queue},
    ]
    pages: list[tuple[str, dict[str, Any]]] = []
    for states in [[state] for state in STATES] + [
        ["completed", "failed"],
        ["waiting", "prioritized", "delayed"],
    ]:
        for start, end, asc in ((0, -1, True), (0, -1, False), (0, 0, True), (1, 1, False), (1, -1, True)):
            name = f"{'+'.join(states)}[{start}:{end}]{'asc' if asc else 'desc'}"
            pages.append(
                (
                    name,
                    {"op": "jobs", "queue": queue, "states": states, "start": start, "end": end, "asc": asc},
                )
            )
    steps += [step for _, step in pages]
    steps += [{"op": "job", "queue": queue, "id": ids[spec.key]} for spec in COMPARE]
    steps += [
        {"op": "logs", "queue": queue, "id": ids["steps"]},
        {"op": "logs", "queue": queue, "id": ids["steps"], "start": 1, "end": 1},
        {"op": "logs", "queue": queue, "id": ids["steps"], "asc": False},
        {"op": "workers", "queue": queue},
        {"op": "paused", "queue": queue},
    ]
    return [[name for name, _ in pages], *peer.batch(steps)]


@pytest.fixture(scope="module")
def compared(node: pathlib.Path, redis_url: str) -> dict[str, Views]:
    """The COMPARE jobs on a Node-run queue and on a sandq-run queue, both at once, read by Node."""
    with (
        fresh_queue(redis_url) as node_queue,
        fresh_queue(redis_url) as sandq_queue,
        NodePeer(node, redis_url) as peer,
        SyncQueue(node_queue, redis_url) as on_node,
        SyncQueue(sandq_queue, redis_url) as on_sandq,
        sandq_worker(redis_url, sandq_queue, "--shutdown-timeout", "100ms", "--kill-grace", "1s") as worker,
    ):
        names = {"node": node_queue, "sandq": sandq_queue}
        queues = {"node": on_node, "sandq": on_sandq}
        peer.batch([{"op": "events.start", "queue": name} for name in names.values()])
        peer.call("worker.start", queue=node_queue, options=node_worker_options())
        ids: dict[str, dict[str, str]] = {"node": {}, "sandq": {}}

        def add(specs: list[Spec]) -> None:
            for side in ("node", "sandq"):
                ids[side].update(add_jobs(side, peer, queues[side], specs))

        def settled(side: str, keys: Sequence[str], states: Sequence[JobState]) -> Callable[[], bool]:
            return lambda: all(queues[side].get_job_state(ids[side][key]) in states for key in keys)

        add(COMPARE_FIRST)
        for side in ("node", "sandq"):
            done = [spec.key for spec in COMPARE_FIRST if spec.key != "retry_later"]
            wait_until(settled(side, done, (JobState.COMPLETED, JobState.FAILED)), log=worker.log)
            wait_until(settled(side, ["retry_later"], (JobState.DELAYED,)), log=worker.log)
        add(COMPARE_HANG)
        for side in ("node", "sandq"):
            wait_until(settled(side, ["hang"], (JobState.ACTIVE,)), log=worker.log)
        add(COMPARE_LAST)
        raw_views = {side: node_views(peer, names[side], ids[side]) for side in ("node", "sandq")}
        collected = peer.batch([{"op": "events.collect", "queue": name} for name in names.values()])
        peer.call("worker.stop", queue=node_queue)
        worker.stop()  # the hanging job is cancelled after --shutdown-timeout

    views = {}
    for side, read, seen in zip(("node", "sandq"), raw_views.values(), collected, strict=True):
        page_names, counts, default_counts, *rest = read
        n_pages, n_jobs = len(page_names), len(COMPARE)
        pages, jobs = rest[:n_pages], rest[n_pages : n_pages + n_jobs]
        logs, workers, paused = rest[n_pages + n_jobs : -2], rest[-2], rest[-1]
        key_of = {job_id: key for key, job_id in ids[side].items()}
        events: dict[str, list[dict[str, Any]]] = {}
        for entry in seen:
            fields = entry["fields"]
            events.setdefault(key_of.get(fields.get("jobId"), "<queue>"), []).append(
                normalise_event(fields, key_of)
            )
        encoded = base64.b64encode(names[side].encode()).decode()
        views[side] = Views(
            ids=ids[side],
            counts=counts,
            default_counts=default_counts,
            pages={
                name: [key_of[job["id"]] for job in page]
                for name, page in zip(page_names, pages, strict=True)
            },
            jobs={spec.key: normalise_job(job) for spec, job in zip(COMPARE, jobs, strict=True)},
            logs=logs,
            workers=sorted(w.get("rawname", w["name"]).replace(encoded, "<queue>") for w in workers),
            paused=paused,
            events=events,
        )
    return views


def test_getters_count_a_sandq_run_queue_as_a_node_run_one(compared: dict[str, Views]) -> None:
    node, sandq = compared["node"], compared["sandq"]
    assert {state: n for state, n in node.counts.items() if state != "paused"} == {
        "active": 1,
        "completed": 2,
        "delayed": 2,
        "failed": 2,
        "prioritized": 1,
        "waiting": 1,
        "waiting-children": 0,
    }
    assert node.counts.get("paused", 0) == 0  # Node 5.x counts its `paused` list with wait
    assert sandq.counts == node.counts
    assert sandq.default_counts == node.default_counts
    assert sandq.paused is node.paused is False


def test_getters_page_a_sandq_run_queue_as_a_node_run_one(compared: dict[str, Views]) -> None:
    node, sandq = compared["node"], compared["sandq"]
    assert node.pages["completed+failed[0:-1]asc"] == ["steps", "plain", "bad", "exhausted"]
    assert node.pages["active[0:-1]asc"] == ["hang"]
    assert sandq.pages == node.pages
    assert sandq.ids == node.ids


def test_getters_read_job_fields_of_a_sandq_run_queue_as_of_a_node_run_one(
    compared: dict[str, Views],
) -> None:
    node, sandq = compared["node"], compared["sandq"]
    assert node.jobs["exhausted"]["stacktrace"] == 2
    assert node.jobs["retry_later"]["state"] == "delayed"
    for key in node.jobs:
        assert sandq.jobs[key] == node.jobs[key], key


def test_getters_read_logs_of_a_sandq_run_queue_as_of_a_node_run_one(compared: dict[str, Views]) -> None:
    node, sandq = compared["node"], compared["sandq"]
    assert node.logs == [
        {"logs": ["first", "second"], "count": 2},
        {"logs": ["second"], "count": 2},
        {"logs": ["second", "first"], "count": 2},
    ]
    assert sandq.logs == node.logs


def test_get_workers_lists_the_running_sandq_worker(compared: dict[str, Views]) -> None:
    assert compared["sandq"].workers == [f"bull:<queue>:w:{WORKER_NAME}"]
    assert compared["sandq"].workers == compared["node"].workers


def test_queue_events_of_a_sandq_worker_match_those_of_a_node_worker(compared: dict[str, Views]) -> None:
    node, sandq = compared["node"], compared["sandq"]
    assert [e["event"] for e in node.events["exhausted"]][-2:] == ["failed", "retries-exhausted"]
    assert node.events["steps"][3:5] == [
        {"event": "progress", "jobId": "steps", "data": 40},
        {"event": "progress", "jobId": "steps", "data": {"at": "end"}},
    ]
    for key in [spec.key for spec in COMPARE]:
        assert sandq.events[key] == node.events[key], key


def test_queue_level_events_of_a_sandq_worker_match_those_of_a_node_worker(
    compared: dict[str, Views],
) -> None:
    """Events without a job (``drained``): the same for both workers."""
    assert compared["sandq"].events.get("<queue>") == compared["node"].events.get("<queue>")
