"""sandq's benchmark driver (benchmarks/drivers/sandq_driver.py), run as the suite runs it, on small
sizes: each op's reply is what the protocol (benchmarks/peers.py) says, and it leaves no key behind."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

BENCH = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str) -> Any:
    """A module of benchmarks/ by path, without putting benchmarks/ on sys.path (its
    ``processors`` would shadow tests/processors)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


peers = _load("peers")
burn = _load("processors").burn
SANDQ = peers.CONTENDERS[0]


@pytest.fixture
def spec(redis_url: str) -> Iterator[dict[str, Any]]:
    queue = f"bench{uuid.uuid4().hex[:8]}"
    yield {"redis": redis_url, "queue": queue}
    with redis.Redis.from_url(redis_url) as client:
        assert list(client.scan_iter(f"bull:{queue}:*")) == []  # the driver cleaned up


def test_versions_and_enqueue(spec: dict[str, Any]) -> None:
    assert peers.run_driver(SANDQ, {**spec, "op": "versions"}, 60)["versions"]["sandq"]
    for bulk in (False, True):
        reply = peers.run_driver(SANDQ, {**spec, "op": "enqueue", "n": 200, "bulk": bulk}, 60)
        assert reply["seconds"] > 0


@pytest.mark.parametrize("kind", ["noop", "cpu"])
def test_drain(spec: dict[str, Any], kind: str) -> None:
    extra = {"rounds": 1000, "check": burn(1000)} if kind == "cpu" else {}
    reply = peers.run_driver(
        SANDQ, {**spec, "op": "drain", "kind": kind, "n": 40, "concurrency": 2, **extra}, 120
    )
    assert reply["jobs"] == 40
    assert 0 < reply["last"] - reply["first"] < 60


def test_drain_refuses_a_wrong_checksum(spec: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError, match="computed"):
        peers.run_driver(
            SANDQ,
            {**spec, "op": "drain", "kind": "cpu", "n": 3, "concurrency": 1, "rounds": 10, "check": -1},
            120,
        )


def test_latency(spec: dict[str, Any]) -> None:
    reply = peers.run_driver(SANDQ, {**spec, "op": "latency", "n": 5, "concurrency": 1}, 120)
    assert len(reply["active_ms"]) == len(reply["completed_ms"]) == 5
    assert all(0 < a <= c for a, c in zip(reply["active_ms"], reply["completed_ms"], strict=True))
