"""Queue operations without I/O, shared by the async :class:`~sandq.Queue` and :class:`~sandq.SyncQueue`.

Each operation is a generator: it yields what it needs Redis to run (a :class:`Command`, a
:class:`Pipeline` or a :class:`~sandq.scripts.ScriptCall`), is sent the reply, and returns its result.
A driver runs it against a client; :func:`drive_async` and :func:`drive_sync` are the two drivers. So
``Queue.add`` and ``SyncQueue.add`` are the same code, and tests can run an operation against canned
replies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, TypeVar

from . import admin_scripts, cleanup_scripts, scripts, worker_scripts
from .connection.resp import Arg, Reply
from .errors import ConfigurationError, InvalidOptionError, JobDataError
from .job import Job, JobState
from .keys import QueueKeys
from .options import JobOptions
from .scripts import NewJob, ScriptCall

if TYPE_CHECKING:
    from .connection.client import RedisClient
    from .connection.sync import SyncRedisClient

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Command:
    """One plain Redis command."""

    args: tuple[Arg, ...]


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Several plain commands sent together; the reply is the list of their replies."""

    commands: tuple[tuple[Arg, ...], ...]


Call: TypeAlias = Command | Pipeline | ScriptCall
Op: TypeAlias = Generator[Call, Reply, T]


class _NoData:
    def __repr__(self) -> str:
        return "NO_DATA"


#: The default of ``add(name, data)``: stored as ``{}``, as BullMQ stores a job added without data.
NO_DATA: Any = _NoData()


def _compact_json_encoder() -> Callable[[Any], str]:
    """Compact JSON, refusing NaN and infinities. Reuses one C encoder where the stdlib has it
    (``JSONEncoder.encode`` builds a new one per call, which is half the cost for small values)."""
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    # No circular-reference markers (they would cost a dict per call): a cycle ends in RecursionError.
    one_shot = make(
        None, encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return encoder.encode(value)
        return "".join(one_shot(value, 0))

    return encode


_encode_json = _compact_json_encoder()


def encode_json(value: Any, job_name: str) -> str:
    """``value`` (the data of job ``job_name``) as compact JSON text, or JobDataError saying why not."""
    try:
        return _encode_json(value)
    except RecursionError:
        raise JobDataError(
            f"the data of job {job_name!r} is circular or nested too deeply for JSON"
        ) from None
    except (TypeError, ValueError) as exc:
        raise JobDataError(f"the data of job {job_name!r} cannot be stored as JSON: {exc}") from None


def new_job(name: str, data: Any, options: JobOptions, now: str) -> NewJob:
    """Validate and encode one job for add_jobs; ``now`` is the time in ms, as decimal text."""
    if not isinstance(name, str):
        raise InvalidOptionError(f"a job name must be a string, not {name!r}")
    custom_id, timestamp, delay, priority, lifo, opts_json = options.wire()
    data_json = "{}" if data is NO_DATA else encode_json(data, name)
    return NewJob(custom_id, name, timestamp or now, delay, priority, lifo, data_json, opts_json)


def added_job(job_id: str, data: Any, spec: NewJob, options: JobOptions) -> Job:
    """The Job record of a job that add_jobs has just stored under ``job_id``."""
    return Job.added(
        job_id,
        name=spec.name,
        data={} if data is NO_DATA else data,
        opts=options.read_back(),
        timestamp=int(spec.timestamp),
        delay=options.delay,
        priority=options.priority,
    )


def _bulk_item(index: int, item: Mapping[str, Any] | Sequence[Any]) -> tuple[str, Any, JobOptions]:
    if isinstance(item, Mapping):
        unknown = set(item) - {"name", "data", "options"}
        if unknown:
            hint = " (options go under 'options')" if "opts" in unknown else ""
            raise InvalidOptionError(f"job {index} of the batch has unknown key(s) {sorted(unknown)}{hint}")
        if "name" not in item:
            raise InvalidOptionError(f"job {index} of the batch has no 'name'")
        return item["name"], item.get("data", NO_DATA), JobOptions.from_kwargs(item.get("options", {}))
    if isinstance(item, tuple | list) and len(item) in (2, 3):
        options = JobOptions.from_kwargs(item[2] if len(item) == 3 else {})
        return item[0], item[1], options
    raise InvalidOptionError(
        f"job {index} of the batch must be {{'name', 'data', 'options'}} or (name, data[, options])"
    )


@dataclass(frozen=True, slots=True)
class JobLogs:
    """A page of a job's log and the number of lines it holds in all."""

    logs: list[str]
    count: int


class GlobalRateLimit(NamedTuple):
    """A queue's global rate limit: at most ``max`` jobs per ``duration_ms`` across all workers."""

    max: int
    duration_ms: int


#: Jobs moved per script call by the operations that walk a whole state (Redis is never blocked long).
BATCH = 1000


def _states(states: str | Sequence[str] | None) -> list[str]:
    if states is None:
        return list(admin_scripts.ALL_STATES)
    if isinstance(states, str):
        states = [states]
    return list(dict.fromkeys(admin_scripts.range_state(state) for state in states))


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, not {value!r}")
    return value


class QueueOps:
    """The operations of one queue, as generators over :class:`Call` s."""

    def __init__(self, name: str, prefix: str = "bull") -> None:
        self.keys = QueueKeys(name, prefix)

    def add(self, name: str, data: Any, options: JobOptions, now_ms: int) -> Op[Job]:
        jobs = yield from self.add_bulk([(name, data, options)], now_ms)
        return jobs[0]

    def add_bulk(self, items: Iterable[Mapping[str, Any] | Sequence[Any]], now_ms: int) -> Op[list[Job]]:
        # The per-job work here is the client's share of a bulk add's cost, so the common shapes
        # ((name, data) tuples, and the (name, data, JobOptions) that add() passes) skip _bulk_item.
        specs: list[NewJob] = []
        given: list[tuple[Any, JobOptions]] = []
        now = str(now_ms)
        default = JobOptions.from_kwargs({})
        for index, item in enumerate(items):
            if type(item) is tuple and len(item) == 2:
                (name, data), options = item, default
            elif type(item) is tuple and len(item) == 3 and isinstance(item[2], JobOptions):
                name, data, options = item
            else:
                name, data, options = _bulk_item(index, item)
            specs.append(new_job(name, data, options, now))
            given.append((data, options))
        if not specs:
            return []
        reply = yield scripts.add_jobs(self.keys, specs)
        jobs: list[Job] = []
        for spec, (data, options), (job_id, existing) in zip(
            specs, given, scripts.decode_add_jobs(reply), strict=True
        ):
            if existing is None:
                jobs.append(added_job(job_id, data, spec, options))
            else:
                jobs.append(Job.from_hash(job_id, existing))
        return jobs

    def get_job(self, job_id: str) -> Op[Job | None]:
        reply = yield Command(("HGETALL", self.keys.job(job_id)))
        if not reply:
            return None
        return Job.from_hash(job_id, reply)

    def get_job_state(self, job_id: str) -> Op[JobState]:
        reply = yield scripts.get_job_state(self.keys, job_id)
        return scripts.decode_job_state(reply)

    def get_job_counts(self, states: Sequence[str]) -> Op[dict[str, int]]:
        names = [scripts.normalize_state(state) for state in states] or list(scripts.DEFAULT_COUNT_STATES)
        names = list(dict.fromkeys(names))
        commands = scripts.count_commands(self.keys, names)
        replies = yield Pipeline(tuple(tuple(command) for command in commands))
        return scripts.decode_counts(names, replies)

    def pause(self) -> Op[None]:
        yield scripts.pause(self.keys, paused=True)

    def resume(self) -> Op[None]:
        remaining = scripts.decode_pause((yield scripts.pause(self.keys, paused=False)))
        while remaining:
            remaining = scripts.decode_pause((yield scripts.pause(self.keys, paused=False, emit_event=False)))

    def cancel(self, job_id: str, reason: str, now_ms: int) -> Op[JobState]:
        reply = yield worker_scripts.cancel_job(self.keys, job_id, reason, now_ms=now_ms)
        return worker_scripts.decode_cancel(reply, job_id=job_id)

    def is_paused(self) -> Op[bool]:
        reply = yield Command(("HEXISTS", self.keys.meta, "paused"))
        return bool(reply)

    # --- getters ---------------------------------------------------------------------------------

    def get_job_ids(
        self, states: str | Sequence[str] | None, start: int, end: int, *, asc: bool
    ) -> Op[list[str]]:
        commands = admin_scripts.range_commands(self.keys, _states(states), start, end, asc=asc)
        replies = yield Pipeline(tuple(tuple(command) for command in commands))
        return admin_scripts.decode_ranges(replies, commands, asc=asc)

    def get_jobs(
        self, states: str | Sequence[str] | None, start: int, end: int, *, asc: bool
    ) -> Op[list[Job]]:
        ids = yield from self.get_job_ids(states, start, end, asc=asc)
        if not ids:
            return []
        replies = yield Pipeline(tuple(("HGETALL", self.keys.job(job_id)) for job_id in ids))
        # A job removed between the two reads is left out.
        return [Job.from_hash(job_id, reply) for job_id, reply in zip(ids, replies, strict=True) if reply]

    def get_job_logs(self, job_id: str, start: int, end: int, *, asc: bool) -> Op[JobLogs]:
        commands = admin_scripts.log_commands(self.keys, job_id, start, end, asc=asc)
        replies = yield Pipeline(tuple(tuple(command) for command in commands))
        logs, count = admin_scripts.decode_logs(replies, asc=asc)
        return JobLogs(logs, count)

    def get_counts_per_priority(self, priorities: Sequence[int]) -> Op[dict[int, int]]:
        priorities = list(dict.fromkeys(priorities))
        commands = admin_scripts.priority_count_commands(self.keys, priorities)
        replies = yield Pipeline(tuple(tuple(command) for command in commands))
        return admin_scripts.decode_priority_counts(priorities, replies)

    # --- job actions -----------------------------------------------------------------------------

    def retry(
        self,
        job_id: str,
        *,
        state: str | None,
        reset_attempts_made: bool,
        reset_attempts_started: bool,
        now_ms: int,
    ) -> Op[JobState]:
        call = admin_scripts.retry_jobs(
            self.keys,
            [job_id],
            state=state,
            reset_attempts_made=reset_attempts_made,
            reset_attempts_started=reset_attempts_started,
            now_ms=now_ms,
        )
        reply = yield call
        return JobState(admin_scripts.decode_retry(reply, [job_id])[0])

    def retry_jobs(self, state: str, *, limit: int | None, reset_attempts_made: bool, now_ms: int) -> Op[int]:
        """Retry every job of ``state`` finished by ``now_ms`` (at most ``limit``), in batches."""
        done = 0
        while limit is None or done < limit:
            batch = BATCH if limit is None else min(BATCH, limit - done)
            call = admin_scripts.retry_all(
                self.keys, state, limit=batch, reset_attempts_made=reset_attempts_made, now_ms=now_ms
            )
            moved = len(admin_scripts.decode_ids((yield call)))
            done += moved
            if moved < batch:
                break
        return done

    def promote(self, job_id: str) -> Op[None]:
        reply = yield admin_scripts.promote_jobs(self.keys, [job_id])
        admin_scripts.decode_promote(reply, [job_id])

    def promote_jobs(self, *, limit: int | None) -> Op[int]:
        """Promote every delayed job (at most ``limit``), the ones due first first, in batches."""
        done = 0
        while limit is None or done < limit:
            batch = BATCH if limit is None else min(BATCH, limit - done)
            moved = len(admin_scripts.decode_ids((yield admin_scripts.promote_all(self.keys, limit=batch))))
            done += moved
            if moved < batch:
                break
        return done

    def change_priority(self, job_id: str, priority: int, *, lifo: bool) -> Op[None]:
        JobOptions.from_kwargs({"priority": priority})  # the same validation as at add
        reply = yield admin_scripts.change_priority(self.keys, job_id, priority, lifo=lifo)
        admin_scripts.decode_code(reply, script="change_priority", job_id=job_id, expected="found")

    def change_delay(self, job_id: str, delay_ms: int, *, now_ms: int) -> Op[None]:
        if isinstance(delay_ms, bool) or not isinstance(delay_ms, int) or delay_ms < 0:
            raise InvalidOptionError(f"delay must be a whole number of ms, 0 or more, not {delay_ms!r}")
        reply = yield admin_scripts.change_delay(self.keys, job_id, delay_ms, now_ms=now_ms)
        admin_scripts.decode_code(reply, script="change_delay", job_id=job_id, expected="delayed")

    def update_data(self, job_id: str, data: Any) -> Op[None]:
        reply = yield worker_scripts.update_data(self.keys, job_id, encode_json(data, job_id))
        worker_scripts.decode_code(reply, script="update_data", job_id=job_id)

    # --- removal -----------------------------------------------------------------------------------

    def remove(self, job_id: str, *, remove_children: bool) -> Op[JobState]:
        reply = yield cleanup_scripts.remove_job(self.keys, job_id, remove_children=remove_children)
        return cleanup_scripts.decode_remove_job(reply, job_id=job_id)

    def drain(self, *, delayed: bool) -> Op[None]:
        while cleanup_scripts.decode_drain((yield cleanup_scripts.drain(self.keys, include_delayed=delayed))):
            pass

    def clean(self, grace_ms: int, limit: int, state: str, *, now_ms: int) -> Op[list[str]]:
        cursor: cleanup_scripts.CleanCursor | None = cleanup_scripts.start_clean(
            state, grace_ms=grace_ms, limit=limit, now_ms=now_ms
        )
        removed: list[str] = []
        while cursor is not None:
            reply = yield cleanup_scripts.clean_jobs(self.keys, cursor)
            step = cleanup_scripts.decode_clean_jobs(reply, cursor)
            removed += step.removed_ids
            cursor = step.next
        return removed

    def obliterate(self, *, force: bool) -> Op[None]:
        yield from self.pause()
        while cleanup_scripts.decode_obliterate((yield cleanup_scripts.obliterate(self.keys, force=force))):
            pass

    # --- global limits (in meta, shared with BullMQ) ---------------------------------------------

    def set_global_concurrency(self, concurrency: int | None) -> Op[None]:
        if concurrency is None:
            yield Command(("HDEL", self.keys.meta, "concurrency"))
        else:
            yield Command(("HSET", self.keys.meta, "concurrency", _positive("concurrency", concurrency)))

    def get_global_concurrency(self) -> Op[int | None]:
        reply = yield Command(("HGET", self.keys.meta, "concurrency"))
        return None if reply is None else int(reply)

    def set_global_rate_limit(self, limit: GlobalRateLimit | None) -> Op[None]:
        if limit is None:
            yield Command(("HDEL", self.keys.meta, "max", "duration"))
        else:
            max_jobs = _positive("max", limit.max)
            duration = _positive("duration", limit.duration_ms)
            yield Command(("HSET", self.keys.meta, "max", max_jobs, "duration", duration))

    def get_global_rate_limit(self) -> Op[GlobalRateLimit | None]:
        max_jobs, duration = yield Command(("HMGET", self.keys.meta, "max", "duration"))
        if max_jobs is None or duration is None:
            return None
        return GlobalRateLimit(int(max_jobs), int(duration))


def list_queues(prefix: str) -> Op[list[str]]:
    """Names of the queues under ``prefix``: those with a ``meta`` or ``id`` key (SCAN, not KEYS)."""
    names: set[str] = set()
    head = f"{prefix}:"
    for suffix in ("meta", "id"):
        cursor = b"0"
        while True:
            cursor, found = yield Command(("SCAN", cursor, "MATCH", f"{head}*:{suffix}", "COUNT", 1000))
            for key in found:
                name = key.decode("utf-8", "replace")[len(head) : -len(suffix) - 1]
                if name and ":" not in name:
                    names.add(name)
            if cursor == b"0":
                break
    return sorted(names)


async def drive_async(client: RedisClient, op: Op[T]) -> T:
    """Run ``op`` against the async client."""
    try:
        call = next(op)
        while True:
            call = op.send(await _run_async(client, call))
    except StopIteration as stop:
        result: T = stop.value
        return result


async def _run_async(client: RedisClient, call: Call) -> Reply:
    if isinstance(call, ScriptCall):
        return await client.run_script(call.script, call.keys, call.args)
    if isinstance(call, Command):
        return await client.execute(*call.args)
    return await client.execute_many(call.commands)


def drive_sync(client: SyncRedisClient, op: Op[T]) -> T:
    """Run ``op`` against the synchronous client."""
    try:
        call = next(op)
        while True:
            call = op.send(_run_sync(client, call))
    except StopIteration as stop:
        result: T = stop.value
        return result


def _run_sync(client: SyncRedisClient, call: Call) -> Reply:
    if isinstance(call, ScriptCall):
        return client.run_script(call.script, call.keys, call.args)
    if isinstance(call, Command):
        return client.execute(*call.args)
    return client.execute_many(call.commands)
