"""The ``sandq`` commands that read and operate queues. Most run ``sandq.cli.main`` in this process
(output captured); one runs the installed console script, as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

import sandq
from sandq import worker_scripts as ws
from sandq.cli import main

from script_jobs import finish, run_script, take


@pytest.fixture
def q(redis_url: str, queue_name: str) -> Iterator[sandq.SyncQueue]:
    with sandq.SyncQueue(queue_name, redis_url) as queue:
        yield queue


def cli(capsys: pytest.CaptureFixture[str], redis_url: str, *args: str) -> tuple[int, str, str]:
    command, *rest = args
    status = main([command, "--redis", redis_url, *rest])
    out, err = capsys.readouterr()
    return status, out, err


def test_jobs_lists_states_newest_first(
    capsys: pytest.CaptureFixture[str], redis_url: str, q: sandq.SyncQueue
) -> None:
    first = q.add("first", {"n": 1})
    q.add("second", delay=60_000)
    q.add("third", priority=2)
    [failed] = finish(q, 1, fail=True)
    assert failed == first.id
    status, out, err = cli(capsys, redis_url, "jobs", q.name)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["id", "name", "state", "attempts", "added", "result"]
    rows = [line.split()[:3] for line in lines[1:]]
    assert rows == [["3", "third", "prioritized"], ["2", "second", "delayed"], ["1", "first", "failed"]]
    assert lines[-1].endswith("boom")

    status, out, _ = cli(capsys, redis_url, "jobs", q.name, "--state", "failed", "--state", "delayed")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["1", "2"]  # in the order asked
    for _ in range(3):
        q.add("more")
    status, out, _ = cli(capsys, redis_url, "jobs", q.name, "--state", "waiting", "--limit", "2", "--asc")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["4", "5"]


def test_jobs_of_an_empty_queue_and_bad_limit(
    capsys: pytest.CaptureFixture[str], redis_url: str, queue_name: str
) -> None:
    assert cli(capsys, redis_url, "jobs", queue_name) == (0, f"no jobs in queue {queue_name!r}\n", "")
    status, _, err = cli(capsys, redis_url, "jobs", queue_name, "--limit", "0")
    assert status == 2
    assert err == "sandq: error: --limit must be at least 1, not 0\n"


def test_job_shows_fields_logs_and_stack(
    capsys: pytest.CaptureFixture[str], redis_url: str, q: sandq.SyncQueue
) -> None:
    job = q.add("mail", {"to": "ada"}, attempts=1)
    [held] = take(q)
    run_script(q, ws.add_log(q.keys, job.id, "sending"))
    failure = ws.Fail(job.id, held.token, "smtp down", ws.stacktrace_json(["Traceback: smtp down\n  line 1"]))
    run_script(q, ws.finish_jobs(q.keys, [failure], now_ms=0))
    status, out, err = cli(capsys, redis_url, "job", q.name, job.id)
    assert (status, err) == (0, "")
    fields = dict(line.split(None, 1) for line in out.splitlines() if line and not line.startswith(" "))
    assert fields["name"] == "mail"
    assert fields["state"] == "failed"
    assert fields["data"] == '{"to":"ada"}'
    assert fields["failed"] == "smtp down"
    assert fields["logs"] == "1 line(s)"
    assert "  sending" in out.splitlines()
    assert "  Traceback: smtp down" in out.splitlines()

    status, _, err = cli(capsys, redis_url, "job", q.name, "404")
    assert status == 2
    assert err == f"sandq: error: no job '404' in queue {q.name!r}\n"


def test_retry_ids_and_all(capsys: pytest.CaptureFixture[str], redis_url: str, q: sandq.SyncQueue) -> None:
    for _ in range(4):
        q.add("x")
    one, two, three = finish(q, 3, fail=True)
    status, out, err = cli(capsys, redis_url, "retry", q.name, one, "404", "4")
    assert status == 1
    assert out == f"job {one}: was failed, queued again\n"
    assert "job '404' does not exist" in err
    assert "job '4' is not completed or failed" in err
    assert cli(capsys, redis_url, "retry", q.name, "--all") == (0, "2 failed job(s) queued again\n", "")
    assert q.get_job_counts("failed", "waiting") == {"failed": 0, "waiting": 4}
    status, _, err = cli(capsys, redis_url, "retry", q.name)
    assert (status, err) == (2, "sandq: error: give job ids, or --all\n")
    assert {two, three} <= {job.id for job in q.get_waiting()}


def test_retry_with_reset_attempts(
    capsys: pytest.CaptureFixture[str], redis_url: str, q: sandq.SyncQueue
) -> None:
    job = q.add("x", attempts=1)
    finish(q, 1, fail=True, attempts=1)
    assert cli(capsys, redis_url, "retry", q.name, job.id, "--reset-attempts")[0] == 0
    got = q.get_job(job.id)
    assert got is not None
    assert got.attempts_made == 0


def test_promote_pause_resume(capsys: pytest.CaptureFixture[str], redis_url: str, q: sandq.SyncQueue) -> None:
    later = q.add("later", delay=60_000)
    q.add("later too", delay=60_000)
    now = q.add("now")
    assert cli(capsys, redis_url, "promote", q.name, later.id) == (0, f"job {later.id}: promoted\n", "")
    status, _, err = cli(capsys, redis_url, "promote", q.name, now.id)
    assert status == 1
    assert f"job '{now.id}' is not delayed" in err
    assert cli(capsys, redis_url, "promote", q.name, "--all") == (0, "1 delayed job(s) promoted\n", "")
    assert cli(capsys, redis_url, "pause", q.name) == (0, f"queue {q.name} paused\n", "")
    assert q.is_paused()
    assert cli(capsys, redis_url, "resume", q.name) == (0, f"queue {q.name} resumed\n", "")
    assert not q.is_paused()


def test_console_script_lists_jobs(redis_url: str, q: sandq.SyncQueue) -> None:
    q.add("hello", {"n": 1})
    sandq_bin = os.path.join(os.path.dirname(sys.executable), "sandq")
    done = subprocess.run(
        [sandq_bin, "jobs", q.name, "--redis", redis_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[:3] == ["1", "hello", "waiting"]


def test_remove(capsys: pytest.CaptureFixture[str], redis_url: str, q: sandq.SyncQueue) -> None:
    held, waiting = q.add("held"), q.add("waiting")
    take(q)
    status, out, err = cli(capsys, redis_url, "remove", q.name, waiting.id, held.id, "404")
    assert status == 1
    assert out == f"job {waiting.id}: removed (was waiting)\n"
    assert f"job '{held.id}' is locked" in err
    assert "job '404' does not exist" in err
    assert q.get_job(waiting.id) is None


def test_drain_clean_obliterate(
    capsys: pytest.CaptureFixture[str], redis_url: str, q: sandq.SyncQueue
) -> None:
    q.add_bulk([("x", {}) for _ in range(4)])
    finish(q, 2)
    q.add("later", delay=60_000)
    assert cli(capsys, redis_url, "drain", q.name) == (0, f"queue {q.name} drained\n", "")
    assert q.get_job_counts("waiting", "delayed", "completed") == {"waiting": 0, "delayed": 1, "completed": 2}
    assert cli(capsys, redis_url, "clean", q.name, "--grace", "1h") == (0, "0 completed job(s) removed\n", "")
    assert cli(capsys, redis_url, "clean", q.name, "--limit", "1") == (0, "1 completed job(s) removed\n", "")
    assert cli(capsys, redis_url, "clean", q.name, "--state", "delayed") == (
        0,
        "1 delayed job(s) removed\n",
        "",
    )
    q.add("running")
    take(q)
    status, _, err = cli(capsys, redis_url, "obliterate", q.name)
    assert status == 1
    assert "the queue has active jobs" in err
    assert cli(capsys, redis_url, "obliterate", q.name, "--force") == (0, f"queue {q.name} obliterated\n", "")
    assert q.get_job_counts() == dict.fromkeys(q.get_job_counts(), 0)


def test_events_follows_the_stream(redis_url: str, q: sandq.SyncQueue) -> None:
    sandq_bin = os.path.join(os.path.dirname(sys.executable), "sandq")
    job = q.add("before")
    with subprocess.Popen(
        [sandq_bin, "events", q.name, "--redis", redis_url, "--from", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as follower:
        assert follower.stdout is not None
        try:
            lines = [follower.stdout.readline() for _ in range(2)]  # added, waiting of the first job
            later = q.add("after", delay=5_000)
            lines += [follower.stdout.readline() for _ in range(2)]  # added, delayed of the second
        finally:
            follower.terminate()
    # "2026-11-24 03:44:15.042  added  job 1  name=before"
    assert [(line.split()[2], line.split()[4]) for line in lines] == [
        ("added", job.id),
        ("waiting", job.id),
        ("added", later.id),
        ("delayed", later.id),
    ]
    assert lines[0].rstrip().endswith("name=before")
    assert lines[3].rstrip().endswith("due in 5s")
