"""The ``sandq`` command.

::

    sandq add QUEUE NAME [JSON_DATA] [--delay D] [--priority N] [--attempts N] [--job-id ID] ...
    sandq info [QUEUE]
    sandq cancel QUEUE JOB_ID [--reason TEXT]
    sandq run MODULE:FUNCTION [--queue NAME] [--concurrency N] [--timeout D] ...
    sandq jobs|job|retry|remove|promote|pause|resume|drain|clean|obliterate|events QUEUE ...
          (see :mod:`sandq.cli_admin`)

Every command takes ``--redis URL`` (default: ``SANDQ_REDIS_URL``, else a Redis on localhost:6379, else
the embedded one; ``--redis embedded`` asks for the embedded one) and ``--prefix P`` (default ``bull``).
Durations (D) are ``250ms``, ``30s``, ``5m``, ``2h`` or plain seconds. Errors are one line on stderr and
a non-zero exit: 1 for a failure, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

import trio

from . import __version__, cli_admin
from .cli_admin import table
from .connection.client import RedisClient
from .errors import (
    ConfigurationError,
    EmbeddedRedisError,
    InvalidOptionError,
    JobDataError,
    JobNotFoundError,
    SandqError,
)
from .job import JobState
from .ops import drive_async, list_queues
from .options import duration_ms, parse_duration
from .queue import Queue
from .scripts import DEFAULT_COUNT_STATES


def _duration(text: str) -> int:
    try:
        return duration_ms(text)
    except InvalidOptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        return parse_duration(text)
    except InvalidOptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> tuple[argparse.ArgumentParser, dict[str, cli_admin.Handler]]:
    """The command line, and the handler of each command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--redis", metavar="URL", help="Redis URL, or 'embedded' (default: see sandq --help)")
    common.add_argument("--prefix", default="bull", help="key prefix of the queues (default: bull)")

    parser = argparse.ArgumentParser(
        prog="sandq",
        description="Sandboxed Python jobs on BullMQ's Redis data model.",
        epilog="Redis: --redis URL, else SANDQ_REDIS_URL, else localhost:6379, else an embedded server.",
    )
    parser.add_argument("--version", action="version", version=f"sandq {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add = commands.add_parser("add", parents=[common], help="add a job; prints its id")
    add.add_argument("queue", metavar="QUEUE")
    add.add_argument("name", metavar="NAME", help="the job's name")
    add.add_argument(
        "data", metavar="JSON_DATA", nargs="?", default="{}", help="job data as JSON; - reads stdin"
    )
    add.add_argument("--delay", metavar="D", type=_duration, help="run no sooner than D from now")
    add.add_argument("--priority", metavar="N", type=int, help="1 (most urgent) to 2097151")
    add.add_argument("--attempts", metavar="N", type=int, help="total tries, retries included")
    add.add_argument("--backoff", metavar="D", type=_duration, help="fixed wait between tries")
    add.add_argument(
        "--exponential", action="store_true", help="with --backoff: double the wait after each try"
    )
    add.add_argument("--job-id", metavar="ID", help="a custom id (an existing id returns that job)")
    add.add_argument("--lifo", action="store_true", help="run before the jobs already waiting")
    add.add_argument("--timeout", metavar="D", type=_duration, help="time limit of one run")

    info = commands.add_parser("info", parents=[common], help="jobs per state, for one queue or all")
    info.add_argument("queue", metavar="QUEUE", nargs="?")

    cancel = commands.add_parser("cancel", parents=[common], help="cancel a job, running or not")
    cancel.add_argument("queue", metavar="QUEUE")
    cancel.add_argument("job_id", metavar="JOB_ID")
    cancel.add_argument("--reason", default="cancelled by request", help="recorded as 'cancelled: REASON'")

    run = commands.add_parser("run", parents=[common], help="process a queue's jobs with module:function")
    run.add_argument("processor", metavar="MODULE:FUNCTION", help="imported from the current directory")
    run.add_argument("--queue", "-q", default="default", help="the queue to process (default: default)")
    run.add_argument(
        "--concurrency", "-c", metavar="N", type=int, default=1, help="child processes (default 1)"
    )
    run.add_argument(
        "--timeout", metavar="D", type=_seconds, help="time limit of a run without its own timeout"
    )
    run.add_argument(
        "--kill-grace", metavar="D", type=_seconds, default=5.0, help="cancel to kill (default 5s)"
    )
    run.add_argument("--lock-duration", metavar="D", type=_seconds, default=30.0, help="default 30s")
    run.add_argument("--stalled-interval", metavar="D", type=_seconds, default=30.0, help="default 30s")
    run.add_argument("--max-stalled-count", metavar="N", type=int, default=1, help="default 1")
    run.add_argument("--shutdown-timeout", metavar="D", type=_seconds, default=30.0, help="default 30s")
    run.add_argument("--preload", metavar="MODULE", action="append", default=[], help="import before forking")
    run.add_argument(
        "--name", metavar="WORKER_NAME", help="the worker's name, as BullMQ's getWorkers shows it"
    )
    run.add_argument("--burst", action="store_true", help="stop once no job is waiting or running")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    handlers: dict[str, cli_admin.Handler] = {"add": _add, "info": _info, "run": _run, "cancel": _cancel}
    handlers.update(cli_admin.register(commands, common, _duration))
    return parser, handlers


def _add_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name in ("delay", "priority", "attempts", "job_id", "timeout"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.lifo:
        options["lifo"] = True
    if args.backoff is not None:
        options["backoff"] = {"type": "exponential" if args.exponential else "fixed", "delay": args.backoff}
    elif args.exponential:
        raise InvalidOptionError("--exponential needs --backoff D")
    return options


async def _add(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.data == "-" else args.data
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidOptionError(f"JSON_DATA is not valid JSON: {exc}") from None
    options = _add_options(args)
    async with Queue(args.queue, args.redis, prefix=args.prefix) as queue:
        job = await queue.add(args.name, data, **options)
    print(job.id)
    return 0


async def _info(args: argparse.Namespace) -> int:
    async with RedisClient(args.redis) as client:
        names = [args.queue] if args.queue else await drive_async(client, list_queues(args.prefix))
        if not names:
            where = client.settings.address if client.settings else "Redis"
            print(f"no queues under prefix {args.prefix!r} at {where}")
            return 0
        rows = []
        for name in names:
            queue = Queue(name, client, prefix=args.prefix)
            counts = await queue.get_job_counts()
            paused = await queue.is_paused()
            rows.append(
                [name, "paused" if paused else "running", *(counts[state] for state in DEFAULT_COUNT_STATES)]
            )
    if args.queue:
        name, status, *numbers = rows[0]
        print(f"queue {name} ({args.prefix}:{name}), {status}")
        print(table(["state", "jobs"], list(zip(DEFAULT_COUNT_STATES, numbers, strict=True))))
    else:
        print(table(["queue", "status", *DEFAULT_COUNT_STATES], rows))
    return 0


_CANCEL_SAID = {
    JobState.ACTIVE: "is running: the worker holding it cancels it",
    JobState.COMPLETED: "has already completed; nothing to cancel",
    JobState.FAILED: "has already failed; nothing to cancel",
}


async def _cancel(args: argparse.Namespace) -> int:
    async with Queue(args.queue, args.redis, prefix=args.prefix) as queue:
        try:
            state = await queue.cancel(args.job_id, args.reason)
        except JobNotFoundError:
            print(f"sandq: error: no job {args.job_id!r} in queue {args.queue!r}", file=sys.stderr)
            return 1
    said = _CANCEL_SAID.get(state, f"was {state}: failed with 'cancelled: {args.reason}'")
    print(f"job {args.job_id} {said}")
    return 0 if state not in (JobState.COMPLETED, JobState.FAILED) else 1


async def _run(args: argparse.Namespace) -> int:
    from .supervisor.worker import Worker

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    worker = Worker(
        args.queue,
        args.processor,
        args.redis,
        concurrency=args.concurrency,
        timeout=args.timeout,
        kill_grace=args.kill_grace,
        lock_duration=args.lock_duration,
        stalled_interval=args.stalled_interval,
        max_stalled_count=args.max_stalled_count,
        shutdown_timeout=args.shutdown_timeout,
        preload=tuple(args.preload),
        prefix=args.prefix,
        name=args.name,
        burst=args.burst,
    )
    await worker.run(handle_signals=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sandq`` console script; returns the exit status."""
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    handler = handlers[args.command]
    try:
        return trio.run(handler, args)
    except EmbeddedRedisError as exc:
        print(f"sandq: error: {exc}", file=sys.stderr)
        return 1
    except (ConfigurationError, JobDataError) as exc:  # bad input: options, ids, names, URLs, data
        print(f"sandq: error: {exc}", file=sys.stderr)
        return 2
    except SandqError as exc:
        print(f"sandq: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
