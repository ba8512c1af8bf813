"""Reading job hashes, and the sans-IO queue operations driven with canned replies. No Redis."""

from __future__ import annotations

from typing import Any

import pytest

from sandq.errors import InvalidOptionError, JobDataError, MalformedJobError, SandqError
from sandq.job import Job, JobState, parse_number
from sandq.ops import NO_DATA, Command, Pipeline, QueueOps, list_queues, new_job
from sandq.options import JobOptions
from sandq.scripts import NewJob, ScriptCall


@pytest.mark.parametrize(
    ("raw", "value"),
    [(b"12", 12), (b"12.0", 12), (b"3e+8", 300_000_000), (b"", 0), (None, 0), (b"x", 0), (b"inf", 0)],
)
def test_numbers_are_read_leniently(raw: bytes | None, value: int) -> None:
    assert parse_number(raw) == value


def test_job_from_a_bullmq_v5_hash() -> None:
    job = Job.from_hash(
        "7",
        [
            b"name", b"resize",
            b"data", b'{"w":3}',
            b"opts", b'{"attempts":3,"kl":5,"de":{"id":"d"}}',
            b"timestamp", b"1.7e12",
            b"delay", b"0",
            b"priority", b"2",
            b"attemptsMade", b"1",
            b"stalledCounter", b"2",
            b"processedOn", b"1700000000001",
            b"progress", b'{"p":50}',
            b"returnvalue", b"null",
            b"stacktrace", b'["a","b"]',
            b"failedReason", b"boom",
            b"pb", b"w1",
        ],
    )  # fmt: skip
    assert job.name == "resize"
    assert job.data == {"w": 3}
    assert job.opts == {"attempts": 3, "keepLogs": 5, "deduplication": {"id": "d"}}
    assert job.options.keep_logs == 5
    assert job.timestamp == 1_700_000_000_000
    assert (job.attempts_made, job.stalled_counter, job.priority) == (1, 2, 2)
    assert job.processed_on == 1_700_000_000_001
    assert job.finished_on is None
    assert job.progress == {"p": 50}
    assert job.stacktrace == ("a", "b")
    assert (job.failed_reason, job.processed_by) == ("boom", "w1")


def test_v6_names_win_over_v5_names() -> None:
    job = Job.from_hash("1", {b"name": b"x", b"atm": b"4", b"attemptsMade": b"1", b"stc": b"3"})
    assert (job.attempts_made, job.stalled_counter) == (4, 3)


@pytest.mark.parametrize("field", ["data", "opts", "progress", "returnvalue", "stacktrace", "parent"])
def test_malformed_json_fields_name_the_field(field: str) -> None:
    with pytest.raises(MalformedJobError, match=f"job '9': field '{field}' is not JSON") as info:
        Job.from_hash("9", {b"name": b"x", field.encode(): b"{not json"})
    assert info.value.field == field


def test_job_state_prints_as_its_value() -> None:
    assert str(JobState.WAITING_CHILDREN) == "waiting-children"


def run(op: Any, replies: list[Any]) -> tuple[list[Any], Any]:
    """Drive a sans-IO operation with canned replies; return the calls it made and its result."""
    calls = []
    try:
        call = next(op)
        while True:
            calls.append(call)
            call = op.send(replies.pop(0))
    except StopIteration as stop:
        return calls, stop.value


def test_add_makes_one_script_call_and_builds_the_job() -> None:
    ops = QueueOps("q")
    calls, job = run(ops.add("n", {"a": 1}, JobOptions(attempts=2), 1000), [[b"41"]])
    assert len(calls) == 1
    assert isinstance(calls[0], ScriptCall)
    assert calls[0].script.name == "add_jobs"
    assert (job.id, job.name, job.data, job.timestamp) == ("41", "n", {"a": 1}, 1000)
    assert job.opts == {"attempts": 2}


def test_add_of_a_duplicate_returns_the_existing_job() -> None:
    ops = QueueOps("q")
    existing = [b"name", b"first", b"data", b"[1]", b"opts", b'{"jobId":"x"}']
    _, job = run(ops.add("second", [2], JobOptions(job_id="x"), 1000), [[[b"x", existing]]])
    assert (job.id, job.name, job.data) == ("x", "first", [1])


def test_data_that_is_not_json_is_refused_before_any_call() -> None:
    ops = QueueOps("q")
    with pytest.raises(JobDataError, match="the data of job 'n' cannot be stored as JSON"):
        next(ops.add("n", {"when": object()}, JobOptions(), 1))
    with pytest.raises(JobDataError):
        next(ops.add("n", float("nan"), JobOptions(), 1))


def test_bulk_validates_everything_first() -> None:
    ops = QueueOps("q")
    with pytest.raises(InvalidOptionError, match="job 1 of the batch has unknown key"):
        next(ops.add_bulk([("a", 1), {"name": "b", "opts": {}}], 1))
    with pytest.raises(JobDataError):
        next(ops.add_bulk([("a", 1), ("b", {1, 2})], 1))
    with pytest.raises(InvalidOptionError, match="must be"):
        next(ops.add_bulk(["just a string"], 1))  # type: ignore[list-item]


def test_bulk_item_shapes() -> None:
    ops = QueueOps("q")
    items = [
        ("a", 1),
        ("b", 2, {"delay": 5}),
        {"name": "c", "data": 3, "options": {"priority": 1}},
        {"name": "d"},
    ]
    _, jobs = run(ops.add_bulk(items, 10), [[b"1", b"2", b"3", b"4"]])
    assert [(j.id, j.name, j.data, j.delay, j.priority) for j in jobs] == [
        ("1", "a", 1, 0, 0),
        ("2", "b", 2, 5, 0),
        ("3", "c", 3, 0, 1),
        ("4", "d", {}, 0, 0),
    ]


def test_empty_bulk_makes_no_call() -> None:
    calls, jobs = run(QueueOps("q").add_bulk([], 1), [])
    assert (calls, jobs) == ([], [])


def test_counts_are_one_pipeline() -> None:
    calls, counts = run(QueueOps("q").get_job_counts(["wait", "failed", "waiting"]), [[2, 1]])
    assert calls == [Pipeline((("LLEN", "bull:q:wait"), ("ZCARD", "bull:q:failed")))]
    assert counts == {"waiting": 2, "failed": 1}


def test_resume_repeats_until_the_legacy_list_is_moved() -> None:
    calls, _ = run(QueueOps("q").resume(), [5000, 10, 0])
    assert [call.args for call in calls] == [("resumed", "1"), ("resumed", "0"), ("resumed", "0")]


def test_get_job_of_a_missing_id() -> None:
    calls, job = run(QueueOps("q").get_job("nope"), [[]])
    assert calls == [Command(("HGETALL", "bull:q:nope"))]
    assert job is None


def test_list_queues_scans_both_key_kinds() -> None:
    replies = [
        [b"5", [b"bull:a:meta"]],
        [b"0", [b"bull:b:meta", b"bull:x:y:meta"]],
        [b"0", [b"bull:a:id", b"bull:c:id"]],
    ]
    calls, names = run(list_queues("bull"), replies)
    assert names == ["a", "b", "c"]
    assert len(calls) == 3


def test_new_job_wire_fields() -> None:
    spec = new_job("n", {"a": 1}, JobOptions(job_id="x", delay=5, priority=2, lifo=True, timestamp=7), "1000")
    assert spec == NewJob(
        "x",
        "n",
        "7",
        "5",
        "2",
        1,
        '{"a":1}',
        JobOptions(job_id="x", delay=5, priority=2, lifo=True, timestamp=7).stored_json()[1],
    )
    assert new_job("n", NO_DATA, JobOptions(), "1000") == NewJob(
        "", "n", "1000", "0", "0", 0, "{}", '{"attempts":0}'
    )
    with pytest.raises(InvalidOptionError, match="a job name must be a string"):
        new_job(5, {}, JobOptions(), "1")  # type: ignore[arg-type]


def test_fast_job_records_equal_the_regular_ones() -> None:
    fast = Job.added("1", name="n", data=[1], opts={"attempts": 0}, timestamp=5, delay=0, priority=3)
    assert fast == Job(id="1", name="n", data=[1], opts={"attempts": 0}, timestamp=5, priority=3)
    assert fast.stacktrace == ()


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send_progress(self, job: Job, progress_json: str) -> None:
        self.sent.append(("progress", job.id, progress_json))

    def send_log(self, job: Job, line: str) -> None:
        self.sent.append(("log", job.id, line))

    def send_data(self, job: Job, data_json: str) -> None:
        self.sent.append(("data", job.id, data_json))


def test_a_bound_job_sends_its_updates() -> None:
    channel = Recorder()
    job = Job(id="3", name="n", data={"a": 1}).bind(channel)
    job.update_progress(50)
    job.log("half way")
    job.update_data({"a": 2})
    assert channel.sent == [("progress", "3", "50"), ("log", "3", "half way"), ("data", "3", '{"a":2}')]
    assert (job.progress, job.data) == (50, {"a": 2})
    with pytest.raises(JobDataError, match="progress cannot be stored as JSON"):
        job.update_progress(float("nan"))
    assert job == Job(id="3", name="n", data={"a": 2}, progress=50)


def test_an_unbound_job_says_where_its_methods_work() -> None:
    with pytest.raises(SandqError, match=r"Job.log\(\) works inside a processor"):
        Job(id="1", name="n", data={}).log("x")
