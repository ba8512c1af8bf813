"""Where and how to reach Redis: ``RedisSettings``, parsed from a URL (pure; no I/O).

Accepted URLs::

    redis://[[user]:password@]host[:port][/db]
    rediss://...                                  TLS; ?ssl_cert_reqs=none skips verification
    unix:///path/to/socket[?db=N][&password=...]  a local socket

A query may also carry ``db``, ``client_name``, ``password``, ``username``. Unknown query parameters are
an error rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ConfigurationError

#: The URL that asks for sandq's embedded Redis (``--redis embedded``).
EMBEDDED = "embedded"

_QUERY_KEYS = {"db", "client_name", "password", "username", "ssl_cert_reqs"}


@dataclass(frozen=True, kw_only=True)
class RedisSettings:
    """How to reach one Redis server. Build it with :meth:`from_url`, or directly.

    ``client_name`` is set with CLIENT SETNAME on every (re)connect, after AUTH and SELECT.
    ``reconnect_timeout``: after a connection that worked is lost, how long (seconds) commands keep
    retrying to connect, with capped exponential backoff, before raising RedisConnectionError.
    """

    host: str = "localhost"
    port: int = 6379
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_verify: bool = True
    client_name: str | None = None
    connect_timeout: float = 5.0
    reconnect_timeout: float = 30.0
    max_backoff: float = 1.0

    @classmethod
    def from_url(cls, url: str, **overrides: object) -> RedisSettings:
        """Parse ``url``; keyword ``overrides`` replace fields afterwards (e.g. ``client_name=``)."""
        settings = _parse_url(url)
        return dataclasses.replace(settings, **overrides) if overrides else settings  # type: ignore[arg-type]

    def with_client_name(self, name: str | None) -> RedisSettings:
        return dataclasses.replace(self, client_name=name)

    @property
    def address(self) -> str:
        """A printable address without credentials, for messages."""
        if self.unix_path is not None:
            return f"unix://{self.unix_path}?db={self.db}"
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}/{self.db}"

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _parse_url(url: str) -> RedisSettings:
    if not isinstance(url, str) or not url:
        raise ConfigurationError("a Redis URL must be a non-empty string")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            f"unsupported Redis URL {_redact(url)!r}: use redis://host:port/db, rediss://... or "
            "unix:///path/to/socket?db=N"
        )
    query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - _QUERY_KEYS
    if unknown:
        raise ConfigurationError(f"unknown parameter(s) {sorted(unknown)} in Redis URL {_redact(url)!r}")
    username = unquote(parts.username) if parts.username else query.get("username") or None
    password = unquote(parts.password) if parts.password is not None else query.get("password")
    db = _parse_db(query.get("db"), url)
    verify = query.get("ssl_cert_reqs", "required").lower() not in ("none", "optional")
    if scheme == "unix":
        path = unquote(parts.path)
        if not path:
            raise ConfigurationError(f"Redis URL {_redact(url)!r} names no socket path")
        return RedisSettings(
            unix_path=path,
            db=db,
            username=username,
            password=password or None,
            client_name=query.get("client_name") or None,
        )
    path_db = parts.path.strip("/")
    if path_db:
        db = _parse_db(path_db, url)
    try:
        port = parts.port or 6379
    except ValueError:
        raise ConfigurationError(f"Redis URL {_redact(url)!r} has an invalid port") from None
    return RedisSettings(
        host=parts.hostname or "localhost",
        port=port,
        db=db,
        username=username,
        password=password or None,
        tls=scheme == "rediss",
        tls_verify=verify,
        client_name=query.get("client_name") or None,
    )


def _parse_db(value: str | None, url: str) -> int:
    if value is None or value == "":
        return 0
    try:
        db = int(value)
    except ValueError:
        raise ConfigurationError(f"Redis URL {_redact(url)!r}: database {value!r} is not a number") from None
    if db < 0:
        raise ConfigurationError(f"Redis URL {_redact(url)!r}: database {db} is negative")
    return db


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()
