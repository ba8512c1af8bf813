"""The worker scripts' builders and decoders, without Redis: keys, arguments, packing, replies."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from sandq import worker_scripts as ws
from sandq.errors import JobNotFoundError, LockMismatchError
from sandq.job import JobState
from sandq.keys import QueueKeys
from sandq.lua import all_scripts
from sandq.options import KeepJobs

K = QueueKeys("q", prefix="bull")
NOW = 1_800_000_000_000


def unpack(value: Any) -> Any:
    return msgpack.unpackb(value)


def test_every_worker_script_is_shipped_with_its_key_count() -> None:
    scripts = all_scripts()
    expected = {
        "move_to_active": 9,
        "finish_jobs": 12,
        "extend_locks": 1,
        "move_stalled_jobs_to_wait": 8,
        "update_progress": 3,
        "add_log": 2,
        "update_data": 1,
        "cancel_job": 11,
    }
    assert {name: scripts[name].numkeys for name in expected} == expected
    for name in expected:
        source = scripts[name].source
        assert "--#include" not in source
        assert '"TIME"' not in source


def test_every_builder_matches_its_script() -> None:
    calls = [
        ws.move_to_active(K, ["t"], now_ms=NOW, lock_duration_ms=1),
        ws.finish_jobs(K, [], now_ms=NOW),
        ws.extend_locks(K, [], 1),
        ws.move_stalled_jobs_to_wait(K, max_stalled_count=1, now_ms=NOW, stalled_interval_ms=1),
        ws.update_progress(K, "1", "1"),
        ws.add_log(K, "1", "x"),
        ws.update_data(K, "1", "{}"),
        ws.cancel_job(K, "1", "r", now_ms=NOW),
    ]
    for call in calls:
        assert len(call.keys) == call.script.numkeys  # ScriptCall checks it too


def test_move_to_active() -> None:
    call = ws.move_to_active(
        K, ["a", "b"], now_ms=NOW, lock_duration_ms=30_000, worker_name="w1", limiter=(10, 1000)
    )
    assert call.script.name == "move_to_active"
    assert call.keys == (
        "bull:q:wait",
        "bull:q:active",
        "bull:q:prioritized",
        "bull:q:pc",
        "bull:q:delayed",
        "bull:q:limiter",
        "bull:q:meta",
        "bull:q:marker",
        "bull:q:events",
    )
    base, now, lock, name, tokens, limit_max, limit_duration = call.args
    assert (base, now, lock, name, limit_max, limit_duration) == ("bull:q:", NOW, 30_000, "w1", 10, 1000)
    assert unpack(tokens) == ["a", "b"]


def test_move_to_active_defaults() -> None:
    call = ws.move_to_active(K, ["a"], now_ms=NOW, lock_duration_ms=5)
    assert call.args[3] == ""
    assert call.args[5:] == (0, 0)


def test_decode_fetch() -> None:
    reply = [
        [[b"1", b"t1", [b"name", b"a", b"ats", b"1"]], [b"x", b"t2", []]],
        250,
        NOW,
    ]
    assert ws.decode_fetch(reply) == ws.FetchResult(
        jobs=[
            ws.FetchedJob(id="1", token="t1", fields={b"name": b"a", b"ats": b"1"}),
            ws.FetchedJob(id="x", token="t2", fields={}),
        ],
        rate_limit_ttl_ms=250,
        next_delayed_ms=NOW,
    )
    assert ws.decode_fetch([[], 0, 0]) == ws.FetchResult(jobs=[], rate_limit_ttl_ms=0, next_delayed_ms=0)


def test_finish_jobs_keys_and_entries() -> None:
    entries: list[ws.FinishEntry] = [
        ws.Complete("1", "t1", '{"r":1}', KeepJobs(count=5, age=60)),
        ws.Fail("2", "t2", "boom", '["trace"]', KeepJobs(count=0), attempts=3),
        ws.Retry("3", "t3", 500, "again", '["t"]', lifo=True),
        ws.Delay("4", "t4", 100),
        ws.Requeue("5", ""),
    ]
    call = ws.finish_jobs(K, entries, now_ms=NOW)
    assert call.script.name == "finish_jobs"
    assert call.keys[-3:] == ("bull:q:stalled", "bull:q:completed", "bull:q:failed")
    assert call.keys[:9] == ws.move_to_active(K, [], now_ms=0, lock_duration_ms=0).keys
    base, now, packed, fetch = call.args
    assert (base, now, fetch) == ("bull:q:", NOW, "")
    assert unpack(packed) == [
        ["complete", "1", "t1", '{"r":1}', 5, 60, 1000],
        ["fail", "2", "t2", "boom", '["trace"]', 0, -1, 1000, 3],
        ["retry", "3", "t3", 500, "again", '["t"]', 1],
        ["delay", "4", "t4", 100],
        ["requeue", "5", ""],
    ]


def test_finish_entry_defaults() -> None:
    assert ws.Complete("1", "t").wire() == ["complete", "1", "t", "null", -1, -1, 1000]
    assert ws.Fail("1", "t", "r").wire() == ["fail", "1", "t", "r", "", -1, -1, 1000, 0]
    assert ws.Retry("1", "t", 0, "r").wire() == ["retry", "1", "t", 0, "r", "", 0]
    assert ws.Complete("1", "t", "2", (3, 4, 5)).wire()[4:] == [3, 4, 5]


def test_finish_jobs_with_fetch() -> None:
    spec = ws.FetchSpec(tokens=("n1", "n2"), lock_duration_ms=9000, worker_name="w", limiter=(3, 60_000))
    call = ws.finish_jobs(K, [ws.Requeue("1", "t")], now_ms=NOW, fetch=spec)
    assert unpack(call.args[3]) == [["n1", "n2"], 9000, "w", 3, 60_000]
    bare = ws.FetchSpec(tokens=["a"], lock_duration_ms=1)
    assert unpack(ws.finish_jobs(K, [], now_ms=NOW, fetch=bare).args[3]) == [["a"], 1, "", 0, 0]


def test_decode_finish() -> None:
    assert ws.decode_finish([[0, -6, -1], 0]) == ([0, -6, -1], None)
    codes, fetched = ws.decode_finish([[0], [[[b"2", b"n", [b"k", b"v"]]], 0, 7]])
    assert codes == [0]
    assert fetched == ws.FetchResult(
        jobs=[ws.FetchedJob(id="2", token="n", fields={b"k": b"v"})], rate_limit_ttl_ms=0, next_delayed_ms=7
    )
    assert ws.decode_finish([[], [[], 100, 0]]) == ([], ws.FetchResult([], 100, 0))


def test_stacktrace_json() -> None:
    assert ws.stacktrace_json(["a", "é"]) == '["a","é"]'
    assert ws.stacktrace_json([]) == "[]"


@pytest.mark.parametrize(
    ("value", "default", "expected"),
    [
        (None, None, (-1, -1, 1000)),
        (False, True, (-1, -1, 1000)),  # the job's own False wins over the worker's
        (True, None, (0, -1, 1000)),
        (None, True, (0, -1, 1000)),
        (None, 50, (50, -1, 1000)),
        (10, None, (10, -1, 1000)),
        (0, None, (0, -1, 1000)),
        (10.0, None, (10, -1, 1000)),
        ("7", None, (7, -1, 1000)),
        (-3, None, (-1, -1, 1000)),
        ({"age": 3600}, None, (-1, 3600, 1000)),
        ({"age": 60, "count": 5, "limit": 10}, None, (5, 60, 10)),
        ({"count": 0}, None, (0, -1, 1000)),
        ({"limit": 0}, None, (-1, -1, 1000)),
        ({"age": "x"}, None, (-1, -1, 1000)),
        (KeepJobs(age=30), None, (-1, 30, 1000)),
        (None, KeepJobs(count=2, limit=4), (2, -1, 4)),
        (KeepJobs(), None, (-1, -1, 1000)),
        (["nonsense"], None, (-1, -1, 1000)),
    ],
)
def test_retention(value: Any, default: Any, expected: tuple[int, int, int]) -> None:
    assert ws.retention(value, default) == expected


def test_extend_locks() -> None:
    call = ws.extend_locks(K, [("1", "a"), ("2", "b")], 30_000)
    assert call.script.name == "extend_locks"
    assert call.keys == ("bull:q:stalled",)
    assert call.args[:2] == ("bull:q:", 30_000)
    assert unpack(call.args[2]) == [["1", "a"], ["2", "b"]]
    assert ws.decode_extend_locks([b"2"]) == ["2"]
    assert ws.decode_extend_locks([]) == []


def test_move_stalled_jobs_to_wait() -> None:
    call = ws.move_stalled_jobs_to_wait(K, max_stalled_count=2, now_ms=NOW, stalled_interval_ms=30_000)
    assert call.keys == (
        "bull:q:stalled",
        "bull:q:wait",
        "bull:q:active",
        "bull:q:stalled-check",
        "bull:q:meta",
        "bull:q:marker",
        "bull:q:events",
        "bull:q:repeat",
    )
    assert call.args == ("bull:q:", NOW, 2, 30_000)
    assert ws.decode_stalled([b"a", b"b"]) == ["a", "b"]


def test_job_updates() -> None:
    progress = ws.update_progress(K, "7", '{"p":1}')
    assert progress.keys == ("bull:q:7", "bull:q:events", "bull:q:meta")
    assert progress.args == ("7", '{"p":1}')
    log = ws.add_log(K, "7", "hello", 3)
    assert log.keys == ("bull:q:7", "bull:q:7:logs")
    assert log.args == ("7", "hello", 3)
    assert ws.add_log(K, "7", "hello").args == ("7", "hello", "")
    data = ws.update_data(K, "7", "[1]")
    assert (data.keys, data.args) == (("bull:q:7",), ("[1]",))


def test_decode_code() -> None:
    assert ws.decode_code(0, script="update_data", job_id="1") == 0
    assert ws.decode_code(4, script="add_log", job_id="1") == 4
    with pytest.raises(JobNotFoundError) as info:
        ws.decode_code(-1, script="add_log", job_id="1")
    assert info.value.job_id == "1"
    assert info.value.script == "add_log"
    with pytest.raises(LockMismatchError):
        ws.decode_code(-6, script="x", job_id="1")


def test_cancel_job() -> None:
    call = ws.cancel_job(K, "9", "stop", now_ms=NOW)
    assert call.keys == (
        "bull:q:completed",
        "bull:q:failed",
        "bull:q:delayed",
        "bull:q:prioritized",
        "bull:q:active",
        "bull:q:wait",
        "bull:q:paused",
        "bull:q:waiting-children",
        "bull:q:events",
        "bull:q:sandq:cancels",
        "bull:q:meta",
    )
    assert call.args == ("bull:q:", "9", "stop", NOW)
    assert ws.decode_cancel(b"active", job_id="9") is JobState.ACTIVE
    assert ws.decode_cancel(b"waiting-children", job_id="9") is JobState.WAITING_CHILDREN
    with pytest.raises(JobNotFoundError):
        ws.decode_cancel(-1, job_id="9")
