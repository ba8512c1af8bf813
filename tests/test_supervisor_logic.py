"""The supervisor's timing logic in virtual time (trio's autojump clock): lock renewal, the stalled
sweep, a slot's deadlines, cancels and token fencing, and how a job ends (``settle``).

Redis and the child are stand-ins here, because virtual time must not wait on real I/O; the same code
runs against a real Redis and real children in test_worker.py.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import trio
import trio.testing

from sandq.protocol import Cancel, Delay, Done, Failure, Log, Ok, Progress, RateLimited, Run
from sandq.supervisor.children import ChildGone
from sandq.supervisor.settle import (
    Complete,
    Fail,
    Forget,
    Postpone,
    Requeue,
    Retry,
    RunningJob,
    exit_reason,
    read_fetched,
    settle,
)
from sandq.supervisor.slot import Slot
from sandq.supervisor.worker import Worker


def job(job_id: str = "7", token: str = "tok", **opts: Any) -> RunningJob:
    import json

    fields = {b"name": b"n", b"data": b"{}", b"opts": json.dumps(opts).encode(), b"atm": b"0"}
    return read_fetched(job_id, token, fields)


class FakeRedis:
    """Records script calls with their (virtual) time; answers extend_locks with ``refused``."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, tuple[Any, ...]]] = []
        self.refused: list[bytes] = []

    async def run_script(self, script: Any, keys: Any, args: Any) -> Any:
        self.calls.append((trio.current_time(), script.name, tuple(args)))
        if script.name == "extend_locks":
            return list(self.refused)
        return []


def make_worker(**options: Any) -> tuple[Worker, FakeRedis]:
    worker = Worker("q", "processors.basic:square", "redis://127.0.0.1:1/0", **options)
    fake = FakeRedis()
    worker.redis = fake  # type: ignore[assignment]
    return worker, fake


async def test_locks_are_renewed_every_half_lock_duration_and_refusals_cancel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    worker, fake = make_worker(lock_duration=10)
    slots = [Slot(i, worker) for i in range(2)]
    for slot, job_id in zip(slots, ("a", "b"), strict=True):
        slot.job = slot.assigned = job(job_id, token=f"t-{job_id}")
        worker._active[job_id] = (slot, slot.job)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker._lock_renewer)
        await trio.sleep(16)
        renewals = [(when, args) for when, name, args in fake.calls if name == "extend_locks"]
        assert [when for when, _ in renewals] == [5, 10, 15]
        assert msgpack.unpackb(renewals[0][1][2]) == [["a", "t-a"], ["b", "t-b"]]  # both, in one call
        fake.refused = [b"b"]
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert slots[1].cancel_reason == "lock_lost"
    assert slots[0].cancel_reason is None


async def test_no_renewal_call_without_running_jobs(autojump_clock: trio.testing.MockClock) -> None:
    worker, fake = make_worker(lock_duration=2)
    with trio.move_on_after(10):
        await worker._lock_renewer()
    assert fake.calls == []


async def test_the_stalled_sweep_runs_at_start_and_every_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    worker, fake = make_worker(stalled_interval=30, max_stalled_count=3)
    with trio.move_on_after(95):
        await worker._stalled_checker()
    sweeps = [(when, args) for when, name, args in fake.calls if name == "move_stalled_jobs_to_wait"]
    assert [when for when, _ in sweeps] == [0, 30, 60, 90]
    assert str(3) in [str(arg) for arg in sweeps[0][1]]


class FakeChild:
    """A child that answers from a script: a list of messages, then silence (a job that never ends)."""

    def __init__(self, replies: list[Any], *, dies_with: int | None = None) -> None:
        self.replies = replies
        self.sent: list[tuple[float, Any]] = []
        self.killed_at: float | None = None
        self.dies_with = dies_with
        self.alive = True
        self._gone = trio.Event()

    async def send(self, message: Any) -> None:
        self.sent.append((trio.current_time(), message))

    async def receive(self) -> Any:
        if self.replies:
            await trio.sleep(0.1)
            return self.replies.pop(0)
        if self.dies_with is not None:
            self.alive = False
            raise ChildGone("gone", pid=1, returncode=self.dies_with)
        await self._gone.wait()
        raise ChildGone("killed", pid=1, returncode=-9)

    def kill(self) -> None:
        self.killed_at = trio.current_time()
        self.alive = False
        self._gone.set()

    async def wait(self) -> int:
        return -9 if self.dies_with is None else self.dies_with

    def take_output(self) -> str:
        return ""


def slot_for(worker: Worker) -> tuple[Slot, list[tuple[str, str]]]:
    written: list[tuple[str, str]] = []
    worker.write_progress = lambda j, p: written.append(("progress", p))  # type: ignore[method-assign]
    worker.write_logs = lambda j, lines: written.extend(("log", line) for line in lines)  # type: ignore[method-assign]
    return Slot(0, worker), written


async def test_a_job_past_its_deadline_is_cancelled_then_killed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    worker, _ = make_worker(kill_grace=2)
    slot, _ = slot_for(worker)
    child = FakeChild([])
    start = trio.current_time()
    decision = await slot.run(job(timeout=5000, attempts=2, backoff=1000), child)  # type: ignore[arg-type]
    sent = [(when - start, message) for when, message in child.sent]
    assert isinstance(sent[0][1], Run)
    assert sent[1] == (5, Cancel("tok", "timeout"))
    assert child.killed_at is not None
    assert child.killed_at - start == 7
    assert decision == Retry(1000, "timeout: the job ran past its time limit of 5s", ())


async def test_the_worker_default_timeout_applies_without_a_job_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    worker, _ = make_worker(timeout=3, kill_grace=1)
    slot, _ = slot_for(worker)
    child = FakeChild([])
    start = trio.current_time()
    decision = await slot.run(job(), child)  # type: ignore[arg-type]
    assert child.killed_at is not None
    assert child.killed_at - start == 4
    assert decision == Fail("timeout: the job ran past its time limit of 3s", ())


async def test_without_any_timeout_a_job_may_run_for_ever(autojump_clock: trio.testing.MockClock) -> None:
    worker, _ = make_worker()
    slot, _ = slot_for(worker)
    child = FakeChild([])
    with trio.move_on_after(86_400 * 7):
        await slot.run(job(), child)  # type: ignore[arg-type]
    assert child.killed_at is None
    assert len(child.sent) == 1


async def test_a_cancel_from_another_task_wakes_the_slot(autojump_clock: trio.testing.MockClock) -> None:
    worker, _ = make_worker(kill_grace=1)
    slot, _ = slot_for(worker)
    child = FakeChild([])
    async with trio.open_nursery() as nursery:
        decisions: list[Any] = []

        async def run() -> None:
            decisions.append(await slot.run(job(attempts=5), child))  # type: ignore[arg-type]

        nursery.start_soon(run)
        await trio.sleep(10)
        slot.request_cancel("user changed their mind")
        slot.request_cancel("a second cancel is ignored")
    assert (child.sent[1][0], child.sent[1][1]) == (10, Cancel("tok", "user changed their mind"))
    assert child.killed_at == 11
    assert decisions == [Fail("cancelled: user changed their mind", ())]  # not retried


async def test_messages_with_another_token_are_dropped(autojump_clock: trio.testing.MockClock) -> None:
    worker, _ = make_worker()
    slot, written = slot_for(worker)
    child = FakeChild(
        [
            Progress("old-token", "99"),
            Done("old-token", Ok('"late result of an earlier job"')),
            Log("tok", "mine"),
            Done("tok", Ok('{"v":1}')),
        ]
    )
    decision = await slot.run(job(), child)  # type: ignore[arg-type]
    assert decision == Complete('{"v":1}')
    assert written == [("log", "mine")]


async def test_a_result_after_a_cancel_does_not_count(autojump_clock: trio.testing.MockClock) -> None:
    worker, _ = make_worker(kill_grace=5)
    slot, _ = slot_for(worker)

    class Obedient(FakeChild):
        async def send(self, message: Any) -> None:
            await super().send(message)
            if isinstance(message, Cancel):
                self.replies.append(Done("tok", Ok('"finished anyway"')))

    child = Obedient([])
    async with trio.open_nursery() as nursery:
        decisions: list[Any] = []

        async def run() -> None:
            decisions.append(await slot.run(job(timeout=1000, attempts=3), child))  # type: ignore[arg-type]

        nursery.start_soon(run)
    assert child.killed_at is None  # it stopped within the grace
    assert decisions == [Retry(0, "timeout: the job ran past its time limit of 1s", ())]


async def test_a_child_that_dies_fails_the_job_naming_the_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    worker, _ = make_worker()
    slot, _ = slot_for(worker)
    decision = await slot.run(job(), FakeChild([], dies_with=-11))  # type: ignore[arg-type]
    assert decision == Fail("crashed (signal 11, SIGSEGV): the process running the job died", ())


# --- settle, the rules in one place -----------------------------------------------------------------


def test_settle_rules() -> None:
    running = job(attempts=3, backoff={"type": "exponential", "delay": 100})
    assert settle(running, outcome=Ok("1"), cancel_reason="lock_lost") == Forget()
    assert settle(running, outcome=Ok("1"), cancel_reason="shutdown") == Requeue()
    assert settle(running, outcome=Ok("1")) == Complete("1")
    assert settle(running, outcome=Failure("ValueError", "bad", "tb", False)) == Retry(100, "bad", ("tb",))
    assert settle(running, outcome=Failure("ValueError", "", "tb", True)) == Fail("ValueError", ("tb",))
    assert settle(running, outcome=Delay(500)) == Postpone(500)
    assert settle(running, outcome=RateLimited(700)) == Requeue(pause_ms=700)
    assert settle(running, outcome=None, returncode=3) == Retry(100, exit_reason(3), ())
    last_try = read_fetched("7", "t", {b"name": b"n", b"opts": b'{"attempts": 3}', b"atm": b"2"})
    assert settle(last_try, outcome=Failure("E", "no", "tb", False)) == Fail("no", ("tb",))


def test_stack_traces_keep_the_newest_up_to_the_limit() -> None:
    earlier = read_fetched("7", "t", {b"name": b"n", b"stacktrace": b'["one", "two"]'})
    assert settle(earlier, outcome=Failure("E", "m", "three", True), stack_trace_limit=2) == Fail(
        "m", ("two", "three")
    )
    assert settle(earlier, outcome=Failure("E", "m", "three", True), stack_trace_limit=0) == Fail("m", ())


def test_read_fetched_is_lenient_and_says_what_is_wrong() -> None:
    assert read_fetched("1", "t", {b"name": b"x", b"opts": b"[1]"}).malformed == (
        "malformed job: its opts are not a JSON object"
    )
    assert read_fetched("1", "t", {b"opts": b"{}"}).malformed == "malformed job: it has no name"
    weird = read_fetched(
        "1", "t", {b"name": b"x", b"opts": b'{"timeout": 2.0, "attempts": "3", "lifo": true}'}
    )
    assert (weird.timeout_ms, weird.attempts, weird.lifo) == (2, 0, True)  # ms; a string is not a count
    assert math.isfinite(weird.timestamp)
