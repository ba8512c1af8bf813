"""The scenarios of ``tests/snapshot.py`` as functional checks, in both directions: bullmq's producer
feeding ``sandq run`` (the CLI, in a subprocess), and sandq's producer feeding bullmq's Worker.

For each run: the jobs ran in the expected order; retries waited their backoff (read from the events
stream: a ``delayed`` event's fire time against its entry's time, and the next ``active``); and
bullmq's getters (getJob, getJobState, getJobCounts, getJobs, getJobLogs) read the queue as their own:
results, failed reasons, attempts, stack traces, progress, logs, and removed jobs gone. Then bullmq's
QueueEvents listening while sandq works, bullmq's view of a sandq worker (client name, getJob while it
runs a job), and stalled jobs recovered across the two, with real processes killed with SIGKILL.

``test_interop_bullmq.py`` and ``test_interop_worker.py`` already cover what is stored per add and
the scripts one by one; this file runs whole scenarios through the real workers.
"""

from __future__ import annotations

import dataclasses
import functools
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import bullmq
import psutil
import pytest
import redis

from processors import scenarios
from snapshot import (
    SCENARIOS,
    TESTS,
    LoopThread,
    Run,
    SandqProducer,
    Scenario,
    blocked_on_marker,
    bull_worker,
    run_scenario,
    sandq_worker,
    wait_until,
    worker_client_name,
)


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    with LoopThread() as thread:
        yield thread


def bull_read(loop: LoopThread, redis_url: str, queue: str, read: Any) -> Any:
    """``await read(queue)`` with a bullmq Queue of ``queue``, on ``loop``; the queue is closed."""

    async def main() -> Any:
        q = bullmq.Queue(queue, {"connection": redis_url})
        try:
            return await read(q)
        finally:
            await q.close()

    return loop.call(main)


# -- what each scenario must end with --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a job must end: ``state`` (``completed``, ``failed``, or ``removed`` when retention deleted
    it), attempts made, the return value (completed) or failed reason (failed), stack trace entries."""

    state: str
    attempts: int = 1
    result: Any = None
    traces: int = 0
    logs: tuple[str, ...] = ()
    progress: Any = 0


def echoed(name: str, data: Any = None, attempt: int = 0) -> Outcome:
    return Outcome("completed", attempt + 1, {"name": name, "data": data or {}, "attempt": attempt})


def failed(name: str, attempts: int) -> Outcome:
    return Outcome("failed", attempts, f"{name}: attempt {attempts} failed", traces=attempts)


def reported(name: str, step: int, logs: tuple[str, ...]) -> Outcome:
    return Outcome("completed", 1, "reported", logs=logs, progress={"done": True, "step": step})


OUTCOMES: dict[str, dict[str, Outcome]] = {
    "plain": {"a": echoed("a", {"n": 1}), "b": echoed("b", {"n": 2}), "c": echoed("c", {"n": 3})},
    "lifo": {name: echoed(name) for name in "abcd"},
    "custom-id": {
        "first": echoed("first", {"n": 1}),
        "plain": echoed("plain", {"n": 2}),
        "second": echoed("second", {"n": 4}),
    },
    "delayed": {name: echoed(name) for name in ("late", "soon", "now")},
    "prioritized": {name: echoed(name) for name in ("p3", "p1", "none", "p2", "p1-again")},
    "retries": {
        "fixed": failed("fixed", 3),
        "exponential": failed("exponential", 3),
        "recovers": Outcome("completed", 2, {"succeeded_on": 2}, traces=1),
        "immediate": failed("immediate", 2),
        "once": failed("once", 1),
    },
    "progress-logs": {
        "r1": reported("r1", 1, ("r1: started", "r1: working on {'step': 1}")),
        "r2": reported("r2", 2, ("r2: working on {'step': 2}",)),  # keep_logs 1
    },
    "retention": {
        "c-now": Outcome("removed"),
        "c-1": Outcome("removed"),
        "c-2": Outcome("completed", 1, {"succeeded_on": 1}),
        "c-3": Outcome("completed", 1, {"succeeded_on": 1}),
        "f-now": Outcome("removed"),
        "f-1": Outcome("removed"),
        "f-2": Outcome("removed"),
        "f-aged": failed("f-aged", 2),
    },
    "pause-resume": {name: echoed(name) for name in "abcd"},
}

#: The backoff (ms) before each retry of the jobs that wait between tries.
BACKOFFS = {
    ("retries", "fixed"): [250, 250],
    ("retries", "exponential"): [100, 200],
    ("retries", "recovers"): [100],
    ("retention", "f-aged"): [1200],
}

DIRECTIONS = {"bullmq-to-sandq": ("bullmq", "sandq"), "sandq-to-bullmq": ("sandq", "bullmq")}


def events_with_times(client: redis.Redis, queue: str) -> list[tuple[int, dict[str, str]]]:
    """The queue's events with the time (ms) of each entry."""
    return [
        (int(entry_id.split("-")[0]), fields) for entry_id, fields in client.xrange(f"bull:{queue}:events")
    ]


def observed_backoffs(client: redis.Redis, queue: str, job_id: str) -> list[tuple[int, int, int]]:
    """For each retry of a job that waited: (when the retry was decided, the fire time its
    ``delayed`` event announced, when the job became active again), all in ms."""
    out: list[tuple[int, int, int]] = []
    events = [
        (ms, fields) for ms, fields in events_with_times(client, queue) if fields.get("jobId") == job_id
    ]
    for index, (ms, fields) in enumerate(events):
        if fields["event"] == "delayed":
            active = next(t for t, f in events[index:] if f["event"] == "active")
            out.append((ms, int(fields["delay"]), active))
    return out


def check_with_bullmq(run: Run, outcomes: dict[str, Outcome], loop: LoopThread, redis_url: str) -> None:
    """bullmq's getters read the finished queue: every job as ``outcomes`` says, and the counts."""
    ids = {run.name_of(job_id): job_id for job_id in run.ids}
    assert set(ids) == set(outcomes)

    async def read(q: Any) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for name, job_id in ids.items():
            job = await q.getJob(job_id)
            seen[name] = (job, await q.getJobState(job_id), await q.getJobLogs(job_id))
        seen["<counts>"] = await q.getJobCounts()
        seen["<completed>"] = sorted(job.id for job in await q.getJobs(["completed"]))
        seen["<failed>"] = sorted(job.id for job in await q.getJobs(["failed"]))
        return seen

    seen = bull_read(loop, redis_url, run.queue, read)
    for name, outcome in outcomes.items():
        job, state, logs = seen[name]
        if outcome.state == "removed":
            assert (job, state) == (None, "unknown"), name
            continue
        assert job is not None, name
        assert state == outcome.state, name
        assert job.name == name
        assert job.attemptsMade == outcome.attempts, name
        assert job.attemptsStarted == outcome.attempts, name
        assert job.finishedOn >= job.processedOn > 0, name
        assert len(job.stacktrace) == outcome.traces, name
        if outcome.state == "completed":
            assert job.returnvalue == outcome.result, name
        else:
            assert job.failedReason == outcome.result, name
            assert job.stacktrace[-1].rstrip().endswith(f"ValueError: {outcome.result}"), name
        assert logs == {"logs": list(outcome.logs), "count": len(outcome.logs)}, name
        assert job.progress == outcome.progress, name
    states = [outcome.state for outcome in outcomes.values()]
    assert seen["<counts>"] == {
        "active": 0,
        "completed": states.count("completed"),
        "delayed": 0,
        "failed": states.count("failed"),
        "prioritized": 0,
        "waiting": 0,
        "waiting-children": 0,
    }
    assert seen["<completed>"] == sorted(ids[n] for n, o in outcomes.items() if o.state == "completed")
    assert seen["<failed>"] == sorted(ids[n] for n, o in outcomes.items() if o.state == "failed")


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(
    *, scenario: Scenario, direction: str, redis_url: str, queue_name: str, raw: redis.Redis, loop: LoopThread
) -> None:
    producer, worker = DIRECTIONS[direction]
    run = run_scenario(
        scenario,
        redis_url=redis_url,
        queue=queue_name,
        producer=producer,
        worker=worker,
        loop=loop,
        client=raw,
    )
    assert run.run_order() == list(scenario.runs)
    check_with_bullmq(run, OUTCOMES[scenario.name], loop, redis_url)

    for (name, job_name), delays in BACKOFFS.items():
        if name != scenario.name:
            continue
        retries = observed_backoffs(raw, queue_name, run.ids[run.run_order().index(job_name)])
        assert len(retries) == len(delays), job_name
        for (decided, fire_at, active_again), delay in zip(retries, delays, strict=True):
            # The fire time is the worker's clock at the retry plus the backoff; the event's entry
            # time is Redis's clock a moment later (one host here).
            assert delay - 100 <= fire_at - decided <= delay + 2, (job_name, delay, fire_at - decided)
            assert active_again >= fire_at - 2, f"{job_name} ran again before its backoff of {delay} ms"

    if scenario.name == "custom-id":
        assert run.ids == ["order-1", "2", "order-1", "order-2"]
        assert raw.get(f"bull:{queue_name}:id") == "4"  # the duplicate took a number too
        kinds = [f["event"] for _, f in events_with_times(raw, queue_name) if f.get("jobId") == "order-1"]
        assert kinds[:3] == ["added", "waiting", "duplicated"]
    if scenario.name == "pause-resume":
        paused = run.snapshots["paused"]
        assert paused["meta/paused"] == "1"
        assert paused["wait"]["items"] == ["3", "2", "1", "4"]
        assert paused["events/active order"] == []  # a worker was running: it took nothing
        assert "marker" not in paused  # no wake-up while paused


# -- bullmq's QueueEvents -------------------------------------------------------------------------------

LISTENED = ("added", "waiting", "active", "progress", "delayed", "completed", "failed", "retries-exhausted")


def test_bullmq_queue_events_see_sandq_producer_and_worker(
    redis_url: str, queue_name: str, raw: redis.Redis, loop: LoopThread
) -> None:
    """bullmq's QueueEvents, listening from before the first add, sees what sandq's producer and
    worker do, with progress data and return values decoded."""
    heard: list[tuple[str, Any]] = []

    def record(event: str, *args: Any) -> None:
        heard.append((event, None if event == "drained" else args[0]))

    async def listen() -> Any:
        events = bullmq.QueueEvents(queue_name, {"connection": redis_url, "blockingTimeout": 2000})
        for event in (*LISTENED, "drained"):
            events.on(event, functools.partial(record, event))
        return events

    def listening() -> bool:
        return any(c.get("cmd") == "xread" and "b" in c.get("flags", "") for c in raw.client_list())

    def finished(job_id: str) -> bool:
        return any(event in ("completed", "failed") and args["jobId"] == job_id for event, args in heard)

    events = loop.call(listen)
    producer = SandqProducer(redis_url, queue_name)
    try:
        wait_until(listening, what="QueueEvents blocks on the events stream")
        # First a job that reports progress, then one that fails once and one that fails for good.
        ids = [producer.add("r", {"step": 7}, {})]
        with sandq_worker(redis_url, queue_name, "report"):
            wait_until(lambda: finished(ids[0]))
        ids.append(producer.add("flaky", {"succeed_on": 1}, {"attempts": 2, "backoff": 50}))
        ids.append(producer.add("doomed", {}, {}))
        with sandq_worker(redis_url, queue_name, "flaky"):
            wait_until(lambda: finished(ids[1]) and finished(ids[2]))
            wait_until(lambda: heard[-1][0] == "drained")
    finally:
        producer.close()
        loop.call(events.close)
    by_job = {
        job_id: [(event, args) for event, args in heard if args is not None and args.get("jobId") == job_id]
        for job_id in ids
    }
    r, flaky, doomed = (by_job[job_id] for job_id in ids)
    assert [event for event, _ in r] == ["added", "waiting", "active", "progress", "progress", "completed"]
    assert [args["data"] for event, args in r if event == "progress"] == [50, {"done": True, "step": 7}]
    assert r[-1][1]["returnvalue"] == "reported"
    assert r[0][1]["name"] == "r"
    assert [event for event, _ in flaky] == [
        *("added", "waiting", "active", "delayed", "waiting", "active", "completed")
    ]
    assert flaky[-1][1]["returnvalue"] == {"succeeded_on": 2}
    assert flaky[3][1]["delay"].isdigit()  # the fire time, in ms
    assert [event for event, _ in doomed] == [*("added", "waiting", "active", "failed", "retries-exhausted")]
    assert doomed[3][1]["failedReason"] == "doomed: attempt 1 failed"
    assert doomed[4][1]["attemptsMade"] == "1"
    assert ("drained", None) in heard


# -- a running sandq worker, as bullmq sees it; stalled jobs across the two ----------------------------


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def all_gone(processes: list[psutil.Process]) -> bool:
    def alive(p: psutil.Process) -> bool:
        try:
            return p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return not any(alive(p) for p in processes)


def test_sandq_worker_killed_mid_job_is_recovered_by_bullmq(
    redis_url: str, queue_name: str, raw: redis.Redis, loop: LoopThread
) -> None:
    """While ``sandq run`` holds a job, bullmq's getters show it active; SIGKILLed, its job is put back
    by bullmq's stalled checker and run by bullmq's Worker."""
    producer = SandqProducer(redis_url, queue_name)
    try:
        job_id = producer.add("held", {"seconds": 60}, {"attempts": 2})
    finally:
        producer.close()

    async def while_running(q: Any) -> tuple[Any, ...]:
        job = await q.getJob(job_id)
        return job, await q.getJobState(job_id), await q.getJobCounts("active", "waiting")

    # Its stalled sweeps set the queue's stalled-check key for one interval; bullmq's sweeps skip
    # while it lives (one sweep per interval for all workers), so the interval is short here too.
    args = ("--lock-duration", "600ms", "--stalled-interval", "300ms", "--name", "sq-holder")
    with sandq_worker(redis_url, queue_name, "hold", *args) as process:
        wait_until(lambda: raw.lrange(f"bull:{queue_name}:{job_id}:logs", 0, -1) == ["held: holding"])
        job, state, counts = bull_read(loop, redis_url, queue_name, while_running)
        assert (state, counts) == ("active", {"active": 1, "waiting": 0})
        assert (job.attemptsStarted, job.attemptsMade) == (1, 0)
        assert job.processedOn >= job.timestamp > 0
        assert raw.hget(f"bull:{queue_name}:{job_id}", "pb") == "sq-holder"
        family = descendants(process.pid)
        assert family  # the zygote and the child running the job
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    wait_until(lambda: all_gone(family), within=10, what="the killed worker's children are gone")
    assert raw.lrange(f"bull:{queue_name}:active", 0, -1) == [job_id]  # orphaned

    options = {"stalledInterval": 250, "lockDuration": 5000, "maxStalledCount": 1}
    with bull_worker(loop, redis_url, queue_name, scenarios.echo, **options):
        wait_until(lambda: raw.zscore(f"bull:{queue_name}:completed", job_id) is not None, within=20)

    async def after(q: Any) -> tuple[Any, str]:
        return await q.getJob(job_id), await q.getJobState(job_id)

    job, state = bull_read(loop, redis_url, queue_name, after)
    assert state == "completed"
    assert job.returnvalue == {"name": "held", "data": {"seconds": 60}, "attempt": 0}
    assert (job.stalledCounter, job.attemptsStarted, job.attemptsMade) == (1, 2, 1)
    kinds = [f["event"] for _, f in raw.xrange(f"bull:{queue_name}:events") if f.get("jobId") == job_id]
    assert kinds[-5:] == ["active", "waiting", "stalled", "active", "completed"]


#: A bullmq Worker in a process of its own, holding every job it takes (and logging that it does).
HOLDING_BULLMQ_WORKER = """
import asyncio, sys, bullmq

async def main():
    async def process(job, token):
        await job.log("held by bullmq")
        await asyncio.sleep(3600)

    bullmq.Worker(sys.argv[2], process, {"connection": sys.argv[1], "lockDuration": 600})
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_bullmq_worker_killed_mid_job_is_recovered_by_sandq(
    redis_url: str, queue_name: str, raw: redis.Redis, loop: LoopThread
) -> None:
    """A job held by a bullmq Worker whose process is SIGKILLed: ``sandq run``'s stalled sweep puts it
    back in wait and runs it; bullmq reads the result."""

    async def add(q: Any) -> str:
        return str((await q.add("orphan", {"k": 1}, {"attempts": 3})).id)

    job_id = bull_read(loop, redis_url, queue_name, add)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDING_BULLMQ_WORKER, redis_url, queue_name],
        cwd=TESTS,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: raw.lrange(f"bull:{queue_name}:{job_id}:logs", 0, -1) == ["held by bullmq"])
        assert raw.exists(f"bull:{queue_name}:{job_id}:lock") == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        _, errors = holder.communicate(timeout=10)
    assert holder.returncode == -signal.SIGKILL, errors

    with sandq_worker(redis_url, queue_name, "echo", "--stalled-interval", "200ms"):
        wait_until(lambda: raw.zscore(f"bull:{queue_name}:completed", job_id) is not None, within=20)

    async def after(q: Any) -> tuple[Any, str, dict[str, Any]]:
        return await q.getJob(job_id), await q.getJobState(job_id), await q.getJobLogs(job_id)

    job, state, logs = bull_read(loop, redis_url, queue_name, after)
    assert state == "completed"
    assert job.returnvalue == {"name": "orphan", "data": {"k": 1}, "attempt": 0}
    assert (job.stalledCounter, job.attemptsStarted, job.attemptsMade) == (1, 2, 1)
    assert logs == {"logs": ["held by bullmq"], "count": 1}
    kinds = [f["event"] for _, f in raw.xrange(f"bull:{queue_name}:events") if f.get("jobId") == job_id]
    assert kinds[-5:] == ["active", "waiting", "stalled", "active", "completed"]


def test_an_idle_sandq_worker_is_named_as_bullmq_workers_are(
    redis_url: str, queue_name: str, raw: redis.Redis
) -> None:
    """Node's getWorkers lists the connections named ``bull:<base64(queue)>[:w:<name>]``."""
    with sandq_worker(redis_url, queue_name, "echo", "--name", "sq-idle"):
        wait_until(lambda: blocked_on_marker(raw, queue_name))
        names = [client["name"] for client in raw.client_list()]
    assert names.count(f"{worker_client_name(queue_name)}:w:sq-idle") == 1


def test_a_busy_sandq_worker_is_named_as_bullmq_workers_are(
    redis_url: str, queue_name: str, raw: redis.Redis
) -> None:
    producer = SandqProducer(redis_url, queue_name)
    try:
        job_id = producer.add("held", {"seconds": 60}, {})
    finally:
        producer.close()
    with sandq_worker(redis_url, queue_name, "hold", "--name", "sq-busy") as process:
        wait_until(lambda: raw.lrange(f"bull:{queue_name}:{job_id}:logs", 0, -1) == ["held: holding"])
        names = [client["name"] for client in raw.client_list()]
        process.send_signal(signal.SIGKILL)  # rather than wait for the job
    assert f"{worker_client_name(queue_name)}:w:sq-busy" in names


def test_pypi_get_workers_lists_a_sandq_worker(
    redis_url: str, queue_name: str, raw: redis.Redis, loop: LoopThread
) -> None:
    async def workers(q: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await q.get_workers()
        return found

    with sandq_worker(redis_url, queue_name, "echo", "--name", "sq-listed"):
        wait_until(lambda: blocked_on_marker(raw, queue_name))
        listed = bull_read(loop, redis_url, queue_name, workers)
    assert [worker["name"] for worker in listed] == [queue_name]
