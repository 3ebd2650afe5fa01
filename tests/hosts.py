"""Several "hosts" on one machine, for tests/test_multihost.py and bench/bench_failover.py.

- `Network`: a bridge in the root network namespace (the "server" side: the test's own PostgreSQL
  and Redis listen on its address) and one network namespace per host, each joined to the bridge
  by a veth pair. `cut(host)` sets the host's link down (a partition: its processes live on and
  reach nothing), `heal(host)` sets it up again. The bridge has a second address, `services`,
  for Redis: `cut_from(host, address)` blackholes the route to one address inside the host's
  namespace (cut from Redis only, PostgreSQL still reachable), `heal_from` removes that route.
  (A route, not a packet filter: this kernel has no tc actions and no netfilter to rely on.)
- `PrivatePostgres`: a throwaway PostgreSQL cluster (Debian's binaries, initdb / pg_ctl as the
  postgres user) listening on the bridge address only.
- `PrivateRedis`: redis-server bound to the bridge address.
- `Host`: a data directory of its own (videos, models, logs) and `manage.py` commands run inside
  its namespace, with the shared DATABASE_URL / REDIS_URL / SECRET_KEY.

Everything needs root (network namespaces); `unavailable()` says why it cannot run here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def run(*command: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=check, capture_output=True, text=True, **kwargs)


def unavailable() -> str:
    """Empty when namespaces, PostgreSQL and Redis binaries are usable; else the reason."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run the suite as root"
    for binary in ("ip", "redis-server", "runuser"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed"
    if not (PG_BIN / "initdb").is_file():
        return f"PostgreSQL server binaries are not in {PG_BIN}"
    probe = f"vias-probe-{os.getpid()}"
    made = run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    run("ip", "netns", "del", probe, check=False)
    return ""


class Network:
    """A bridge 10.X.Y.1/24 in the root namespace; host i is 10.X.Y.(i+2) in its own namespace."""

    def __init__(self, hosts: list[str]) -> None:
        tag = f"{os.getpid() % 100000}"
        pid = os.getpid()
        self.prefix = f"10.{200 + pid % 50}.{(pid // 50) % 250}"
        self.server = f"{self.prefix}.1"
        self.services = f"{self.prefix}.254"  # a second server address (Redis), cut on its own
        self.bridge = f"vbr{tag}"
        self.names = {host: f"vias-{tag}-{host}" for host in hosts}
        self.links = {host: f"v{tag}{i}" for i, host in enumerate(hosts)}  # the root side
        self.addresses = {host: f"{self.prefix}.{i + 2}" for i, host in enumerate(hosts)}
        self._up = False

    def __enter__(self) -> Network:
        try:
            run("ip", "link", "add", self.bridge, "type", "bridge")
            run("ip", "addr", "add", f"{self.server}/24", "dev", self.bridge)
            run("ip", "addr", "add", f"{self.services}/32", "dev", self.bridge)
            run("ip", "link", "set", self.bridge, "up")
            for host, namespace in self.names.items():
                root_side, inside = self.links[host], f"{self.links[host]}n"
                run("ip", "netns", "add", namespace)
                run("ip", "link", "add", root_side, "type", "veth", "peer", "name", inside)
                run("ip", "link", "set", inside, "netns", namespace)
                run("ip", "link", "set", root_side, "master", self.bridge)
                run("ip", "link", "set", root_side, "up")
                inns = ("ip", "netns", "exec", namespace, "ip")
                run(*inns, "addr", "add", f"{self.addresses[host]}/24", "dev", inside)
                run(*inns, "link", "set", inside, "up")
                run(*inns, "link", "set", "lo", "up")
            self._up = True
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for host, namespace in self.names.items():
            run("ip", "link", "del", self.links[host], check=False)
            run("ip", "netns", "del", namespace, check=False)
        run("ip", "link", "del", self.bridge, check=False)

    def cut(self, host: str) -> None:
        run("ip", "link", "set", self.links[host], "down")

    def heal(self, host: str) -> None:
        run("ip", "link", "set", self.links[host], "up")

    def cut_from(self, host: str, address: str) -> None:
        """The host loses its route to `address` alone (its packets there are discarded, as on a
        lost route); everything else on the bridge stays reachable."""
        run(*self.prefix_command(host), "ip", "route", "add", "blackhole", f"{address}/32")

    def heal_from(self, host: str, address: str) -> None:
        run(*self.prefix_command(host), "ip", "route", "del", "blackhole", f"{address}/32")

    def reset(self, host: str, address: str) -> None:
        """The host's link up and no blackhole route to `address`, whatever a test left behind."""
        run("ip", "link", "set", self.links[host], "up", check=False)
        run(*self.prefix_command(host), "ip", "route", "del", "blackhole", f"{address}/32", check=False)

    def prefix_command(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.names[host]]


class PrivatePostgres:
    """initdb + pg_ctl on a temporary directory, as the postgres user, on `address`:port only."""

    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        self.dir = Path(tempfile.mkdtemp(prefix="vias-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"

    def _as_postgres(self, *command: str) -> None:
        run("runuser", "-u", "postgres", "--", *command)

    def __enter__(self) -> PrivatePostgres:
        try:
            self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all 0.0.0.0/0 trust\n")
            options = (
                f"-c listen_addresses={self.address} -p {self.port} -c unix_socket_directories={self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            self._as_postgres(
                str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options,
                "-w", "-t", "60", "start",
            )  # fmt: skip
            self._as_postgres(
                str(PG_BIN / "createdb"), "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "vias"
            )
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.url_for("vias")

    def url_for(self, database: str) -> str:
        return f"postgres://postgres@{self.address}:{self.port}/{database}"

    def clone(self, database: str, template: str = "vias") -> str:
        """A new database copied from `template` (no session may be connected to it); its URL.
        A copy is a file copy: far cheaper than migrating a fresh database again."""
        self._as_postgres(
            str(PG_BIN / "createdb"), "-h", str(self.dir), "-p", str(self.port), "-U", "postgres",
            "-T", template, database,
        )  # fmt: skip
        return self.url_for(database)

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            run(
                "runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data),
                "-m", "immediate", "-w", "stop", check=False,
            )  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrivateRedis:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", self.address, "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        client = redis.Redis(host=self.address, port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    self.close()
                    raise
                time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"redis://{self.address}:{self.port}/0"

    def flush(self) -> None:
        import redis

        client = redis.Redis(host=self.address, port=self.port, socket_connect_timeout=5)
        try:
            client.flushall()
        finally:
            client.close()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Host:
    """One machine: its own data directory; commands in its network namespace (or the root one)."""

    def __init__(self, name: str, env: dict[str, str], prefix: list[str] | None = None) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"vias-{name}-"))
        (self.dir / "videos").mkdir()
        (self.dir / "models").mkdir()
        self.prefix = prefix or []
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("VIAS_", "DATABASE_URL", "REDIS_URL"))
            },
            "VIAS_DATA_DIR": str(self.dir),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def manage(self, *args: str, timeout: float = 300) -> str:
        result = run(*self.prefix, sys.executable, str(ROOT / "manage.py"), *args, cwd=ROOT, env=self.env,
                     timeout=timeout, check=False)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} on {self.name}: {result.stderr[-3000:]}")
        return result.stdout

    def start(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [*self.prefix, sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=self.env,
            stdout=(self.dir / log).open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        path = self.dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for process in self.processes:
            kill_tree(process.pid)
        shutil.rmtree(self.dir, ignore_errors=True)


def node_pid(launcher: subprocess.Popen[bytes]) -> int:
    """The `manage.py node` process started through `ip netns exec` (which execs it: same pid)."""
    return launcher.pid


def kill_tree(pid: int) -> None:
    try:
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def new_secret() -> str:
    return secrets.token_urlsafe(50)
