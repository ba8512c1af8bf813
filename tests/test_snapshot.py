"""Whole-queue snapshots: each scenario run by bullmq alone (the PyPI client's Queue and Worker) and
again with sandq on one side, compared key by key.

For every scenario of ``snapshot.SCENARIOS`` three runs, each on a queue of its own:

- ``bullmq``: bullmq's producer and bullmq's Worker, the reference;
- ``sandq producer``: sandq's SyncQueue adds, bullmq's Worker processes;
- ``sandq worker``: bullmq's producer adds, ``sandq run`` (the CLI, in a subprocess) processes.

Snapshots are taken after the adds (``added``), while a worker waits on a paused queue (``paused``,
the pause scenario) and at the end (``done``), normalised as ``tests/snapshot.py`` explains (times,
tokens, JSON encodings, stack-trace frames of the runtimes, the interleaving of different jobs'
events). Every difference left must be one of :data:`KNOWN_DIFFERENCES`, with its reason; and every
known difference must still show where it is said to, so that the table stays true.

The first tests check the harness itself on hand-written keys.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections.abc import Callable, Iterator
from typing import Any

import bullmq
import pytest
import redis

import snapshot
from snapshot import (
    MISSING,
    SCENARIOS,
    TIME,
    Difference,
    LoopThread,
    Run,
    Scenario,
    diff,
    normalise_trace,
    now_ms,
    render,
    run_scenario,
    take,
)


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    with LoopThread() as thread:
        yield thread


# -- the harness ---------------------------------------------------------------------------------------


def test_take_normalises_what_differs_between_runs(raw: redis.Redis, queue_name: str) -> None:
    since = now_ms()
    base = f"bull:{queue_name}:"
    raw.hset(
        base + "7",
        mapping={
            "name": "job",
            "data": '{"b": [1, 2], "a": "x"}',
            "opts": '{"attempts":2,"backoff":{"type":"fixed","delay":5}}',
            "timestamp": str(since),
            "processedOn": str(since + 5),
            "finishedOn": "1000",  # not a time of this run: kept as it is
            "pb": "worker-12",
            "returnvalue": "null",
            "stacktrace": '["Traceback (most recent call last):\\n  File \\"/x/y/proc.py\\", line 3, in f\\n'
            '    boom()\\nValueError: no"]',
        },
    )
    raw.set(base + "7:lock", "6f1c2a:3", px=30_000)
    raw.zadd(base + "delayed", {"7": (since + 60_000) * 4096 + 2})
    raw.zadd(base + "marker", {"0": 0, "1": since + 60_000.5})
    raw.zadd(base + "completed", {"12": since, "9": since, "10": since + 1})
    raw.sadd(base + "stalled", "b", "a")
    raw.xadd(base + "events", {"event": "delayed", "jobId": "7", "delay": str(since + 60_000)})
    raw.xadd(base + "events", {"event": "active", "jobId": "9", "prev": "waiting"})
    raw.xadd(base + "events", {"event": "drained"})
    raw.xadd(base + "events", {"event": "drained"})
    raw.xadd(base + "events", {"event": "completed", "jobId": "7", "returnvalue": '{"k": 1}'})

    snap = take(raw, queue_name, since_ms=since)

    assert snap["7"] == {"type": "hash", "expires": False}
    assert snap["7/data"] == {"a": "x", "b": [1, 2]}
    assert snap["7/opts"] == {"backoff": {"delay": 5, "type": "fixed"}, "attempts": 2}
    assert (snap["7/timestamp"], snap["7/processedOn"], snap["7/finishedOn"]) == (TIME, TIME, "1000")
    assert snap["7/pb"] == "<worker>"
    assert snap["7/returnvalue"] is None
    assert snap["7/stacktrace"] == [{"frames": ["proc.py:f"], "error": "ValueError: no"}]
    assert snap["7:lock"] == {"type": "string", "expires": True, "value": "<token>"}
    assert snap["delayed"]["members"] == [["7", [TIME, 2]]]
    assert snap["marker"]["members"] == [["0", 0], ["1", TIME + "+0.500000"]]
    assert snap["completed"]["members"] == [["9", TIME], ["10", TIME], ["12", TIME]]
    assert snap["stalled"]["members"] == ["a", "b"]
    assert snap["events/job 7"] == [
        [["event", "delayed"], ["jobId", "7"], ["delay", TIME]],
        [["event", "completed"], ["jobId", "7"], ["returnvalue", {"k": 1}]],
    ]
    assert snap["events/active order"] == ["9"]
    assert snap["events/queue"] == [[["event", "drained"]]]


def test_stack_traces_keep_the_jobs_own_frames() -> None:
    """The frames of whatever called the processor, paths and line numbers do not count."""
    bullmq_side = (
        "Traceback (most recent call last):\n"
        f'  File "{os.path.dirname(bullmq.__file__)}/worker.py", line 379, in processJob\n'
        "    result = await self.processor(job, token)\n"
        f'  File "{snapshot.__file__}", line 1, in process\n'
        "    return function(view, token)\n"
        '  File "/a/tests/processors/scenarios.py", line 40, in flaky\n'
        '    raise ValueError("x")\n'
        "ValueError: x\n"
    )
    sandq_side = (
        "Traceback (most recent call last):\n"
        '  File "/b/processors/scenarios.py", line 41, in flaky\n'
        '    raise ValueError("x")\n'
        "    ^^^^^^^^^^^^^^^^^^^^^\n"
        "ValueError: x\n"
    )
    assert normalise_trace(bullmq_side) == normalise_trace(sandq_side)
    assert normalise_trace(sandq_side) == {"frames": ["scenarios.py:flaky"], "error": "ValueError: x"}
    assert normalise_trace(sandq_side.replace("flaky", "other")) != normalise_trace(sandq_side)


def test_diff_names_the_field_and_renders_both_sides(raw: redis.Redis, queue_name: str) -> None:
    since = now_ms()
    left_queue, right_queue = queue_name + "l", queue_name + "r"
    for name, attempts in ((left_queue, 1), (right_queue, 2)):
        raw.hset(f"bull:{name}:1", mapping={"name": "a", "atm": str(attempts)})
        raw.rpush(f"bull:{name}:wait", "1", "2")
    raw.rpush(f"bull:{right_queue}:wait", "3")
    raw.set(f"bull:{right_queue}:id", "3")
    differences = diff(take(raw, left_queue, since_ms=since), take(raw, right_queue, since_ms=since))
    assert [d.path for d in differences] == ["1/atm", "id", "wait"]
    assert differences[0] == Difference("1/atm", "1", "2")
    assert differences[1].left is MISSING
    text = render(differences, "bullmq", "sandq")
    assert "1/atm:\n  - bullmq: '1'\n  + sandq: '2'" in text
    assert "id:\n  - bullmq: <missing>\n" in text


# -- the scenarios ---------------------------------------------------------------------------------------

#: (who produces, who processes) of the runs compared with the bullmq-only one.
SIDES = {"sandq producer": ("sandq", "bullmq"), "sandq worker": ("bullmq", "sandq")}


@dataclasses.dataclass(frozen=True)
class Known:
    """A known difference from the bullmq-only run: in the runs of ``side``, at the snapshot paths
    matching ``path``, where ``matches(bullmq_value, sandq_value)``. It must show at every checkpoint
    of ``checkpoints`` that the scenario has."""

    side: str
    path: str
    checkpoints: frozenset[str]
    matches: Callable[[Any, Any], bool]
    reason: str

    def explains(self, side: str, difference: Difference) -> bool:
        return (
            side == self.side
            and fnmatch.fnmatchcase(difference.path, self.path)
            and self.matches(difference.left, difference.right)
        )


def _opts_without_zero_delay(bull: Any, sandq: Any) -> bool:
    return isinstance(sandq, dict) and "delay" not in sandq and bull == {**sandq, "delay": 0}


def _stalled_check_only_with_sandq(bull: Any, sandq: Any) -> bool:
    return bull is MISSING and sandq == {"type": "string", "expires": True, "value": TIME}


#: Every difference the snapshots show, and why. Anything else fails the test.
KNOWN_DIFFERENCES = (
    Known(
        side="sandq producer",
        path="*/opts",
        checkpoints=frozenset({"added", "paused", "done"}),
        matches=_opts_without_zero_delay,
        reason=(
            'sandq stores opts as Node\'s BullMQ does, without "delay" when it is 0; the PyPI client '
            'stores "delay": 0. Readers default it to 0 (bullmq\'s Job.fromJSON does), and the hash field '
            "delay is the same. A documented difference (README, Compatibility)."
        ),
    ),
    Known(
        side="sandq worker",
        path="stalled-check",
        checkpoints=frozenset({"paused", "done"}),
        matches=_stalled_check_only_with_sandq,
        reason=(
            "sandq's worker runs the stalled-job sweep as soon as it starts, as Node's BullMQ Worker "
            "does; the PyPI Worker (3.4.4) runs its first sweep one stalledInterval (30 s) after it "
            "starts (its Timer sleeps first), so in these short runs only sandq sets the stalled-check "
            "key. Not a sandq defect."
        ),
    ),
)


def _run(scenario: Scenario, who: tuple[str, str], queue: str, **context: Any) -> Run:
    return run_scenario(scenario, queue=queue, producer=who[0], worker=who[1], **context)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_snapshots_match_bullmq_alone(
    scenario: Scenario, redis_url: str, queue_name: str, raw: redis.Redis, loop: LoopThread
) -> None:
    context: dict[str, Any] = {"redis_url": redis_url, "loop": loop, "client": raw}
    reference = _run(scenario, ("bullmq", "bullmq"), queue_name + "bb", **context)
    # The reference is what the scenario says: the jobs ran in the expected order.
    assert reference.run_order() == list(scenario.runs)
    assert set(reference.snapshots) == ({"added", "paused", "done"} if scenario.pauses else {"added", "done"})

    problems: list[str] = []
    for side, who in SIDES.items():
        run = _run(scenario, who, f"{queue_name}{who[0][0]}{who[1][0]}", **context)
        assert run.ids == reference.ids, side
        for checkpoint, expected in reference.snapshots.items():
            differences = diff(expected, run.snapshots[checkpoint])
            unexplained = [d for d in differences if not any(k.explains(side, d) for k in KNOWN_DIFFERENCES)]
            if unexplained:
                problems.append(f"[{side}, {checkpoint}]\n" + render(unexplained, "bullmq", side))
            for known in KNOWN_DIFFERENCES:
                due = side == known.side and checkpoint in known.checkpoints
                if due and not any(known.explains(side, d) for d in differences):
                    problems.append(
                        f"[{side}, {checkpoint}] no longer differs: {known.path} ({known.reason})"
                    )
    assert not problems, "\n\n".join(problems)
