"""Redis is allowed to blink (issue 14): running subtasks on a real node carry on through a Redis
restart; starts and configuration changes during an outage are answered 503 in each dialect's
envelope and leave the database as it was; a job gives up only after VIAS_REDIS_GRACE."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from analysis.models import Event
from analysis.outage import RedisGone, RedisGrace
from subtasks.choices import State
from subtasks.models import Subtask
from tests.analysis_helpers import live_node, ready_task
from tests.nodes import long_video, wait_for
from tests.test_jobs import WHOLE_FRAME
from tests.test_nodes import fetch, started_task
from tests.vcs_helpers import CREATE, START, compute_body

pytestmark = pytest.mark.django_db(transaction=True)


def dead_redis(tmp_path) -> redis.Redis:
    """A real client of a Redis that is not there (its socket does not exist)."""
    return redis.Redis(unix_socket_path=str(tmp_path / "gone.sock"), socket_connect_timeout=0.2)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_redis_calls_are_skipped_with_back_off_during_an_outage_and_fatal_only_after_the_grace(tmp_path):
    clock = FakeClock()
    grace = RedisGrace(grace_s=60, clock=clock)
    client = dead_redis(tmp_path)
    calls = []

    def poll() -> list:
        calls.append(clock.now)
        return client.lrange("inbox", 0, -1)

    assert grace.call(poll, ["default"]) == ["default"] and grace.down
    clock.now += 0.1
    assert grace.call(poll, []) == [] and len(calls) == 1  # within the back-off: not even tried
    clock.now += 59
    grace.call(poll, [])
    assert len(calls) == 2  # tried again once the back-off passed
    clock.now += 1.5
    with pytest.raises(RedisGone):
        grace.call(poll, [])


def test_a_call_that_succeeds_again_ends_the_outage_and_counts_a_recovery(tmp_path):
    clock = FakeClock()
    grace = RedisGrace(grace_s=60, clock=clock)
    grace.call(dead_redis(tmp_path).ping, False)
    assert grace.down
    clock.now += 10
    assert grace.call(lambda: "pong", "") == "pong"
    assert not grace.down and grace.recoveries == 1


def test_starts_and_config_changes_during_an_outage_answer_503_and_change_nothing(alice, bundled_redis):
    task = ready_task(alice, vchans=1)
    subtask = task.subtasks.get()
    live_node()
    before = Subtask.objects.filter(pk=subtask.pk).values().get()
    videos = Path(settings.DATA_DIR) / "videos"
    videos.mkdir(exist_ok=True)
    (videos / "lzfg54fg871fghwa.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    vcs_task = alice.post(CREATE, compute_body(models=["body"]))
    assert vcs_task.status_code == 200, vcs_task.content
    vcs_id = vcs_task.json()["Data"]["taskId"]
    bundled_redis.process.kill()
    bundled_redis.process.wait()
    try:
        native = alice.post(f"/tasks/{task.task_id}/start")
        assert native.status_code == 503, native.content
        assert native.json()["ecode"] == 503 and "Redis" in native.json()["enote"]
        one = alice.post(f"/subtasks/{subtask.pk}/start")
        assert one.status_code == 503 and one.json()["ecode"] == 503
        config = alice.put(f"/subtasks/{subtask.pk}", {"rois": [{"roi": WHOLE_FRAME}]})
        assert config.status_code == 503, config.content
        vcs = alice.post(START, {"taskId": vcs_id})
        # VCS clients read errors from the body: HTTP 200 with the code in Code.
        assert vcs.status_code == 200 and vcs.json()["Code"] == "503", vcs.content
        assert Subtask.objects.filter(pk=subtask.pk).values().get() == before
    finally:
        bundled_redis.restart()
    started = alice.post(f"/tasks/{task.task_id}/start")
    assert started.status_code == 200, started.content
    assert Subtask.objects.get(pk=subtask.pk).state == State.STARTING


def test_running_subtasks_on_a_node_carry_on_through_a_3_second_redis_restart(
    alice, store, node_process, bundled_redis
):
    long_video(store / "long.mp4", loops=8)
    node = node_process(capacity=2)
    runs = [started_task(alice, "long.mp4", fps=25)[1] for _ in range(2)]
    for subtask in runs:
        wait_for(
            lambda s=subtask: fetch(s).state == State.RUNNING and fetch(s).progress > 1,
            timeout=90,
            what=lambda: f"RUNNING with progress\n{node.output()}",
        )
    bundled_redis.process.kill()
    bundled_redis.process.wait()
    at_kill = [fetch(s).progress for s in runs]
    time.sleep(3)
    # Progress reaches the database every VIAS_PROGRESS_INTERVAL (5 s): keep Redis away until the
    # next write shows up (still far inside VIAS_REDIS_GRACE), or give up after 15 s.
    deadline = time.monotonic() + 12
    while True:
        during = [fetch(s).progress for s in runs]
        if all(d > k for d, k in zip(during, at_kill, strict=True)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    bundled_redis.restart()
    assert all(d > k for d, k in zip(during, at_kill, strict=True)), (at_kill, during)  # kept analysing
    for subtask in runs:
        wait_for(
            lambda s=subtask: fetch(s).state in (State.SUCCEEDED, State.FAILED, State.ABNORMAL),
            timeout=240,
            what=lambda: f"the end of the run\n{node.output()}",
        )
    for subtask in runs:
        done = fetch(subtask)
        # None fails. Known gap (see docs/analysis-engine.md): under load a subtask is sometimes
        # re-dispatched once after the outage (attempt 2) instead of carrying on in attempt 1.
        assert done.state == State.SUCCEEDED and done.attempts <= 2, (
            done.status_reason,
            node.output()[-3000:],
        )
        keys = list(Event.objects.filter(subtask=subtask).values_list("key", flat=True))
        assert len(keys) == len(set(keys)) >= 1
