"""Framing of the pipe protocol, without I/O (like h11): ``encode(message) -> bytes`` on one side,
``reader.feed(bytes)`` / ``reader.next_message()`` on the other.

A frame is a 4-byte big-endian length, then that many bytes of msgpack: an array whose first item
names the message and whose other items are its fields, in the order of the record's fields::

    ["run", token, [id, name, data_json, opts_json, timestamp, attempts_made, attempts_started,
                    processed_on, progress_json, queue]]
    ["cancel", token, reason]        ["stop"]
    ["ready", pid]                   ["init_failed", error, traceback]
    ["progress", token, json]        ["log", token, line]        ["update_data", token, json]
    ["done", token, outcome]   where outcome is one of
        ["ok", value_json]  ["error", type, message, traceback, unrecoverable]
        ["delay", ms]       ["rate_limit", ms]     ["waiting_children"]

Every field is a msgpack str, int or bool, checked exactly on the way in (a bool is not an int here).
Whatever does not fit (a frame over the size limit, bytes that are not msgpack, an unknown name, a
wrong field count or type, a stream ending inside a frame) raises :class:`ProtocolViolation`; the
reader then stays broken, since nothing after a bad frame can be trusted.

The same code runs in the supervisor (driven by trio streams) and in the child (blocking reads on a
thread); :class:`FromChildReader` and :class:`ToChildReader` accept only one direction's messages.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Any, ClassVar, cast

import msgpack

from ..errors import ProtocolViolation
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
    Progress,
    RateLimited,
    Ready,
    Run,
    Stop,
    ToChild,
    UpdateData,
    WaitingChildren,
)

#: Largest frame body a reader accepts (and :func:`encode` produces) by default: 64 MiB.
MAX_FRAME = 64 * 2**20

_HEADER = struct.Struct(">I")


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if len(names) > 1:
        getter: Callable[[Any], tuple[Any, ...]] = attrgetter(*names)
        return getter
    if names:
        get_one = attrgetter(names[0])
        return lambda record: (get_one(record),)
    return lambda record: ()


class _Spec:
    """How one record travels: its name on the wire, its fields, and the msgpack type of each field
    (``list`` for a nested record: a job, or an outcome)."""

    __slots__ = ("arity", "cls", "fields", "get", "inner", "kinds", "name", "nested")

    def __init__(
        self, name: str, cls: type[Any], *kinds: type, inner: Callable[[Any], Any] | None = None
    ) -> None:
        self.name = name
        self.cls = cls
        self.fields = tuple(f.name for f in fields(cls))
        self.kinds = kinds
        self.arity = len(kinds)
        assert self.arity == len(self.fields), cls
        self.nested = tuple(index for index, kind in enumerate(kinds) if kind is list)
        self.inner = inner  # decodes the nested record, if there is one
        self.get = _getter(self.fields)  # record -> tuple of its field values


_JOB = _Spec("job", JobPayload, str, str, str, str, int, int, int, int, str, str)
_TO_CHILD = (
    _Spec("run", Run, str, list, inner=lambda items: _build(_JOB, items)),
    _Spec("cancel", Cancel, str, str),
    _Spec("stop", Stop),
)
_FROM_CHILD = (
    _Spec("ready", Ready, int),
    _Spec("init_failed", InitFailed, str, str),
    _Spec("progress", Progress, str, str),
    _Spec("log", Log, str, str),
    _Spec("update_data", UpdateData, str, str),
    _Spec("done", Done, str, list, inner=lambda items: _named(items, _OUTCOME_NAMES, "outcome")),
)
_OUTCOMES = (
    _Spec("ok", Ok, str),
    _Spec("error", Failure, str, str, str, bool),
    _Spec("delay", Delay, int),
    _Spec("rate_limit", RateLimited, int),
    _Spec("waiting_children", WaitingChildren),
)
_BY_CLASS: dict[type[Any], _Spec] = {spec.cls: spec for spec in (_JOB, *_TO_CHILD, *_FROM_CHILD, *_OUTCOMES)}
_MESSAGES: dict[str, _Spec] = {spec.name: spec for spec in (*_TO_CHILD, *_FROM_CHILD)}
_OUTCOME_NAMES: dict[str, _Spec] = {spec.name: spec for spec in _OUTCOMES}


# --- encoding ---------------------------------------------------------------------------------


def _to_wire(record: Any, spec: _Spec) -> list[Any]:
    """``[name, *fields]`` (a job: just its fields), nested records as arrays."""
    items = [spec.name, *spec.get(record)] if spec is not _JOB else list(spec.get(record))
    for index in spec.nested:
        value = items[index + 1]
        items[index + 1] = _to_wire(value, _BY_CLASS[type(value)])
    return items


def _text_safe(value: Any) -> Any:
    """``value`` with lone surrogates in its strings written as ``\\udcxx`` escapes (valid UTF-8, and
    still valid JSON inside a JSON string), for text such as a log line read with surrogateescape."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_text_safe(item) for item in value]
    return value


def encode(message: Message, *, max_frame: int = MAX_FRAME) -> bytes:
    """The frame for ``message``. Raises ProtocolViolation if it would be larger than ``max_frame``
    (a reader with the same limit would refuse it), TypeError for something that is not a message."""
    spec = _BY_CLASS.get(type(message))
    if spec is None or spec.name not in _MESSAGES:
        raise TypeError(f"not a pipe protocol message: {message!r}")
    items = _to_wire(message, spec)
    try:
        body: bytes = msgpack.packb(items)
    except UnicodeEncodeError:
        body = msgpack.packb(_text_safe(items))
    if len(body) > max_frame:
        raise ProtocolViolation(
            f"a {spec.name!r} message of {len(body)} bytes is larger than the frame limit of {max_frame}"
        )
    return _HEADER.pack(len(body)) + body


# --- decoding ---------------------------------------------------------------------------------


def _build(spec: _Spec, items: list[Any]) -> Any:
    """The record for ``items`` (its fields, without the name); ProtocolViolation if they do not fit."""
    if len(items) == spec.arity:
        for value, kind in zip(items, spec.kinds):  # noqa: B905 (lengths checked just above)
            if type(value) is not kind:
                break
        else:
            for index in spec.nested:
                try:
                    items[index] = spec.inner(items[index])  # type: ignore[misc]
                except ProtocolViolation as exc:
                    raise ProtocolViolation(f"{exc}, in a {spec.name!r} message") from None
            return spec.cls(*items)
        raise ProtocolViolation(_type_error(spec, items))
    expected = ", ".join(spec.fields) or "none"
    raise ProtocolViolation(f"{spec.name!r} has {len(items)} fields, expected {spec.arity} ({expected})")


def _type_error(spec: _Spec, items: list[Any]) -> str:
    for name, kind, value in zip(spec.fields, spec.kinds, items, strict=True):
        if type(value) is not kind:
            wanted = "an array" if kind is list else kind.__name__
            return f"field {name!r} of {spec.name!r} must be {wanted}, not {type(value).__name__}"
    raise AssertionError("no field has the wrong type")  # pragma: no cover


def _named(items: Any, table: dict[str, _Spec], kind: str) -> Any:
    if type(items) is not list or not items:
        raise ProtocolViolation(f"a {kind} must be a non-empty array naming it, not {items!r:.80}")
    name = items[0]
    spec = table.get(name) if type(name) is str else None
    if spec is None:
        raise ProtocolViolation(f"unknown {kind} {name!r:.80}")
    return _build(spec, items[1:])


class FrameReader:
    """Turns a byte stream into messages (either direction): ``feed`` bytes as they come, then call
    ``next_message`` until it returns None (it needs more bytes). Call ``feed_eof`` when the stream
    ends: the frames already buffered are still returned, then ``next_message`` returns None for a
    stream that ended between frames, or raises ProtocolViolation if it ended inside one."""

    _accept: ClassVar[frozenset[str]] = frozenset(_MESSAGES)
    _sender: ClassVar[str] = "either side"

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._start = 0
        self._eof = False
        self._error: ProtocolViolation | None = None

    @property
    def eof(self) -> bool:
        """Whether ``feed_eof`` was called."""
        return self._eof

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as messages."""
        return len(self._buffer) - self._start

    def feed(self, data: bytes) -> None:
        if self._eof:
            raise RuntimeError("FrameReader.feed() after feed_eof()")
        self._buffer += data

    def feed_eof(self) -> None:
        self._eof = True

    def next_message(self) -> Message | None:
        """The next complete message, or None if more bytes are needed (or the stream ended cleanly)."""
        if self._error is not None:
            raise self._error
        buffer, start = self._buffer, self._start
        available = len(buffer) - start
        if available < 4:
            if self._eof and available:
                self._fail(f"the stream ended inside a frame header ({available} of 4 bytes)")
            return None
        (size,) = _HEADER.unpack_from(buffer, start)
        if size > self._max_frame:
            self._fail(f"a frame of {size} bytes is larger than the limit of {self._max_frame}")
        end = start + 4 + size
        if len(buffer) < end:
            if self._eof:
                self._fail(f"the stream ended inside a frame ({available - 4} of {size} bytes)")
            return None
        body = bytes(buffer[start + 4 : end])
        if end == len(buffer):
            buffer.clear()
            self._start = 0
        elif end >= 65536:
            del buffer[:end]
            self._start = 0
        else:
            self._start = end
        try:
            return self._decode(body)
        except ProtocolViolation as exc:
            self._error = exc
            raise

    def _decode(self, body: bytes) -> Message:
        try:
            items = msgpack.unpackb(body)
        except Exception as exc:
            raise ProtocolViolation(f"a frame is not valid msgpack: {type(exc).__name__}: {exc}") from None
        name = items[0] if type(items) is list and items else None
        if type(name) is str and name in _MESSAGES and name not in self._accept:
            raise ProtocolViolation(f"{name!r} is not a message {self._sender} sends")
        message: Message = _named(items, _MESSAGES, "message")
        return message

    def _fail(self, reason: str) -> None:
        self._error = ProtocolViolation(reason)
        raise self._error


class FromChildReader(FrameReader):
    """A :class:`FrameReader` for the supervisor: accepts only what a child sends."""

    _accept = frozenset(spec.name for spec in _FROM_CHILD)
    _sender = "a child"

    def next_message(self) -> FromChild | None:
        return cast("FromChild | None", super().next_message())


class ToChildReader(FrameReader):
    """A :class:`FrameReader` for a child: accepts only what the supervisor sends."""

    _accept = frozenset(spec.name for spec in _TO_CHILD)
    _sender = "the supervisor"

    def next_message(self) -> ToChild | None:
        return cast("ToChild | None", super().next_message())


__all__ = ["MAX_FRAME", "FrameReader", "FromChildReader", "ToChildReader", "encode"]
