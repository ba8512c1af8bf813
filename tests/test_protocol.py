"""The pipe protocol, sans-IO: every message round trips, frames may come in any pieces, and whatever is
not the protocol is a ProtocolViolation. No processes, no sockets."""

from __future__ import annotations

import struct

import msgpack
import pytest

from sandq.errors import ProtocolViolation
from sandq.protocol import (
    Cancel,
    Delay,
    Done,
    Failure,
    FrameReader,
    FromChildReader,
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
    ToChildReader,
    UpdateData,
    WaitingChildren,
    encode,
)

JOB = JobPayload(
    id="42",
    name="resize",
    data_json='{"path":"/tmp/ü.png"}',
    opts_json='{"attempts":3}',
    timestamp=1_700_000_000_000,
    attempts_made=1,
    attempts_started=2,
    processed_on=1_700_000_000_500,
    progress_json="0",
    queue="images",
)

TO_CHILD: list[Message] = [Run("tok-1", JOB), Cancel("tok-1", "timeout"), Stop()]
FROM_CHILD: list[Message] = [
    Ready(1234),
    InitFailed("cannot import module 'x'", "Traceback ..."),
    Progress("tok-1", "50"),
    Log("tok-1", "a line with ünicode"),
    UpdateData("tok-1", '{"step":2}'),
    Done("tok-1", Ok('{"pages":3}')),
    Done("tok-1", Failure("ValueError", "bad input", "Traceback ...", False)),
    Done("tok-1", Failure("UnrecoverableError", "give up", "", True)),
    Done("tok-1", Delay(5000)),
    Done("tok-1", RateLimited(2500)),
    Done("tok-1", WaitingChildren()),
]
MESSAGES = TO_CHILD + FROM_CHILD


def frame(items: object) -> bytes:
    body = msgpack.packb(items)
    return struct.pack(">I", len(body)) + body


def read_all(reader: FrameReader) -> list[Message]:
    messages = []
    while (message := reader.next_message()) is not None:
        messages.append(message)
    return messages


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: Message) -> None:
    reader = FrameReader()
    reader.feed(encode(message))
    assert reader.next_message() == message
    assert reader.next_message() is None
    assert reader.buffered == 0


def test_the_wire_format_is_a_length_and_a_named_msgpack_array() -> None:
    data = encode(Cancel("tok", "shutdown"))
    assert struct.unpack(">I", data[:4])[0] == len(data) - 4
    assert msgpack.unpackb(data[4:]) == ["cancel", "tok", "shutdown"]
    assert msgpack.unpackb(encode(Done("t", Delay(7)))[4:]) == ["done", "t", ["delay", 7]]
    assert msgpack.unpackb(encode(Run("t", JOB))[4:])[2][0] == "42"


def test_frames_fed_a_byte_at_a_time() -> None:
    data = b"".join(encode(message) for message in MESSAGES)
    reader = FrameReader()
    received = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        received.extend(read_all(reader))
    assert received == MESSAGES


def test_several_frames_in_one_feed_and_a_partial_one() -> None:
    data = b"".join(encode(message) for message in MESSAGES)
    reader = FrameReader()
    reader.feed(data + encode(Stop())[:3])
    assert read_all(reader) == MESSAGES
    assert reader.buffered == 3
    reader.feed(encode(Stop())[3:])
    assert reader.next_message() == Stop()


def test_many_frames_through_a_long_stream_keep_the_buffer_small() -> None:
    reader = FromChildReader()
    chunk = b"".join(encode(Log("t", f"line {i}")) for i in range(5000))
    reader.feed(chunk[:100_001])
    first = read_all(reader)
    reader.feed(chunk[100_001:])
    rest = read_all(reader)
    assert [m.line for m in first + rest if isinstance(m, Log)] == [f"line {i}" for i in range(5000)]
    assert reader.buffered == 0


def test_a_clean_end_of_stream() -> None:
    reader = FrameReader()
    reader.feed(encode(Stop()))
    reader.feed_eof()
    assert reader.eof
    assert reader.next_message() == Stop()
    assert reader.next_message() is None
    with pytest.raises(RuntimeError, match="after feed_eof"):
        reader.feed(b"x")


@pytest.mark.parametrize(
    ("tail", "match"),
    [(b"\x00\x00", "inside a frame header \\(2 of 4 bytes\\)"), (encode(Stop())[:-1], "inside a frame")],
)
def test_an_end_of_stream_inside_a_frame_is_a_violation(tail: bytes, match: str) -> None:
    reader = FrameReader()
    reader.feed(encode(Ready(1)) + tail)
    reader.feed_eof()
    assert reader.next_message() == Ready(1)
    with pytest.raises(ProtocolViolation, match=match):
        reader.next_message()


def test_the_readers_of_each_direction() -> None:
    for message in TO_CHILD:
        reader = ToChildReader()
        reader.feed(encode(message))
        assert reader.next_message() == message
        wrong = FromChildReader()
        wrong.feed(encode(message))
        with pytest.raises(ProtocolViolation, match="is not a message a child sends"):
            wrong.next_message()
    for message in FROM_CHILD:
        child_reader = FromChildReader()
        child_reader.feed(encode(message))
        assert child_reader.next_message() == message
        wrong_way = ToChildReader()
        wrong_way.feed(encode(message))
        with pytest.raises(ProtocolViolation, match="is not a message the supervisor sends"):
            wrong_way.next_message()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (frame(["nope", 1]), "unknown message 'nope'"),
        (frame([]), "non-empty array"),
        (frame({"run": 1}), "non-empty array"),
        (frame("stop"), "non-empty array"),
        (frame([7]), "unknown message 7"),
        (b"\x00\x00\x00\x01\xc1", "not valid msgpack"),
        (b"\x00\x00\x00\x00", "not valid msgpack"),
        (b"\x00\x00\x00\x02\x91\xa1", "not valid msgpack"),
        (frame(["cancel", "tok"]), "'cancel' has 1 fields, expected 2 \\(token, reason\\)"),
        (frame(["stop", 1]), "'stop' has 1 fields, expected 0"),
        (frame(["ready", "12"]), "field 'pid' of 'ready' must be int, not str"),
        (frame(["ready", True]), "field 'pid' of 'ready' must be int, not bool"),
        (frame(["log", "t", b"bytes"]), "field 'line' of 'log' must be str, not bytes"),
        (frame(["run", "t", "job"]), "field 'job' of 'run' must be an array, not str"),
        (frame(["run", "t", ["1", "n"]]), "'job' has 2 fields, expected 10.*in a 'run' message"),
        (frame(["done", "t", ["maybe"]]), "unknown outcome 'maybe', in a 'done' message"),
        (frame(["done", "t", ["error", "E", "m", "tb", 1]]), "'unrecoverable' of 'error' must be bool"),
        (frame(["done", "t", ["delay", 1.5]]), "'delay_ms' of 'delay' must be int, not float"),
        (frame(["done", "t", "ok"]), "'outcome' of 'done' must be an array"),
    ],
)
def test_malformed_frames_are_violations(data: bytes, match: str) -> None:
    reader = FrameReader()
    reader.feed(data)
    with pytest.raises(ProtocolViolation, match=match):
        reader.next_message()
    reader.feed(encode(Stop()))
    with pytest.raises(ProtocolViolation, match=match):  # nothing after a bad frame is trusted
        reader.next_message()


def test_a_frame_over_the_limit_is_refused_before_it_arrives() -> None:
    reader = FrameReader(max_frame=1000)
    reader.feed(struct.pack(">I", 1001))
    with pytest.raises(ProtocolViolation, match="a frame of 1001 bytes is larger than the limit of 1000"):
        reader.next_message()


def test_encode_refuses_what_a_reader_would_refuse() -> None:
    with pytest.raises(ProtocolViolation, match=r"'log' message of \d+ bytes is larger than the frame limit"):
        encode(Log("t", "x" * 2000), max_frame=1000)
    with pytest.raises(TypeError, match="not a pipe protocol message"):
        encode(Ok("1"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a pipe protocol message"):
        encode(JOB)  # type: ignore[arg-type]


def test_text_that_is_not_utf8_is_escaped_not_lost() -> None:
    line = b"caf\xe9".decode("utf-8", "surrogateescape")
    reader = FromChildReader()
    reader.feed(encode(Log("t", line)) + encode(Progress("t", '"' + line + '"')))
    assert reader.next_message() == Log("t", "caf\\udce9")
    assert reader.next_message() == Progress("t", '"caf\\udce9"')
