"""Retry backoff and worker options (pure; no Redis)."""

from __future__ import annotations

import random

import pytest

from sandq.backoff import backoff_delay
from sandq.errors import InvalidOptionError
from sandq.options import KeepJobs, WorkerOptions


@pytest.mark.parametrize(
    ("backoff", "attempt", "expected"),
    [
        (None, 1, 0),
        (500, 1, 500),
        (500, 4, 500),
        ({"type": "fixed", "delay": 200}, 3, 200),
        ({"type": "exponential", "delay": 100}, 1, 100),
        ({"type": "exponential", "delay": 100}, 2, 200),
        ({"type": "exponential", "delay": 100}, 5, 1600),
        ({"type": "my-custom", "delay": 300}, 2, 300),  # unknown strategies: fixed, with their delay
        ({"type": "exponential"}, 3, 0),
        ({"type": "exponential", "delay": -5}, 3, 0),
        (True, 1, 0),
        ("1s", 1, 0),
    ],
)
def test_backoff(backoff: object, attempt: int, expected: int) -> None:
    assert backoff_delay(backoff, attempt) == expected


def test_jitter_stays_in_its_window() -> None:
    rng = random.Random(1)
    waits = [backoff_delay({"type": "exponential", "delay": 1000, "jitter": 0.5}, 3, rng) for _ in range(500)]
    assert all(2000 <= wait < 4000 for wait in waits)
    assert max(waits) - min(waits) > 1000  # spread out, not a constant
    fixed = [backoff_delay({"type": "fixed", "delay": 100, "jitter": 1}, 1, rng) for _ in range(200)]
    assert all(0 <= wait < 100 for wait in fixed)


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert backoff_delay({"type": "exponential", "delay": 1000}, 10_000) == 2**53


def test_worker_options_defaults_and_validation() -> None:
    options = WorkerOptions()
    assert (
        options.concurrency,
        options.lock_duration,
        options.stalled_interval,
        options.max_stalled_count,
    ) == (
        1,
        30.0,
        30.0,
        1,
    )
    assert WorkerOptions(remove_on_fail={"count": 5}).remove_on_fail == KeepJobs(count=5)  # type: ignore[arg-type]
    assert WorkerOptions(preload=["numpy"]).preload == ("numpy",)  # type: ignore[arg-type]
    for bad in (
        {"concurrency": 0},
        {"timeout": 0},
        {"kill_grace": -1},
        {"lock_duration": 0},
        {"limiter": (0, 1)},
        {"name": "has space"},
        {"drain_delay": float("nan")},
    ):
        with pytest.raises(InvalidOptionError):
            WorkerOptions(**bad)  # type: ignore[arg-type]
