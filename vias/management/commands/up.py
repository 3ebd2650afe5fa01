"""`manage.py up`: the whole system in one process tree (migrations, Redis, workers, web server).

Ctrl-C or SIGTERM stops all of it; if one part dies the rest is stopped and `up` exits non-zero.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from vias.lib.bundled_redis import BundledRedis, RedisKeeper, die_with_parent
from vias.lib.env import envint
from vias.management import demo

ADMIN_USERNAME = "admin"
PASSWORD_FILE = "admin-password.txt"
READY_TIMEOUT = 60.0
STOP_GRACE = 10.0
KILL_WAIT = 3.0
POLL_INTERVAL = 0.2


class StopRequested(BaseException):
    """SIGINT or SIGTERM arrived; a BaseException so that no `except Exception` swallows it."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


@dataclass
class Login:
    username: str
    password: str | None
    password_file: Path | None
    note: str = ""


class Signals:
    """SIGINT/SIGTERM handler: the first signal stops `up`, any later one hurries the cleanup."""

    def __init__(self) -> None:
        self.stopping = False
        self.hurry = False

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self)

    def __call__(self, signum: int, frame: Any) -> None:
        if self.stopping:
            self.hurry = True
            return
        self.stopping = True
        raise StopRequested(signum)


class Supervisor:
    """Starts children in their own process groups and stops every process they leave behind."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.children: list[Child] = []

    def start(self, name: str, argv: list[str]) -> Child:
        process = subprocess.Popen(
            argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            # A Ctrl-C reaches only `up`'s group; `up` then stops the children in order.
            process_group=0,
            preexec_fn=die_with_parent,
        )
        child = Child(name, process)
        self.children.append(child)
        return child

    def first_exited(self) -> Child | None:
        return next((child for child in self.children if child.process.poll() is not None), None)

    def wait_for_port(self, host: str, port: int, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (child := self.first_exited()) is not None:
                raise CommandError(f"{child.name} exited with code {child.process.returncode} during start")
            if _port_open(_connect_host(host), port):
                return
            time.sleep(POLL_INTERVAL)
        raise CommandError(f"the web server did not listen on {host}:{port} within {timeout:.0f} s")

    def watch(self, on_tick: Callable[[], None] | None = None) -> Child:
        """Block until a child exits on its own; StopRequested interrupts the wait. `on_tick`
        runs on every round (up restarts a Redis that died there)."""
        while True:
            if (child := self.first_exited()) is not None:
                return child
            if on_tick is not None:
                on_tick()
            time.sleep(POLL_INTERVAL)

    def stop(self, signals: Signals) -> None:
        # Snapshot the trees first: once a leader exits, its leftovers are no longer our descendants.
        tree = [process for child in self.children for process in _tree(child.process.pid)]
        for child in self.children:
            if child.process.poll() is None:
                _signal_quietly(child.process.pid, signal.SIGTERM)
            else:
                # A leader that died left its group behind (the cluster's sentinel and workers).
                _killpg_quietly(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline and not signals.hurry and any(_running(p) for p in tree):
            time.sleep(0.05)
        for child in self.children:
            # The whole group: a worker stuck in a job must not outlive its cluster. Linux does not
            # reuse a PID while a process group of that ID exists, so this reaches only our leftovers.
            _killpg_quietly(child.process.pid, signal.SIGKILL)
        _kill_leftovers(tree)
        for child in self.children:
            child.process.wait()


class Command(BaseCommand):
    help = "Run VIAS: migrate, start Redis (embedded default), the django-q2 cluster and the web server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help="address the web server binds (default 127.0.0.1)"
        )
        parser.add_argument("--port", type=int, default=8000, help="port of the web server (default 8000)")
        parser.add_argument(
            "--demo",
            action="store_true",
            help="also create and start a demo task on the bundled sample video",
        )

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        self.verbosity = int(options["verbosity"])
        self.demo = bool(options.get("demo"))
        signals = Signals()
        signals.install()
        stack = ExitStack()
        try:
            self._run(stack, signals, host, port)
        except StopRequested:
            self.stdout.write("Stopping VIAS ...")
        finally:
            # Whatever ended the run, a signal from now on only hurries the cleanup. The handler stays
            # installed until exit: a late Ctrl-C must not turn a clean stop into a KeyboardInterrupt.
            signals.stopping = True
            stack.close()
        self.stdout.write("VIAS stopped.")

    def _run(self, stack: ExitStack, signals: Signals, host: str, port: int) -> None:
        # Checked first: with another server on the port, "listening" would look like success.
        _check_port_free(host, port)
        call_command("migrate", interactive=False, verbosity=self.verbosity, stdout=self.stdout)
        demo.install_default_models(self.stdout)  # a fresh install analyses at once
        redis_url, keeper = self._start_redis(stack)
        login = ensure_admin(Path(settings.DATA_DIR))
        supervisor = Supervisor(_child_env(redis_url), Path(settings.BASE_DIR))
        stack.callback(supervisor.stop, signals)
        manage_py = str(Path(settings.BASE_DIR) / "manage.py")
        supervisor.start("node", [sys.executable, manage_py, "node"])
        # Websocket messages may be as large as HTTP bodies (a storage configuration file); daphne's
        # own default is 1 MiB. Larger frames are closed with 1009 (vias/lib/framing.py).
        cap = str(settings.VIAS_MAX_BODY_BYTES)
        daphne_argv = ["-m", "daphne", "-b", host, "-p", str(port), "--websocket-max-message-size", cap]
        daphne_argv += ["--websocket-max-frame-size", cap, "vias.asgi:application"]
        supervisor.start("daphne", [sys.executable, *daphne_argv])
        supervisor.wait_for_port(host, port)
        extra = self._start_demo(host, port) if self.demo else []
        self._banner(host, port, redis_url, login, extra)
        child = supervisor.watch(keeper.check if keeper is not None else None)
        raise CommandError(
            f"{child.name} exited unexpectedly with code {child.process.returncode}; stopped VIAS"
        )

    def _start_redis(self, stack: ExitStack) -> tuple[str, RedisKeeper | None]:
        """The Redis URL, and the keeper that restarts the bundled Redis if it dies (none for an
        external Redis, or one another `up` runs)."""
        if settings.USE_BUNDLED_REDIS:
            bundled = stack.enter_context(BundledRedis(Path(settings.REDIS_SOCKET), Path(settings.DATA_DIR)))
            if bundled.reused:
                self.stdout.write(f"Reusing the Redis already running on {bundled.socket_path}")
                return bundled.url, None
            delay = float(envint("VIAS_REDIS_RESTART_DELAY", 1))
            return bundled.url, RedisKeeper(bundled, self._say, delay=delay)
        _check_redis(settings.REDIS_URL)
        return settings.REDIS_URL, None

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _start_demo(self, host: str, port: int) -> list[str]:
        try:
            return demo.describe(demo.start_demo(), f"http://{_url_host(host)}:{port}")
        except Exception as exc:  # noqa: BLE001 - the system stays up; the operator is told why
            return [f"  Demo:     not started: {exc}"]

    def _banner(self, host: str, port: int, redis_url: str, login: Login, extra: list[str]) -> None:
        url = f"http://{_url_host(host)}:{port}/admin/"
        if login.password is not None:
            credentials = f"{login.username} / {login.password}  (saved in {login.password_file})"
        else:
            credentials = login.note
        redis_kind = "bundled" if settings.USE_BUNDLED_REDIS else "external"
        lines = [
            "",
            "VIAS is up.",
            f"  Admin:    {url}",
            f"  Login:    {credentials}",
            f"  Database: {_describe_database()}",
            f"  Redis:    {redis_kind}, {_redact(redis_url)}",
            f"  Data:     {settings.DATA_DIR}",
            *extra,
            "Press Ctrl-C to stop.",
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()


def ensure_admin(data_dir: Path) -> Login:
    """Create `admin` with a random password when no superuser exists; otherwise report the stored one."""
    users = get_user_model()
    password_file = data_dir / PASSWORD_FILE
    if not users.objects.filter(is_superuser=True).exists():
        password = secrets.token_urlsafe(12)
        user = users.objects.filter(username=ADMIN_USERNAME).first()
        if user is None:
            user = users.objects.create_superuser(ADMIN_USERNAME, "", password)
        else:
            # An ordinary user named admin blocks create_superuser; with no superuser at all, promote it.
            user.is_superuser = user.is_staff = user.is_active = True
            user.set_password(password)
            user.save()
        _write_private(password_file, password + "\n")
        join_default_project(user)
        return Login(ADMIN_USERNAME, password, password_file)
    if password_file.exists():
        password = password_file.read_text().strip()
        user = users.objects.filter(username=ADMIN_USERNAME, is_superuser=True).first()
        if user is not None and user.check_password(password):
            return Login(ADMIN_USERNAME, password, password_file)
        return Login(ADMIN_USERNAME, None, None, f"the password in {password_file} was changed; use your own")
    return Login(ADMIN_USERNAME, None, None, "use the superuser you created (createsuperuser)")


def join_default_project(user) -> None:
    """The admin acts in project `default` in the browsable API, like a token of that project."""
    from tasks.models import Project

    project, _created = Project.objects.get_or_create(project_id="default", defaults={"name": "default"})
    project.members.add(user)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    # O_CREAT's mode does not apply to a file that already existed.
    path.chmod(0o600)


def _child_env(redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "REDIS_URL": redis_url,
            # Resolved here, so a child started from another directory still shares the data.
            "VIAS_DATA_DIR": str(settings.DATA_DIR),
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "vias.settings"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _check_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise CommandError(f"Redis at {_redact(url)} does not answer: {exc}") from exc
    finally:
        client.close()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _kill_leftovers(processes: list[psutil.Process]) -> None:
    for process in processes:
        if _running(process):
            _quietly(process.kill)
    # Not psutil.wait_procs: an orphan stays a zombie until init reaps it, yet it is already gone.
    deadline = time.monotonic() + KILL_WAIT
    while time.monotonic() < deadline and any(_running(process) for process in processes):
        time.sleep(0.05)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _quietly(action: Any) -> None:
    with suppress(psutil.Error, ProcessLookupError, PermissionError):
        action()


def _signal_quietly(pid: int, sig: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, sig)


def _killpg_quietly(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the server will: without SO_REUSEADDR a port in TIME_WAIT would look taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port"
            ) from exc


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _connect_host(host: str) -> str:
    """Where to knock to see the server listening: a wildcard bind answers on loopback."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def _url_host(host: str) -> str:
    host = _connect_host(host)
    return f"[{host}]" if ":" in host else host


def _describe_database() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"SQLite {db['NAME']}"
    return f"{db['ENGINE'].rsplit('.', 1)[-1]} {db.get('NAME')} on {db.get('HOST') or 'local socket'}"


def _redact(url: str) -> str:
    """Hide a password in a URL before printing it."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{location}" if ":" in credentials else url
