"""RESP encoding, URL settings, the Lua loader and the script calls. Pure; no Redis."""

from __future__ import annotations

import hashlib

import msgpack
import pytest

from sandq import scripts
from sandq.connection.resp import encode_command, encode_commands, encode_evalsha, new_reader
from sandq.connection.settings import RedisSettings
from sandq.errors import ConfigurationError, ReplyError
from sandq.job import JobState
from sandq.keys import QueueKeys
from sandq.lua import all_scripts, expand_includes, get_script
from sandq.scripts import NewJob

# --- RESP ---------------------------------------------------------------------------------------


def test_encode_command() -> None:
    assert (
        encode_command(["SET", b"k", 12, 1.5]) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$3\r\n1.5\r\n"
    )
    assert encode_command(["ECHO", "é"]) == "*2\r\n$4\r\nECHO\r\n$2\r\né\r\n".encode()
    assert encode_commands([["PING"], ["PING"]]) == b"*1\r\n$4\r\nPING\r\n" * 2


@pytest.mark.parametrize("bad", [True, None, object()])
def test_encode_refuses_what_redis_would_misread(bad: object) -> None:
    with pytest.raises(TypeError):
        encode_command(["SET", "k", bad])  # type: ignore[list-item]


def test_reader_returns_errors_as_reply_errors() -> None:
    reader = new_reader()
    reader.feed(b"*2\r\n$1\r\na\r\n:5\r\n-WRONGTYPE bad\r\n$-1\r\n")
    assert reader.gets() == [b"a", 5]
    error = reader.gets()
    assert isinstance(error, ReplyError)
    assert error.code == "WRONGTYPE"
    assert reader.gets() is None
    assert reader.gets() is False


# --- settings -----------------------------------------------------------------------------------


def test_redis_url() -> None:
    settings = RedisSettings.from_url("redis://alice:s%40cret@example.com:6380/3")
    assert (settings.host, settings.port, settings.db) == ("example.com", 6380, 3)
    assert (settings.username, settings.password, settings.tls) == ("alice", "s@cret", False)
    assert settings.address == "redis://example.com:6380/3"
    assert "cret" not in settings.address


def test_password_only_and_defaults() -> None:
    settings = RedisSettings.from_url("redis://:pw@localhost")
    assert (settings.username, settings.password, settings.port, settings.db) == (None, "pw", 6379, 0)


def test_rediss_and_unix() -> None:
    tls = RedisSettings.from_url("rediss://h:1/0?ssl_cert_reqs=none")
    assert tls.tls
    assert not tls.tls_verify
    unix = RedisSettings.from_url("unix:///tmp/my%20dir/redis.sock?db=2&client_name=me")
    assert (unix.unix_path, unix.db, unix.client_name) == ("/tmp/my dir/redis.sock", 2, "me")


@pytest.mark.parametrize(
    "url",
    ["http://h", "", "redis://h:notaport", "redis://h/x", "redis://h?timeout=1", "unix://", "redis://h/-1"],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        RedisSettings.from_url(url)


def test_bad_url_messages_hide_passwords() -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisSettings.from_url("redis://u:topsecret@h/x")
    assert "topsecret" not in str(info.value)


# --- Lua loader ---------------------------------------------------------------------------------


def test_scripts_take_their_key_count_from_the_file_name() -> None:
    loaded = all_scripts()
    assert {"add_jobs", "get_job_state", "pause"} <= set(loaded)
    assert loaded["add_jobs"].numkeys == 9
    assert loaded["get_job_state"].numkeys == 8
    for script in loaded.values():
        assert script.sha == hashlib.sha1(script.source.encode()).hexdigest()
        assert "--#include" not in script.source
        assert "KEYS[" in script.source


def test_includes_are_inlined_once() -> None:
    source = get_script("add_jobs").source
    assert source.count("local function num(") == 1
    assert source.count("local function queueMeta(") == 1


def test_include_of_an_unknown_file_fails() -> None:
    with pytest.raises(FileNotFoundError):
        expand_includes("--#include does_not_exist\n")


def test_unknown_script() -> None:
    with pytest.raises(KeyError, match="nope"):
        get_script("nope")


# --- script calls -------------------------------------------------------------------------------

KEYS = QueueKeys("q")


def test_add_jobs_call() -> None:
    job = NewJob("", "n", "5", "7", "2", 0, '{"a":1}', '{"attempts":0}')
    call = scripts.add_jobs(KEYS, [job, NewJob("my-id", "m", "6", "0", "0", 1, "{}", "{}")])
    assert call.keys == (
        "bull:q:wait",
        "bull:q:meta",
        "bull:q:id",
        "bull:q:delayed",
        "bull:q:prioritized",
        "bull:q:pc",
        "bull:q:active",
        "bull:q:events",
        "bull:q:marker",
    )
    assert call.args[0] == "bull:q:"
    assert msgpack.unpackb(call.args[1]) == [
        ["", "n", "5", "7", "2", 0, '{"a":1}', '{"attempts":0}'],
        ["my-id", "m", "6", "0", "0", 1, "{}", "{}"],
    ]


def test_script_call_checks_the_key_count() -> None:
    with pytest.raises(ValueError, match="takes 9 keys"):
        scripts.ScriptCall(get_script("add_jobs"), ("a",), ())


def test_decode_add_jobs() -> None:
    added = scripts.decode_add_jobs([b"1", [b"my-id", [b"name", b"x"]]])
    assert added == [("1", None), ("my-id", [b"name", b"x"])]


def test_get_job_state_call_and_reply() -> None:
    call = scripts.get_job_state(KEYS, "7")
    assert call.args == ("7",)
    assert call.keys[6] == "bull:q:paused"
    assert scripts.decode_job_state(b"waiting-children") is JobState.WAITING_CHILDREN
    with pytest.raises(ValueError, match="sideways"):
        scripts.decode_job_state(b"sideways")


def test_pause_calls() -> None:
    assert scripts.pause(KEYS, paused=True).args == ("paused", "1")
    assert scripts.pause(KEYS, paused=False, emit_event=False).args == ("resumed", "0")
    assert scripts.decode_pause(3) == 3


def test_counts() -> None:
    assert scripts.normalize_state("wait") == "waiting"
    with pytest.raises(ConfigurationError, match="unknown job state 'done'"):
        scripts.normalize_state("done")
    commands = scripts.count_commands(KEYS, ["waiting", "delayed"])
    assert commands == [["LLEN", "bull:q:wait"], ["ZCARD", "bull:q:delayed"]]
    assert scripts.decode_counts(["waiting", "delayed"], [3, 4]) == {"waiting": 3, "delayed": 4}
    with pytest.raises(ReplyError):
        scripts.decode_counts(["waiting"], [ReplyError("WRONGTYPE x")])


def test_encode_evalsha_equals_the_plain_encoding() -> None:
    for keys, args in [(("a", "b"), (1, b"x", "é")), ((), ()), (("k",), ("v",))]:
        expected = encode_command(["EVALSHA", "f" * 40, len(keys), *keys, *args])
        assert encode_evalsha("f" * 40, keys, args) == expected
        assert encode_evalsha("f" * 40, list(keys), list(args)) == expected  # cached head, same bytes
