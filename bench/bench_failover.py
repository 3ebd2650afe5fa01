#!/usr/bin/env python
"""Failover of a file subtask: a node killed with SIGKILL mid-file, its subtask running again on
the other node. Needs root (a private PostgreSQL through initdb / pg_ctl as the postgres user).

    sudo .venv/bin/python bench/bench_failover.py [--rounds 3] [--loops 12] [--timeout 10] [--grace 5]

Two hosts (tests/hosts.py: a data directory each; both on 127.0.0.1, no namespaces needed to
kill a node), a private PostgreSQL and Redis, the fixed tiny person model (tests/onnx_models.py),
a file of `--loops` × bikes.mp4 analysed at every frame (25 fps). Per round: one subtask starts,
runs until about a third of the file, then, at a random moment of a checkpoint interval, its node is killed with SIGKILL (workers included:
analysis/orphans.py). Measured:

  * failover s: from the kill to the subtask RUNNING on the other node (attempt 2), polled every
    50 ms; it is VIAS_HEARTBEAT_TIMEOUT + VIAS_HEARTBEAT_GRACE + up to one housekeeping interval
    (5 s) + the new job's start;
  * recovery s: from the kill to SUCCEEDED;
  * frames re-analysed: the frames attempt 1 had analysed (its last checkpoint plus its measured
    rate × the time from that checkpoint to the kill) minus the frame attempt 2 starts from.

Two modes alternate round by round: "resume" (the code: attempt 2 starts after the checkpoint,
written every VIAS_PROGRESS_INTERVAL, default 5 s) and "from frame 0" (as before issue 14: the
bench sets checkpoint_frame = 0 right after the kill, before the reaper runs, so attempt 2
starts at the first frame). Figures are medians; the last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.hosts import Host, PrivatePostgres, PrivateRedis, alive, new_secret, unavailable  # noqa: E402
from tests.live_server import free_port  # noqa: E402
from tests.nodes import long_video  # noqa: E402

MODES = ("resume", "from frame 0")
REGISTER = """
from pathlib import Path
from django.conf import settings
from django.core.management import call_command
call_command("migrate", verbosity=0)
from analysis.models import Detector
from tests.onnx_models import register_fixed_person_model
from tests.test_jobs import PERSON
detector = register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), PERSON)
Detector.objects.filter(pk=detector.pk).update(onnx_file=Path(detector.onnx_file).name)
from django.conf import settings
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
from tests.conftest import make_actor
make_actor("alice", "proj-alice")
print(Path(detector.onnx_file).name)
"""
START = """
import json
from django.contrib.auth import get_user_model
from subtasks import services
from subtasks.models import Subtask
from tasks.models import ApiToken, Project
from tests.analysis_helpers import ready_task
from tests.conftest import Actor
from tests.test_jobs import WHOLE_FRAME
from django.test import Client
user = get_user_model().objects.get(username="alice")
project = Project.objects.get(project_id="proj-alice")
_token, raw = ApiToken.issue(user, project)
task = ready_task(Actor(user, project, raw, Client()), vchans=1, algo_type="2")
subtask = task.subtasks.get()
Subtask.objects.filter(pk=subtask.pk).update(source_url="long.mp4")
services.configure_subtask(subtask, {"rois": [WHOLE_FRAME], "algo_args": {"fps": 25}})
services.start_task(task)
print(json.dumps({"subtask": subtask.pk}))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode")
    parser.add_argument("--loops", type=int, default=12, help="bikes.mp4 (250 frames) this many times")
    parser.add_argument("--timeout", type=int, default=10, help="VIAS_HEARTBEAT_TIMEOUT")
    parser.add_argument("--grace", type=int, default=5, help="VIAS_HEARTBEAT_GRACE")
    parser.add_argument("--kill-at", type=float, default=0.33, help="fraction of the file")
    return parser.parse_args()


class Bench:
    def __init__(self, args: argparse.Namespace, postgres: PrivatePostgres, redis: PrivateRedis) -> None:
        import psycopg

        self.args = args
        env = {
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis.url,
            "SECRET_KEY": new_secret(),
            "VIAS_HEARTBEAT_TIMEOUT": str(args.timeout),
            "VIAS_HEARTBEAT_GRACE": str(args.grace),
            "VIAS_NODE_TIMEOUT": str(args.timeout + 2),
            "VIAS_EVENT_CLIPS": "false",
        }
        self.web = Host("web", env)
        self.hosts = {name: Host(name, env) for name in ("a", "b")}
        self.db = psycopg.connect(postgres.url.replace("postgres://", "postgresql://"), autocommit=True)
        self.nodes: dict[str, Any] = {}
        self.random = random.Random(14)

    def close(self) -> None:
        self.db.close()
        for host in (*self.hosts.values(), self.web):
            host.close()

    def one(self, sql: str, *params: Any) -> Any:
        row = self.db.execute(sql, params).fetchone()
        return row[0] if row and len(row) == 1 else row

    def prepare(self) -> None:
        model = self.web.manage("shell", "-c", REGISTER).strip().splitlines()[-1]
        video = long_video(self.web.dir / "videos" / "long.mp4", loops=self.args.loops)
        for host in self.hosts.values():
            shutil.copy(self.web.dir / "models" / model, host.dir / "models" / model)
            shutil.copy(video, host.dir / "videos" / "long.mp4")
        for name in self.hosts:
            self.start_node(name)

    def start_node(self, name: str) -> None:
        launched = time.monotonic()
        self.nodes[name] = self.hosts[name].start(
            "node", "--name", f"host-{name}", "--capacity", "2", log="node.log"
        )
        self.wait(
            lambda: self.one(
                "SELECT count(*) FROM subtasks_node WHERE name = %s AND last_heartbeat > now() - interval '3 s'"
                " AND instance LIKE %s",
                f"host-{name}",
                f"{self.nodes[name].pid}-%",
            ),
            120,
            f"node {name} to register",
            since=launched,
        )

    def wait(self, condition, timeout: float, what: str, interval: float = 0.05, since: float | None = None):
        deadline = (since or time.monotonic()) + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(interval)
        logs = "\n".join(f"--- {n}\n{h.log('node.log')[-3000:]}" for n, h in self.hosts.items())
        raise SystemExit(f"timed out waiting for {what}\n{logs}")

    def row(self, pk: int) -> tuple[str, str, int, int, float]:
        return self.one(
            "SELECT s.state, coalesce(n.name, ''), s.attempts, s.checkpoint_frame, s.progress FROM subtasks_subtask s"
            " LEFT JOIN subtasks_node n ON n.id = s.node_id WHERE s.id = %s",
            pk,
        )

    def round(self, mode: str) -> dict[str, Any]:
        pk = json.loads(self.web.manage("shell", "-c", START).strip().splitlines()[-1])["subtask"]
        total = self.args.loops * 250
        self.wait(lambda: self.row(pk)[0] == "RUNNING", 120, "RUNNING")
        node = self.row(pk)[1]
        victim = node.removeprefix("host-")
        # The rate of attempt 1 from its checkpoints (written every VIAS_PROGRESS_INTERVAL).
        seen: list[tuple[float, int]] = []

        def far_enough() -> bool:
            checkpoint = self.row(pk)[3]
            if not seen or seen[-1][1] != checkpoint:
                seen.append((time.monotonic(), checkpoint))
            return checkpoint >= self.args.kill_at * total and len(seen) >= 3

        self.wait(far_enough, 300, "attempt 1 a third through the file")
        # Not right after a checkpoint: at a random moment of the checkpoint interval, as a crash.
        interval = (seen[-1][0] - seen[1][0]) / max(1, len(seen) - 2)
        time.sleep(self.random.uniform(0, interval))
        tree_root = self.nodes[victim]
        import psutil

        tree = [psutil.Process(tree_root.pid), *psutil.Process(tree_root.pid).children(recursive=True)]
        killed = time.monotonic()
        tree_root.kill()
        (t0, c0), (t1, c1) = seen[1], seen[-1]
        rate = (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
        reached = min(total, c1 + rate * (killed - t1))
        self.wait(lambda: not alive(tree), 30, "the killed node's processes to end")
        if mode == "from frame 0":  # long before the reaper's turn (timeout + grace)
            self.db.execute("UPDATE subtasks_subtask SET checkpoint_frame = 0 WHERE id = %s", (pk,))
        other = f"host-{'b' if victim == 'a' else 'a'}"
        handed: list[int] = []

        def moved() -> bool:
            state, owner, _attempts, checkpoint, _progress = self.row(pk)
            if owner != other:
                handed[:] = [checkpoint]  # what attempt 2 starts from, before it heartbeats
            return (state, owner) == ("RUNNING", other)

        self.wait(moved, 180, "RUNNING on the other node")
        failover = time.monotonic() - killed
        start_frame = handed[0] if handed else self.row(pk)[3]
        self.wait(lambda: self.row(pk)[0] in ("SUCCEEDED", "FAILED"), 600, "the end", interval=0.2)
        recovery = time.monotonic() - killed
        state, _node, attempts, *_ = self.row(pk)
        duplicates = self.one(
            "SELECT count(*) - count(DISTINCT key) FROM analysis_event WHERE subtask_id = %s", pk
        )
        self.start_node(victim)  # the name is free again at once: its pid is gone
        return {
            "mode": mode,
            "failover_s": round(failover, 1),
            "recovery_s": round(recovery, 1),
            "frames_reanalysed": max(0, round(reached - start_frame)),
            "reached": round(reached),
            "start_frame": start_frame,
            "rate_fps": round(rate, 1),
            "state": state,
            "attempts": attempts,
            "duplicate_keys": duplicates,
        }


def main() -> None:
    args = parse_args()
    reason = unavailable()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    with (
        PrivatePostgres("127.0.0.1", free_port()) as postgres,
        PrivateRedis("127.0.0.1", free_port()) as redis,
    ):
        bench = Bench(args, postgres, redis)
        try:
            bench.prepare()
            results = []
            for index in range(args.rounds):
                for mode in MODES if index % 2 == 0 else reversed(MODES):
                    result = bench.round(mode)
                    results.append(result)
                    print(json.dumps(result), flush=True)
        finally:
            bench.close()
    summary = {}
    for mode in MODES:
        mine = [r for r in results if r["mode"] == mode]
        summary[mode] = {
            key: statistics.median(r[key] for r in mine)
            for key in ("failover_s", "recovery_s", "frames_reanalysed", "reached", "rate_fps")
        }
        summary[mode]["all_succeeded"] = all(r["state"] == "SUCCEEDED" for r in mine)
        summary[mode]["duplicate_keys"] = sum(r["duplicate_keys"] for r in mine)
    print(f"\nfile: {args.loops * 250} frames; heartbeat timeout {args.timeout} s + grace {args.grace} s")
    print(f"{'mode':14} {'failover s':>10} {'recovery s':>10} {'re-analysed':>11} {'of reached':>10}")
    for mode, figures in summary.items():
        print(
            f"{mode:14} {figures['failover_s']:>10} {figures['recovery_s']:>10} "
            f"{figures['frames_reanalysed']:>11} {figures['reached']:>10}"
        )
    meta = {"python": platform.python_version(), "load": os.getloadavg(), "args": vars(args)}
    print("BENCH_JSON " + json.dumps({"summary": summary, "rounds": results, "meta": meta}))


if __name__ == "__main__":
    main()
