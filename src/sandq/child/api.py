"""What a processor sees besides its ``Job``: the ``CancelToken`` it may poll, and ``Delay`` it may return.

Both live in the child process and import nothing but the standard library and ``sandq.errors``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..errors import JobCancelled


class CancelToken:
    """Tells a running job that it has been cancelled: by its timeout, a user's cancel, a lost lock or
    a shutdown (``reason`` says which). Cancels are cooperative: poll ``cancelled`` or call
    ``raise_if_cancelled()`` between units of work, or sleep with ``wait(seconds)``. A job that ignores
    its token is killed once the grace period is over.

    The child's reader thread sets the token; reading it from any thread is safe and cheap.
    """

    __slots__ = ("_event", "_lock", "_reason")

    def __init__(self) -> None:
        self._reason: str | None = None
        self._event = threading.Event()
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        """Why the job was cancelled (``timeout``, ``lock_lost``, ``shutdown`` or a user's text), or None."""
        return self._reason

    def raise_if_cancelled(self) -> None:
        """Raise :class:`~sandq.errors.JobCancelled` if the job has been cancelled."""
        reason = self._reason
        if reason is not None:
            raise JobCancelled(reason)

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until the job is cancelled or ``timeout`` seconds have passed; True if cancelled."""
        return self._event.wait(timeout)

    def cancel(self, reason: str) -> None:
        """Cancel the job (done by sandq; useful when testing a processor). The first reason stays."""
        with self._lock:
            if self._reason is None:
                self._reason = reason
                self._event.set()

    def __repr__(self) -> str:
        state = f"cancelled: {self._reason}" if self._reason is not None else "not cancelled"
        return f"<CancelToken {state}>"


@dataclass(frozen=True, slots=True)
class Delay:
    """Return ``Delay(ms)`` from a processor to put the job back as delayed for ``delay_ms``
    milliseconds, without spending an attempt (raising ``DelayedError(ms)`` does the same)."""

    delay_ms: int

    def __post_init__(self) -> None:
        if isinstance(self.delay_ms, bool) or not isinstance(self.delay_ms, int):
            raise TypeError(f"Delay(delay_ms) takes an int of milliseconds, not {self.delay_ms!r}")
        if self.delay_ms < 0:
            raise ValueError(f"Delay(delay_ms) cannot be negative: {self.delay_ms}")
