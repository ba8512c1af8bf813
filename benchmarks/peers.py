"""The contenders of the benchmark suite, each in its own environment, and how the suite talks to them.

Not a benchmark itself; ``suite.py`` imports it. Every peer is installed by the suite, on first use,
into a folder of its own under ``~/.cache/sandq-bench`` (``$XDG_CACHE_HOME/sandq-bench``), never into
the repository or the project's environment: a virtualenv per Python peer (their pins, e.g. the
``bullmq`` PyPI client's exact msgpack and croniter, cannot clash with sandq's), and the npm folder of
``benchmarks/node/package.json`` for Node. A peer that cannot be installed is reported with the reason,
never silently dropped. sandq itself runs from the environment the suite runs in.

The driver protocol
-------------------
Each contender has a *driver*: a script run with the peer's interpreter as
``<python|node> <driver> '<spec JSON>'``, which prints its result as one JSON object on the last line
of stdout (anything before it is ignored) and exits 0; on a failure it prints ``{"error": "..."}`` and
exits 1. Drivers are in ``benchmarks/drivers/`` (Python) and ``benchmarks/node/`` (Node). A spec is::

    {"op": OP, "redis": URL, "queue": NAME, "variant": VARIANT or null, ...op fields}

``queue`` is a fresh name per measurement (the suite deletes its keys afterwards, whatever the peer's
key layout: every key the peer makes for it must contain that name). ``variant`` picks a flavour of the
peer (RQ: ``fork`` / ``simple``; Node: ``sandboxed`` / ``inprocess``). The ops:

``versions``
    -> ``{"versions": {"<package>": "<version>", ...}}``: what is installed.
``enqueue`` ``{"n": N, "bulk": bool}``
    Add N no-op jobs with data ``{"i": i}``. Single: one add awaited (or called) after another. Bulk:
    the peer's bulk add, 1,000 jobs per call; a peer without one returns ``{"unsupported": "<why>"}``.
    -> ``{"seconds": S}`` for the N adds.
``drain`` ``{"kind": "noop" | "cpu", "n": N, "concurrency": C, "rounds": R, "check": X}``
    Add N jobs first (untimed; ``{"i": i}``, and ``"n": R`` for cpu), then start the peer's worker(s) with
    concurrency C and wait until all N are done. Each job's processor returns ``{"i": i, "t": T}``
    where T is ``time.time()`` (seconds, float) when it *started*, and for cpu also ``"x": burn(R)``
    (``benchmarks/processors.py``), which must equal X. The driver checks every job's result.
    -> ``{"first": T_min, "last": T_max, "jobs": N}``; the suite's figure is ``(N - 1) / (last -
    first)``, so start-up and shut-down are not counted.
``latency`` ``{"n": N, "concurrency": 1}``
    Start the worker(s) and let them go idle (process one warm-up job first). Then N times, one after
    another: ``t0 = time.time()``; add a job ``{"i": i}``; wait for its result the way a user of the
    peer would (sandq: ``QueueEvents.wait_until_finished``; Node BullMQ: ``waitUntilFinished``; the
    PyPI client, which has no such call: its ``QueueEvents`` ``completed`` event; RQ:
    ``latest_result(timeout)``; Celery: ``AsyncResult.get``; arq: ``job.result``, polling every ms);
    ``t2 = time.time()``. The processor returns its start time ``t1`` as in
    drain. -> ``{"active_ms": [(t1 - t0) * 1000, ...], "completed_ms": [(t2 - t0) * 1000, ...]}``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psutil

BENCH_DIR = pathlib.Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DRIVERS = BENCH_DIR / "drivers"
NODE_DIR = BENCH_DIR / "node"
CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "sandq-bench"
INSTALL_TIMEOUT = 600


@dataclass(frozen=True)
class Peer:
    """One installable peer: a virtualenv with ``packages``, or (``packages`` empty, ``node`` True) the
    Node folder."""

    name: str
    packages: tuple[str, ...] = ()
    node: bool = False


@dataclass(frozen=True)
class Contender:
    """One row of the tables: a peer's driver and variant."""

    label: str
    peer: str  # "sandq", or a key of PEERS
    driver: str  # file name in drivers/ (Python) or node/ (Node)
    variant: str | None = None
    ops: frozenset[str] = frozenset({"enqueue", "drain", "latency"})
    kinds: frozenset[str] = frozenset({"noop", "cpu"})


PEERS = {
    "bullmq": Peer("bullmq", ("bullmq",)),
    "rq": Peer("rq", ("rq",)),
    "celery": Peer("celery", ("celery[redis]",)),
    "arq": Peer("arq", ("arq",)),
    "node": Peer("node", node=True),
    "charts": Peer("charts", ("matplotlib",)),  # draws the suite's PNG charts (charts.py)
    # sandq (this checkout, editable) beside numpy, for the kill/respawn measurement with numpy preloaded
    "sandq-numpy": Peer("sandq-numpy", ("-e", str(REPO), "numpy")),
}

SANDQ = "sandq"
CONTENDERS = (
    Contender(SANDQ, "sandq", "sandq_driver.py"),
    Contender("bullmq PyPI (asyncio)", "bullmq", "bullmq_driver.py"),
    Contender("Node bullmq, sandboxed", "node", "driver.mjs", "sandboxed"),
    Contender("Node bullmq, in-process", "node", "driver.mjs", "inprocess"),
    Contender("RQ Worker (fork)", "rq", "rq_driver.py", "fork"),
    Contender("RQ SimpleWorker", "rq", "rq_driver.py", "simple"),
    Contender("Celery (prefork)", "celery", "celery_driver.py"),
    Contender("arq", "arq", "arq_driver.py", kinds=frozenset({"noop"})),
)


class Hung(RuntimeError):
    """A driver did not finish in time: the contender is skipped for the rest of the run."""


class Unsupported(Exception):
    """The driver says the peer cannot do this (``{"unsupported": why}``): shown, not a failure."""


class Unavailable(Exception):
    """A peer could not be installed or started; the message says why (shown in the tables)."""


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(command: list[str], cwd: pathlib.Path | None = None) -> None:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{' '.join(command[:3])} took over {INSTALL_TIMEOUT} s") from None
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        raise Unavailable(f"{' '.join(command[:3])} failed: {lines[-1][:200]}")


def install(peer: Peer) -> list[str]:
    """The interpreter command of ``peer``'s environment, installing it first if it is missing or
    was made for other packages. Raises Unavailable with the reason."""
    if peer.node:
        return _install_node()
    home = CACHE / "venvs" / peer.name
    python = home / "bin" / "python"
    marker = home / "sandq-bench.json"
    wanted = {"packages": list(peer.packages), "python": sys.version.split()[0]}
    with _locked(CACHE / "locks" / f"{peer.name}.lock"):
        if python.exists() and marker.exists() and json.loads(marker.read_text()) == wanted:
            return [str(python)]
        print(f"  installing {', '.join(peer.packages)} into {home} ...", flush=True)
        shutil.rmtree(home, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(home)])
        _run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        _run([str(python), "-m", "pip", "install", "--quiet", *peer.packages])
        marker.write_text(json.dumps(wanted))
    return [str(python)]


def _install_node() -> list[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise Unavailable(
            "not installed: " + " and ".join(f"no {n}" for n, p in (("node", node), ("npm", npm)) if not p)
        )
    folder = CACHE / "node"
    manifest = (NODE_DIR / "package.json").read_text()
    with _locked(CACHE / "locks" / "node.lock"):
        cached = folder / "package.json"
        installed = folder / "node_modules" / "bullmq" / "package.json"
        if not (cached.exists() and cached.read_text() == manifest and installed.exists()):
            folder.mkdir(parents=True, exist_ok=True)
            cached.write_text(manifest)
            print(f"  installing bullmq@6 and ioredis with npm into {folder} ...", flush=True)
            try:
                _run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder)
            except Unavailable:
                cached.unlink(missing_ok=True)
                raise
    return [node]


def node_modules() -> pathlib.Path:
    """Where the Node peer's packages are (NODE_PATH for the Node driver)."""
    return CACHE / "node" / "node_modules"


def command_for(contender: Contender) -> list[str]:
    """The command that runs ``contender``'s driver (before the spec argument); installs its peer
    if needed. Raises Unavailable."""
    if contender.peer == SANDQ:
        return [sys.executable, str(DRIVERS / contender.driver)]
    interpreter = install(PEERS[contender.peer])
    folder = NODE_DIR if PEERS[contender.peer].node else DRIVERS
    return [*interpreter, str(folder / contender.driver)]


def environment(contender: Contender) -> dict[str, str]:
    """The environment a driver runs with: the repository and benchmarks/ importable (for
    ``processors.burn`` and the drivers' own helpers), NODE_PATH for Node."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(DRIVERS), str(BENCH_DIR), str(REPO)])
    if contender.peer == "node":
        # For require(); ES modules ignore NODE_PATH, so driver.mjs loads packages with createRequire.
        env["NODE_PATH"] = str(node_modules())
    return env


def _kill_tree(process: subprocess.Popen[str]) -> None:
    """Kill a driver and every process under it (its workers too), then reap it."""
    try:
        victims = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        victims = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.kill()
    process.communicate()


def _group(pgid: int) -> list[psutil.Process]:
    """The live (not zombie) processes of process group ``pgid``."""
    found = []
    for candidate in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(candidate.pid) == pgid and candidate.status() != psutil.STATUS_ZOMBIE:
                found.append(candidate)
    return found


def _strays(pgid: int) -> bool:
    """Whether processes of the driver's group outlive it (by more than a second); they are killed."""
    deadline = time.monotonic() + 1.0
    while _group(pgid):
        if time.monotonic() > deadline:
            for stray in _group(pgid):
                with contextlib.suppress(psutil.Error):
                    stray.kill()
            return True
        time.sleep(0.02)
    return False


def run_driver(contender: Contender, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one op of ``contender``'s driver, in a process group of its own; its result. A driver that
    does not finish within ``timeout`` seconds is killed with every process it started (Hung); one that
    fails raises RuntimeError, and so does one that leaves processes behind (they are killed). A reply
    ``{"unsupported": why}`` raises Unsupported. Unavailable: the peer cannot be installed."""
    command = [*command_for(contender), json.dumps({"variant": contender.variant, **spec})]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=environment(contender),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(process)
        raise Hung(f"{spec['op']} did not finish within {timeout:.0f}s") from None
    except BaseException:  # Ctrl-C: its own session does not get the SIGINT
        _kill_tree(process)
        raise
    stray = _strays(process.pid)
    lines = out.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    if process.returncode != 0 or "error" in result or not isinstance(result, dict) or not result:
        told = result.get("error") if isinstance(result, dict) else None
        told = told or (err.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{spec['op']} failed (exit {process.returncode}): {str(told)[:300]}")
    if stray:
        raise RuntimeError(f"{spec['op']} left processes running after it exited (killed)")
    if "unsupported" in result:
        raise Unsupported(f"unsupported: {result['unsupported']}")
    return result
