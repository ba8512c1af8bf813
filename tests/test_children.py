"""The zygote and its children, with real processes and no Redis: every outcome, updates, cancels, kills,
crashes, exits, output capture, load errors, the layering of the child side, and what happens when the
supervisor dies. The processors are in ``tests/processors/``; the zygote runs in the tests directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from sandq.errors import ProcessorLoadError, WorkerError
from sandq.protocol import (
    Cancel,
    Delay,
    Done,
    Failure,
    FromChild,
    JobPayload,
    Log,
    Ok,
    Outcome,
    Progress,
    RateLimited,
    Run,
    Stop,
    UpdateData,
    WaitingChildren,
)
from sandq.supervisor.children import Child, ChildGone, Zygote, open_zygote

TESTS = Path(__file__).parent
HEAVY = (
    "trio",
    "anyio",
    "sniffio",
    "redis",
    "hiredis",
    "sandq.queue",
    "sandq.connection",
    "sandq.supervisor",
)


NOT_STORED = "the result of job 1 cannot be stored as JSON"


def payload(data: object = None, *, job_id: str = "1", data_json: str | None = None) -> JobPayload:
    return JobPayload(
        id=job_id,
        name="job",
        data_json=json.dumps({} if data is None else data) if data_json is None else data_json,
        opts_json='{"attempts":3,"kl":5}',
        timestamp=1_700_000_000_000,
        attempts_made=1,
        attempts_started=2,
        processed_on=1_700_000_000_500,
        progress_json="7",
        queue="q",
    )


@asynccontextmanager
async def child_of(processor: str) -> AsyncIterator[Child]:
    async with open_zygote(f"processors.basic:{processor}", cwd=str(TESTS)) as zygote:
        yield await zygote.spawn()


async def run(processor: str, data: object = None, token: str = "tok") -> tuple[list[FromChild], Outcome]:
    """Run one job on a fresh child: the messages before ``Done``, and its outcome."""
    async with child_of(processor) as child:
        await child.send(Run(token, payload(data)))
        return await until_done(child, token)


async def until_done(child: Child, token: str = "tok") -> tuple[list[FromChild], Outcome]:
    messages = []
    with trio.fail_after(10):
        while not isinstance(message := await child.receive(), Done):
            messages.append(message)
    assert message.token == token
    return messages, message.outcome


def gone(pid: int) -> bool:
    """Whether ``pid`` has died (a zombie nobody reaped counts as dead, where /proc tells)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        if Path("/proc/self/stat").exists():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def wait_gone(*pids: int, seconds: float = 3.0) -> None:
    with trio.move_on_after(seconds):
        while not all(gone(pid) for pid in pids):  # noqa: ASYNC110  (nothing to wait on but /proc)
            await trio.sleep(0.02)
    assert [pid for pid in pids if not gone(pid)] == []


# --- outcomes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("processor", "data", "outcome"),
    [
        ("square", {"n": 7}, Ok('{"square":49,"attempts":1,"opts":{"attempts":3,"keepLogs":5}}')),
        ("one_arg", [1, "ü"], Ok('["1","job",[1,"ü"],7]')),
        ("async_square", {"n": 9}, Ok("81")),
        ("delay_returned", None, Delay(5000)),
        ("delay_raised", None, Delay(1500)),
        ("rate_limited", None, RateLimited(2500)),
        ("waiting_children", None, WaitingChildren()),
    ],
)
async def test_results_map_to_outcomes(processor: str, data: object, outcome: Outcome) -> None:
    assert await run(processor, data) == ([], outcome)


@pytest.mark.parametrize(
    ("processor", "type_", "message", "unrecoverable"),
    [
        ("fail", "ValueError", "bad input {'x': 1}", False),
        ("unrecoverable", "UnrecoverableError", "give up now", True),
        ("not_json", "TypeError", f"{NOT_STORED}: Object of type object is not JSON serializable", False),
        ("nan", "TypeError", f"{NOT_STORED}: Out of range float values are not JSON compliant", False),
    ],
)
async def test_failures_map_to_failure(processor: str, type_: str, message: str, unrecoverable: bool) -> None:
    _, outcome = await run(processor, {"x": 1})
    assert isinstance(outcome, Failure)
    assert (outcome.type, outcome.unrecoverable) == (type_, unrecoverable)
    assert outcome.message.startswith(message)
    assert outcome.traceback.startswith("Traceback")


async def test_a_traceback_starts_at_the_processor() -> None:
    _, outcome = await run("fail", {})
    assert isinstance(outcome, Failure)
    assert "sandq/child/main.py" not in outcome.traceback
    assert 'processors/basic.py", line' in outcome.traceback
    assert outcome.traceback.rstrip().endswith("ValueError: bad input {}")


async def test_data_that_is_not_json_fails_the_job_for_good() -> None:
    async with child_of("square") as child:
        await child.send(Run("tok", payload(data_json="{not json")))
        _, outcome = await until_done(child)
    assert isinstance(outcome, Failure)
    assert outcome.type == "MalformedJobError"
    assert outcome.unrecoverable
    assert "'data' is not JSON" in outcome.message


async def test_progress_log_and_data_updates_carry_the_token() -> None:
    messages, outcome = await run("updates", token="tok-9")
    assert messages == [
        Progress("tok-9", "50"),
        Log("tok-9", "halfway there"),
        UpdateData("tok-9", '{"step":2}'),
        Progress("tok-9", '{"done":true}'),
    ]
    assert outcome == Ok('"ok"')


async def test_many_jobs_in_a_row_come_back_in_order() -> None:
    async with child_of("identity") as child:
        for i in range(200):
            await child.send(Run(f"tok-{i}", payload({"i": i}, job_id=str(i))))
        for i in range(200):
            with trio.fail_after(10):
                assert await child.receive() == Done(f"tok-{i}", Ok(f'{{"i":{i}}}'))
        await child.send(Run("one-more", payload("again")))
        assert await until_done(child, "one-more") == ([], Ok('"again"'))


async def test_large_payloads_both_ways() -> None:
    text = "ü" * 1_000_000
    messages, outcome = await run("length", text)
    assert messages == [Log("tok", "x" * 1_000_000)]
    assert outcome == Ok("1000000")


async def test_children_are_spawned_concurrently() -> None:
    async with open_zygote("processors.basic:identity", cwd=str(TESTS)) as zygote:
        children: list[Child] = []

        async def spawn() -> None:
            children.append(await zygote.spawn())

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(spawn)
        assert len({child.pid for child in children}) == 4
        for i, child in enumerate(children):
            await child.send(Run(f"t{i}", payload(i)))
        for i, child in enumerate(children):
            assert await until_done(child, f"t{i}") == ([], Ok(str(i)))


# --- cancels and kills ------------------------------------------------------------------------


async def test_a_cancel_reaches_a_cooperative_job() -> None:
    async with child_of("cooperative") as child:
        await child.send(Run("tok", payload()))
        assert await child.receive() == Log("tok", "waiting for a cancel")
        await child.send(Cancel("tok", "timeout"))
        with trio.fail_after(2):
            _, outcome = await until_done(child)
        assert isinstance(outcome, Failure)
        assert (outcome.type, outcome.message) == ("JobCancelled", "job cancelled: timeout")
        assert child.alive


async def test_a_cancel_for_another_token_is_ignored() -> None:
    async with child_of("sleepy") as child:
        await child.send(Run("tok", payload({"seconds": 0.3})))
        assert await child.receive() == Log("tok", "sleeping")
        await child.send(Cancel("another-job", "timeout"))
        assert await until_done(child) == ([], Ok('"slept"'))
        await child.send(Run("tok-2", payload({"seconds": 30})))
        assert await child.receive() == Log("tok-2", "sleeping")
        await child.send(Cancel("tok-2", "stop it, please"))
        assert await until_done(child, "tok-2") == ([], Ok('{"cancelled":"stop it, please"}'))


async def test_a_spinner_that_ignores_its_cancel_is_killed() -> None:
    async with child_of("spin") as child:
        await child.send(Run("tok", payload()))
        assert await child.receive() == Log("tok", "spinning")
        await child.send(Cancel("tok", "timeout"))
        with trio.move_on_after(0.3) as waited:
            await child.receive()
        assert waited.cancelled_caught
        child.kill()
        child.kill()
        with trio.fail_after(5):
            assert await child.wait() == -signal.SIGKILL
        assert not child.alive
        with pytest.raises(ChildGone) as gone_info:
            await child.receive()
        assert gone_info.value.returncode == -signal.SIGKILL
        child.kill()  # still harmless
        with pytest.raises(ChildGone):
            await child.send(Run("tok-2", payload()))


async def test_a_kill_takes_the_grandchildren_too() -> None:
    async with child_of("grandchild") as child:
        await child.send(Run("tok", payload()))
        message = await child.receive()
        assert isinstance(message, Log)
        sleeper = int(message.line)
        assert not gone(sleeper)
        child.kill()
        assert await child.wait() == -signal.SIGKILL
        await wait_gone(sleeper)


async def test_what_a_child_leaves_behind_dies_with_it() -> None:
    async with child_of("grandchild_then_exit") as child:
        await child.send(Run("tok", payload()))
        message = await child.receive()
        assert isinstance(message, Log)
        assert await child.wait() == 3
        await wait_gone(int(message.line))


# --- crashes and exits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("processor", "returncode"), [("segfault", -signal.SIGSEGV), ("exit_hard", 3), ("exit_soft", 4)]
)
async def test_a_child_that_dies_during_a_job(processor: str, returncode: int) -> None:
    async with child_of(processor) as child:
        await child.send(Run("tok", payload()))
        with trio.fail_after(5), pytest.raises(ChildGone) as gone_info:
            await child.receive()
        assert gone_info.value.returncode == returncode
        assert gone_info.value.pid == child.pid
        assert await child.wait() == returncode


async def test_stop_makes_an_idle_child_exit_0() -> None:
    async with child_of("square") as child:
        await child.send(Stop())
        with trio.fail_after(5):
            assert await child.wait() == 0
        with pytest.raises(ChildGone) as gone_info:
            await child.receive()
        assert gone_info.value.returncode == 0


async def test_stop_lets_the_current_job_finish() -> None:
    async with child_of("sleepy") as child:
        await child.send(Run("tok", payload({"seconds": 0.2})))
        await child.send(Stop())
        await child.send(Run("never", payload()))
        assert await until_done(child) == ([Log("tok", "sleeping")], Ok('"slept"'))
        with pytest.raises(ChildGone):
            await child.receive()
        assert await child.wait() == 0


async def test_a_child_that_breaks_the_protocol_is_killed() -> None:
    async with child_of("garbage") as child:
        await child.send(Run("tok", payload()))
        with trio.fail_after(5), pytest.raises(ChildGone, match="broke the pipe protocol") as gone_info:
            await child.receive()
        assert gone_info.value.returncode == -signal.SIGKILL


# --- output -----------------------------------------------------------------------------------


async def test_output_is_attributed_to_the_job_that_printed_it() -> None:
    async with child_of("prints") as child:
        for job_id in ("1", "2"):
            await child.send(Run("tok", payload(job_id=job_id)))
            assert await until_done(child) == ([], Ok("null"))
            output = child.take_output()
            assert f"stdout of job {job_id}\n" in output
            assert f"stderr of job {job_id}\n" in output
            assert output.endswith("no newline at the end")
            assert child.take_output() == ""


async def test_only_the_tail_of_a_flood_of_output_is_kept() -> None:
    async with child_of("prints_a_lot") as child:
        await child.send(Run("tok", payload()))
        await until_done(child)
        output = child.take_output()
        assert 60 * 1024 < len(output) <= 64 * 1024
        assert output.endswith("line 03999 " + "x" * 40 + "\nthe last line\n")


# --- loading the processor --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("processor", "preload", "message"),
    [
        ("nope.tasks:run", (), "cannot import module 'nope.tasks': No module named 'nope'"),
        ("processors.basic:nope", (), "module 'processors.basic' has no attribute 'nope'"),
        ("processors.basic:NOT_CALLABLE", (), "'processors.basic:NOT_CALLABLE' is not callable: it is 'int'"),
        (
            "processors.broken_import:run",
            (),
            "cannot import module 'processors.broken_import': "
            "RuntimeError: this module refuses to be imported",
        ),
        ("processors.basic", (), "the processor must be given as module:function, not 'processors.basic'"),
        ("processors.basic:square", ("no_such_thing",), "cannot import preload module 'no_such_thing'"),
    ],
)
async def test_a_processor_that_cannot_be_loaded(
    processor: str, preload: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ProcessorLoadError) as error:
        async with open_zygote(processor, preload=preload, cwd=str(TESTS)):
            pytest.fail("the zygote should not start")
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


async def test_a_preloaded_module_is_imported_in_the_zygote() -> None:
    async with open_zygote("processors.basic:loaded_modules", preload=["decimal"], cwd=str(TESTS)) as zygote:
        child = await zygote.spawn()
        await child.send(Run("tok", payload()))
        _, outcome = await until_done(child)
    assert isinstance(outcome, Ok)
    assert "decimal" in json.loads(outcome.value_json)


# --- layering and lifetimes -------------------------------------------------------------------


def test_the_child_side_imports_no_event_loop_and_no_redis_client() -> None:
    probe = "import sys, sandq.child, sandq.child.main, sandq.child.zygote; print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    modules = set(done.stdout.split())
    assert "sandq.child.zygote" in modules
    assert not {name for name in modules if name in HEAVY or name.split(".")[0] in HEAVY}


async def test_a_running_child_has_loaded_nothing_heavy() -> None:
    _, outcome = await run("loaded_modules")
    assert isinstance(outcome, Ok)
    modules = set(json.loads(outcome.value_json))
    assert {"sandq.child.main", "processors.basic", "__main__"} <= modules
    assert not {name for name in modules if name in HEAVY or name.split(".")[0] in HEAVY}


async def test_leaving_open_zygote_kills_the_children_and_the_zygote() -> None:
    async with open_zygote("processors.basic:spin", cwd=str(TESTS)) as zygote:
        busy, idle = await zygote.spawn(), await zygote.spawn()
        await busy.send(Run("tok", payload()))
        assert await busy.receive() == Log("tok", "spinning")
        pids = (zygote.pid, busy.pid, idle.pid)
    await wait_gone(*pids, seconds=1)
    assert await busy.wait() == -signal.SIGKILL
    assert await idle.wait() == -signal.SIGKILL


async def test_when_the_zygote_dies_its_children_die_and_spawn_fails() -> None:
    async with open_zygote("processors.basic:sleepy", cwd=str(TESTS)) as zygote:
        child = await zygote.spawn()
        os.kill(zygote.pid, signal.SIGKILL)
        with trio.fail_after(5), pytest.raises(ChildGone):
            await child.receive()
        await wait_gone(child.pid)
        with pytest.raises(WorkerError, match="cannot start a child"):
            await zygote.spawn()


async def test_an_error_in_the_body_comes_out_as_it_is() -> None:
    async def fail_inside() -> None:
        async with open_zygote("processors.basic:identity", cwd=str(TESTS)) as zygote:
            await zygote.spawn()
            raise ValueError("from the body")

    with pytest.raises(ValueError, match=r"^from the body$"):
        await fail_inside()
    with trio.move_on_after(0.2) as waited:
        async with open_zygote("processors.basic:identity", cwd=str(TESTS)):
            await trio.sleep_forever()
    assert waited.cancelled_caught


async def test_the_zygote_ignores_ctrl_c_meant_for_the_supervisor() -> None:
    async with open_zygote("processors.basic:identity", cwd=str(TESTS)) as zygote:
        os.kill(zygote.pid, signal.SIGINT)
        os.kill(zygote.pid, signal.SIGTERM)
        await trio.sleep(0.1)
        child = await zygote.spawn()
        await child.send(Run("tok", payload("still here")))
        assert await until_done(child) == ([], Ok('"still here"'))


def my_children_running(text: str) -> list[int]:
    """This process's live children whose command line holds ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if parent == os.getpid() and text.encode() in command and not gone(int(entry.name)):
                pids.append(int(entry.name))
    return pids


async def test_giving_up_on_a_slow_start_kills_the_zygote() -> None:
    with trio.move_on_after(0.5) as waited:
        async with open_zygote("processors.slow_import:run", cwd=str(TESTS)):
            pytest.fail("the zygote should still be importing")
    assert waited.cancelled_caught
    assert my_children_running("processors.slow_import:run") == []


SUPERVISOR = """
import json, trio
from sandq.protocol import JobPayload, Run
from sandq.supervisor.children import open_zygote

async def main():
    async with open_zygote("processors.basic:grandchild") as zygote:
        busy, idle = await zygote.spawn(), await zygote.spawn()
        await busy.send(Run("tok", JobPayload("1", "job", "{}", "{}", 0, 0, 0, 0, "0", "q")))
        sleeper = int((await busy.receive()).line)
        print(json.dumps([zygote.pid, busy.pid, idle.pid, sleeper]), flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


def test_nothing_outlives_a_supervisor_killed_with_sigkill() -> None:
    """Not the zygote, not its children, not what a job started."""
    with subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR], cwd=TESTS, stdout=subprocess.PIPE, text=True
    ) as supervisor:
        assert supervisor.stdout is not None
        pids = json.loads(supervisor.stdout.readline())
        assert len(pids) == 4
        assert not any(gone(pid) for pid in pids)
        supervisor.kill()
        supervisor.wait()
    deadline = time.monotonic() + 3
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [pid for pid in pids if not gone(pid)] == []


async def test_a_zygote_is_quick_to_fork() -> None:
    async with open_zygote("processors.basic:identity", cwd=str(TESTS)) as zygote:
        assert isinstance(zygote, Zygote)
        started = trio.current_time()
        children = [await zygote.spawn() for _ in range(5)]
        assert (trio.current_time() - started) / 5 < 2
        assert all(child.alive for child in children)
