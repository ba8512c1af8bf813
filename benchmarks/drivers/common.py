"""What every Python driver shares: reading the spec, printing the result, the jobs' work, waiting.

Drivers run in their peer's own virtualenv, where neither sandq nor the project's packages are
installed: this module uses the standard library only (``processors.burn`` comes from benchmarks/,
which the suite puts on PYTHONPATH). The protocol is described in ``benchmarks/peers.py``.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from processors import burn

__all__ = ["burn", "deadline_wait", "fail", "glob_escape", "job_result", "last_line", "main", "spec"]


def spec() -> dict[str, Any]:
    """The spec given on the command line."""
    parsed: dict[str, Any] = json.loads(sys.argv[1])
    return parsed


def fail(message: str) -> NoReturn:
    print(json.dumps({"error": message}), flush=True)
    sys.exit(1)


def job_result(data: dict[str, Any]) -> dict[str, Any]:
    """What every processor returns: its index, when it started, and for cpu jobs the work's checksum."""
    started = time.time()
    result: dict[str, Any] = {"i": data["i"], "t": started}
    if "n" in data:
        result["x"] = burn(data["n"])
    return result


def check_results(results: list[Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The drain reply from the N results (decoded dicts, in any order); fails on a wrong one."""
    n = spec["n"]
    seen = set()
    for result in results:
        if not isinstance(result, dict) or "t" not in result:
            fail(f"a job returned {result!r}")
        if spec["kind"] == "cpu" and result.get("x") != spec["check"]:
            fail(f"job {result.get('i')} computed {result.get('x')}, not {spec['check']}")
        seen.add(result["i"])
    if len(results) != n or seen != set(range(n)):
        fail(f"{len(results)} results of {len(seen)} distinct jobs, not one each of jobs 0..{n - 1}")
    times = [result["t"] for result in results]
    return {"first": min(times), "last": max(times), "jobs": n}


def last_line(text: str | None) -> str:
    """The last line of a traceback: the exception."""
    return ((text or "").strip().splitlines() or ["no traceback"])[-1][:300]


def glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis glob pattern (SCAN MATCH, KEYS)."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def deadline_wait(ready: Callable[[], bool], timeout: float, what: str, interval: float = 0.01) -> None:
    """Poll ``ready()`` until it is true; fail after ``timeout`` seconds saying ``what`` did not happen."""
    end = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > end:
            fail(f"{what} within {timeout:g}s")
        time.sleep(interval)


def main(ops: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    """Run the op the spec names and print its result (or the error) as the last line."""
    given = spec()
    op = ops.get(given["op"])
    if op is None:
        fail(f"unknown op {given['op']!r}; this driver has {sorted(ops)}")
    try:
        result = op(given)
    except SystemExit:
        raise
    except BaseException as exc:
        trace = traceback.format_exc(limit=3).strip().splitlines()
        fail(f"{type(exc).__name__}: {exc} ({trace[-3] if len(trace) > 2 else ''})")
    print(json.dumps(result), flush=True)
