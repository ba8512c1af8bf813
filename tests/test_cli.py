"""The ``sandq`` command, run as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest
import redis

from sandq.connection.embedded import stop_embedded_redis

SANDQ = os.path.join(os.path.dirname(sys.executable), "sandq")


def sandq(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SANDQ, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env, check=False
    )


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def test_add_prints_the_id_and_stores_the_job(redis_url: str, queue_name: str, r: redis.Redis) -> None:
    done = sandq("add", "--redis", redis_url, queue_name, "mail", '{"to": "ada"}', "--attempts", "3")
    assert (done.returncode, done.stdout, done.stderr) == (0, "1\n", "")
    job = r.hgetall(f"bull:{queue_name}:1")
    assert job["name"] == "mail"
    assert json.loads(job["data"]) == {"to": "ada"}
    assert json.loads(job["opts"]) == {"attempts": 3}


def test_add_options(redis_url: str, queue_name: str, r: redis.Redis) -> None:
    base = ("add", "--redis", redis_url, queue_name)
    assert sandq(*base, "later", "--delay", "2s").stdout == "1\n"
    assert sandq(*base, "urgent", "--priority", "1").stdout == "2\n"
    assert sandq(*base, "named", "--job-id", "order-9", "--lifo").stdout == "order-9\n"
    assert sandq(*base, "again", "--job-id", "order-9").stdout == "order-9\n"  # takes counter value 4
    assert sandq(*base, "retry", "--backoff", "500ms", "--exponential", "--timeout", "1m").stdout == "5\n"
    assert sandq(*base, "stdin", "-", stdin="[1, 2, 3]").stdout == "6\n"
    assert r.hget(f"bull:{queue_name}:1", "delay") == "2000"
    assert r.zscore(f"bull:{queue_name}:prioritized", "2") == float(2**32 + 1)
    assert r.lrange(f"bull:{queue_name}:wait", -1, -1) == ["order-9"]
    assert r.hget(f"bull:{queue_name}:order-9", "name") == "named"
    assert json.loads(r.hget(f"bull:{queue_name}:5", "opts") or "") == {
        "attempts": 0,
        "backoff": {"type": "exponential", "delay": 500},
        "timeout": 60000,
    }
    assert r.hget(f"bull:{queue_name}:6", "data") == "[1,2,3]"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("q", "x", "{not json"), "JSON_DATA is not valid JSON"),
        (("q", "x", "--delay", "soon"), "'soon' is not a duration"),
        (("q", "x", "--priority", "0x"), "invalid int value"),
        (("q", "x", "--priority", "3000000"), "priority must be from 0 to 2,097,151"),
        (("q", "x", "--job-id", "123"), "is a plain integer"),
        (("q", "x", "--exponential"), "--exponential needs --backoff"),
        (("bad:name", "x"), "must not contain ':'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(redis_url: str, args: tuple[str, ...], message: str) -> None:
    done = sandq("add", "--redis", redis_url, *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert done.stdout == ""
    if "usage:" not in done.stderr:
        assert done.stderr.count("\n") == 1


def test_unreachable_redis_is_exit_1() -> None:
    done = sandq("add", "--redis", "redis://127.0.0.1:1/0", "q", "x")
    assert done.returncode == 1
    assert done.stderr.startswith("sandq: error: cannot connect to Redis at redis://127.0.0.1:1/0")
    assert done.stderr.count("\n") == 1


def test_info_of_one_queue(redis_url: str, queue_name: str) -> None:
    for args in (("a",), ("b", "--delay", "1m"), ("c", "--priority", "2")):
        sandq("add", "--redis", redis_url, queue_name, *args)
    done = sandq("info", "--redis", redis_url, queue_name)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0] == f"queue {queue_name} (bull:{queue_name}), running"
    table = dict(line.split() for line in lines[2:])
    assert table == {
        "waiting": "1",
        "active": "0",
        "delayed": "1",
        "prioritized": "1",
        "waiting-children": "0",
        "completed": "0",
        "failed": "0",
    }


def test_info_lists_the_queues_under_a_prefix(redis_url: str, queue_name: str, r: redis.Redis) -> None:
    prefix = f"p{queue_name}"
    for name in ("alpha", "beta"):
        sandq("add", "--redis", redis_url, "--prefix", prefix, name, "x")
    r.hset(f"{prefix}:beta:meta", "paused", 1)
    done = sandq("info", "--redis", redis_url, "--prefix", prefix)
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows[0][:3] == ["queue", "status", "waiting"]
    assert rows[1][:3] == ["alpha", "running", "1"]
    assert rows[2][:3] == ["beta", "paused", "1"]
    empty = sandq("info", "--redis", redis_url, "--prefix", prefix + "none")
    assert empty.stdout.startswith("no queues under prefix")


@pytest.fixture
def embedded_home() -> Iterator[dict[str, str]]:
    """An environment whose data directory is a fresh, short one (unix socket paths are short)."""
    home = tempfile.mkdtemp(prefix="sqh", dir="/tmp")
    env = {key: value for key, value in os.environ.items() if key != "SANDQ_REDIS_URL"}
    env["XDG_DATA_HOME"] = home
    yield env
    stop_embedded_redis(data_dir=os.path.join(home, "sandq", "redis"))
    shutil.rmtree(home, ignore_errors=True)


def test_the_main_job_against_the_embedded_redis(embedded_home: dict[str, str]) -> None:
    first = sandq("add", "--redis", "embedded", "emails", "welcome", '{"to": "ada"}', env=embedded_home)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "1\n"
    assert "using the embedded Redis at unix://" in first.stderr
    assert "(started it)" in first.stderr
    assert first.stderr.count("\n") == 1
    info = sandq("info", "--redis", "embedded", "emails", env=embedded_home)
    assert "(already running)" in info.stderr
    assert "waiting              1" in info.stdout
    assert os.path.exists(os.path.join(embedded_home["XDG_DATA_HOME"], "sandq", "redis", "redis.sock"))
    # The worker finds the same embedded Redis.
    sandq("add", "--redis", "embedded", "demo", "square", '{"x": 3}', env=embedded_home)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [SANDQ, "run", "examples.tasks:square", "--queue", "demo", "--burst", "--redis", "embedded"],
        env=embedded_home,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert 'job 1 (square) completed: {"square":9}' in done.stderr
