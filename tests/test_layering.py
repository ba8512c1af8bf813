"""The package's front door: ``import sandq`` stays light, and the public names are all there."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import sandq

HEAVY = ("trio", "anyio", "redis", "hiredis", "msgpack", "sandq.queue", "sandq.connection")


def loaded_after(statement: str) -> set[str]:
    probe = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_import_sandq_loads_no_event_loop_and_no_redis_client() -> None:
    modules = loaded_after("import sandq")
    assert not {name for name in modules if name.split(".")[0] in HEAVY or name in HEAVY}


def test_the_errors_need_nothing_heavy() -> None:
    modules = loaded_after("import sandq.errors; sandq.errors.SandqError")
    assert not {name for name in modules if name.split(".")[0] in HEAVY or name in HEAVY}


def test_every_public_name_resolves_and_all_is_complete() -> None:
    for name in sandq.__all__:
        assert getattr(sandq, name) is not None, name
    public = {
        name
        for name in dir(sandq)
        if not name.startswith("_") and not isinstance(getattr(sandq, name), types.ModuleType)
    }
    assert public <= set(sandq.__all__) | {"annotations", "TYPE_CHECKING", "Any"}
    assert sandq.Queue.__module__ == "sandq.queue"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="Nope"):
        sandq.Nope  # type: ignore[attr-defined]  # noqa: B018
