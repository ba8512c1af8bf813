"""Snapshots of one queue's Redis keys, normalised for comparison, and a readable diff of two of them;
plus the runners of the interop scenarios (their producers and workers, bullmq's and sandq's).

A snapshot (:func:`take`) maps a *path* to a plain value, for every key ``<prefix>:<queue>:*``: the key
itself (``wait``, ``3``, ``3:logs``, ``meta``) gives its type, whether it expires, and its contents
(strings, lists in order, sets sorted, zsets in score order but for those scored by a time); each field
of a hash is a path of its own (``3/opts``), so that a diff names the field that differs. What
legitimately differs between two runs of the same scenario is normalised:

- times (``timestamp``, ``processedOn``, ``finishedOn``, a delayed job's fire time, the marker's next
  delayed time, ``stalled-check``, finished sets' scores) read ``<time>`` when they fall inside the run
  (else they are kept, and show in a diff); a delayed score keeps its same-millisecond sequence number;
  sets scored by a time (completed, failed) list their members in id order, as which of two quick jobs
  finished first within a millisecond or two is timing (the run order is in the events, below);
- lock values (tokens), ``pb`` (the worker's name) and random (UUID) job ids;
- JSON text (``data``, ``opts``, ``returnvalue``, ``progress``, ``parent``; event ``data`` and
  ``returnvalue``) is parsed: Lua's cjson re-encodes it, so only the values count;
- stack traces keep the frames of the job's own code (file name and function) and the error line: the
  frames of the runtime that called the processor (bullmq's asyncio worker and its adapter here, sandq's
  child process) and line numbers are not the job's;
- the events stream is compared as three views rather than one interleaving: each job's events in
  order (``events/job <id>``), the order in which jobs became active (``events/active order``), and
  the events of no job (``events/queue``: drained, paused, ...; repeats collapsed, as how often the
  queue ran dry is timing). How one job's events interleave with another's depends on the worker's
  fetch schedule (sandq fetches short jobs ahead and finishes them in batches), not on the data model.
  Entry ids are times, and dropped.

:func:`diff` lists the paths whose values differ and :func:`render` prints them. Scenario runners:
:class:`LoopThread` (an asyncio loop in a thread, for bullmq's Worker and QueueEvents next to sync
test code), :func:`bull_worker` / :func:`sandq_worker` (context managers running a worker),
:class:`BullProducer` / :class:`SandqProducer` and :func:`run_scenario`.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import dataclasses
import difflib
import inspect
import json
import os
import pathlib
import pprint
import re
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import bullmq
import redis

import sandq

TESTS = pathlib.Path(__file__).parent
SANDQ = os.path.join(os.path.dirname(sys.executable), "sandq")
TIME = "<time>"
T = TypeVar("T")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- snapshots -----------------------------------------------------------------------------------------

#: Hash fields holding a time (ms).
_TIME_FIELDS = frozenset({"timestamp", "processedOn", "finishedOn"})
#: Hash fields holding JSON text.
_JSON_FIELDS = frozenset({"data", "opts", "returnvalue", "progress", "parent"})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+, in (?P<function>.+)$')


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """One queue's keys at one moment, normalised: path -> value (see the module's docstring)."""

    queue: str
    entries: Mapping[str, Any]

    def __getitem__(self, path: str) -> Any:
        return self.entries[path]

    def __contains__(self, path: object) -> bool:
        return path in self.entries

    def get(self, path: str, default: Any = None) -> Any:
        return self.entries.get(path, default)


def _runtime_dirs() -> tuple[str, ...]:
    """Where the code that runs processors lives (the stdlib, installed packages, sandq, this file)."""
    paths = sysconfig.get_paths()
    dirs = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs |= {os.path.dirname(sandq.__file__), os.path.dirname(bullmq.__file__)}
    return tuple(os.path.realpath(d) + os.sep for d in dirs)


_RUNTIME = _runtime_dirs()
_HERE = os.path.realpath(__file__)


def normalise_trace(text: str) -> dict[str, Any]:
    """A traceback as the frames of the job's own code (``file.py:function``) and its error line."""
    lines = text.splitlines()
    frames = []
    for line in lines:
        match = _FRAME.match(line)
        if match is None:
            continue
        path = os.path.realpath(match["path"])
        if path != _HERE and not path.startswith(_RUNTIME):
            frames.append(f"{os.path.basename(path)}:{match['function']}")
    error = next((line for line in reversed(lines) if line and not line[0].isspace()), "")
    return {"frames": frames, "error": error}


class _Normaliser:
    """The per-snapshot state of normalisation: the run's time window and the UUIDs seen so far."""

    def __init__(self, since_ms: int, until_ms: int) -> None:
        self.since_ms = since_ms - 1_000
        self.until_ms = until_ms + 3_600_000  # delayed jobs fire in the future
        self.uuids: dict[str, str] = {}

    def time(self, value: Any) -> Any:
        try:
            number = int(float(value))
        except (TypeError, ValueError):
            return value
        return TIME if self.since_ms <= number <= self.until_ms else value

    def marker_time(self, score: float) -> Any:
        """Marker "1": the next delayed time (ms); a fraction there (BullMQ's score / 4096) is kept."""
        value = self.time(score)
        return f"{value}+{score % 1:.6f}" if value == TIME and score % 1 else value

    def ids(self, text: str) -> str:
        def name(match: re.Match[str]) -> str:
            return self.uuids.setdefault(match[0], f"<uuid{len(self.uuids) + 1}>")

        return _UUID.sub(name, text)

    def json(self, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            return {"<not JSON>": text}

    def job_field(self, field: str, value: str) -> Any:
        if field in _TIME_FIELDS:
            return self.time(value)
        if field == "pb":
            return "<worker>"
        if field == "stacktrace":
            trace = self.json(value)
            return [normalise_trace(str(item)) for item in trace] if isinstance(trace, list) else trace
        if field in _JSON_FIELDS:
            return self.json(self.ids(value))
        return self.ids(value)

    def zset(self, suffix: str, members: list[tuple[str, float]]) -> list[list[Any]]:
        if suffix == "delayed":
            return [[self.ids(m), [self.time(int(s) // 4096), int(s) % 4096]] for m, s in members]
        if suffix == "marker":
            return [[m, self.marker_time(s) if m == "1" else s] for m, s in members]
        if suffix == "prioritized" or suffix.startswith("metrics"):
            return [[self.ids(m), int(s) if float(s).is_integer() else s] for m, s in members]
        # Scored by a time: in id order (see the module's docstring).
        ordered = sorted(members, key=lambda item: _natural(item[0]))
        return [[self.ids(m), self.time(s)] for m, s in ordered]

    def event(self, fields: Mapping[str, str]) -> list[list[Any]]:
        out: list[list[Any]] = []
        for field, value in fields.items():
            if field == "delay" and fields.get("event") == "delayed":
                out.append([field, self.time(value)])
            elif field in ("returnvalue", "data"):
                out.append([field, self.json(value)])
            else:
                out.append([field, self.ids(value)])
        return out


def _natural(job_id: str) -> tuple[int, int, str]:
    return (0, int(job_id), "") if job_id.isdigit() else (1, 0, job_id)


def take(client: redis.Redis, queue: str, *, since_ms: int, prefix: str = "bull") -> Snapshot:
    """Snapshot every key of ``queue``; ``since_ms``: when the run began (times before it are kept raw).
    ``client`` must decode responses."""
    base = f"{prefix}:{queue}:"
    norm = _Normaliser(since_ms, now_ms())
    entries: dict[str, Any] = {}
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", base) + "*"
    for key in sorted(client.scan_iter(match=pattern, count=1000)):
        suffix = norm.ids(key[len(base) :])
        kind = client.type(key)
        if kind == "none":  # gone since the scan
            continue
        expires = client.pttl(key) > 0
        head: dict[str, Any] = {"type": kind, "expires": expires}
        if kind == "string":
            value = client.get(key) or ""
            if suffix.endswith(":lock"):
                head["value"] = "<token>"
            elif suffix == "stalled-check":
                head["value"] = norm.time(value)
            else:
                head["value"] = norm.ids(value)
        elif kind == "list":
            head["items"] = [norm.ids(item) for item in client.lrange(key, 0, -1)]
        elif kind == "set":
            head["members"] = sorted(norm.ids(m) for m in client.smembers(key))
        elif kind == "zset":
            head["members"] = norm.zset(suffix, client.zrange(key, 0, -1, withscores=True))
        elif kind == "hash":
            job = suffix != "meta" and not suffix.startswith(("repeat:", "dn:", "metrics"))
            for field, value in sorted(client.hgetall(key).items()):
                entries[f"{suffix}/{field}"] = norm.job_field(field, value) if job else norm.ids(value)
        elif kind == "stream":
            stream = [fields for _, fields in client.xrange(key)]
            if suffix == "events":
                entries.update(_event_views(norm, stream))
            else:
                head["entries"] = [norm.event(fields) for fields in stream]
        entries[suffix] = head
    return Snapshot(queue, entries)


def _event_views(norm: _Normaliser, stream: list[dict[str, str]]) -> dict[str, Any]:
    views: dict[str, Any] = {"events/active order": [], "events/queue": []}
    for fields in stream:
        job_id = fields.get("jobId")
        if job_id is None:
            # Repeats collapse: how often the queue ran dry (``drained``) depends on when delayed jobs
            # came due against the worker's wake-ups; that it did, and in what order, does not.
            entry = norm.event(fields)
            if not views["events/queue"] or views["events/queue"][-1] != entry:
                views["events/queue"].append(entry)
            continue
        job_id = norm.ids(job_id)
        views.setdefault(f"events/job {job_id}", []).append(norm.event(fields))
        if fields.get("event") == "active":
            views["events/active order"].append(job_id)
    return views


# -- diffs ---------------------------------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclasses.dataclass(frozen=True)
class Difference:
    """A path whose value differs: ``left`` and ``right`` (MISSING where the path is absent)."""

    path: str
    left: Any
    right: Any


def diff(left: Snapshot, right: Snapshot) -> list[Difference]:
    """The paths whose values differ, sorted."""
    paths = sorted(set(left.entries) | set(right.entries))
    return [
        Difference(path, left.get(path, MISSING), right.get(path, MISSING))
        for path in paths
        if left.get(path, MISSING) != right.get(path, MISSING)
    ]


def render(differences: Sequence[Difference], left: str = "left", right: str = "right") -> str:
    """The differences, readable: a value that spans lines is shown as a unified diff."""
    out: list[str] = []
    for d in differences:
        a = pprint.pformat(d.left, width=100, sort_dicts=False).splitlines()
        b = pprint.pformat(d.right, width=100, sort_dicts=False).splitlines()
        out.append(f"{d.path}:")
        if len(a) == len(b) == 1:
            out += [f"  - {left}: {a[0]}", f"  + {right}: {b[0]}"]
        else:
            udiff = difflib.unified_diff(a, b, fromfile=left, tofile=right, lineterm="", n=2)
            out += [f"  {line}" for line in udiff]
    return "\n".join(out)


# -- an asyncio loop next to sync code -------------------------------------------------------------------


class LoopThread:
    """An asyncio event loop in a thread of its own: bullmq's Worker and QueueEvents run there while
    the test's own thread adds jobs, polls Redis and takes snapshots. ``call(fn, *args)`` runs the
    coroutine ``fn(*args)`` on the loop and returns its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bullmq-loop", daemon=True)

    def __enter__(self) -> LoopThread:
        self._thread.start()
        return self

    def call(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, timeout: float = 20) -> T:
        future = asyncio.run_coroutine_threadsafe(fn(*args), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def __exit__(self, *exc: object) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            self.call(cancel_rest)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


# -- workers -------------------------------------------------------------------------------------------


def wait_until(condition: Callable[[], Any], within: float = 15.0, what: str = "") -> Any:
    """Poll ``condition`` until it is true (returned) or ``within`` seconds pass (AssertionError)."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {within}s: {what or condition}")
        time.sleep(0.02)


class BullJobView:
    """A bullmq Job as the scenario processors see a job (``processors.scenarios.ScenarioJob``):
    ``update_progress`` and ``log`` are queued and written, in order, once the processor returns."""

    def __init__(self, job: Any) -> None:
        self._job = job
        self.id: str = job.id
        self.name: str = job.name
        self.data: Any = job.data
        self.attempts_made: int = job.attemptsMade
        self._pending: list[Callable[[], Any]] = []

    def update_progress(self, progress: Any) -> None:
        self._pending.append(lambda: self._job.updateProgress(progress))

    def log(self, line: str) -> None:
        self._pending.append(lambda: self._job.log(line))

    async def flush(self) -> None:
        for write in self._pending:
            result = write()
            if inspect.isawaitable(result):
                await result
        self._pending.clear()


def bull_processor(function: Callable[[Any, Any], Any]) -> Callable[[Any, str], Awaitable[Any]]:
    """A bullmq processor that runs a scenario processor on a :class:`BullJobView` of its job."""

    async def process(job: Any, token: str) -> Any:
        view = BullJobView(job)
        try:
            return function(view, token)
        finally:
            await view.flush()

    return process


@contextlib.contextmanager
def bull_worker(
    loop: LoopThread,
    redis_url: str,
    queue: str,
    processor: Callable[[Any, Any], Any],
    **options: Any,
) -> Iterator[Any]:
    """A bullmq Worker of ``queue`` on ``loop``, running a scenario processor; closed on exit. Errors it
    emits are collected and fail the block."""
    errors: list[BaseException] = []

    async def start() -> Any:
        opts = {"connection": redis_url, "drainDelay": 1, **options}
        worker = bullmq.Worker(queue, bull_processor(processor), opts)
        worker.on("error", lambda err, *rest: errors.append(err))
        return worker

    worker = loop.call(start)
    try:
        yield worker
    finally:
        loop.call(worker.close)
    assert not errors, f"the bullmq worker reported errors: {errors!r}"


@contextlib.contextmanager
def sandq_worker(redis_url: str, queue: str, processor: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``sandq run processors.scenarios:<processor>`` for ``queue`` (from the tests directory). On exit
    it gets SIGTERM, which must end it with status 0 (unless the block killed it, or failed: then it
    is killed). Its log goes to a file, shown when it exits badly."""
    with tempfile.TemporaryFile("w+") as log:
        command = [SANDQ, "run", f"processors.scenarios:{processor}", "--queue", queue]
        process = subprocess.Popen(
            [*command, "--redis", redis_url, *args], cwd=TESTS, stdout=log, stderr=log, text=True
        )
        try:
            yield process
        except BaseException:
            process.kill()
            raise
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                status = process.wait(15)
            finally:
                process.kill()
                process.wait()
            log.seek(0)
            text = log.read()
            if status not in (0, -signal.SIGKILL) or sys.exc_info()[0] is not None:
                sys.stderr.write(f"sandq run exited with {status}; its log:\n{text}")
        assert status in (0, -signal.SIGKILL), f"sandq run exited with {status}:\n{text}"


def worker_client_name(queue: str, prefix: str = "bull") -> str:
    """BullMQ's (Node's) worker connection name for ``queue``, the one sandq sets: ``P:<base64(Q)>``."""
    return f"{prefix}:{base64.b64encode(queue.encode()).decode()}"


def blocked_on_marker(client: redis.Redis, queue: str) -> bool:
    """Whether a worker of ``queue`` is blocked on the marker (BZPOPMIN), under either client's naming
    (Node's and sandq's ``P:<base64(Q)>``, the PyPI client's ``P:Q``)."""
    names = (worker_client_name(queue), f"bull:{queue}")
    for info in client.client_list():
        name = info.get("name", "")
        blocked = "b" in info.get("flags", "") and info.get("cmd") == "bzpopmin"
        if blocked and any(name == n or name.startswith(n + ":w:") for n in names):
            return True
    return False


# -- producers and scenarios -----------------------------------------------------------------------------

_BULL_NAMES = {
    "job_id": "jobId",
    "remove_on_complete": "removeOnComplete",
    "remove_on_fail": "removeOnFail",
    "keep_logs": "keepLogs",
}


def bull_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """sandq's job option keywords as bullmq's option names."""
    return {_BULL_NAMES.get(key, key): value for key, value in options.items()}


class SandqProducer:
    label = "sandq"

    def __init__(self, redis_url: str, queue: str) -> None:
        self.queue = sandq.SyncQueue(queue, redis_url)

    def add(self, name: str, data: Any, options: Mapping[str, Any]) -> str:
        return self.queue.add(name, data, **options).id

    def pause(self) -> None:
        self.queue.pause()

    def resume(self) -> None:
        self.queue.resume()

    def close(self) -> None:
        self.queue.close()


class BullProducer:
    """bullmq's Queue, on a :class:`LoopThread`."""

    label = "bullmq"

    def __init__(self, loop: LoopThread, redis_url: str, queue: str) -> None:
        self.loop = loop

        async def open_queue() -> Any:
            return bullmq.Queue(queue, {"connection": redis_url})

        self.queue = loop.call(open_queue)

    def add(self, name: str, data: Any, options: Mapping[str, Any]) -> str:
        async def add() -> str:
            return str((await self.queue.add(name, data, bull_options(options))).id)

        return self.loop.call(add)

    def pause(self) -> None:
        self.loop.call(self.queue.pause)

    def resume(self) -> None:
        self.loop.call(self.queue.resume)

    def close(self) -> None:
        self.loop.call(self.queue.close)


@dataclasses.dataclass(frozen=True)
class Add:
    """Add a job; ``options`` are sandq's keywords (translated for bullmq)."""

    name: str
    data: Any = dataclasses.field(default_factory=dict)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Pause:
    """Pause the queue; the worker starts while it is paused, and the run resumes it."""


@dataclasses.dataclass(frozen=True)
class Scenario:
    """Steps for a producer, the processor (a function of ``processors/scenarios.py``) and the names of
    the jobs in the order they must run (retries included)."""

    name: str
    processor: str
    steps: tuple[Add | Pause, ...]
    runs: tuple[str, ...]

    @property
    def pauses(self) -> bool:
        return any(isinstance(step, Pause) for step in self.steps)


@dataclasses.dataclass
class Run:
    """What a run of a scenario left: the queue, the ids the adds returned, snapshots at checkpoints
    (``added``: the producer's work alone; ``paused``: a worker idle on the paused queue; ``done``)."""

    queue: str
    ids: list[str]
    snapshots: dict[str, Snapshot]
    scenario: Scenario

    def name_of(self, job_id: str) -> str:
        """The name the job was added under (a duplicate add does not rename it)."""
        adds = [step for step in self.scenario.steps if isinstance(step, Add)]
        return next(add.name for add, added in zip(adds, self.ids, strict=True) if added == job_id)

    def run_order(self) -> list[str]:
        """The names of the jobs in the order they became active (retries included)."""
        return [self.name_of(job_id) for job_id in self.snapshots["done"]["events/active order"]]


def finished_count(client: redis.Redis, queue: str) -> int:
    """Jobs finished for good (``completed`` and ``failed`` events) in the queue's stream."""
    entries = client.xrange(f"bull:{queue}:events")
    return sum(1 for _, fields in entries if fields.get("event") in ("completed", "failed"))


def run_scenario(
    scenario: Scenario,
    *,
    redis_url: str,
    queue: str,
    producer: str,
    worker: str,
    loop: LoopThread,
    client: redis.Redis,
) -> Run:
    """Run ``scenario`` on ``queue``: ``producer`` (``"bullmq"`` or ``"sandq"``) performs its steps,
    then a ``worker`` of either kind processes the queue until every job has finished."""
    from processors import scenarios

    since = now_ms()
    prod: SandqProducer | BullProducer = (
        SandqProducer(redis_url, queue) if producer == "sandq" else BullProducer(loop, redis_url, queue)
    )
    ids: list[str] = []
    snapshots: dict[str, Snapshot] = {}
    try:
        for step in scenario.steps:
            if isinstance(step, Pause):
                prod.pause()
            else:
                ids.append(prod.add(step.name, step.data, step.options))
        snapshots["added"] = take(client, queue, since_ms=since)
        if worker == "sandq":
            running: contextlib.AbstractContextManager[Any] = sandq_worker(
                redis_url, queue, scenario.processor
            )
        else:
            function = getattr(scenarios, scenario.processor)
            running = bull_worker(loop, redis_url, queue, function)
        with running:
            if scenario.pauses:
                wait_until(lambda: blocked_on_marker(client, queue), what="the worker waits on the marker")
                snapshots["paused"] = take(client, queue, since_ms=since)
                prod.resume()
            expected = len(set(ids))
            wait_until(lambda: finished_count(client, queue) >= expected, what=f"{expected} jobs finished")
            # Let the worker go back to waiting on the marker, as it does when idle.
            with contextlib.suppress(AssertionError):
                wait_until(lambda: blocked_on_marker(client, queue), within=3)
        snapshots["done"] = take(client, queue, since_ms=since)
    finally:
        prod.close()
    return Run(queue, ids, snapshots, scenario)


#: The scenarios, each run by both clients' producers and workers.
SCENARIOS = (
    Scenario(
        "plain",
        "echo",
        (Add("a", {"n": 1}), Add("b", {"n": 2}), Add("c", {"n": 3})),
        runs=("a", "b", "c"),
    ),
    Scenario(
        "lifo",
        "echo",
        (Add("a"), Add("b", options={"lifo": True}), Add("c"), Add("d", options={"lifo": True})),
        runs=("d", "b", "a", "c"),
    ),
    Scenario(
        "custom-id",
        "echo",
        (
            Add("first", {"n": 1}, {"job_id": "order-1"}),
            Add("plain", {"n": 2}),
            Add("again", {"n": 3}, {"job_id": "order-1", "priority": 4}),  # a duplicate: adds nothing
            Add("second", {"n": 4}, {"job_id": "order-2", "attempts": 2}),
        ),
        runs=("first", "plain", "second"),
    ),
    Scenario(
        "delayed",
        "echo",
        (Add("late", options={"delay": 600}), Add("soon", options={"delay": 300}), Add("now")),
        runs=("now", "soon", "late"),
    ),
    Scenario(
        "prioritized",
        "echo",
        (
            Add("p3", options={"priority": 3}),
            Add("p1", options={"priority": 1}),
            Add("none"),
            Add("p2", options={"priority": 2}),
            Add("p1-again", options={"priority": 1}),
        ),
        runs=("none", "p1", "p1-again", "p2", "p3"),
    ),
    Scenario(
        "retries",
        "flaky",
        (
            # Retries due at +250 and +500 ms (fixed), +100 and +300 (exponential), +100 (recovers).
            Add("fixed", options={"attempts": 3, "backoff": {"type": "fixed", "delay": 250}}),
            Add("exponential", options={"attempts": 3, "backoff": {"type": "exponential", "delay": 100}}),
            Add("recovers", {"succeed_on": 1}, {"attempts": 3, "backoff": 100}),
            Add("immediate", options={"attempts": 2}),  # no backoff: straight back to wait
            Add("once"),
        ),
        runs=(
            *("fixed", "exponential", "recovers", "immediate", "once", "immediate"),
            *("exponential", "recovers", "fixed", "exponential", "fixed"),
        ),
    ),
    Scenario(
        "progress-logs",
        "report",
        (Add("r1", {"step": 1}), Add("r2", {"step": 2}, {"keep_logs": 1})),
        runs=("r1", "r2"),
    ),
    Scenario(
        "retention",
        "flaky",
        (
            Add("c-now", {"succeed_on": 0}, {"remove_on_complete": True}),
            Add("c-1", {"succeed_on": 0}, {"remove_on_complete": 2}),
            Add("c-2", {"succeed_on": 0}, {"remove_on_complete": 2}),
            Add("c-3", {"succeed_on": 0}, {"remove_on_complete": 2}),  # c-1 goes: 2 are kept
            Add("f-now", {}, {"remove_on_fail": True}),
            Add("f-1"),
            Add("f-2", {}, {"remove_on_fail": {"count": 5}}),
            # Fails for good 1.2 s after the others: f-1 and f-2 are then older than its age limit.
            Add("f-aged", {}, {"attempts": 2, "backoff": 1200, "remove_on_fail": {"age": 1, "count": 5}}),
        ),
        runs=("c-now", "c-1", "c-2", "c-3", "f-now", "f-1", "f-2", "f-aged", "f-aged"),
    ),
    Scenario(
        "pause-resume",
        "echo",
        (Add("a"), Add("b"), Pause(), Add("c"), Add("d", options={"lifo": True})),
        runs=("d", "a", "b", "c"),
    ),
)
