"""How long to wait before retrying a failed job: BullMQ's ``fixed`` and ``exponential`` backoff (pure).

``attempts_made`` is the 1-based number of the attempt that just failed, so with ``{"type":
"exponential", "delay": 1000}`` the first retry waits 1 s, the second 2 s, then 4 s. With ``jitter`` j
(0..1), the wait is drawn from ``[wait * (1 - j), wait)``. A backoff type sandq does not know (a BullMQ
custom strategy) is taken as ``fixed`` with its ``delay``: the job is still retried, after that delay.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

_MAX_WAIT = 2**53  # ms; a wait no Redis score can hold more precisely anyway


def backoff_delay(backoff: Any, attempts_made: int, rng: random.Random | None = None) -> int:
    """Milliseconds to wait before the next try; ``backoff`` as stored in a job's opts (a number of
    ms, or ``{"type", "delay", "jitter"}``), or None for no backoff (retry at once)."""
    if backoff is None:
        return 0
    if isinstance(backoff, bool):
        return 0
    if isinstance(backoff, int | float):
        kind, delay, jitter = "fixed", float(backoff), 0.0
    elif isinstance(backoff, Mapping):
        kind = str(backoff.get("type", "fixed"))
        delay = _number(backoff.get("delay"))
        jitter = min(max(_number(backoff.get("jitter")), 0.0), 1.0)
    else:
        return 0
    if delay <= 0:
        return 0
    if kind == "exponential":
        wait = float(min(round(2 ** min(max(attempts_made - 1, 0), 60) * delay), _MAX_WAIT))
    else:
        wait = min(delay, _MAX_WAIT)
    if jitter:
        low = wait * (1 - jitter)
        wait = low + (rng or random).random() * (wait - low)
    return max(int(wait), 0)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0
