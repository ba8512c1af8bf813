"""The pipe protocol between the supervisor and its children: messages and framing, with no I/O.

``messages`` names every message (frozen records, one set per direction); ``framing`` turns them into
length-prefixed msgpack frames and back. Both sides share this code: the supervisor drives it with trio
streams, a child with blocking reads. It imports nothing but the standard library, msgpack and
``sandq.errors``.
"""

from __future__ import annotations

from .framing import MAX_FRAME, FrameReader, FromChildReader, ToChildReader, encode
from .messages import (
    Cancel,
    Delay,
    Done,
    Failure,
    FromChild,
    InitFailed,
    JobPayload,
    Log,
    Message,
    Ok,
    Outcome,
    Progress,
    RateLimited,
    Ready,
    Run,
    Stop,
    ToChild,
    UpdateData,
    WaitingChildren,
)

__all__ = [
    "MAX_FRAME",
    "Cancel",
    "Delay",
    "Done",
    "Failure",
    "FrameReader",
    "FromChild",
    "FromChildReader",
    "InitFailed",
    "JobPayload",
    "Log",
    "Message",
    "Ok",
    "Outcome",
    "Progress",
    "RateLimited",
    "Ready",
    "Run",
    "Stop",
    "ToChild",
    "ToChildReader",
    "UpdateData",
    "WaitingChildren",
    "encode",
]
