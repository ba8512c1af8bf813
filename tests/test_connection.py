"""The async RESP client and its sync twin, against real redis-server processes.

Fault tests (kills, restarts, SCRIPT FLUSH, requirepass) use a private server of their own.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import anyio
import pytest
import trio

from sandq.connection.client import RedisClient
from sandq.connection.settings import RedisSettings
from sandq.connection.sync import SyncRedisClient
from sandq.errors import ConnectionLostError, RedisConnectionError, ReplyError
from sandq.lua import Script

from servers import RedisServer, free_port, system_binary


def make_script(name: str, numkeys: int, source: str) -> Script:
    return Script(name, numkeys, source, hashlib.sha1(source.encode()).hexdigest())


ECHO_SCRIPT = make_script("echo_test", 1, "return {KEYS[1], ARGV[1]}")


def client_names(url: str) -> list[str]:
    """Names of the connections Redis currently has (from another connection)."""
    with SyncRedisClient(url) as probe:
        listing = probe.execute("CLIENT", "LIST").decode()
    return [field[5:] for line in listing.splitlines() for field in line.split() if field.startswith("name=")]


# --- basics -------------------------------------------------------------------------------------


async def test_commands_replies_and_error_replies(redis_url: str, queue_name: str) -> None:
    async with RedisClient(redis_url) as client:
        assert await client.execute("SET", queue_name, "v") == b"OK"
        assert await client.execute("GET", queue_name) == b"v"
        assert await client.execute("GET", queue_name + "missing") is None
        with pytest.raises(ReplyError) as info:
            await client.execute("LPUSH", queue_name, "x")
        assert info.value.code == "WRONGTYPE"
        # The connection is fine after an error reply.
        assert await client.execute("DEL", queue_name) == 1
        assert await client.ping()


async def test_execute_many_is_one_write_and_keeps_errors_in_place(redis_url: str, queue_name: str) -> None:
    async with RedisClient(redis_url) as client:
        await client.ping()
        before = client.statistics()
        replies = await client.execute_many(
            [["SET", queue_name, "1"], ["INCR", queue_name], ["HGET", queue_name, "f"], ["DEL", queue_name]],
            raise_errors=False,
        )
        after = client.statistics()
        assert replies[:2] == [b"OK", 2]
        assert isinstance(replies[2], ReplyError)
        assert replies[3] == 1
        assert (after.commands - before.commands, after.writes - before.writes) == (4, 1)
        with pytest.raises(ReplyError):
            await client.execute_many([["SET", queue_name, "1"], ["HGET", queue_name, "f"]])
        assert await client.execute_many([]) == []
        await client.execute("DEL", queue_name)


async def test_concurrent_callers_share_one_connection_and_pipeline(redis_url: str, queue_name: str) -> None:
    name = f"{queue_name}-client"
    async with RedisClient(RedisSettings.from_url(redis_url, client_name=name)) as client:
        await client.ping()
        before = client.statistics()
        results: dict[int, list[bytes]] = {}

        async def worker(i: int) -> None:
            results[i] = [await client.execute("ECHO", f"{i}:{n}") for n in range(40)]

        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(worker, i)
        after = client.statistics()
        for i in range(50):
            assert results[i] == [f"{i}:{n}".encode() for n in range(40)]
        assert after.commands - before.commands == 2000
        # Commands issued while a write was in flight went out together.
        assert after.writes - before.writes < 2000 * 0.9
        assert after.connections == 1
        assert client_names(redis_url).count(name) == 1


async def test_cancelled_callers_do_not_disturb_the_others(redis_url: str) -> None:
    rng = random.Random(7)
    async with RedisClient(redis_url) as client:
        mismatches: list[tuple[bytes, bytes]] = []
        completed = 0

        async def worker(i: int) -> None:
            nonlocal completed
            for n in range(30):
                value = f"{i}-{n}".encode()
                if rng.random() < 0.3:
                    with trio.move_on_after(rng.choice([0, 0.00001, 0.0001])):
                        await client.execute("ECHO", value)
                    continue
                reply = await client.execute("ECHO", value)
                completed += 1
                if reply != value:
                    mismatches.append((value, reply))

        async with trio.open_nursery() as nursery:
            for i in range(30):
                nursery.start_soon(worker, i)
        assert mismatches == []
        assert completed > 0
        assert client.statistics().connections == 1
        assert await client.execute("ECHO", "after") == b"after"


def test_the_client_works_under_asyncio(redis_url: str, queue_name: str) -> None:
    async def main() -> tuple[list[bytes], int, object]:
        async with RedisClient(redis_url) as client:
            replies: list[bytes] = []

            async def worker(i: int) -> None:
                replies.append(await client.execute("ECHO", str(i)))

            async with anyio.create_task_group() as group:
                for i in range(20):
                    group.start_soon(worker, i)
            # Cancelling a blocking call closes its connection: the BLPOP cannot swallow a later push.
            with anyio.move_on_after(0.1):
                await client.execute_blocking("BLPOP", queue_name, 5)
            idle = client.statistics().blocking_idle
            await client.execute("RPUSH", queue_name, "kept")
            popped = await client.execute_blocking("BLPOP", queue_name, 1)
            replies.append(await client.execute("ECHO", "after"))
            return replies, idle, popped

    replies, idle, popped = anyio.run(main, backend="asyncio")
    assert sorted(replies[:-1], key=int) == [str(i).encode() for i in range(20)]
    assert replies[-1] == b"after"
    assert idle == 0
    assert popped == [queue_name.encode(), b"kept"]


# --- blocking commands --------------------------------------------------------------------------


async def test_blocking_calls_get_their_own_connection(redis_url: str, queue_name: str) -> None:
    async with RedisClient(redis_url) as client, trio.open_nursery() as nursery:
        popped: list[object] = []

        async def pop() -> None:
            popped.append(await client.execute_blocking("BLPOP", queue_name, 5))

        nursery.start_soon(pop)
        await trio.sleep(0.1)
        # The multiplexed connection is not held up by the blocked BLPOP.
        assert await client.execute("RPUSH", queue_name, "job") == 1
        await trio.sleep(0.1)
        assert popped == [[queue_name.encode(), b"job"]]
        assert client.statistics().blocking_idle == 1


async def test_cancelling_a_blocking_call_closes_its_connection(redis_url: str, queue_name: str) -> None:
    name = f"{queue_name}-blk"
    async with RedisClient(RedisSettings.from_url(redis_url, client_name=name)) as client:
        await client.ping()
        with trio.move_on_after(0.2) as scope:
            await client.execute_blocking("BLPOP", queue_name, 10)
        assert scope.cancelled_caught
        assert client.statistics().blocking_idle == 0
        await trio.sleep(0.05)
        assert client_names(redis_url).count(name) == 1  # only the multiplexed one is left
        # A value pushed now is not swallowed by the abandoned BLPOP.
        await client.execute("RPUSH", queue_name, "kept")
        assert await client.execute_blocking("BLPOP", queue_name, 1) == [queue_name.encode(), b"kept"]
        assert await client.execute("ECHO", "ok") == b"ok"


# --- losing the connection ----------------------------------------------------------------------


async def test_in_flight_commands_fail_as_lost_and_later_ones_reconnect(private_redis: RedisServer) -> None:
    settings = RedisSettings.from_url(private_redis.url, reconnect_timeout=10)
    async with RedisClient(settings) as client:
        await client.execute("SET", "k", "1")
        errors: list[BaseException] = []

        async def slow() -> None:
            try:
                # BLPOP on the multiplexed connection, deliberately: a command that is surely in flight.
                await client.execute("BLPOP", "never", 5)
            except ConnectionLostError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow)
            await trio.sleep(0.2)
            await trio.to_thread.run_sync(private_redis.kill)
        assert len(errors) == 1
        assert f"127.0.0.1:{private_redis.port}" in str(errors[0])

        # While the server is down, a command waits (backoff) and succeeds once it is back.
        def start_later() -> None:
            time.sleep(0.5)
            private_redis.start()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, start_later)
            assert await client.execute("SET", "k", "2") == b"OK"
        assert await client.execute("GET", "k") == b"2"
        assert client.statistics().connections == 2


async def test_gives_up_reconnecting_after_the_timeout(private_redis: RedisServer) -> None:
    settings = RedisSettings.from_url(private_redis.url, reconnect_timeout=0.5)
    async with RedisClient(settings) as client:
        await client.ping()
        private_redis.kill()
        with pytest.raises(ConnectionLostError):
            await client.ping()
        start = trio.current_time()
        with pytest.raises(RedisConnectionError, match="gave up reconnecting") as info:
            await client.ping()
        assert not isinstance(info.value, ConnectionLostError)
        assert 0.4 < trio.current_time() - start < 3


async def test_a_client_that_never_connected_fails_at_once() -> None:
    port = free_port()
    async with RedisClient(f"redis://127.0.0.1:{port}/0") as client:
        start = trio.current_time()
        with pytest.raises(
            RedisConnectionError, match=f"cannot connect to Redis at redis://127.0.0.1:{port}/0"
        ):
            await client.ping()
        assert trio.current_time() - start < 2


async def test_closed_client_refuses_commands(redis_url: str) -> None:
    client = RedisClient(redis_url)
    await client.ping()
    await client.aclose()
    with pytest.raises(RedisConnectionError, match="closed"):
        await client.ping()


# --- handshake: AUTH, SELECT, CLIENT SETNAME, on every (re)connect --------------------------------


@pytest.fixture
def password_redis() -> Iterator[RedisServer]:
    binary = system_binary()
    if binary is None:
        pytest.skip("no system redis-server")
    server = RedisServer(binary, "--requirepass", "s3cret")
    yield server
    server.close()


async def test_auth_select_and_name_are_reapplied_after_a_reconnect(password_redis: RedisServer) -> None:
    url = f"redis://:s3cret@127.0.0.1:{password_redis.port}/3?client_name=named"
    async with RedisClient(url) as client:
        await client.execute("SET", "where", "db3")
        assert await client.execute("CLIENT", "GETNAME") == b"named"
        # Kill our connection from the server side; the next command reconnects with the same handshake.
        await client.execute("CLIENT", "KILL", "SKIPME", "no", "TYPE", "normal")
        with pytest.raises(ConnectionLostError):
            await client.execute("GET", "where")
        assert await client.execute("GET", "where") == b"db3"
        assert await client.execute("CLIENT", "GETNAME") == b"named"
    async with RedisClient(f"redis://:s3cret@127.0.0.1:{password_redis.port}/0") as other:
        assert await other.execute("GET", "where") is None


async def test_acl_user_and_wrong_password(password_redis: RedisServer) -> None:
    async with RedisClient(f"redis://:s3cret@127.0.0.1:{password_redis.port}") as admin:
        await admin.execute("ACL", "SETUSER", "alice", "on", ">pw", "~*", "+@all")
    async with RedisClient(f"redis://alice:pw@127.0.0.1:{password_redis.port}") as alice:
        assert await alice.execute("ACL", "WHOAMI") == b"alice"
    async with RedisClient(f"redis://:wrong@127.0.0.1:{password_redis.port}") as client:
        with pytest.raises(RedisConnectionError, match="refused AUTH"):
            await client.ping()
    async with RedisClient(f"redis://127.0.0.1:{password_redis.port}") as client:
        with pytest.raises(ReplyError, match="NOAUTH"):
            await client.ping()


async def test_unix_socket(private_redis: RedisServer) -> None:
    async with RedisClient(private_redis.unix_url) as client:
        assert await client.execute("ECHO", "over the socket") == b"over the socket"


@pytest.fixture
def tls_redis() -> Iterator[tuple[int, str]]:
    binary = system_binary()
    has_openssl = subprocess.run(["openssl", "version"], capture_output=True, check=False).returncode == 0
    if binary is None or not has_openssl:
        pytest.skip("needs the system redis-server and openssl")
    directory = tempfile.mkdtemp(prefix="sqtls", dir="/tmp")
    key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
    )  # fmt: skip
    try:
        server = RedisServer(
            binary,
            "--tls-port", str(free_port()),
            "--tls-cert-file", cert,
            "--tls-key-file", key,
            "--tls-ca-cert-file", cert,
            "--tls-auth-clients", "no",
        )  # fmt: skip
    except RuntimeError:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip("this redis-server was built without TLS")
    tls_port = int(server.extra[1])
    yield tls_port, cert
    server.close()
    shutil.rmtree(directory, ignore_errors=True)


async def test_tls(tls_redis: tuple[int, str]) -> None:
    port, _ = tls_redis
    async with RedisClient(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none") as client:
        assert await client.execute("ECHO", "secret") == b"secret"
    # A self-signed certificate is refused when verification is on.
    async with RedisClient(f"rediss://127.0.0.1:{port}/0") as client:
        with pytest.raises(RedisConnectionError, match="cannot connect"):
            await client.ping()


# --- scripts ------------------------------------------------------------------------------------


async def test_scripts_reload_after_script_flush(private_redis: RedisServer) -> None:
    async with RedisClient(private_redis.url) as client:
        assert await client.run_script(ECHO_SCRIPT, ["k"], ["a"]) == [b"k", b"a"]
        assert await client.execute("SCRIPT", "EXISTS", ECHO_SCRIPT.sha) == [1]
        await client.execute("SCRIPT", "FLUSH")
        assert await client.run_script(ECHO_SCRIPT, ["k"], ["b"]) == [b"k", b"b"]
        # And after a restart of the server, which forgets every script.
        await trio.to_thread.run_sync(private_redis.restart)
        with pytest.raises(ConnectionLostError):
            await client.ping()
        assert await client.run_script(ECHO_SCRIPT, ["k"], ["c"]) == [b"k", b"c"]


async def test_script_errors_are_reply_errors(redis_url: str) -> None:
    script = make_script("broken", 0, "return redis.call('NOPE')")
    async with RedisClient(redis_url) as client:
        with pytest.raises(ReplyError, match=r"Unknown Redis command|unknown command"):
            await client.run_script(script, [], [])


# --- the synchronous twin -----------------------------------------------------------------------


def test_sync_client_basics(redis_url: str, queue_name: str) -> None:
    with SyncRedisClient(redis_url) as client:
        assert client.execute("SET", queue_name, "1") == b"OK"
        assert client.execute("HGETALL", queue_name + "h") == []  # raw replies, as the async client gives
        replies = client.execute_many([["INCR", queue_name], ["HGET", queue_name, "f"]], raise_errors=False)
        assert replies[0] == 2
        assert isinstance(replies[1], ReplyError)
        assert replies[1].code == "WRONGTYPE"
        assert client.run_script(ECHO_SCRIPT, ["k"], ["v"]) == [b"k", b"v"]
        client.execute("DEL", queue_name)


def test_sync_client_error_codes_match_the_async_client(redis_url: str) -> None:
    with SyncRedisClient(redis_url) as client:
        with pytest.raises(ReplyError) as info:
            client.execute("NOSUCHCOMMAND")
        assert info.value.code == "ERR"
        with pytest.raises(ReplyError) as info:
            client.execute("EVALSHA", "0" * 40, 0)
        assert info.value.code == "NOSCRIPT"


def test_sync_client_loses_and_regains_the_connection(private_redis: RedisServer) -> None:
    with SyncRedisClient(private_redis.url) as client:
        client.run_script(ECHO_SCRIPT, ["k"], ["a"])
        private_redis.kill()
        with pytest.raises(RedisConnectionError):
            client.ping()
        private_redis.start()
        assert client.ping()
        assert client.run_script(ECHO_SCRIPT, ["k"], ["b"]) == [b"k", b"b"]  # reloaded on NOSCRIPT


def test_sync_client_never_connected(private_redis: RedisServer) -> None:
    with (
        SyncRedisClient(f"redis://127.0.0.1:{free_port()}/0") as client,
        pytest.raises(RedisConnectionError, match="cannot connect"),
    ):
        client.ping()


async def test_run_scripts_is_one_write_and_reloads_missing_scripts(private_redis: RedisServer) -> None:
    other = make_script("other_test", 0, "return ARGV[1] .. '!'")
    async with RedisClient(private_redis.url) as client:
        await client.execute("SCRIPT", "FLUSH")
        replies = await client.run_scripts(
            [
                (ECHO_SCRIPT, ["k"], ["a"]),
                (other, [], ["b"]),
                (make_script("bad", 0, "return redis.call('NOPE')"), [], []),
            ]
        )
        assert replies[:2] == [[b"k", b"a"], b"b!"]
        assert isinstance(replies[2], ReplyError)
        before = client.statistics()
        assert await client.run_scripts([(ECHO_SCRIPT, ["k"], [str(i)]) for i in range(5)]) == [
            [b"k", str(i).encode()] for i in range(5)
        ]
        after = client.statistics()
        assert (after.commands - before.commands, after.writes - before.writes) == (5, 1)
        assert await client.run_scripts([]) == []
