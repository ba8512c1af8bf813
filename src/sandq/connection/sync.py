"""The synchronous twin of :class:`~sandq.connection.client.RedisClient`, over redis-py's connections.

For Flask, Django and scripts. It uses redis-py's connection pool (thread-safe, hiredis parsing) but
not its command layer: commands are sent raw and replies returned raw, so a reply has the same shape as
from the async client and the same pure script calls work over both. redis-py's automatic retries are
off: a command whose connection broke raises ConnectionLostError rather than being sent twice; the next
command reconnects.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import ConnectionLostError, RedisConnectionError, ReplyError
from .resp import Arg, Reply
from .settings import EMBEDDED, RedisSettings

if TYPE_CHECKING:
    from ..lua import Script


def _pool_for(settings: RedisSettings) -> redis.ConnectionPool:
    common: dict[str, Any] = {
        "db": settings.db,
        "username": settings.username,
        "password": settings.password,
        "client_name": settings.client_name,
        "socket_connect_timeout": settings.connect_timeout,
        "socket_timeout": None,
        "retry": Retry(NoBackoff(), 0),
        "protocol": 2,
    }
    if settings.unix_path is not None:
        return redis.ConnectionPool(
            connection_class=redis.UnixDomainSocketConnection, path=settings.unix_path, **common
        )
    if settings.tls:
        return redis.ConnectionPool(
            connection_class=redis.SSLConnection,
            host=settings.host,
            port=settings.port,
            ssl_cert_reqs="required" if settings.tls_verify else "none",
            ssl_check_hostname=settings.tls_verify,
            **common,
        )
    return redis.ConnectionPool(host=settings.host, port=settings.port, **common)


_STRIPPED_CODES: tuple[tuple[type[redis.exceptions.ResponseError], str], ...] = (
    (redis.exceptions.NoScriptError, "NOSCRIPT"),
    (redis.exceptions.ReadOnlyError, "READONLY"),
    (redis.exceptions.ExecAbortError, "EXECABORT"),
)


def _reply_error(exc: redis.exceptions.ResponseError) -> ReplyError:
    """redis-py strips the code off some error replies; put it back so both clients agree."""
    message = str(exc)
    for kind, code in _STRIPPED_CODES:
        if isinstance(exc, kind):
            return ReplyError(f"{code} {message}")
    first = message.split(" ", 1)[0]
    if first and first.isupper() and first.isalpha():
        return ReplyError(message)
    return ReplyError(f"ERR {message}")


class SyncRedisClient:
    """A blocking Redis client with the same calls as the async one: ``execute``, ``execute_many``,
    ``run_script``. Thread-safe. ``None`` means sandq's default Redis, as for the async client."""

    def __init__(
        self, settings: RedisSettings | str | None = None, *, client_name: str | None = None
    ) -> None:
        if settings is None or settings == EMBEDDED:
            from .embedded import resolve_redis_url

            settings = resolve_redis_url(settings)
        if isinstance(settings, str):
            settings = RedisSettings.from_url(settings)
        if client_name is not None:
            settings = settings.with_client_name(client_name)
        self.settings = settings
        self._pool = _pool_for(settings)

    def execute(self, *args: Arg) -> Reply:
        """Run one command and return its raw reply; an error reply raises ReplyError."""
        reply = self._round_trip([args])[0]
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def execute_many(self, commands: Sequence[Sequence[Arg]], *, raise_errors: bool = True) -> list[Reply]:
        """Run several commands in one write (a pipeline, not a transaction); replies in order."""
        if not commands:
            return []
        replies = self._round_trip(commands)
        if raise_errors:
            for reply in replies:
                if isinstance(reply, ReplyError):
                    raise reply
        return replies

    def run_script(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Reply:
        """Run a sandq Lua script with EVALSHA, loading it first if Redis does not have it."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return self.execute(*command)
        except ReplyError as exc:
            if exc.code != "NOSCRIPT":
                raise
        self.execute("SCRIPT", "LOAD", script.source)
        return self.execute(*command)

    def _round_trip(self, commands: Sequence[Sequence[Arg]]) -> list[Reply]:
        try:
            connection: Any = self._pool.get_connection()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis at {self.settings.address}: {exc}") from exc
        except redis.exceptions.ResponseError as exc:
            raise RedisConnectionError(
                f"Redis at {self.settings.address} refused the handshake: {exc}"
            ) from exc
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            replies: list[Reply] = []
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except redis.exceptions.ResponseError as exc:
                    replies.append(_reply_error(exc))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            connection.disconnect()
            self._pool.release(connection)
            raise ConnectionLostError(
                f"lost the connection to Redis at {self.settings.address}: {exc}"
            ) from exc
        except BaseException:
            connection.disconnect()
            self._pool.release(connection)
            raise
        self._pool.release(connection)
        return replies

    def ping(self) -> bool:
        return bool(self.execute("PING") == b"PONG")

    def close(self) -> None:
        self._pool.disconnect()

    def __enter__(self) -> SyncRedisClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncRedisClient {self.settings.address}>"
