"""A processor whose module loads, but every child forked from the zygote dies before it is ready."""

from __future__ import annotations

import os
from typing import Any


def _die() -> None:
    os._exit(7)


os.register_at_fork(after_in_child=_die)


def process(job: Any, token: Any) -> int:
    return 1
