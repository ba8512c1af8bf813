"""Worker processes a driver starts and must not leave behind (Linux): see :class:`Workers`.

Standard library only: drivers run in their peer's own virtualenv.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import TracebackType

from common import fail

STOP_GRACE = 10.0  # seconds workers have to exit after SIGTERM before they are killed

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# Run in front of a worker's command, which then replaces it: the kernel is to SIGKILL the worker when
# the driver dies (the setting survives exec), and if the driver is already gone, it stops there.
_DIES_WITH_DRIVER = (
    f"import ctypes, os, sys; ctypes.CDLL(None).prctl({PR_SET_PDEATHSIG}, {int(signal.SIGKILL)}); "
    "os.getppid() == int(sys.argv[1]) or os._exit(1); os.execv(sys.argv[2], sys.argv[2:])"
)


def _children() -> list[int]:
    """The pids of this process's children, running or not yet reaped."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                found.append(int(entry))
    return found


def _exited(pid: int) -> bool:
    """Whether child ``pid`` has exited, without reaping it (so its pid cannot be reused yet)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


class Workers:
    """The worker processes a driver starts, each the leader of a session of its own, its output in a
    file of a temporary folder. None outlives the driver: the kernel SIGKILLs each if the driver dies
    (PR_SET_PDEATHSIG), and leaving the ``with`` block, whatever happened, sends each SIGTERM, SIGKILLs
    its process group after at most ``STOP_GRACE`` seconds, then kills and reaps whatever they left
    behind: the driver is a child subreaper, so that orphaned grandchildren (such as an RQ work horse,
    which has a process group of its own) become its children."""

    def __init__(self) -> None:
        self.processes: list[tuple[str, subprocess.Popen[bytes], str]] = []  # name, process, log file
        self.folder = ""

    def __enter__(self) -> Workers:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.folder = tempfile.mkdtemp(prefix="sandq-bench-workers-")
        return self

    def start(self, command: list[str]) -> None:
        path = os.path.join(self.folder, f"{len(self.processes)}.log")
        wrapped = [sys.executable, "-c", _DIES_WITH_DRIVER, str(os.getpid()), *command]
        with open(path, "wb") as log:  # the worker has its own copy of the descriptor
            process = subprocess.Popen(
                wrapped,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append((os.path.basename(command[0]), process, path))

    def running(self) -> int:
        return sum(process.poll() is None for _, process, _ in self.processes)

    def check(self) -> None:
        """Fail if a worker exited with an error, showing the end of its output."""
        for name, process, path in self.processes:
            if process.poll() not in (None, 0):
                with open(path, "rb") as log:
                    lines = log.read().decode(errors="replace").strip().splitlines() or ["no output"]
                fail(f"{name} worker exited with {process.returncode}: {lines[-1][:300]}")

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for _, process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        end = time.monotonic() + STOP_GRACE
        for _, process, _ in self.processes:
            while process.returncode is None and not _exited(process.pid) and time.monotonic() < end:
                time.sleep(0.01)
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # the leader and whatever is left in its group
            process.wait()
        for _ in range(100):
            orphans = _children()
            if not orphans:
                break
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        shutil.rmtree(self.folder, ignore_errors=True)
