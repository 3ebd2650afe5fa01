"""The subtask job, run in-process on real video with a real (tiny) ONNX model: events, progress,
states, the control channel, stops, corrupt files and silent streams (analysis/jobs.py)."""

from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from analysis import control
from analysis.jobs import run_subtask
from analysis.models import Event
from subtasks import services as subtask_services
from subtasks.choices import State
from subtasks.models import Subtask
from tests.analysis_helpers import live_node, ready_task
from tests.nodes import BIKES, long_video, wait_for
from tests.onnx_models import register_fixed_person_model

WHOLE_FRAME = (
    '<root><polygon name="yard" mode="include"><point x="0" y="0"/><point x="1" y="0"/>'
    '<point x="1" y="1"/><point x="0" y="1"/></polygon></root>'
)
# One person in the middle of every frame (model input 64x64).
PERSON = [(32.0, 32.0, 16.0, 24.0, 0, 0.9)]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def video_store() -> Path:
    store = Path(settings.DATA_DIR) / "videos"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(BIKES, store / "bikes.mp4")
    return store


@pytest.fixture
def person_model():
    return register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), PERSON)


def security_task(actor, url: str, **algo_args):
    """A security task on one source, ROI over the whole frame, dispatched to a live node."""
    task = ready_task(actor, vchans=1, algo_type="2")
    subtask = task.subtasks.get()
    Subtask.objects.filter(pk=subtask.pk).update(source_url=url)
    subtask_services.configure_subtask(subtask, {"rois": [WHOLE_FRAME], "algo_args": algo_args})
    node = live_node(capacity=4)
    subtask_services.start_task(task)  # on_commit: dispatched to `node` (queued; we run it here)
    subtask.refresh_from_db()
    assert subtask.node == node
    return task, subtask, node


def in_thread(subtask, node) -> tuple[threading.Thread, list]:
    result: list = []

    def work() -> None:
        try:
            result.append(run_subtask(subtask.pk, node.name))
        finally:
            connection.close()  # the thread's own connection, or the test database cannot be dropped

    thread = threading.Thread(target=work)
    thread.start()
    return thread, result


def state_of(subtask) -> str:
    return Subtask.objects.values_list("state", flat=True).get(pk=subtask.pk)


def test_a_file_is_analysed_to_the_end_with_events_snapshots_and_progress(alice, video_store, person_model):
    task, subtask, node = security_task(alice, "bikes.mp4")
    assert run_subtask(subtask.pk, node.name) == "succeeded"
    subtask.refresh_from_db()
    assert (subtask.state, subtask.progress) == (State.SUCCEEDED, 100.0)
    events = list(Event.objects.filter(subtask=subtask))
    assert [e.rule for e in events] == ["intrusion"]
    event = events[0]
    assert (event.category, event.zone, event.track_id is not None) == ("body", "yard", True)
    x1, y1, x2, y2 = event.box
    assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 272
    snapshot = Path(settings.MEDIA_ROOT) / event.snapshot
    assert snapshot.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG
    assert task.mtasks.get().progress == 100


def test_running_the_same_subtask_twice_stores_no_duplicate_events(alice, video_store, person_model):
    task, subtask, node = security_task(alice, "bikes.mp4")
    run_subtask(subtask.pk, node.name)
    first = sorted(Event.objects.filter(subtask=subtask).values_list("key", flat=True))
    subtask_services.start_task(task)  # again, from SUCCEEDED
    run_subtask(subtask.pk, node.name)
    assert sorted(Event.objects.filter(subtask=subtask).values_list("key", flat=True)) == first
    assert state_of(subtask) == State.SUCCEEDED


def test_a_corrupt_file_fails_with_the_reason(alice, video_store, person_model):
    (video_store / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 5000)
    _task, subtask, node = security_task(alice, "broken.mp4")
    assert run_subtask(subtask.pk, node.name) == "failed"
    subtask.refresh_from_db()
    assert subtask.state == State.FAILED
    assert "broken.mp4" in subtask.status_reason


def test_a_category_whose_model_file_is_missing_fails_with_the_reason(alice, video_store, person_model):
    _task, subtask, node = security_task(alice, "bikes.mp4")
    person_model.path.unlink()
    run_subtask(subtask.pk, node.name)
    subtask.refresh_from_db()
    assert subtask.state == State.FAILED and person_model.name in subtask.status_reason


def test_a_stop_is_acknowledged_by_the_running_job_and_the_subtask_ends_stopped(
    alice, video_store, person_model
):
    long_video(video_store / "long.mp4", loops=8)
    _task, subtask, node = security_task(alice, "long.mp4", fps=25)
    thread, result = in_thread(subtask, node)
    wait_for(lambda: control.live_pid(subtask.pk), what="the job to be live")
    # The job reads commands between frames: its acknowledgement says it took the stop itself.
    ack = control.send_to_subtask(subtask.pk, {"op": "stop"}, timeout=10)
    assert ack.status == control.ACKNOWLEDGED
    wait_for(lambda: state_of(subtask) == State.STOPPED, timeout=10, interval=0.02, what="STOPPED")
    thread.join(10)
    assert result == ["stopped"]
    assert control.live_pid(subtask.pk) is None
    # Far from the end of the 80 s video: it stopped, it did not run out.
    assert Subtask.objects.get(pk=subtask.pk).progress < 90


def test_a_running_subtask_applies_new_rois_without_restarting(alice, video_store, person_model):
    long_video(video_store / "long.mp4", loops=8)
    _task, subtask, node = security_task(alice, "long.mp4", fps=25)
    thread, _ = in_thread(subtask, node)
    wait_for(lambda: control.live_pid(subtask.pk), what="the job to be live")
    elsewhere = WHOLE_FRAME.replace('name="yard"', 'name="gate"')
    _subtask, ack = subtask_services.apply_config(subtask, {"rois": [elsewhere]}, timeout=5)
    assert ack.status == control.ACKNOWLEDGED
    bad = {"algo_args": {"loiter_seconds": 5}}
    _subtask, ack = subtask_services.apply_config(subtask, bad, timeout=5)
    assert ack.ok
    assert state_of(subtask) == State.RUNNING  # same run: not restarted
    subtask_services.stop_subtask(subtask)
    thread.join(10)


class SilentServer:
    """Accepts connections and never answers: a camera that went quiet."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


def test_a_stream_that_goes_silent_turns_abnormal_then_recovering(
    alice, person_model, settings, loopback_sources
):
    settings.VIAS_SOURCE_OPEN_TIMEOUT = settings.VIAS_SOURCE_READ_TIMEOUT = 2
    server = SilentServer()
    try:
        _task, subtask, node = security_task(alice, f"http://127.0.0.1:{server.port}/live.mp4")
        thread, result = in_thread(subtask, node)
        wait_for(lambda: state_of(subtask) == State.ABNORMAL, timeout=30, what="ABNORMAL")
        reason = Subtask.objects.get(pk=subtask.pk).status_reason
        assert str(server.port) in reason or "127.0.0.1" in reason
        wait_for(lambda: state_of(subtask) == State.RECOVERING, timeout=30, what="RECOVERING")
        subtask_services.stop_subtask(subtask)
        wait_for(lambda: state_of(subtask) == State.STOPPED, timeout=30, what="STOPPED")
        thread.join(30)
        assert result == ["stopped"]
    finally:
        server.close()


def test_a_stop_asked_through_the_database_alone_is_seen_at_the_next_heartbeat(
    alice, video_store, person_model, settings
):
    # A database heartbeat every second: with the default (5 s) an idle machine ends the file first.
    settings.VIAS_PROGRESS_INTERVAL = 1
    long_video(video_store / "long.mp4", loops=8)
    _task, subtask, node = security_task(alice, "long.mp4", fps=25)
    thread, result = in_thread(subtask, node)
    wait_for(lambda: control.live_pid(subtask.pk), what="the job to be live")
    Subtask.objects.filter(pk=subtask.pk).update(state=State.STOPPING)  # no command sent
    wait_for(lambda: state_of(subtask) == State.STOPPED, timeout=10, what="STOPPED")
    thread.join(10)
    assert result == ["stopped"]


def test_the_last_progress_push_of_a_succeeded_subtask_says_100(alice, video_store, person_model):
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from vias.lib.announce import task_group

    task, subtask, node = security_task(alice, "bikes.mp4")
    layer = get_channel_layer()
    group = task_group(task.task_id)

    async def listen() -> str:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        return channel

    async def drain(channel: str) -> list[dict]:
        messages = []
        try:
            while True:
                messages.append(await asyncio.wait_for(layer.receive(channel), timeout=1))
        except TimeoutError:
            return messages
        finally:
            await layer.group_discard(group, channel)

    channel = async_to_sync(listen)()
    assert run_subtask(subtask.pk, node.name) == "succeeded"
    messages = async_to_sync(drain)(channel)
    progress = [m["progress"] for m in messages if m["kind"] == "progress"]
    states = [m.get("state") for m in messages if m["kind"] == "subtask.state"]
    assert progress and progress[-1] == 100.0
    assert states[-1] == "SUCCEEDED"
