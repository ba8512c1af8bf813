"""sandq's async Redis client: RESP over anyio streams, replies parsed by hiredis.

Theory of operation
-------------------
One multiplexed connection serves every task that shares a :class:`RedisClient`. A request appends its
encoded bytes to an outgoing buffer and a reply slot to a FIFO. If no write is in flight, the caller
becomes the writer and sends everything buffered, looping until the buffer is empty; commands issued
while a write is in flight therefore leave together in the next send (automatic pipelining). Replies come
back in order: one waiting caller at a time is the reader; it fills slots from the head of the FIFO,
waking their owners, until its own slot is full, then hands reading over to the next caller still
waiting. No background task is needed, so the client works the same under trio and asyncio.

* A cancelled caller never enqueues anything, and no write can be interrupted half-way: under trio,
  bytes go straight to the non-blocking socket (no await at all unless its buffer is full, and then the
  rest is written shielded); elsewhere (asyncio, TLS) the send is shielded. A cancelled reader loses
  nothing: bytes already received stay in the hiredis reader, the next caller takes over reading, and
  the abandoned reply is read and dropped.
* Blocking commands (BZPOPMIN, XREAD BLOCK) use dedicated connections from a small pool. Cancelling one
  closes that connection, since its reply may still come; the multiplexed connection is never disturbed.
* When a connection breaks, every request in flight fails with ConnectionLostError (outcome unknown) and
  the connection is dropped. The next command reconnects, with capped exponential backoff for up to
  ``reconnect_timeout`` seconds, then raises RedisConnectionError. A client that never connected fails
  at once instead, so a wrong URL is reported immediately.
* Every (re)connect sends AUTH, SELECT and CLIENT SETNAME as configured.
* Scripts run with EVALSHA; on NOSCRIPT (new server, restart, SCRIPT FLUSH) they are loaded and rerun.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.lowlevel
import sniffio

from ..errors import ConfigurationError, ConnectionLostError, RedisConnectionError, ReplyError
from .resp import Arg, ProtocolError, Reply, encode_command, encode_commands, encode_evalsha, new_reader
from .settings import EMBEDDED, RedisSettings

if TYPE_CHECKING:
    from ..lua import Script

_RECEIVE_SIZE = 65536
_WRITE_TIMEOUT = 30.0
_IO_ERRORS = (
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    ProtocolError,
)


@dataclass(frozen=True)
class ClientStatistics:
    """Counters of a :class:`RedisClient` since it was created (see :meth:`RedisClient.statistics`).

    ``commands`` sent, in ``writes`` socket writes (fewer writes than commands means pipelining), on
    ``connections`` opened in all (the multiplexed one, dedicated ones, and every reconnect).
    """

    commands: int
    writes: int
    connections: int
    blocking_idle: int


class _Counters:
    __slots__ = ("commands", "connections", "writes")

    def __init__(self) -> None:
        self.commands = 0
        self.writes = 0
        self.connections = 0


class _Slot:
    """Where the replies of one request land, and how its caller is woken."""

    __slots__ = ("error", "remaining", "replies", "waiter")

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.replies: list[Reply] = []
        self.error: BaseException | None = None
        self.waiter: anyio.Event | None = None


def _raw_socket(stream: anyio.abc.ByteStream) -> socket.socket | None:
    """The stream's own non-blocking socket, where writing to it directly is safe: under trio, for a
    plain (not TLS) socket stream. None elsewhere."""
    if sniffio.current_async_library() != "trio" or not isinstance(stream, anyio.abc.SocketStream):
        return None
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
    return sock if isinstance(sock, socket.socket) else None


class _Connection:
    """One socket; many concurrent requests, replies matched in order."""

    def __init__(self, stream: anyio.abc.ByteStream, address: str, counters: _Counters) -> None:
        self._stream = stream
        self._socket = _raw_socket(stream)
        self._counters = counters
        self._address = address
        self._reader = new_reader()
        self._pending: deque[_Slot] = deque()
        self._outgoing: list[bytes] = []
        self._writing = False
        self._reading = False
        self.broken: ConnectionLostError | None = None

    async def request(self, data: bytes, count: int) -> list[Reply]:
        """Send ``data`` (``count`` commands) and return their ``count`` replies, errors included."""
        if self.broken is not None:
            raise self.broken
        # A cancelled caller must not enqueue bytes it would then abandon half-written.
        await anyio.lowlevel.checkpoint_if_cancelled()
        slot = _Slot(count)
        self._counters.commands += count
        self._pending.append(slot)
        self._outgoing.append(data)
        if not self._writing:
            await self._flush()
        while slot.remaining:
            if self._reading:
                # Someone else is reading; it wakes us when our replies are in, or hands reading over.
                slot.waiter = anyio.Event()
                try:
                    await slot.waiter.wait()
                finally:
                    slot.waiter = None
                continue
            self._reading = True
            try:
                await self._read_until_done(slot)
            finally:
                self._reading = False
                self._hand_over_reading()
        if slot.error is not None:
            raise slot.error
        return slot.replies

    def _hand_over_reading(self) -> None:
        for slot in self._pending:
            if slot.waiter is not None:
                slot.waiter.set()
                return

    async def _flush(self) -> None:
        self._writing = True
        try:
            if self._socket is not None:
                await self._flush_to_socket(self._socket)
            else:
                await self._flush_to_stream()
        finally:
            self._writing = False

    async def _flush_to_socket(self, sock: socket.socket) -> None:
        # Fast path (trio, plain TCP or unix): write straight to the non-blocking socket, with no await
        # and so nothing a cancellation could interrupt half-way. When other requests are in flight,
        # first yield once so that commands issued by tasks that are ready to run join this write.
        # After each write, yield once more (the reply is often in by the time we read, which spares
        # a wait on epoll); what other tasks queued meanwhile goes out on the next turn of the loop.
        outgoing = self._outgoing
        if len(self._pending) > 1:
            await anyio.lowlevel.cancel_shielded_checkpoint()
        while outgoing and self.broken is None:
            data = outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)
            outgoing.clear()
            self._counters.writes += 1
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                await self._break(exc)
                return
            if sent < len(data):
                await self._write_rest(sock, memoryview(data)[sent:])
            await anyio.lowlevel.cancel_shielded_checkpoint()

    async def _write_rest(self, sock: socket.socket, rest: memoryview) -> None:
        """The socket buffer is full: finish this write shielded, within a time limit."""
        with anyio.move_on_after(_WRITE_TIMEOUT, shield=True) as scope:
            try:
                while rest:
                    await anyio.wait_writable(sock)
                    with contextlib.suppress(BlockingIOError):
                        rest = rest[sock.send(rest) :]
            except OSError as exc:
                await self._break(exc)
                return
        if scope.cancelled_caught:
            await self._break(TimeoutError(f"Redis did not take a write for {_WRITE_TIMEOUT:g}s"))

    async def _flush_to_stream(self) -> None:
        # General path (asyncio, TLS): through the anyio stream, shielded, since a send interrupted
        # half-way would leave the stream desynchronised.
        outgoing = self._outgoing
        while outgoing and self.broken is None:
            data = outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)
            outgoing.clear()
            self._counters.writes += 1
            with anyio.move_on_after(_WRITE_TIMEOUT, shield=True) as scope:
                try:
                    await self._stream.send(data)
                except _IO_ERRORS as exc:
                    await self._break(exc)
            if scope.cancelled_caught:
                await self._break(TimeoutError(f"Redis did not take a write for {_WRITE_TIMEOUT:g}s"))

    async def _read_until_done(self, slot: _Slot) -> None:
        reader = self._reader
        pending = self._pending
        while slot.remaining:
            try:
                reply = reader.gets()
                if reply is False:
                    reader.feed(await self._stream.receive(_RECEIVE_SIZE))
                    continue
            except _IO_ERRORS as exc:
                await self._break(exc)
                return
            if not pending:
                await self._break(ProtocolError("a reply arrived that no command asked for"))
                return
            head = pending[0]
            head.replies.append(reply)
            head.remaining -= 1
            if not head.remaining:
                pending.popleft()
                if head.waiter is not None:
                    head.waiter.set()

    async def _break(self, cause: BaseException) -> None:
        if self.broken is not None:
            return
        reason = str(cause) or type(cause).__name__
        error = ConnectionLostError(f"lost the connection to Redis at {self._address}: {reason}")
        error.__cause__ = cause
        self.broken = error
        self._fail_pending(error)
        self._outgoing.clear()
        await self.aclose()

    def _fail_pending(self, error: ConnectionLostError) -> None:
        for slot in self._pending:
            slot.error = error
            slot.remaining = 0
            if slot.waiter is not None:
                slot.waiter.set()
        self._pending.clear()

    async def aclose(self) -> None:
        if self.broken is None:
            self.broken = ConnectionLostError(f"the connection to {self._address} was closed")
            self._fail_pending(self.broken)
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await self._stream.aclose()


async def _open_stream(settings: RedisSettings) -> anyio.abc.ByteStream:
    if settings.unix_path is not None:
        return await anyio.connect_unix(settings.unix_path)
    if settings.tls:
        return await anyio.connect_tcp(
            settings.host,
            settings.port,
            tls=True,
            ssl_context=settings.ssl_context(),
            tls_standard_compatible=False,
        )
    return await anyio.connect_tcp(settings.host, settings.port)


def _handshake(settings: RedisSettings) -> list[list[Arg]]:
    commands: list[list[Arg]] = []
    if settings.password is not None:
        if settings.username:
            commands.append(["AUTH", settings.username, settings.password])
        else:
            commands.append(["AUTH", settings.password])
    if settings.db:
        commands.append(["SELECT", settings.db])
    if settings.client_name:
        commands.append(["CLIENT", "SETNAME", settings.client_name])
    return commands


class _HandshakeRefused(RedisConnectionError):
    """AUTH, SELECT or CLIENT SETNAME was refused: retrying cannot help."""


async def open_connection(settings: RedisSettings, counters: _Counters | None = None) -> _Connection:
    """Connect once and run the handshake; raise RedisConnectionError on any failure."""
    counters = counters if counters is not None else _Counters()
    try:
        with anyio.fail_after(settings.connect_timeout):
            stream = await _open_stream(settings)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {settings.connect_timeout:g}s"
        raise RedisConnectionError(f"cannot connect to Redis at {settings.address}: {reason}") from exc
    counters.connections += 1
    connection = _Connection(stream, settings.address, counters)
    commands = _handshake(settings)
    if commands:
        try:
            with anyio.fail_after(settings.connect_timeout):
                replies = await connection.request(encode_commands(commands), len(commands))
        except (ConnectionLostError, TimeoutError) as exc:
            await connection.aclose()
            raise RedisConnectionError(f"Redis at {settings.address} hung up during the handshake") from exc
        for command, reply in zip(commands, replies, strict=True):
            if isinstance(reply, ReplyError):
                await connection.aclose()
                name = command[0] if isinstance(command[0], str) else "the handshake"
                raise _HandshakeRefused(f"Redis at {settings.address} refused {name}: {reply.message}")
    return connection


class RedisClient:
    """An async Redis client for trio and asyncio programs alike (anyio underneath).

    ``RedisClient("redis://localhost:6379/0")``, a :class:`RedisSettings`, or ``None`` for sandq's
    default: ``SANDQ_REDIS_URL``, else a Redis on localhost:6379, else the embedded server. Connections
    open lazily on the first command; use ``async with`` or call :meth:`aclose` to close them.
    """

    def __init__(
        self, settings: RedisSettings | str | None = None, *, client_name: str | None = None
    ) -> None:
        self._default: str | None = None  # resolved by resolve_redis_url: None or "embedded"
        if isinstance(settings, str):
            if settings == EMBEDDED:
                self._default, settings = settings, None
            else:
                settings = RedisSettings.from_url(settings)
        if settings is not None and client_name is not None:
            settings = settings.with_client_name(client_name)
        self._settings: RedisSettings | None = settings
        self._client_name = client_name
        self._connection: _Connection | None = None
        self._ever_connected = False
        self._connect_lock = anyio.Lock()
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._closed = False
        self._counters = _Counters()
        #: CLIENT SETNAME for dedicated (blocking) connections, when it differs from the others'. A
        #: worker names its blocking connection as BullMQ's workers do, so that ``getWorkers`` lists it.
        self.dedicated_name: str | None = None

    def statistics(self) -> ClientStatistics:
        counters = self._counters
        return ClientStatistics(
            commands=counters.commands,
            writes=counters.writes,
            connections=counters.connections,
            blocking_idle=len(self._idle),
        )

    @property
    def settings(self) -> RedisSettings | None:
        """The settings in use (None until the default has been resolved by the first command)."""
        return self._settings

    async def resolve_settings(self) -> RedisSettings:
        """The settings, resolving sandq's default Redis (which may start the embedded one) if needed."""
        if self._settings is None:
            from .embedded import resolve_redis_url

            url = await anyio.to_thread.run_sync(resolve_redis_url, self._default)
            settings = RedisSettings.from_url(url)
            if self._client_name is not None:
                settings = settings.with_client_name(self._client_name)
            self._settings = settings
        return self._settings

    async def execute(self, *args: Arg) -> Reply:
        """Run one command and return its reply; an error reply raises ReplyError."""
        return await self._execute_encoded(encode_command(args))

    async def _execute_encoded(self, command: bytes) -> Reply:
        connection = await self._get_connection()
        reply = (await connection.request(command, 1))[0]
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def execute_many(
        self, commands: Sequence[Sequence[Arg]], *, raise_errors: bool = True
    ) -> list[Reply]:
        """Run several commands in one write (a pipeline, not a transaction); replies in order.

        With ``raise_errors`` the first error reply is raised; otherwise error replies are returned as
        ReplyError instances in their places.
        """
        if not commands:
            return []
        connection = await self._get_connection()
        replies = await connection.request(encode_commands(commands), len(commands))
        if raise_errors:
            for reply in replies:
                if isinstance(reply, ReplyError):
                    raise reply
        return replies

    async def run_script(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Reply:
        """Run a sandq Lua script with EVALSHA, loading it first if Redis does not have it."""
        command = encode_evalsha(script.sha, keys, args)
        try:
            return await self._execute_encoded(command)
        except ReplyError as exc:
            if exc.code != "NOSCRIPT":
                raise
        await self.execute("SCRIPT", "LOAD", script.source)
        return await self._execute_encoded(command)

    async def run_scripts(self, calls: Sequence[tuple[Script, Sequence[Arg], Sequence[Arg]]]) -> list[Reply]:
        """Run several scripts in one write (a pipeline); their replies in order, an error reply as a
        ReplyError in its place. Calls of scripts Redis does not have are loaded and run again."""
        if not calls:
            return []
        encoded = [encode_evalsha(script.sha, keys, args) for script, keys, args in calls]
        connection = await self._get_connection()
        replies = await connection.request(b"".join(encoded), len(encoded))
        missing = [
            i for i, reply in enumerate(replies) if isinstance(reply, ReplyError) and reply.code == "NOSCRIPT"
        ]
        if missing:
            for script in {calls[i][0].sha: calls[i][0] for i in missing}.values():
                await self.execute("SCRIPT", "LOAD", script.source)
            connection = await self._get_connection()
            again = await connection.request(b"".join(encoded[i] for i in missing), len(missing))
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def execute_blocking(self, *args: Arg) -> Reply:
        """Run a blocking command (BZPOPMIN, XREAD BLOCK, ...) on a dedicated connection.

        Cancelling the call closes that connection; other callers are not affected.
        """
        connection = self._idle.pop() if self._idle else await self._connect(dedicated=True)
        self._busy.add(connection)
        try:
            reply = (await connection.request(encode_command(args), 1))[0]
        except BaseException:
            self._busy.discard(connection)
            await connection.aclose()
            raise
        self._busy.discard(connection)
        if self._closed:
            await connection.aclose()
        else:
            self._idle.append(connection)
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def open_blocking_connection(self) -> None:
        """Open a dedicated connection now and keep it for :meth:`execute_blocking` (so that a
        connection named ``dedicated_name`` is listed from the start, not from the first block)."""
        connection = await self._connect(dedicated=True)
        if self._closed:
            await connection.aclose()
        else:
            self._idle.append(connection)

    async def ping(self) -> bool:
        return bool(await self.execute("PING") == b"PONG")

    async def _get_connection(self) -> _Connection:
        connection = self._connection
        if connection is not None and connection.broken is None:
            return connection
        async with self._connect_lock:
            connection = self._connection
            if connection is None or connection.broken is not None:
                connection = self._connection = await self._connect(dedicated=False)
            return connection

    async def _connect(self, *, dedicated: bool) -> _Connection:
        if self._closed:
            raise RedisConnectionError("this Redis client has been closed")
        settings = await self.resolve_settings()
        if dedicated and self.dedicated_name is not None:
            settings = settings.with_client_name(self.dedicated_name)
        if not self._ever_connected:
            connection = await open_connection(settings, self._counters)
            self._ever_connected = True
            return connection
        deadline = anyio.current_time() + settings.reconnect_timeout
        delay = 0.0
        while True:
            try:
                return await open_connection(settings, self._counters)
            except _HandshakeRefused:
                raise
            except RedisConnectionError as exc:
                remaining = deadline - anyio.current_time()
                if remaining <= 0:
                    raise RedisConnectionError(
                        f"gave up reconnecting to Redis at {settings.address} after "
                        f"{settings.reconnect_timeout:g}s: {exc}"
                    ) from exc
                delay = min(settings.max_backoff, max(0.05, delay * 2))
                await anyio.sleep(min(delay, remaining))
            if self._closed:
                raise RedisConnectionError("this Redis client has been closed")

    async def aclose(self) -> None:
        """Close every connection; commands in flight fail with ConnectionLostError."""
        self._closed = True
        connections = [self._connection, *self._idle, *self._busy]
        self._connection = None
        self._idle.clear()
        self._busy.clear()
        for connection in connections:
            if connection is not None:
                await connection.aclose()

    async def __aenter__(self) -> RedisClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        where = self._settings.address if self._settings is not None else "(default, unresolved)"
        return f"<RedisClient {where}>"


def as_client(connection: RedisClient | RedisSettings | str | None) -> tuple[RedisClient, bool]:
    """A client for ``connection``, and whether the caller owns it (and must close it)."""
    if isinstance(connection, RedisClient):
        return connection, False
    if connection is None or isinstance(connection, RedisSettings | str):
        return RedisClient(connection), True
    raise ConfigurationError(f"connection must be a URL, RedisSettings or RedisClient, not {connection!r}")
