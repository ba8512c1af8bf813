"""Key naming and the error table. Pure; no Redis."""

from __future__ import annotations

import pytest

from sandq import errors
from sandq.errors import ConfigurationError, error_for_code
from sandq.keys import QUEUE_KEY_SUFFIXES, QueueKeys


def test_keys_follow_bullmq_layout() -> None:
    keys = QueueKeys("emails")
    assert keys.base == "bull:emails:"
    assert keys.qualified_name == "bull:emails"
    assert keys.wait == "bull:emails:wait"
    assert keys.waiting_children == "bull:emails:waiting-children"
    assert keys.stalled_check == "bull:emails:stalled-check"
    assert keys.job("42") == "bull:emails:42"
    assert keys.job_lock("42") == "bull:emails:42:lock"
    assert keys.job_logs("42") == "bull:emails:42:logs"
    for suffix in QUEUE_KEY_SUFFIXES:
        assert keys.suffix(suffix) == f"bull:emails:{suffix}"


def test_hash_tagged_prefix_keeps_one_slot() -> None:
    keys = QueueKeys("q", prefix="{bull}")
    assert keys.wait == "{bull}:q:wait"
    assert keys.job("1") == "{bull}:q:1"


@pytest.mark.parametrize("name", ["", "a:b"])
def test_bad_queue_names(name: str) -> None:
    with pytest.raises(ConfigurationError):
        QueueKeys(name)


def test_bad_prefix() -> None:
    with pytest.raises(ConfigurationError):
        QueueKeys("q", prefix="")


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (-1, errors.JobNotFoundError),
        (-2, errors.LockMissingError),
        (-3, errors.JobNotInStateError),
        (-4, errors.PendingDependenciesError),
        (-5, errors.ParentNotFoundError),
        (-6, errors.LockMismatchError),
        (-7, errors.ParentConflictError),
        (-8, errors.SchedulerJobError),
        (-9, errors.FailedChildrenError),
        (-10, errors.SchedulerConflictError),
        (-11, errors.SchedulerConflictError),
    ],
)
def test_every_script_code_has_its_exception(code: int, kind: type[errors.ScriptError]) -> None:
    error = error_for_code(code, script="move_to_finished", job_id="7")
    assert type(error) is kind
    assert error.code == code
    assert error.job_id == "7"
    assert "move_to_finished" in str(error)


def test_unknown_code_is_still_a_script_error() -> None:
    error = error_for_code(-99, script="x")
    assert type(error) is errors.ScriptError
    assert "-99" in str(error)


def test_reply_error_code() -> None:
    assert errors.ReplyError("WRONGTYPE Operation against a key").code == "WRONGTYPE"
    assert errors.ReplyError("").code == ""


def test_the_tree_has_one_root() -> None:
    for name in dir(errors):
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == errors.__name__:
            assert issubclass(value, errors.SandqError), name
