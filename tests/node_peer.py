"""Driving Node ``bullmq`` from tests: installing it once, and talking to ``tests/node/peer.mjs``.

``node_install(version)`` returns a folder whose ``node_modules`` holds that bullmq (``"6"``: the newest
6.x, with ioredis, which 6.x no longer brings along; ``"5.81.3"``: the last v5). It is installed with
npm into ``~/.cache/sandq-tests/node/bullmq-<version>`` (``$XDG_CACHE_HOME`` is honoured), never into
the repository, under a file lock so that concurrent pytest processes do not race, and reused while
its installed version is right. Without ``node`` on the PATH the calling test is skipped; when the
install fails, the test fails with npm's error (a silent skip would hide a broken suite in CI).

``NodePeer`` runs one ``node peer.mjs`` process: ``call(op, **args)`` runs one step and returns its
result, ``batch(steps)`` runs several in one round trip. The steps are listed in ``peer.mjs``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from typing import IO, Any

import pytest

VERSIONS = ("6", "5.81.3")
DRIVER = pathlib.Path(__file__).parent / "node" / "peer.mjs"
_INSTALL_TIMEOUT = 300


def cache_root() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "sandq-tests" / "node"


def _installed_version(folder: pathlib.Path, package: str) -> str | None:
    try:
        manifest = json.loads((folder / "node_modules" / package / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = manifest.get("version")
    return version if isinstance(version, str) else None


def _fits(folder: pathlib.Path, version: str) -> bool:
    """Whether ``folder`` holds the wanted bullmq (and, for 6.x, ioredis)."""
    installed = _installed_version(folder, "bullmq")
    if installed is None:
        return False
    if version.count(".") == 2:
        return installed == version
    return installed.split(".")[0] == version and _installed_version(folder, "ioredis") is not None


def _specs(version: str) -> list[str]:
    return [f"bullmq@{version}", "ioredis"] if version.count(".") < 2 else [f"bullmq@{version}"]


def node_install(version: str) -> pathlib.Path:
    """The folder holding ``node_modules/bullmq`` at ``version``, installed on first use (see the module
    docstring). Skips the test without node; fails it when npm cannot install."""
    node = shutil.which("node")
    if node is None:
        path = os.environ.get("PATH", "")
        pytest.skip(f"node is not on the PATH: the Node bullmq interop tests need it (PATH={path})")
    folder = cache_root() / f"bullmq-{version}"
    if _fits(folder, version):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".bullmq-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest process may be installing it right now
        if _fits(folder, version):
            return folder
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"node is on the PATH but npm is not, and {folder} holds no bullmq {version}")
        command = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *_specs(version)]
        if not (folder / "package.json").exists():
            (folder / "package.json").write_text('{"private": true}\n')
        try:
            done = subprocess.run(
                command, cwd=folder, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{' '.join(command)} (in {folder}) took over {_INSTALL_TIMEOUT} s")
        if done.returncode != 0:
            pytest.fail(
                f"{' '.join(command)} (in {folder}) failed with exit status {done.returncode}:\n"
                f"{done.stderr.strip() or done.stdout.strip()}"
            )
        if not _fits(folder, version):
            found = _installed_version(folder, "bullmq")
            pytest.fail(f"npm installed bullmq {found} in {folder}, not {version}")
    return folder


class PeerError(Exception):
    """A step failed inside the Node peer (its message is Node's), or the peer died or did not answer."""


class NodePeer:
    """One ``node peer.mjs`` process against ``redis_url``. Use as a context manager, or ``close()``."""

    def __init__(self, install: pathlib.Path, redis_url: str, *, prefix: str = "bull") -> None:
        self.install = install
        self.version = _installed_version(install, "bullmq")
        self._stderr: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            ["node", str(DRIVER), str(install), redis_url, prefix],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def batch(self, steps: Sequence[dict[str, Any]], timeout: float = 30.0) -> list[Any]:
        """Run ``steps`` in order in one round trip; their results. Raises PeerError for the first
        step that failed (the later ones still ran)."""
        if self.process.stdin is None or self.process.poll() is not None:
            raise PeerError(f"the node peer has exited ({self.process.returncode}): {self.stderr()}")
        try:
            self.process.stdin.write(json.dumps(list(steps)) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise PeerError(f"the node peer has exited: {self.stderr()}") from None
        results = []
        failure: PeerError | None = None
        for step in steps:
            try:
                line = self._replies.get(timeout=timeout)
            except queue.Empty:
                raise PeerError(
                    f"no answer to {step['op']} within {timeout} s; stderr: {self.stderr()}"
                ) from None
            if line is None:
                raise PeerError(f"the node peer exited during {step['op']}: {self.stderr()}")
            reply = json.loads(line)
            if not reply["ok"] and failure is None:
                failure = PeerError(f"{step['op']} failed in Node bullmq {self.version}: {reply['error']}")
            results.append(reply.get("result"))
        if failure is not None:
            raise failure
        return results

    def call(self, op: str, timeout: float = 30.0, **args: Any) -> Any:
        return self.batch([{"op": op, **args}], timeout)[0]

    def kill(self) -> None:
        """SIGKILL: the peer vanishes mid-job, holding its locks, as a crashed worker does."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        if self.process.poll() is None:
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._reader.join(5)
        self._stderr.close()

    def __enter__(self) -> NodePeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
