"""Job options: validation, the stored (BullMQ) form, lenient reading, durations. Pure; no Redis."""

from __future__ import annotations

import json

import pytest

from sandq.errors import InvalidJobIdError, InvalidOptionError
from sandq.options import (
    MAX_PRIORITY,
    Backoff,
    JobOptions,
    KeepJobs,
    duration_ms,
    parse_duration,
    validate_job_id,
)


def test_defaults_store_like_bullmq() -> None:
    assert JobOptions().to_stored() == {"attempts": 0}


def test_every_option_in_its_stored_form() -> None:
    options = JobOptions(
        job_id="order-7",
        delay=1500,
        priority=3,
        lifo=True,
        attempts=4,
        backoff={"type": "exponential", "delay": 200, "jitter": 0.25},  # type: ignore[arg-type]
        remove_on_complete=True,
        remove_on_fail={"age": 3600, "count": 10},  # type: ignore[arg-type]
        keep_logs=20,
        timestamp=1_700_000_000_000,
        timeout=30_000,
    )
    assert options.to_stored() == {
        "attempts": 4,
        "jobId": "order-7",
        "delay": 1500,
        "priority": 3,
        "lifo": True,
        "timestamp": 1_700_000_000_000,
        "backoff": {"type": "exponential", "delay": 200, "jitter": 0.25},
        "removeOnComplete": True,
        "removeOnFail": {"age": 3600, "count": 10},
        "kl": 20,
        "timeout": 30_000,
    }


def test_a_number_backoff_is_fixed() -> None:
    assert JobOptions(backoff=500).backoff == Backoff(type="fixed", delay=500)  # type: ignore[arg-type]
    assert JobOptions(backoff=500).to_stored()["backoff"] == {"type": "fixed", "delay": 500}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delay": -1}, "delay must be at least 0"),
        ({"delay": 1.5}, "delay must be an integer"),
        ({"priority": MAX_PRIORITY + 1}, "priority must be from 0 to 2,097,151"),
        ({"priority": True}, "priority must be an integer"),
        ({"attempts": -2}, "attempts must be at least 0"),
        ({"lifo": 1}, "lifo must be True or False"),
        ({"backoff": {"type": "custom", "delay": 1}}, "custom backoff strategies are not supported"),
        ({"backoff": {"type": "fixed", "delay": 1, "jitter": 2}}, "jitter must be from 0 to 1"),
        ({"backoff": {"kind": "fixed"}}, "unknown backoff key"),
        ({"backoff": "1s"}, "backoff must be a number of ms"),
        ({"remove_on_complete": -1}, "remove_on_complete must be at least 0"),
        ({"remove_on_fail": {"ages": 5}}, "unknown remove_on_fail key"),
        ({"remove_on_fail": "yes"}, "remove_on_fail must be a bool"),
        ({"keep_logs": -1}, "keep_logs must be at least 0"),
        ({"timeout": 0}, "timeout must be at least 1"),
        ({"timestamp": "now"}, "timestamp must be an integer"),
        ({"colour": "red"}, "unknown job option(s) ['colour']"),
    ],
)
def test_invalid_options_say_what_is_wrong(options: dict[str, object], message: str) -> None:
    with pytest.raises(
        InvalidOptionError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        JobOptions.from_kwargs(options)


@pytest.mark.parametrize("job_id", ["123", "0", "-5", "a:b", "repeat:x:1", "0:1"])
def test_job_ids_bullmq_cannot_hold_are_refused(job_id: str) -> None:
    with pytest.raises(InvalidJobIdError):
        validate_job_id(job_id)
    with pytest.raises(InvalidJobIdError):
        JobOptions(job_id=job_id)


@pytest.mark.parametrize("job_id", ["0123", "job-123", "12a", " 12", "1.5", "ünï"])
def test_other_job_ids_are_accepted(job_id: str) -> None:
    assert JobOptions(job_id=job_id).job_id == job_id


def test_empty_job_id_means_automatic() -> None:
    assert JobOptions(job_id="").job_id is None
    assert "jobId" not in JobOptions(job_id="").to_stored()


def test_from_kwargs_without_options_is_the_shared_default() -> None:
    assert JobOptions.from_kwargs({}) is JobOptions.from_kwargs({})


def test_stored_json_is_cached_and_compact() -> None:
    options = JobOptions(attempts=2, delay=5)
    stored, text = options.stored_json()
    assert options.stored_json()[1] is text
    assert json.loads(text) == stored
    assert " " not in text


def test_from_stored_reads_what_bullmq_writes() -> None:
    stored = {
        "attempts": 3,
        "delay": 0,
        "backoff": {"type": "exponential", "delay": 1000, "jitter": 0.5},
        "removeOnComplete": {"age": 3600, "count": 10},
        "removeOnFail": 5,
        "kl": 7,
        "jobId": "my-id",
        "de": {"id": "d1"},
        "repeat": {"every": 60000},
        "timeout": 2500,
    }
    options = JobOptions.from_stored(stored)
    assert options.attempts == 3
    assert options.backoff == Backoff(type="exponential", delay=1000, jitter=0.5)
    assert options.remove_on_complete == KeepJobs(age=3600, count=10)
    assert options.remove_on_fail == 5
    assert options.keep_logs == 7
    assert options.job_id == "my-id"
    assert options.timeout == 2500
    assert options.extra == {"deduplication": {"id": "d1"}, "repeat": {"every": 60000}}
    # Unknown keys go back out under their stored (abbreviated) names.
    assert options.to_stored()["de"] == {"id": "d1"}
    assert options.to_stored()["repeat"] == {"every": 60000}


def test_from_stored_never_raises_and_keeps_what_it_cannot_use() -> None:
    stored = {
        "attempts": "3",
        "priority": 2.0,
        "delay": -4,
        "backoff": {"type": "custom", "delay": 5},
        "lifo": None,
    }
    options = JobOptions.from_stored(stored)
    assert options.attempts == 3
    assert options.priority == 2
    assert options.delay == 0
    assert options.backoff is None
    assert options.extra["delay"] == -4
    assert options.extra["backoff"] == {"type": "custom", "delay": 5}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1.5", 1.5),
        (" 2S ", 2.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert duration_ms(text) == round(seconds * 1000)


@pytest.mark.parametrize("text", ["", "fast", "5q", "-1s", "inf", "nan"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidOptionError, match="duration"):
        parse_duration(text)
