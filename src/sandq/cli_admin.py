"""The ``sandq`` commands that read and operate queues (``sandq.cli`` registers them).

::

    sandq jobs QUEUE [--state S]... [--limit N] [--asc]
    sandq job QUEUE JOB_ID
    sandq retry QUEUE JOB_ID... | --all [--state failed|completed]
    sandq remove QUEUE JOB_ID... [--keep-children]
    sandq promote QUEUE JOB_ID... | --all
    sandq pause|resume QUEUE
    sandq drain QUEUE [--delayed]
    sandq clean QUEUE [--grace D] [--limit N] [--state S]
    sandq obliterate QUEUE [--force]
    sandq events QUEUE [--from ID]

A command given several job ids acts on each, prints one line per id, and exits 1 if any was refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .cleanup_scripts import CLEANABLE_STATES
from .errors import ConfigurationError, ScriptError
from .job import Job, JobState
from .queue import Queue

Handler = Callable[[argparse.Namespace], Awaitable[int]]

#: The states ``sandq jobs`` lists, in this order.
LIST_STATES = ("active", "waiting", "prioritized", "delayed", "waiting-children", "failed", "completed")


def register(
    commands: Any,
    common: argparse.ArgumentParser,
    duration: Callable[[str], int],
) -> dict[str, Handler]:
    """Add the admin subcommands to ``commands`` (argparse subparsers); their handlers by name."""

    def queue_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(name, parents=[common], help=help_text)
        sub.add_argument("queue", metavar="QUEUE")
        return sub

    jobs = queue_command("jobs", "list jobs, newest first, with their state")
    jobs.add_argument(
        "--state", "-s", action="append", choices=LIST_STATES, help="only this state (repeatable)"
    )
    jobs.add_argument("--limit", "-n", metavar="N", type=int, default=20, help="at most N jobs (default 20)")
    jobs.add_argument("--asc", action="store_true", help="oldest first")

    job = queue_command("job", "show one job: fields, result or failure, logs, stack trace")
    job.add_argument("job_id", metavar="JOB_ID")

    retry = queue_command("retry", "run finished jobs again")
    retry.add_argument("job_ids", metavar="JOB_ID", nargs="*")
    retry.add_argument("--all", action="store_true", help="every job of --state")
    retry.add_argument(
        "--state", choices=("failed", "completed"), default=None, help="with --all: default failed"
    )
    retry.add_argument("--reset-attempts", action="store_true", help="give the jobs all their attempts again")

    remove = queue_command("remove", "remove jobs (and their child jobs)")
    remove.add_argument("job_ids", metavar="JOB_ID", nargs="+")
    remove.add_argument("--keep-children", action="store_true", help="leave a flow parent's children")

    promote = queue_command("promote", "run delayed jobs now")
    promote.add_argument("job_ids", metavar="JOB_ID", nargs="*")
    promote.add_argument("--all", action="store_true", help="every delayed job")

    queue_command("pause", "stop workers from taking jobs from the queue")
    queue_command("resume", "let workers take jobs again")

    drain = queue_command("drain", "remove every waiting and prioritized job")
    drain.add_argument("--delayed", action="store_true", help="delayed jobs too")

    clean = queue_command("clean", "remove jobs of a state older than the grace period")
    clean.add_argument(
        "--grace", metavar="D", type=duration, default=0, help="keep jobs younger than D (default 0)"
    )
    clean.add_argument("--limit", metavar="N", type=int, default=0, help="at most N jobs (default: all)")
    clean.add_argument(
        "--state",
        default="completed",
        choices=(*CLEANABLE_STATES, "waiting"),
        help="default completed",
    )

    obliterate = queue_command("obliterate", "remove the queue and all its jobs (pauses it first)")
    obliterate.add_argument("--force", action="store_true", help="even with jobs running")

    events = queue_command("events", "follow the queue's events, one line each (Ctrl-C stops)")
    events.add_argument("--from", dest="from_id", metavar="ID", default="$", help="'0' replays the stream")

    return {
        "jobs": _jobs,
        "job": _job,
        "retry": _retry,
        "remove": _remove,
        "promote": _promote,
        "pause": _pause,
        "resume": _resume,
        "drain": _drain,
        "clean": _clean,
        "obliterate": _obliterate,
        "events": _events,
    }


def _open(args: argparse.Namespace) -> Queue:
    return Queue(args.queue, args.redis, prefix=args.prefix)


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _short(value: object, width: int = 50) -> str:
    text = value if isinstance(value, str) else _json(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _outcome(job: Job) -> str:
    if job.failed_reason is not None:
        return _short(job.failed_reason)
    if job.finished_on is not None:
        return _short(job.returnvalue)
    if job.progress not in (0, None):
        return f"progress {_short(job.progress)}"
    return ""


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table: columns of numbers right-aligned, the others left-aligned."""
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [bool(rows) and all(row[i].isdigit() for row in cells[1:]) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


async def _jobs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ConfigurationError(f"--limit must be at least 1, not {args.limit}")
    rows: list[list[object]] = []
    async with _open(args) as queue:
        for state in args.state or LIST_STATES:
            for job in await queue.get_jobs(state, 0, args.limit - 1, asc=args.asc):
                rows.append([job.id, job.name, state, job.attempts_made, _when(job.timestamp), _outcome(job)])
    rows = rows[: args.limit]
    if not rows:
        print(f"no jobs in queue {args.queue!r}")
        return 0
    print(table(["id", "name", "state", "attempts", "added", "result"], rows).rstrip())
    return 0


async def _job(args: argparse.Namespace) -> int:
    async with _open(args) as queue:
        job = await queue.get_job(args.job_id)
        if job is None:
            raise ConfigurationError(f"no job {args.job_id!r} in queue {args.queue!r}")
        state = await queue.get_job_state(args.job_id)
        logs = await queue.get_job_logs(args.job_id)
    lines = [
        f"id           {job.id}",
        f"name         {job.name}",
        f"state        {state}",
        f"data         {_json(job.data)}",
        f"opts         {_json(job.opts)}",
        f"attempts     {job.attempts_made} made, {job.attempts_started} started",
        f"added        {_when(job.timestamp)}" + (f" (delay {job.delay} ms)" if job.delay else ""),
        f"priority     {job.priority}",
        f"processed    {_when(job.processed_on)}",
        f"finished     {_when(job.finished_on)}",
        f"progress     {_json(job.progress)}",
    ]
    if state is JobState.COMPLETED:
        lines.append(f"returnvalue  {_json(job.returnvalue)}")
    if job.failed_reason is not None:
        lines.append(f"failed       {job.failed_reason}")
    if job.parent_key:
        lines.append(f"parent       {job.parent_key}")
    lines.append(f"logs         {logs.count} line(s)")
    lines += [f"  {line}" for line in logs.logs]
    for number, trace in enumerate(job.stacktrace, 1):
        lines.append(f"stacktrace {number}:")
        lines += [f"  {line}" for line in trace.rstrip().splitlines()]
    print("\n".join(lines))
    return 0


async def _each(args: argparse.Namespace, action: Callable[[str], Awaitable[str]]) -> int:
    """Run ``action`` on every job id; one line per id; 1 if any was refused."""
    status = 0
    for job_id in args.job_ids:
        try:
            print(f"job {job_id}: {await action(job_id)}")
        except ScriptError as exc:
            print(f"sandq: error: {exc}", file=sys.stderr)
            status = 1
    return status


def _ids_or_all(args: argparse.Namespace) -> None:
    if args.all == bool(args.job_ids):
        raise ConfigurationError("give job ids, or --all")


async def _retry(args: argparse.Namespace) -> int:
    _ids_or_all(args)
    async with _open(args) as queue:
        if args.all:
            state = args.state or "failed"
            count = await queue.retry_jobs(state, reset_attempts_made=args.reset_attempts)
            print(f"{count} {state} job(s) queued again")
            return 0

        async def retry(job_id: str) -> str:
            left = await queue.retry(
                job_id,
                state=args.state,
                reset_attempts_made=args.reset_attempts,
                reset_attempts_started=args.reset_attempts,
            )
            return f"was {left}, queued again"

        return await _each(args, retry)


async def _remove(args: argparse.Namespace) -> int:
    async with _open(args) as queue:

        async def remove(job_id: str) -> str:
            state = await queue.remove(job_id, remove_children=not args.keep_children)
            return f"removed (was {state})"

        return await _each(args, remove)


async def _promote(args: argparse.Namespace) -> int:
    _ids_or_all(args)
    async with _open(args) as queue:
        if args.all:
            print(f"{await queue.promote_jobs()} delayed job(s) promoted")
            return 0

        async def promote(job_id: str) -> str:
            await queue.promote(job_id)
            return "promoted"

        return await _each(args, promote)


async def _pause(args: argparse.Namespace) -> int:
    async with _open(args) as queue:
        await queue.pause()
    print(f"queue {args.queue} paused")
    return 0


async def _resume(args: argparse.Namespace) -> int:
    async with _open(args) as queue:
        await queue.resume()
    print(f"queue {args.queue} resumed")
    return 0


async def _drain(args: argparse.Namespace) -> int:
    async with _open(args) as queue:
        await queue.drain(delayed=args.delayed)
    print(f"queue {args.queue} drained" + (" (delayed jobs too)" if args.delayed else ""))
    return 0


async def _clean(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise ConfigurationError(f"--limit must be 0 (all) or more, not {args.limit}")
    async with _open(args) as queue:
        removed = await queue.clean(args.grace, args.limit, args.state)
    print(f"{len(removed)} {args.state} job(s) removed")
    return 0


async def _obliterate(args: argparse.Namespace) -> int:
    async with _open(args) as queue:
        await queue.obliterate(force=args.force)
    print(f"queue {args.queue} obliterated")
    return 0


async def _events(args: argparse.Namespace) -> int:
    from .events import format_event
    from .queue_events import QueueEvents

    async with QueueEvents(args.queue, args.redis, prefix=args.prefix, last_event_id=args.from_id) as events:
        async for event in events:
            print(format_event(event), flush=True)
    return 0
