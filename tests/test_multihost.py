"""Many hosts (issue 14): two analysis nodes in their own network namespaces, the test's own
PostgreSQL and Redis on the bridge address between them, a web host in the root namespace.

A task of 4 channels (file subtasks) is spread over the two nodes. Host A's link is cut (a
partition: its node and its jobs live on and reach neither PostgreSQL nor Redis): its subtasks run
again on host B, continuing from their checkpoints. The link is healed: A's stale jobs come back
and write nothing (their lease is gone: they stop themselves). Then A's node is killed with
SIGKILL: nothing of it is left running. Every subtask ends SUCCEEDED with its events, none twice.

A second test cuts host A from Redis only (a blackhole route to Redis's address in A's
namespace; PostgreSQL still reachable): A's subtasks move to B, a task started while A is cut
lands on B, and once A's route is back its stale jobs write nothing (state, progress, events,
camera stats stay B's) and A acknowledges Redis again.

Skipped, with the reason, where network namespaces cannot be made (not root, no iproute2) or the
PostgreSQL server binaries are missing. Each host is a data directory of its own (video, model,
secret key through the environment), so nothing is shared through the filesystem but the code.
The two tests share one start-up (network, PostgreSQL, Redis, the migration and the model's
registration); each runs on its own copy of the migrated database, an emptied Redis and new
hosts with nodes of their own.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.hosts import Host, Network, PrivatePostgres, PrivateRedis, alive, new_secret, unavailable
from tests.live_server import free_port
from tests.nodes import long_video, wait_for

REASON = unavailable()
pytestmark = pytest.mark.skipif(bool(REASON), reason=REASON or "-")

CAPACITY = 4  # each node could take the whole task: B has room for A's subtasks
SETUP = """
import json
from subtasks import services
from subtasks.models import Subtask
from tests.analysis_helpers import ready_task
from tests.conftest import make_actor
from tests.test_jobs import WHOLE_FRAME

from django.conf import settings
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # a test user
actor = make_actor("alice", "proj-alice")
task = ready_task(actor, vchans=4, algo_type="2")
for subtask in task.subtasks.order_by("pk"):
    Subtask.objects.filter(pk=subtask.pk).update(source_url="long.mp4")
    services.configure_subtask(subtask, {"rois": [WHOLE_FRAME], "algo_args": {"fps": 25}})
services.start_task(task)
print(json.dumps({"task_id": task.pk}))
"""
# A second task of one channel, by another user, started while host A is cut from Redis.
ANOTHER = SETUP.replace('"alice", "proj-alice"', '"bob", "proj-bob"').replace("vchans=4", "vchans=1")
REGISTER_MODEL = """
from pathlib import Path
from django.conf import settings
from django.core.management import call_command
call_command("migrate", verbosity=0)
from analysis.models import Detector
from tests.onnx_models import register_fixed_person_model
from tests.test_jobs import PERSON

detector = register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), PERSON)
# By file name: each host resolves it in its own models directory.
Detector.objects.filter(pk=detector.pk).update(onnx_file=Path(detector.onnx_file).name)
print(Path(detector.onnx_file).name)
"""


@dataclass
class Row:
    pk: int
    state: str
    node: str
    attempts: int
    checkpoint: int
    progress: float


class Cluster:
    """The web host, hosts a and b, their network, PostgreSQL and Redis."""

    def __init__(self, site: Site, database_url: str) -> None:
        import psycopg

        self.network = site.network
        self.model = site.model
        env = {**site.env, "DATABASE_URL": database_url}
        self.web = Host("web", env)
        self.hosts = {name: Host(name, env, site.network.prefix_command(name)) for name in ("a", "b")}
        self.db = psycopg.connect(database_url.replace("postgres://", "postgresql://"), autocommit=True)
        self.nodes: dict[str, Any] = {}

    def close(self) -> None:
        self.db.close()
        for host in (*self.hosts.values(), self.web):
            host.close()

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, params).fetchall()

    def subtasks(self) -> dict[int, Row]:
        rows = self.query(
            "SELECT s.id, s.state, coalesce(n.name, ''), s.attempts, s.checkpoint_frame, s.progress "
            "FROM subtasks_subtask s LEFT JOIN subtasks_node n ON n.id = s.node_id ORDER BY s.id"
        )
        return {row[0]: Row(*row) for row in rows}

    def events(self) -> list[tuple[int, str, int, Any]]:
        """(subtask, key, frame, created_at) of every event."""
        return [
            (row[0], row[1], row[2], row[3])
            for row in self.query("SELECT subtask_id, key, frame_index, created_at FROM analysis_event")
        ]

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{host.log('node.log')[-4000:]}" for name, host in self.hosts.items())


@dataclass
class Site:
    """What the tests share (one start-up for the module): the network, the private PostgreSQL
    with a migrated template database holding the registered model, the private Redis, the model
    file and the hosts' environment (one secret key)."""

    network: Network
    postgres: PrivatePostgres
    redis: PrivateRedis
    env: dict[str, str]
    model: Path


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with Network(["a", "b"]) as network:
        with (
            PrivatePostgres(network.server, free_port()) as postgres,
            PrivateRedis(network.services, free_port()) as redis,
        ):
            env = {
                "DATABASE_URL": postgres.url,
                "REDIS_URL": redis.url,
                "SECRET_KEY": new_secret(),
                # Short, but not so short that a job starting on a loaded machine looks dead.
                "VIAS_HEARTBEAT_TIMEOUT": "10",
                "VIAS_HEARTBEAT_GRACE": "5",
                "VIAS_NODE_TIMEOUT": "12",
                "VIAS_PROGRESS_INTERVAL": "1",  # a checkpoint every second
                "VIAS_EVENT_CLIPS": "false",
                "VIAS_DECODE_THREADS": "1",
            }
            web = Host("setup", env)
            try:
                # Migrate, then register (into the template database "vias" that each test copies).
                model = web.manage("shell", "-c", REGISTER_MODEL).strip().splitlines()[-1]
                yield Site(network, postgres, redis, env, web.dir / "models" / model)
            finally:
                web.close()


@pytest.fixture
def cluster(site: Site, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A fresh cluster on the shared site: its own copy of the migrated database, an empty Redis,
    new host directories; its nodes are killed and host a's network is whole again at the end."""
    site.redis.flush()
    database = site.postgres.clone(f"vias_{request.node.name[5:30]}".lower())
    made = Cluster(site, database)
    try:
        yield made
    finally:
        made.close()
        site.network.reset("a", site.network.services)


def phases(tag: str) -> Callable[[str], float]:
    """A printer of where the run's time goes (pytest -s); nothing is asserted on it."""
    began = time.monotonic()

    def phase(name: str) -> float:
        elapsed = time.monotonic() - began
        print(f"{tag}: {elapsed:6.1f} s {name}", file=sys.stderr)
        return elapsed

    return phase


def boot(cluster: Cluster, phase: Callable[[str], float], capacity: int = CAPACITY, loops: int = 8) -> None:
    """Give each host its copies of the model (registered in the database the cluster copied)
    and of the video, start both nodes and wait until both are registered with the model."""
    web, hosts = cluster.web, cluster.hosts
    model = cluster.model.name
    video = long_video(web.dir / "videos" / "long.mp4", loops=loops)
    for host in hosts.values():  # each host its own copy of the model and of the video
        shutil.copy(cluster.model, host.dir / "models" / model)
        shutil.copy(video, host.dir / "videos" / "long.mp4")
    for name, host in hosts.items():
        cluster.nodes[name] = host.start(
            "node", "--name", f"host-{name}", "--capacity", str(capacity), log="node.log"
        )
    wait_for(
        lambda: (
            len(
                cluster.query(
                    "SELECT 1 FROM subtasks_node WHERE capabilities::text LIKE %s", f"%{Path(model).stem}%"
                )
            )
            == 2
        ),
        timeout=90,
        what=lambda: f"both nodes to register with the model\n{cluster.logs()}",
    )
    phase("nodes registered")


def test_a_cut_off_host_s_subtasks_continue_on_the_other_and_its_stale_jobs_write_nothing(cluster: Cluster):
    web = cluster.web
    phase = phases("multihost")
    boot(cluster, phase)
    web.manage("shell", "-c", SETUP)
    phase("task started")

    def running_on_both() -> bool:
        rows = cluster.subtasks().values()
        return (
            len(rows) == 4
            and all(r.state == "RUNNING" for r in rows)
            and {r.node for r in rows} == {"host-a", "host-b"}
        )

    wait_for(
        running_on_both,
        timeout=90,
        what=lambda: f"4 subtasks running on both hosts: {cluster.subtasks()}\n{cluster.logs()}",
    )
    phase("running on both")
    on_a = [r.pk for r in cluster.subtasks().values() if r.node == "host-a"]
    # Cut A while its subtasks are part-way through their files, each with a checkpoint.
    wait_for(
        lambda: all(cluster.subtasks()[pk].checkpoint > 0 for pk in on_a),
        timeout=90,
        interval=0.1,
        what=lambda: f"checkpoints on host a: {cluster.subtasks()}",
    )
    assert all(cluster.subtasks()[pk].progress < 100 for pk in on_a), "host a finished before the cut"
    a_tree = [
        psutil.Process(cluster.nodes["a"].pid),
        *psutil.Process(cluster.nodes["a"].pid).children(recursive=True),
    ]
    cluster.network.cut("a")
    phase("host a cut off")
    events_before = {(e[0], e[1]) for e in cluster.events()}
    cut_at = cluster.query("SELECT now()")[0][0]

    # A's subtasks run again on B; the checkpoint they continue from is A's last one.
    checkpoints = {pk: cluster.subtasks()[pk].checkpoint for pk in on_a}
    progress_at_cut = {pk: cluster.subtasks()[pk].progress for pk in on_a}

    def moved() -> bool:
        rows = cluster.subtasks()
        for pk in on_a:
            if rows[pk].node == "host-a":
                checkpoints[pk] = rows[pk].checkpoint
        return all(rows[pk].node == "host-b" and rows[pk].state in ("RUNNING", "SUCCEEDED") for pk in on_a)

    wait_for(
        moved,
        timeout=120,
        interval=0.1,
        what=lambda: f"host a's subtasks on host b: {cluster.subtasks()}\n{cluster.logs()}",
    )
    taken_over = cluster.query("SELECT now()")[0][0]
    phase("running on host b")
    assert all(cluster.subtasks()[pk].attempts == 2 for pk in on_a), cluster.subtasks()
    assert all(cluster.subtasks()[pk].progress >= progress_at_cut[pk] - 1 for pk in on_a), (
        progress_at_cut,
        cluster.subtasks(),
    )

    # Heal: A's jobs reach the database again, find their lease gone and stop (django-q2 records
    # their end under A's cluster name); nothing they do reaches B's rows.
    cluster.network.heal("a")
    phase("healed")
    ended = "SELECT name, result FROM django_q_task WHERE cluster = 'host-a' AND name = ANY(%s)"
    names = [f"subtask-{pk}" for pk in on_a]
    wait_for(
        lambda: len(cluster.query(ended, names)) >= len(on_a),
        timeout=120,
        what=lambda: f"host a's stale jobs to end\n{cluster.logs()}",
    )
    phase("stale jobs ended")
    from picklefield.fields import dbsafe_decode

    outcomes = sorted(str(dbsafe_decode(result)) for _name, result in cluster.query(ended, names))
    assert outcomes == ["lost the subtask to another job"] * len(on_a), outcomes
    rows = cluster.subtasks()
    for pk in on_a:
        assert rows[pk].node == "host-b" and rows[pk].attempts == 2, rows[pk]
        assert rows[pk].state in ("RUNNING", "SUCCEEDED"), rows[pk]
    stale_stats = cluster.query(
        "SELECT subtask_id FROM analysis_camerastats WHERE node_name = 'host-a' AND updated_at > %s",
        taken_over,
    )
    assert not stale_stats, f"host a's stale jobs wrote camera stats of {stale_stats}"

    # A dies outright: nothing of it is left.
    cluster.nodes["a"].kill()
    wait_for(
        lambda: not alive(a_tree), timeout=30, what=lambda: f"host a's processes to end: {alive(a_tree)}"
    )

    wait_for(
        lambda: all(r.state == "SUCCEEDED" for r in cluster.subtasks().values()),
        timeout=180,
        what=lambda: f"every subtask SUCCEEDED: {cluster.subtasks()}\n{cluster.logs()}",
    )
    phase("all succeeded")
    rows = cluster.subtasks()
    assert all(r.progress == 100.0 for r in rows.values())
    events = cluster.events()
    keys = [(subtask, key) for subtask, key, _frame, _at in events]
    assert len(keys) == len(set(keys))  # none twice
    assert events_before <= set(keys)  # none lost
    assert {subtask for subtask, *_ in events} == set(rows), events  # every channel has its events
    for pk in on_a:
        # B continued after A's checkpoint: what it found is all later in the file.
        later = [frame for subtask, _key, frame, at in events if subtask == pk and at > cut_at]
        assert later and min(later) > checkpoints[pk], (pk, checkpoints[pk], sorted(later)[:5])


def test_a_host_cut_from_redis_only_hands_its_subtasks_over_takes_no_new_work_and_writes_nothing_stale(
    cluster: Cluster,
):
    web = cluster.web
    phase = phases("redis-cut")
    # Room on B for A's two subtasks and one more: a full B would leave the new task waiting.
    boot(cluster, phase, capacity=5, loops=16)
    task_id = json.loads(web.manage("shell", "-c", SETUP).strip().splitlines()[-1])["task_id"]
    phase("task started")
    wait_for(
        lambda: (
            len(rows := cluster.subtasks().values()) == 4
            and all(r.state == "RUNNING" and r.checkpoint > 0 for r in rows)
            and {r.node for r in rows} == {"host-a", "host-b"}
        ),
        timeout=90,
        interval=0.1,
        what=lambda: (
            f"4 subtasks running on both hosts, each with a checkpoint: {cluster.subtasks()}\n{cluster.logs()}"
        ),
    )
    on_a = [r.pk for r in cluster.subtasks().values() if r.node == "host-a"]
    assert all(cluster.subtasks()[pk].progress < 100 for pk in on_a), "host a finished before the cut"
    # A can still reach PostgreSQL (same address as before), not Redis (its own address).
    cluster.network.cut_from("a", cluster.network.services)
    cut = phase("host a cut from Redis")
    heartbeat = "SELECT last_heartbeat, redis_ack_at FROM subtasks_node WHERE name = %s"
    acked_at_cut = cluster.query(heartbeat, "host-a")[0][1]

    def moved() -> bool:
        rows = cluster.subtasks()
        return all(rows[pk].node == "host-b" and rows[pk].state in ("RUNNING", "SUCCEEDED") for pk in on_a)

    wait_for(
        moved,
        timeout=120,
        interval=0.1,
        what=lambda: f"host a's subtasks on host b: {cluster.subtasks()}\n{cluster.logs()}",
    )
    taken_over = cluster.query("SELECT now()")[0][0]
    print(
        f"redis-cut: failover {phase('running on host b') - cut:.1f} s (cut -> RUNNING elsewhere)",
        file=sys.stderr,
    )
    rows = cluster.subtasks()
    assert all(rows[pk].attempts == 2 for pk in on_a), rows
    # Why they moved (the reaper's log line on whichever node reaped; printed, not asserted).
    reasons = [line for line in cluster.logs().splitlines() if "dispatching again" in line]
    a_heartbeat, a_ack = cluster.query(heartbeat, "host-a")[0]
    assert a_ack == acked_at_cut, "host a acknowledged Redis while cut from it"
    # Cut from Redis, not dead: A's loop still reached PostgreSQL (its Redis round trip did not
    # hold its heartbeat), so it is the Redis acknowledgement that took A out.
    assert a_heartbeat > a_ack, (a_heartbeat, a_ack)
    print(
        f"redis-cut: host a heartbeat {a_heartbeat}, Redis ack {a_ack}", *reasons, sep="\n", file=sys.stderr
    )

    # No new work for A while it is cut: a task started now runs on B.
    other = json.loads(web.manage("shell", "-c", ANOTHER).strip().splitlines()[-1])["task_id"]
    new_row = "SELECT s.id, s.state, coalesce(n.name, '') FROM subtasks_subtask s LEFT JOIN subtasks_node n ON n.id = s.node_id WHERE s.task_id = %s"
    wait_for(
        lambda: (
            [(state, node) for _pk, state, node in cluster.query(new_row, other)] == [("RUNNING", "host-b")]
        ),
        timeout=60,
        what=lambda: (
            f"the new task's subtask RUNNING on host b: {cluster.query(new_row, other)}\n{cluster.logs()}"
        ),
    )
    phase("new task running on host b")
    busy_on_a = (
        "SELECT s.id FROM subtasks_subtask s JOIN subtasks_node n ON n.id = s.node_id WHERE n.name = 'host-a'"
    )
    assert not cluster.query(busy_on_a), cluster.subtasks()

    # Heal: A's jobs find their lease gone and stop; nothing they do reaches B's rows.
    cluster.network.heal_from("a", cluster.network.services)
    phase("healed")
    ended = "SELECT name, result FROM django_q_task WHERE cluster = 'host-a' AND name = ANY(%s)"
    names = [f"subtask-{pk}" for pk in on_a]
    wait_for(
        lambda: len(cluster.query(ended, names)) >= len(on_a),
        timeout=120,
        what=lambda: f"host a's stale jobs to end\n{cluster.logs()}",
    )
    phase("stale jobs ended")
    from picklefield.fields import dbsafe_decode

    outcomes = sorted(str(dbsafe_decode(result)) for _name, result in cluster.query(ended, names))
    assert outcomes == ["lost the subtask to another job"] * len(on_a), outcomes
    # A reaches Redis again: its acknowledgement is renewed (it may take work again).
    wait_for(
        lambda: cluster.query(heartbeat, "host-a")[0][1] > a_ack,
        timeout=60,
        what=lambda: f"host a to acknowledge Redis again\n{cluster.logs()}",
    )
    phase("host a acknowledges Redis again")
    # Everything the moved subtasks have is B's: state, lease, progress going on, events once.
    before = cluster.subtasks()
    time.sleep(3)  # a few of B's beats: a stale write would show as a step back or A's name
    after = cluster.subtasks()
    for pk in on_a:
        for row in (before[pk], after[pk]):
            assert row.node == "host-b" and row.attempts == 2, row
            assert row.state in ("RUNNING", "SUCCEEDED"), row
        assert after[pk].progress >= before[pk].progress and after[pk].checkpoint >= before[pk].checkpoint
    stats = cluster.query(
        "SELECT subtask_id, node_name, updated_at FROM analysis_camerastats WHERE subtask_id = ANY(%s)", on_a
    )
    stale = [row for row in stats if row[1] == "host-a" and row[2] > taken_over]
    assert not stale, f"host a's stale jobs wrote camera stats: {stale}"
    keys = [(subtask, key) for subtask, key, _frame, _at in cluster.events()]
    assert len(keys) == len(set(keys)), "an event twice"
    assert task_id != other
