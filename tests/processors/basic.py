"""One tiny processor per behaviour a child must handle."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from typing import Any

from sandq.child import CancelToken, Delay
from sandq.errors import DelayedError, RateLimitError, UnrecoverableError, WaitingChildrenError
from sandq.job import Job

NOT_CALLABLE = 42


def square(job: Job, token: CancelToken) -> Any:
    return {"square": job.data["n"] ** 2, "attempts": job.attempts_made, "opts": job.opts}


def one_arg(job: Job) -> Any:
    return [job.id, job.name, job.data, job.progress]


async def async_square(job: Job, token: CancelToken) -> Any:
    import asyncio

    await asyncio.sleep(0)
    return job.data["n"] ** 2


def fail(job: Job, token: CancelToken) -> Any:
    raise ValueError(f"bad input {job.data!r}")


def unrecoverable(job: Job, token: CancelToken) -> Any:
    raise UnrecoverableError("give up now")


def delay_returned(job: Job, token: CancelToken) -> Any:
    return Delay(5000)


def delay_raised(job: Job, token: CancelToken) -> Any:
    raise DelayedError(1500)


def rate_limited(job: Job, token: CancelToken) -> Any:
    raise RateLimitError(2500)


def waiting_children(job: Job, token: CancelToken) -> Any:
    raise WaitingChildrenError()


def updates(job: Job, token: CancelToken) -> Any:
    job.update_progress(50)
    job.log("halfway there")
    job.update_data({"step": 2})
    job.update_progress({"done": True})
    return "ok"


def spin(job: Job, token: CancelToken) -> Any:
    job.log("spinning")
    while True:
        pass


def cooperative(job: Job, token: CancelToken) -> Any:
    job.log("waiting for a cancel")
    while True:
        token.raise_if_cancelled()
        time.sleep(0.005)


def sleepy(job: Job, token: CancelToken) -> Any:
    """Sleeps until cancelled (then returns what it knows), or for the seconds in ``data``."""
    job.log("sleeping")
    if token.wait(job.data.get("seconds", 30)):
        return {"cancelled": token.reason}
    return "slept"


def segfault(job: Job, token: CancelToken) -> Any:
    return ctypes.string_at(0)


def exit_hard(job: Job, token: CancelToken) -> Any:
    os._exit(3)


def exit_soft(job: Job, token: CancelToken) -> Any:
    sys.exit(4)


def prints(job: Job, token: CancelToken) -> Any:
    print(f"stdout of job {job.id}")
    print(f"stderr of job {job.id}", file=sys.stderr)
    sys.stdout.write("no newline at the end")
    return None


def not_json(job: Job, token: CancelToken) -> Any:
    return {"when": object()}


def nan(job: Job, token: CancelToken) -> Any:
    return float("nan")


def grandchild(job: Job, token: CancelToken) -> Any:
    sleeper = subprocess.Popen(["sleep", "1000"])
    job.log(str(sleeper.pid))
    while True:
        time.sleep(1)


def grandchild_then_exit(job: Job, token: CancelToken) -> Any:
    sleeper = subprocess.Popen(["sleep", "1000"])
    job.log(str(sleeper.pid))
    os._exit(3)


def loaded_modules(job: Job, token: CancelToken) -> Any:
    return sorted(sys.modules)


def identity(job: Job, token: CancelToken) -> Any:
    return job.data


def prints_a_lot(job: Job, token: CancelToken) -> Any:
    for i in range(4000):
        print(f"line {i:05d} " + "x" * 40)
    print("the last line")


def garbage(job: Job, token: CancelToken) -> Any:
    """Writes bytes that are not the protocol to the child's protocol socket."""
    import gc
    import socket

    for thing in gc.get_objects():
        if isinstance(thing, socket.socket) and thing.fileno() >= 0 and thing.type == socket.SOCK_STREAM:
            thing.sendall(b"\x00\x00\x00\x03abc")
    time.sleep(30)


def length(job: Job, token: CancelToken) -> Any:
    job.log("x" * len(job.data))
    return len(job.data)
