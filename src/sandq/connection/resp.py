"""RESP2 framing (pure): command encoding, and the hiredis reader that parses replies."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import hiredis

from ..errors import ReplyError

#: What a command argument may be. Numbers are sent as their decimal text.
Arg: TypeAlias = "bytes | bytearray | memoryview | str | int | float"

#: A decoded reply: bytes, int, None, a ReplyError (inside arrays), or a list of these.
Reply: TypeAlias = Any


def _encode_arg(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bool):  # bool is an int: refuse rather than send "True"
        raise TypeError("a Redis command argument cannot be a bool; send 1/0 or a string")
    if isinstance(arg, int):
        return b"%d" % arg
    if isinstance(arg, float):
        return repr(arg).encode()
    if isinstance(arg, bytearray | memoryview):
        return bytes(arg)
    raise TypeError(f"a Redis command argument cannot be a {type(arg).__name__}")


def encode_command(args: Sequence[Arg]) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _encode_arg(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


@functools.lru_cache(maxsize=1024)
def _evalsha_head(sha: str, keys: tuple[Arg, ...]) -> bytes:
    parts = []
    for arg in ("EVALSHA", sha, len(keys), *keys):
        data = _encode_arg(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def encode_evalsha(sha: str, keys: Sequence[Arg], args: Sequence[Arg]) -> bytes:
    """``EVALSHA sha numkeys *keys *args``; the part up to the keys is encoded once per script and
    key set (a queue's scripts always name the same keys)."""
    parts = [b"*%d\r\n" % (3 + len(keys) + len(args)), _evalsha_head(sha, tuple(keys))]
    for arg in args:
        data = _encode_arg(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def encode_commands(commands: Iterable[Sequence[Arg]]) -> bytes:
    """Several commands, concatenated: a pipeline is just commands written back to back."""
    return b"".join(encode_command(command) for command in commands)


class ProtocolError(Exception):
    """hiredis found bytes that are not RESP (the connection is then useless)."""


def new_reader() -> Any:
    """A hiredis reader: bulk strings come back as bytes, error replies as ReplyError instances."""
    return hiredis.Reader(protocolError=ProtocolError, replyError=ReplyError)
