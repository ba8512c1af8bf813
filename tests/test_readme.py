"""The README's commands and examples, run as written (against a private Redis)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
from typing import Any

import pytest

from sandq.child import CancelToken
from sandq.errors import JobCancelled
from sandq.job import Job

from servers import RedisServer

ROOT = pathlib.Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
BIN = os.path.dirname(sys.executable)


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


def run(
    command: list[str], server: RedisServer, cwd: pathlib.Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as a user of the README would, with sandq's default Redis being ``server``."""
    env = dict(os.environ, SANDQ_REDIS_URL=server.url)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done


def test_the_readme_opens_with_set_up_main_job_and_tests() -> None:
    first = blocks("sh")[0].strip().splitlines()
    assert first[0].startswith("python3 -m venv .venv")
    assert "pip install -e '.[embedded,test]'" in first[0]
    assert first[1].startswith("sandq add ")
    assert first[2] == "python -m pytest"
    ci = (pathlib.Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "\npython -m pytest\n" in ci  # CI runs the README's test command


def test_the_main_job_command(private_redis: RedisServer) -> None:
    command = blocks("sh")[0].strip().splitlines()[1]
    done = run(["bash", "-c", command], private_redis, cwd=ROOT)
    assert done.stdout == "1\n"
    assert 'job 1 (square) completed: {"square":49}' in done.stderr


def test_the_processor_example() -> None:
    processor = blocks("python")[0]
    namespace: dict[str, Any] = {}
    exec(compile(processor, "README processor", "exec"), namespace)
    sent: list[str] = []

    class Channel:
        def send_progress(self, job: Job, progress_json: str) -> None:
            sent.append(progress_json)

        def send_log(self, job: Job, line: str) -> None:
            sent.append(line)

        def send_data(self, job: Job, data_json: str) -> None:
            sent.append(data_json)

    job = Job(id="1", name="report", data={"items": [1, 2, 3]}).bind(Channel())
    assert namespace["process"](job, CancelToken()) == {"total": 14}
    assert sent == ["33", "66", "100"]
    token = CancelToken()
    token.cancel("stop")
    with pytest.raises(JobCancelled):
        namespace["process"](job, token)


def test_the_python_examples(private_redis: RedisServer) -> None:
    examples = blocks("python")[1:]
    assert len(examples) == 3
    first = examples[0].replace("redis://localhost:6379/0", private_redis.url)
    done = run([sys.executable, "-c", first], private_redis)
    assert done.stdout.splitlines() == [
        "1 waiting",
        "{'waiting': 1001, 'active': 0, 'delayed': 1, 'prioritized': 0, 'waiting-children': 0, "
        "'completed': 0, 'failed': 0}",
    ]
    second = "import sandq\n" + examples[1] + "print(queue.get_job_counts('prioritized'))\n"
    done = run([sys.executable, "-c", second], private_redis)
    assert done.stdout.strip() == "{'prioritized': 1}"


def test_the_queue_events_example(private_redis: RedisServer) -> None:
    example = blocks("python")[3]
    env = dict(os.environ, SANDQ_REDIS_URL=private_redis.url)
    worker = subprocess.Popen(
        [os.path.join(BIN, "sandq"), "run", "examples.tasks:square", "--queue", "squares"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        done = run([sys.executable, "-c", example], private_redis)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert done.stdout.splitlines() == [
        "{'square': 49}",
        "added 1",
        "waiting 1",
        "active 1",
        "completed 1",
    ]
