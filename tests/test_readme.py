"""The README's commands and examples, run as written (against a private Redis)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

from servers import RedisServer

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
BIN = os.path.dirname(sys.executable)


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


def run(command: list[str], server: RedisServer) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as a user of the README would, with sandq's default Redis being ``server``."""
    env = dict(os.environ, SANDQ_REDIS_URL=server.url)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
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
    done = run(["bash", "-c", command], private_redis)
    lines = done.stdout.splitlines()
    assert lines[0] == "1"
    assert lines[1] == "queue emails (bull:emails), running"
    assert "waiting              1" in lines


def test_the_python_examples(private_redis: RedisServer) -> None:
    examples = blocks("python")
    assert len(examples) == 2
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
