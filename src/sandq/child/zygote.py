"""The zygote (fork server): ``python -m sandq.child.zygote --processor module:attr [--preload MOD ...]
--control-fd N``.

Theory of operation. The supervisor starts the zygote once, as a fresh interpreter, with one end of an
AF_UNIX SOCK_SEQPACKET socket pair as its control channel (one msgpack array per packet). The zygote
imports the ``--preload`` modules and the processor's module, checks that the attribute is callable,
and answers ``["ready", pid]``, or ``["init_failed", one_line_error, traceback]`` and exits 1. From then
on it only forks:

* ``["fork"]``, with two file descriptors attached (SCM_RIGHTS): the child's protocol socket and the
  write end of its output pipe. The zygote forks; the child puts itself in its own process group (a
  kill of the group takes grandchildren with it), asks for SIGKILL when the zygote dies, sends its
  stdout and stderr to the output pipe, restores the default SIGTERM/SIGINT handling, reseeds
  ``random``, and runs :func:`sandq.child.main.serve`, never returning into this module. The zygote
  closes its copies of the two descriptors and answers ``["forked", pid]`` (``["fork_failed", error]``
  if it could not).
* a child that exits is reaped (SIGCHLD wakes the loop through ``signal.set_wakeup_fd``); while its
  zombie still holds the group id, whatever is left in its process group is killed, so nothing a job
  started outlives it. The zygote reports ``["exited", pid, returncode]``, negative for a signal, as
  ``subprocess`` does.
* ``["stop"]``, or the end of the control socket (the supervisor is gone): kill every child's group,
  reap, exit.

The zygote dies with the supervisor (PR_SET_PDEATHSIG on Linux, a watchdog thread elsewhere; the end
of the control socket too), and each child dies with the zygote the same way, so nothing is orphaned.
Ctrl-C and SIGTERM sent to the supervisor's process group are ignored here: the supervisor decides when
the zygote stops. The supervisor must start the zygote from a thread that lives as long as it does,
since Linux sends the parent-death signal when the *thread* that forked the process exits.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import inspect
import os
import random
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import msgpack

from .main import flush_output, serve

_PR_SET_PDEATHSIG = 1
#: What the zygote gets when the supervisor dies, once it has children: see ``_Zygote.watch_parent``.
_PARENT_DEATH = signal.SIGUSR2
_CONTROL_PACKET = 64 * 1024
_MAX_TRACEBACK = 32 * 1024


class _LoadError(Exception):
    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = " ".join(message.split())[:2000]
        self.details = details[-_MAX_TRACEBACK:]


def _set_parent_death_signal(signum: int) -> bool:
    """Ask Linux for ``signum`` when the parent dies (PR_SET_PDEATHSIG); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False  # pragma: no cover
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]
        return bool(prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0)
    except (OSError, AttributeError):  # pragma: no cover
        return False


def die_with_parent(parent: int) -> None:
    """Have this process killed when its parent (pid ``parent``) dies: PR_SET_PDEATHSIG with SIGKILL
    on Linux, else a thread polling ``os.getppid()``. Exit now if the parent is already gone."""
    if not _set_parent_death_signal(signal.SIGKILL):  # pragma: no cover (not Linux)
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)


def _watch_parent(parent: int) -> None:  # pragma: no cover (Linux uses PR_SET_PDEATHSIG)
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _import(name: str, what: str) -> Any:
    try:
        return importlib.import_module(name)
    except BaseException as exc:
        cause = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
        raise _LoadError(f"cannot import {what} {name!r}: {cause}", traceback.format_exc()) from None


def load_processor(spec: str, preload: Sequence[str] = ()) -> Callable[..., Any]:
    """Import the ``preload`` modules, then ``module`` of ``module:attr``, and return the callable
    ``attr`` (which may be dotted: ``module:Class.method``). Raises _LoadError with a one-line message."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise _LoadError(f"the processor must be given as module:function, not {spec!r}")
    for name in preload:
        _import(name, "preload module")
    target: Any = _import(module_name, "module")
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise _LoadError(
                f"module {module_name!r} has no attribute {attr!r}", traceback.format_exc()
            ) from None
        except BaseException as exc:
            raise _LoadError(
                f"cannot get {spec!r}: {type(exc).__name__}: {exc}", traceback.format_exc()
            ) from None
    if not callable(target):
        raise _LoadError(f"{spec!r} is not callable: it is {type(target).__name__!r} object")
    return target  # type: ignore[no-any-return]


def _close_quietly(fds: Sequence[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _killpg(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


class _Zygote:
    def __init__(self, control: socket.socket, processor: Callable[..., Any], parent: int) -> None:
        self._control = control
        self._processor = processor
        self._parent = parent
        self._previous_handler: Any = signal.SIG_DFL
        self._children: set[int] = set()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()

    def send(self, message: list[Any]) -> None:
        with contextlib.suppress(OSError):  # if the supervisor is gone, the control socket's end says so
            self._control.send(msgpack.packb(message))

    def watch_parent(self) -> None:
        """Exit when the supervisor dies, taking every child's process group along. A plain SIGKILL
        as the parent-death signal (fine while importing, with no children) would leave orphaned
        whatever the jobs started: the children die of their own parent-death signal, but nothing
        would be left to kill their groups. So the zygote asks for ``_PARENT_DEATH`` instead and
        handles it; it also stops at the end of its control socket, which the supervisor's death
        closes too."""
        self._previous_handler = signal.getsignal(_PARENT_DEATH)
        signal.signal(_PARENT_DEATH, self._on_parent_death)
        _set_parent_death_signal(_PARENT_DEATH)
        if os.getppid() != self._parent:
            self._on_parent_death(_PARENT_DEATH, None)

    def _on_parent_death(self, signum: int, frame: FrameType | None) -> None:
        if os.getppid() != self._parent:
            for pid in self._children:
                _killpg(pid)
            os._exit(1)
        if callable(self._previous_handler):  # someone else's signal: theirs to handle
            self._previous_handler(signum, frame)

    def serve_forever(self) -> int:
        self.watch_parent()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self._selector.register(self._control, selectors.EVENT_READ, "control")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        gc.freeze()  # the imported modules stay shared with the children, untouched by their collector
        while True:
            for key, _ in self._selector.select():
                if key.data == "wake":
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    self._reap()
                elif not self._on_control():
                    return self._stop()

    def _on_control(self) -> bool:
        """Handle one control packet; False once the zygote should stop."""
        try:
            data, fds, flags, _ = socket.recv_fds(self._control, _CONTROL_PACKET, 4)
        except OSError:
            return False
        if not data and not fds:
            return False
        try:
            message = msgpack.unpackb(data)
        except Exception:
            message = None
        name = message[0] if isinstance(message, list) and message else None
        if name == "stop":
            _close_quietly(fds)
            return False
        if name != "fork":
            _close_quietly(fds)
            print(
                f"sandq zygote: ignoring a control message it does not know: {data!r:.200}", file=sys.stderr
            )
            return True
        if len(fds) != 2 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            _close_quietly(fds)
            self.send(["fork_failed", f"a fork request needs 2 file descriptors, it came with {len(fds)}"])
            return True
        self._fork(fds[0], fds[1])
        return True

    def _fork(self, sock_fd: int, out_fd: int) -> None:
        flush_output()  # or the child would print the zygote's buffered output again
        zygote = os.getpid()
        try:
            pid = os.fork()
        except OSError as exc:
            _close_quietly((sock_fd, out_fd))
            self.send(["fork_failed", f"fork() failed: {exc}"])
            return
        if pid == 0:  # pragma: no cover (runs in the child, which never returns here)
            code = 70
            try:
                code = self._become_child(zygote, sock_fd, out_fd)
            except BaseException:
                traceback.print_exc()
                flush_output()
            finally:
                os._exit(code)
        _close_quietly((sock_fd, out_fd))
        with contextlib.suppress(OSError):  # the child does it too: whichever runs first, the group exists
            os.setpgid(pid, pid)
        self._children.add(pid)
        self.send(["forked", pid])

    def _become_child(self, zygote: int, sock_fd: int, out_fd: int) -> int:  # pragma: no cover
        self._children.clear()  # the zygote's, not this process's
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(_PARENT_DEATH, self._previous_handler or signal.SIG_DFL)
        os.setpgid(0, 0)
        die_with_parent(zygote)
        self._selector.close()
        self._control.close()
        _close_quietly((self._wake_r, self._wake_w))
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
        random.seed()
        os.set_inheritable(sock_fd, False)
        sock = socket.socket(fileno=sock_fd)
        return serve(sock, self._processor)

    def _reap(self) -> None:
        for pid in list(self._children):
            if hasattr(os, "waitid"):
                try:
                    exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:
                    self._children.discard(pid)
                    continue
                if exited is None:
                    continue
                _killpg(pid)  # its zombie still holds the group id: this reaches only its group
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                self._children.discard(pid)
                continue
            if reaped == 0:
                continue
            self._children.discard(pid)
            self.send(["exited", pid, os.waitstatus_to_exitcode(status)])

    def _stop(self) -> int:
        for pid in self._children:
            _killpg(pid)
        for pid in list(self._children):
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                continue
            self.send(["exited", pid, os.waitstatus_to_exitcode(status)])
        self._children.clear()
        flush_output()
        return 0


def _put_cwd_first() -> None:
    """The working directory first on sys.path, as ``python -m`` puts it (also under ``-P``)."""
    cwd = os.getcwd()
    if not sys.path or sys.path[0] not in ("", cwd):
        sys.path.insert(0, cwd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandq.child.zygote", description=__doc__.split("\n")[0])
    parser.add_argument("--processor", required=True, help="module:attr of the processor")
    parser.add_argument("--preload", action="append", default=[], metavar="MOD", help="import MOD first")
    parser.add_argument("--control-fd", type=int, required=True, metavar="N")
    args = parser.parse_args(argv)
    parent = os.getppid()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    # While importing, the supervisor's death just kills the zygote (no children yet). No watchdog
    # thread where there is no PR_SET_PDEATHSIG: the end of the control socket does it.
    _set_parent_death_signal(signal.SIGKILL)
    control = socket.socket(fileno=args.control_fd)
    control.setblocking(True)
    os.set_inheritable(control.fileno(), False)
    _put_cwd_first()
    try:
        processor = load_processor(args.processor, args.preload)
    except _LoadError as exc:
        control.send(msgpack.packb(["init_failed", exc.message, exc.details]))
        control.close()
        return 1
    if inspect.iscoroutinefunction(processor):
        import asyncio  # noqa: F401  # imported once here rather than in every child
    zygote = _Zygote(control, processor, parent)
    zygote.send(["ready", os.getpid()])
    return zygote.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
