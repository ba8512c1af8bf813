"""The supervisor's side of the zygote and of its children (trio).

Theory of operation. :func:`open_zygote` starts ``python -m sandq.child.zygote`` (a fresh interpreter,
with no trio in it) and keeps one end of an AF_UNIX SOCK_SEQPACKET pair as the control channel; see
:mod:`sandq.child.zygote` for that side. A background task reads the control channel: ``forked`` and
``fork_failed`` answer the one fork request in flight (requests go one at a time, under a lock), and
``exited`` records a child's return code.

:meth:`Zygote.spawn` makes a socket pair (the child's pipe protocol) and a pipe (its stdout and stderr),
sends the child's ends with the fork request, closes them here, and waits for the child's ``Ready``.
A :class:`Child` is then driven with ``send``/``receive`` (sans-IO framing over a trio SocketStream);
a task drains its output pipe into a bounded buffer, and ``take_output`` drains whatever is left in
the pipe before it answers, so the output a job printed before its ``Done`` is there right after it.

A child's exit, as the zygote reports it, closes its descriptors: what it sent before it died is read
first, so ``receive`` still returns it, then raises :class:`ChildGone` with the return code. Nothing
has to close a dead child; ``Child.aclose`` is there to drop a live one, and leaving
``open_zygote`` kills every child, stops the zygote and reaps it.

The zygote is started with ``subprocess.Popen`` on the trio thread itself, not on a worker thread as
``trio.lowlevel.open_process`` would: Linux sends the zygote's parent-death signal when the *thread*
that forked it ends, and trio retires idle worker threads.
"""

from __future__ import annotations

import array
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgpack
import trio

from ..errors import ProcessorLoadError, ProtocolViolation, SandqError, WorkerError
from ..protocol import FromChild, FromChildReader, InitFailed, Ready, ToChild, encode

#: How much of a child's stdout and stderr is kept between two ``take_output`` calls (the tail).
OUTPUT_LIMIT = 64 * 1024
#: How long a new child has to send ``Ready``.
READY_TIMEOUT = 10.0
#: How long the zygote has to answer a fork request, and to exit once asked to stop.
ZYGOTE_TIMEOUT = 10.0
_EXIT_REPORT_TIMEOUT = 2.0
_RECEIVE_SIZE = 64 * 1024  # under malloc's mmap threshold: bigger reads cost an mmap each
_CONTROL_PACKET = 64 * 1024


class ChildGone(SandqError):
    """The child's end of the pipe protocol is gone: it exited, was killed, or broke the protocol (sandq
    then kills it). ``returncode`` is its exit status once the zygote has reported it (negative: killed
    by that signal, like ``subprocess``), else None. Raised by ``Child.receive`` and ``Child.send``."""

    def __init__(self, message: str, *, pid: int, returncode: int | None) -> None:
        super().__init__(message)
        self.pid = pid
        self.returncode = returncode


def _describe_exit(returncode: int | None) -> str:
    """``code 3``, ``signal 9 (SIGKILL)``."""
    if returncode is None:
        return "an unknown status"
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"signal {-returncode} ({signal.Signals(-returncode).name})"
        return f"signal {-returncode}"
    return f"code {returncode}"


class Child:
    """One child process, forked by the zygote, running one job at a time. Made by ``Zygote.spawn``."""

    def __init__(self, pid: int, sock: socket.socket, output_fd: int, zygote: Zygote) -> None:
        self.pid = pid
        self._sock = sock
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self._reader = FromChildReader()
        self._send_lock = trio.Lock()
        self._output_fd = output_fd
        self._output = bytearray()
        self._returncode: int | None = None
        self._exited = trio.Event()
        self._closed = False
        self._zygote = zygote

    def __repr__(self) -> str:
        state = "alive" if self._returncode is None else f"exited with {_describe_exit(self._returncode)}"
        return f"<Child {self.pid} {state}>"

    @property
    def alive(self) -> bool:
        """True until the zygote has reported the child's exit."""
        return self._returncode is None

    @property
    def returncode(self) -> int | None:
        return self._returncode

    async def send(self, message: ToChild) -> None:
        """Send one message. Raises ChildGone if the child is gone, ProtocolViolation (before sending
        anything) if the message is larger than a frame may be."""
        data = encode(message)
        async with self._send_lock:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ChildGone(
                    f"child {self.pid} is gone", pid=self.pid, returncode=self._returncode
                ) from exc

    async def receive(self) -> FromChild:
        """The next message from the child. At the end of its stream raises ChildGone (with the return
        code, waiting a little for the zygote's report); if the child breaks the protocol, kills it and
        raises ChildGone too. Returns without waiting when a message is already buffered."""
        await trio.lowlevel.checkpoint_if_cancelled()
        reader = self._reader
        while True:
            try:
                message = reader.next_message()
            except ProtocolViolation as exc:
                self.kill()
                raise await self._gone(f"child {self.pid} broke the pipe protocol: {exc}") from exc
            if message is not None:
                return message
            if reader.eof:
                raise await self._gone(f"child {self.pid} closed its pipe")
            try:
                data = await self._stream.receive_some(_RECEIVE_SIZE)
            except trio.BrokenResourceError:
                data = b""
            except trio.ClosedResourceError:
                if reader.eof:  # closed on the child's exit, after what it sent was read: carry on
                    continue
                raise await self._gone(f"child {self.pid} was closed") from None
            if data:
                reader.feed(data)
            else:
                reader.feed_eof()

    async def _gone(self, message: str) -> ChildGone:
        with trio.move_on_after(_EXIT_REPORT_TIMEOUT):
            await self._exited.wait()
        if self._returncode is None:  # its pipe is closed but it runs: of no use any more
            self.kill()
            with trio.move_on_after(_EXIT_REPORT_TIMEOUT):
                await self._exited.wait()
        if self._returncode is not None:
            message = f"{message} (exited with {_describe_exit(self._returncode)})"
        return ChildGone(message, pid=self.pid, returncode=self._returncode)

    def kill(self) -> None:
        """SIGKILL the child's process group (the child and whatever it started). Idempotent; does nothing
        once the child's exit has been reported (the zygote killed what was left of its group then)."""
        if self._returncode is None:
            with contextlib.suppress(OSError):
                os.killpg(self.pid, signal.SIGKILL)

    async def wait(self) -> int:
        """The child's return code, once the zygote reports its exit (negative: killed by that signal)."""
        await self._exited.wait()
        assert self._returncode is not None
        return self._returncode

    def take_output(self) -> str:
        """What the child printed (stdout and stderr) since the last call: at most the last
        ``OUTPUT_LIMIT`` bytes, decoded as UTF-8 with replacement characters."""
        self._drain_output_nowait()
        text = self._output.decode("utf-8", "replace")
        self._output.clear()
        return text

    async def aclose(self) -> None:
        """Kill the child (if it runs) and close its descriptors. Its output stays readable."""
        self.kill()
        self._close()
        await trio.lowlevel.checkpoint()

    # --- driven by the zygote ---------------------------------------------------------------------

    async def _drain_output(self) -> None:
        """Copy the output pipe into the buffer until it ends or is closed (a task of the zygote's)."""
        while self._output_fd >= 0:
            try:
                await trio.lowlevel.wait_readable(self._output_fd)
            except (trio.ClosedResourceError, OSError):
                return
            self._drain_output_nowait()

    def _drain_output_nowait(self, limit: int = 16) -> None:
        """Read what the pipe holds now (at most ``limit`` reads), closing it at its end."""
        for _ in range(limit):
            if self._output_fd < 0:
                return
            try:
                chunk = os.read(self._output_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._close_output()
                return
            self._output += chunk
            if len(self._output) > OUTPUT_LIMIT:
                del self._output[: len(self._output) - OUTPUT_LIMIT]

    def _close_output(self) -> None:
        if self._output_fd >= 0:
            trio.lowlevel.notify_closing(self._output_fd)
            os.close(self._output_fd)
            self._output_fd = -1

    def _on_exit(self, returncode: int) -> None:
        """The zygote reaped the child: keep what it sent and printed, and close its descriptors."""
        self._returncode = returncode
        self._close()
        self._exited.set()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._drain_output_nowait(limit=64)
        self._close_output()
        if not self._reader.eof:
            with contextlib.suppress(OSError):
                while data := self._sock.recv(_RECEIVE_SIZE):
                    self._reader.feed(data)
            self._reader.feed_eof()
        self._stream.socket.close()
        self._zygote._forget(self)


class Zygote:
    """The running zygote: forks children on request. Made by :func:`open_zygote`."""

    def __init__(self, process: subprocess.Popen[bytes], control: socket.socket) -> None:
        self.pid = process.pid
        self._process = process
        self._control = trio.socket.from_stdlib_socket(control)
        self._children: dict[int, Child] = {}  # forked, exit not reported yet
        self._open: set[Child] = set()  # descriptors not closed yet
        self._fork_lock = trio.Lock()
        self._pending: tuple[socket.socket, int] | None = None  # the new child's ends, while forking
        self._fork_result: Child | str | None = None  # the new child, or why there is none
        self._fork_answered = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._broken: str | None = None  # why the zygote cannot fork any more
        self._stopping = False
        self._control_ended = trio.Event()

    def __repr__(self) -> str:
        return f"<Zygote {self.pid}, {len(self._children)} children>"

    async def spawn(self) -> Child:
        """Fork a child and wait for its ``Ready``. Raises WorkerError if the zygote cannot fork or the
        child does not come up within ``READY_TIMEOUT`` seconds (it is killed then)."""
        if self._broken is not None or self._nursery is None:
            raise WorkerError(f"cannot start a child: {self._broken or 'the zygote is not running'}")
        async with self._fork_lock:
            child = await self._fork()
        try:
            with trio.fail_after(READY_TIMEOUT):
                message = await child.receive()
        except trio.TooSlowError:
            problem = f"sent nothing within {READY_TIMEOUT:g} s"
        except ChildGone as exc:
            problem = f"exited with {_describe_exit(exc.returncode)} before it was ready"
        except BaseException:
            with trio.CancelScope(shield=True):
                await child.aclose()
            raise
        else:
            if isinstance(message, Ready):
                return child
            problem = message.error if isinstance(message, InitFailed) else f"sent {message!r:.200}"
        await child.aclose()
        output = child.take_output().strip()
        details = f"; it printed: {output[-2000:]}" if output else ""
        raise WorkerError(f"a new child (pid {child.pid}) did not start: {problem}{details}")

    async def _fork(self) -> Child:
        """Ask the zygote for a child (under the fork lock). The control reader makes the Child when
        the answer comes, so that an ``exited`` right behind the ``forked`` finds it."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        output_r, output_w = os.pipe()
        os.set_blocking(output_r, False)
        self._fork_result = None
        self._fork_answered = trio.Event()
        self._pending = (ours, output_r)
        try:
            fds = array.array("i", [theirs.fileno(), output_w])
            # Once the request is out, its answer must be taken here, or the next spawn would get it.
            with trio.CancelScope(shield=True), trio.move_on_after(ZYGOTE_TIMEOUT):
                await self._control.sendmsg(
                    [msgpack.packb(["fork"])], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())]
                )
                await self._fork_answered.wait()
        except OSError as exc:
            self._break(f"the zygote's control socket failed: {exc}")
        finally:
            self._pending = None
            theirs.close()
            os.close(output_w)
            result = self._fork_result
            if not isinstance(result, Child):
                ours.close()
                os.close(output_r)
        if isinstance(result, Child):
            return result
        if result is None:
            self._break(f"the zygote did not answer a fork request within {ZYGOTE_TIMEOUT:g} s")
            result = self._broken
        raise WorkerError(f"cannot start a child: {result}")

    def _forked(self, pid: int) -> None:
        pending, self._pending = self._pending, None
        if pending is None:  # an answer nobody waits for any more
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            return
        child = Child(pid, *pending, self)
        self._children[pid] = child
        self._open.add(child)
        assert self._nursery is not None
        self._nursery.start_soon(child._drain_output)
        self._fork_result = child

    def _forget(self, child: Child) -> None:
        self._open.discard(child)

    # --- the control channel ------------------------------------------------------------------

    async def _receive_control(self) -> list[Any] | None:
        """The next control message (None at the end). Raises WorkerError for one that is not valid."""
        try:
            data, _, flags, _ = await self._control.recvmsg(_CONTROL_PACKET)
        except OSError:
            return None
        if not data:
            return None
        if flags & socket.MSG_TRUNC:
            raise WorkerError("the zygote sent a control message larger than a packet")
        try:
            message = msgpack.unpackb(data)
        except Exception as exc:
            raise WorkerError(f"the zygote sent a control message that is not msgpack: {exc}") from None
        if type(message) is not list or not message or type(message[0]) is not str:
            raise WorkerError(f"the zygote sent a malformed control message: {message!r:.200}")
        return message

    async def _wait_ready(self, processor: str) -> None:
        message = await self._receive_control()
        match message:
            case ["ready", int()]:
                return
            case ["init_failed", str(error), *_]:
                self._stopping = True  # it exits by itself
                raise ProcessorLoadError(error)
            case None:
                self._stopping = True
                code = await self._wait_process(ZYGOTE_TIMEOUT)
                raise ProcessorLoadError(
                    f"the process loading {processor!r} exited with {_describe_exit(code)} "
                    "before it was ready"
                )
            case _:
                raise WorkerError(f"the zygote sent {message!r:.200} instead of ready")

    async def _read_control(self) -> None:
        """The zygote's reports, until its control socket ends (a task of the zygote's nursery)."""
        reason = "the zygote exited"
        try:
            while (message := await self._receive_control()) is not None:
                match message:
                    case ["exited", int(pid), int(returncode)]:
                        child = self._children.pop(pid, None)
                        if child is not None:
                            child._on_exit(returncode)
                    case ["forked", int(pid)]:
                        self._forked(pid)
                        self._fork_answered.set()
                    case ["fork_failed", str(error)]:
                        self._fork_result = error
                        self._fork_answered.set()
                    case _:
                        reason = f"the zygote sent an unknown control message: {message!r:.200}"
                        break
        except WorkerError as exc:
            reason = str(exc)
        finally:
            if not self._stopping:
                self._break(reason)
            self._control_ended.set()

    def _break(self, reason: str) -> None:
        """The zygote is lost: kill it (its children die with it) and consider them dead."""
        if self._broken is None:
            self._broken = reason
        with contextlib.suppress(OSError):
            self._process.kill()
        self._fork_answered.set()
        for child in list(self._children.values()):
            child.kill()
            child._on_exit(-signal.SIGKILL)
        self._children.clear()

    # --- shutting down ------------------------------------------------------------------------

    async def _wait_process(self, grace: float) -> int:
        """Wait for the zygote to exit (killing it after ``grace`` seconds) and reap it."""
        with trio.move_on_after(grace):
            await _wait_for_exit(self._process)
        if self._process.poll() is None:
            self._process.kill()
            await _wait_for_exit(self._process)
        assert self._process.returncode is not None
        return self._process.returncode

    async def _shut_down(self) -> None:
        """Kill every child, stop the zygote and wait for its last reports (run shielded)."""
        self._stopping = True
        for child in list(self._children.values()):
            child.kill()
        with trio.move_on_after(ZYGOTE_TIMEOUT):
            with contextlib.suppress(OSError):
                await self._control.send(msgpack.packb(["stop"]))
            await self._control_ended.wait()

    async def _close(self) -> None:
        """Reap the zygote (killing it if it was not asked to stop) and close everything (shielded)."""
        await self._wait_process(ZYGOTE_TIMEOUT if self._stopping else 0)
        self._break("the zygote is closed")
        for child in list(self._open):
            await child.aclose()
        self._control.close()


async def _wait_for_exit(process: subprocess.Popen[bytes]) -> None:
    """Wait until ``process`` exits and reap it, without blocking trio (a pidfd where there is one)."""
    if process.poll() is not None:
        return
    if sys.platform == "linux":
        try:
            pidfd = os.pidfd_open(process.pid)
        except OSError:
            pidfd = -1
        if pidfd >= 0:
            try:
                await trio.lowlevel.wait_readable(pidfd)
            finally:
                trio.lowlevel.notify_closing(pidfd)
                os.close(pidfd)
    while process.poll() is None:  # noqa: ASYNC110  (no pidfd here: poll)
        await trio.sleep(0.01)


@asynccontextmanager
async def open_zygote(
    processor: str, *, preload: Sequence[str] = (), cwd: str | None = None
) -> AsyncIterator[Zygote]:
    """Start the zygote for ``processor`` (``module:attr``), importing ``preload`` modules first, in
    ``cwd`` (first on its sys.path), and wait until it is ready. Raises ProcessorLoadError, with a
    one-line message, if the processor cannot be loaded. On exit: kill every child's process group,
    stop the zygote and reap it."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    command = [sys.executable, "-m", "sandq.child.zygote", "--processor", processor]
    for module in preload:
        command += ["--preload", module]
    command += ["--control-fd", str(theirs.fileno())]
    try:
        # On this thread, not a worker thread: see the module's docstring (PR_SET_PDEATHSIG).
        process = subprocess.Popen(  # noqa: ASYNC220
            command, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, cwd=cwd
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    zygote = Zygote(process, ours)
    try:
        await zygote._wait_ready(processor)
        body_error: BaseException | None = None
        async with trio.open_nursery() as nursery:
            zygote._nursery = nursery
            nursery.start_soon(zygote._read_control)
            try:
                yield zygote
            except BaseException as exc:  # raised again below, so the nursery does not wrap it in a group
                body_error = exc
            finally:
                with trio.CancelScope(shield=True):
                    await zygote._shut_down()
                nursery.cancel_scope.cancel()
        if body_error is not None:
            raise body_error
    finally:
        with trio.CancelScope(shield=True):
            await zygote._close()
