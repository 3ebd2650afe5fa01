"""What a run shows the operator (analysis/observe.py): per-camera stats written with the heartbeat,
event clips the browser can play, and the live view, which publishes only while someone watches.
The job runs in-process on real video with a real (tiny) ONNX model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from django.conf import settings

from analysis import control, live
from analysis.clips import PRE_SECONDS, ClipRecorder
from analysis.models import CameraStats, Event
from subtasks import services as subtask_services
from subtasks.choices import State
from tests.nodes import long_video, wait_for
from tests.onnx_models import register_fixed_person_model
from tests.test_jobs import PERSON, in_thread, security_task, state_of, video_store  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)


def models_dir() -> Path:
    return Path(settings.VIAS_MODELS_DIR)


@pytest.mark.usefixtures("video_store")
def test_a_finished_run_leaves_its_figures_and_an_event_clip_that_chromium_can_play(alice):
    register_fixed_person_model(models_dir(), PERSON)
    _task, subtask, node = security_task(alice, "bikes.mp4")
    thread, result = in_thread(subtask, node)
    thread.join(120)
    assert result == ["succeeded"]
    stats = CameraStats.objects.get(subtask=subtask)
    assert stats.node_name == node.name and stats.provider == "CPU"
    assert stats.frames_analysed > 10 and stats.frames_decoded >= stats.frames_analysed
    assert stats.source_fps == pytest.approx(25.0, abs=0.5)
    assert stats.detections == stats.frames_analysed  # the model sees one person in every frame
    assert stats.inference_ms > 0 and stats.events == 1 and not stats.saw_nothing
    assert stats.last_frame_at is not None
    event = Event.objects.get(subtask=subtask)
    assert event.clip.endswith(".webm")
    clip = cv2.VideoCapture(str(Path(settings.MEDIA_ROOT) / event.clip))
    assert clip.get(cv2.CAP_PROP_FOURCC) == cv2.VideoWriter_fourcc(*"VP80")
    frames = int(clip.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = clip.read()
    clip.release()
    assert ok and first.shape[1] <= 640
    # The event is on the first analysed frame: no frames before it, the frames after it, at 5 fps.
    assert 1 <= frames <= (PRE_SECONDS + 3.0) * 5 + 1


@pytest.mark.usefixtures("video_store")
def test_a_run_with_no_detection_says_it_saw_nothing(alice):
    register_fixed_person_model(models_dir(), [])
    _task, subtask, node = security_task(alice, "bikes.mp4")
    thread, result = in_thread(subtask, node)
    thread.join(120)
    assert result == ["succeeded"]
    stats = CameraStats.objects.get(subtask=subtask)
    assert stats.frames_analysed > 10 and stats.detections == 0 and stats.saw_nothing


def test_a_watched_run_publishes_annotated_frames_that_change(alice, request):
    store = request.getfixturevalue("video_store")
    register_fixed_person_model(models_dir(), PERSON)
    long_video(store / "long.mp4", loops=6)
    _task, subtask, node = security_task(alice, "long.mp4")
    assert live.watch(subtask.pk) is None  # a viewer waits before the run begins
    thread, _result = in_thread(subtask, node)
    try:
        jpeg = wait_for(lambda: live.watch(subtask.pk), 30, what="a live frame")
        image = cv2.imdecode(np.frombuffer(jpeg, "uint8"), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[1] <= 640
        second = wait_for(lambda: (frame := live.watch(subtask.pk)) != jpeg and frame, 10, what="a new frame")
        assert second != jpeg
    finally:
        subtask_services.stop_task(subtask.task)
        thread.join(60)
    # The live view is what is tested here; the stop itself is covered by the job tests (a stop
    # asked while the job is writing its last frame may still read STOPPING right after the join).
    assert state_of(subtask) in (State.STOPPING, State.STOPPED, State.SUCCEEDED)


def test_nobody_watching_means_nothing_is_drawn_and_one_exists_a_second():
    clock = FakeClock()
    publisher = live.LivePublisher(4242, clock=clock)
    viewers = f"{settings.VIAS_CONTROL_PREFIX}:viewers:4242"
    control.client().delete(viewers)
    assert not publisher.due()
    control.client().set(viewers, "1", ex=10)
    clock.now += 0.5
    assert not publisher.due()  # the key is looked for at most once a second
    clock.now += 0.5
    assert publisher.due()
    publisher.publish(b"jpeg")
    clock.now += 0.2
    assert not publisher.due()  # about 2 frames a second, not more
    clock.now += 0.3
    assert publisher.due()
    control.client().delete(viewers)
    clock.now += 1.0
    assert not publisher.due()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_clip_holds_the_seconds_before_and_after_its_event(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    recorder = ClipRecorder(fps=5)
    frame = np.zeros((90, 160, 3), np.uint8)
    for index in range(50):  # 10 s at 5 fps; the event at 5 s
        offset = index / 5
        if index == 25:
            recorder.add(frame, offset)
            recorder.start(7, "events/x/7.webm", offset)
            continue
        recorder.add(frame, offset)
    assert recorder.close() == [(7, "events/x/7.webm")]
    clip = cv2.VideoCapture(str(tmp_path / "events/x/7.webm"))
    # 3 s before (15 frames, the event's own included) and 3 s after (15 frames).
    assert int(clip.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
