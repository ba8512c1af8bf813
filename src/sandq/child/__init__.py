"""The child side of sandq: what runs in the zygote and in the processes forked from it.

    api       CancelToken and Delay: what a processor sees besides its Job
    main      serve(): a child's loop, one job at a time, over the pipe protocol
    zygote    ``python -m sandq.child.zygote``: imports the processor once, forks children on request

This package imports only the standard library, msgpack, ``sandq.protocol``, ``sandq.errors`` and
``sandq.job``: never trio, anyio or a Redis client (a test checks it in a fresh interpreter), so a
child costs a fork, and user code runs in a plain Python process.
"""

from __future__ import annotations

from .api import CancelToken, Delay

__all__ = ["CancelToken", "Delay"]
