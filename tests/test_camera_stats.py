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


def test_a_clip_of_odd_sized_frames_and_a_size_change_mid_clip_keeps_every_frame(tmp_path):
    from analysis.clips import encode_webm

    frames = [np.full((91, 161, 3), 80, np.uint8)] * 6 + [np.full((200, 300, 3), 160, np.uint8)] * 4
    path = tmp_path / "odd.webm"
    path.write_bytes(encode_webm(frames, 2.5))
    clip = cv2.VideoCapture(str(path))
    assert clip.get(cv2.CAP_PROP_FOURCC) == cv2.VideoWriter_fourcc(*"VP80")
    # 4:2:0 wants even sizes: the odd last row and column are cut, the larger frames scaled.
    assert (clip.get(cv2.CAP_PROP_FRAME_WIDTH), clip.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (160, 90)
    assert clip.get(cv2.CAP_PROP_FPS) == 2.5
    shades = []
    while (read := clip.read())[0]:
        shades.append(round(float(read[1].mean()) / 40))
    clip.release()
    assert shades == [2] * 6 + [4] * 4


# -- a run that takes several jobs keeps counting (real nodes: manage.py node subprocesses) --------


def _whole_file(path: Path, fps: float) -> tuple[int, int]:
    """(frames decoded up to the last analysed one, frames analysed at `fps`): what one
    uninterrupted run counts."""
    from analysis.sources import VideoSource, is_sampled

    with VideoSource(path, fps=fps) as video:
        last = max(i for i in range(video.frame_count) if is_sampled(i, video.step))
        return last + 1, video.total_samples


def _started(actor, url: str, fps: int):
    from tests.test_nodes import started_task

    _task, subtask = started_task(actor, url, fps=fps)
    return subtask


def _finished(subtask, node, timeout: float = 180):
    from subtasks.models import Subtask as SubtaskModel

    wait_for(
        lambda: SubtaskModel.objects.get(pk=subtask.pk).state in (State.SUCCEEDED, State.FAILED),
        timeout=timeout,
        what=lambda: f"the end of the run\n{node.output()[-3000:]}",
    )
    done = SubtaskModel.objects.get(pk=subtask.pk)
    assert done.state == State.SUCCEEDED, done.status_reason
    return done


def _segments(subtask) -> int:
    from django_q.models import Task as QTask

    return sum(
        1
        for result in QTask.objects.filter(name=f"subtask-{subtask.pk}").values_list("result", flat=True)
        if str(result).startswith("continues from frame")
    )


def test_counters_go_on_across_job_segments_and_start_again_with_a_new_run(alice, store, node_process):
    """VIAS_JOB_SEGMENT=1: the run is a chain of one-second jobs on a real node; the row then
    counts what one uninterrupted run counts. Starting the task again starts the counters again."""
    long_video(store / "long.mp4", loops=8)
    frames, samples = _whole_file(store / "long.mp4", fps=20)
    node = node_process(capacity=1, heartbeat_timeout=30, VIAS_JOB_SEGMENT="1", VIAS_SUBTASKS_PER_WORKER="1")
    subtask = _started(alice, "long.mp4", fps=20)
    _finished(subtask, node)
    assert _segments(subtask) >= 2, node.output()[-3000:]
    stats = CameraStats.objects.get(subtask=subtask)
    assert stats.frames_analysed == samples
    assert stats.frames_decoded == frames
    assert stats.detections == samples  # the fixed model sees one person in every frame
    assert stats.events == Event.objects.filter(subtask=subtask).count() >= 1
    assert stats.inference_seconds > 0 and stats.inference_ms > 0
    first_started = stats.started_at

    subtask_services.start_task(subtask.task)
    _finished(subtask, node)
    again = CameraStats.objects.get(subtask=subtask)
    assert again.frames_analysed == samples and again.detections == samples  # not twice
    assert again.started_at > first_started


def test_counters_go_on_when_a_killed_job_is_dispatched_again(alice, store, node_process):
    """The job's worker is killed mid-run; the reaper dispatches the run again (a second attempt),
    which continues after its checkpoint and after the row's counts."""
    import os
    import signal

    from subtasks.models import Subtask as SubtaskModel

    long_video(store / "long.mp4", loops=8)
    frames, samples = _whole_file(store / "long.mp4", fps=25)
    node = node_process(capacity=1, heartbeat_timeout=6)
    subtask = _started(alice, "long.mp4", fps=25)
    pid = wait_for(lambda: control.live_pid(subtask.pk), timeout=60, what="the job to start")
    wait_for(
        lambda: (
            (row := CameraStats.objects.filter(subtask=subtask).first()) is not None
            and row.frames_analysed > samples // 3
        ),
        timeout=90,
        what="a third of the file counted",
    )
    before = CameraStats.objects.get(subtask=subtask)
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: SubtaskModel.objects.get(pk=subtask.pk).attempts >= 2,
        timeout=60,
        what=lambda: f"a second attempt\n{node.output()[-3000:]}",
    )
    done = _finished(subtask, node)
    assert done.attempts >= 2
    stats = CameraStats.objects.get(subtask=subtask)
    assert stats.started_at == before.started_at
    assert stats.frames_analysed >= before.frames_analysed
    # The second job continues after the checkpoint written with the row: every frame counted
    # once (frames the dead job analysed after its last heartbeat are analysed and counted again).
    assert samples <= stats.frames_analysed < samples + 25 * 3
    assert stats.detections == stats.frames_analysed
    assert frames <= stats.frames_decoded < frames + 25 * 3


def test_a_runs_first_job_zeroes_the_row_at_once_and_a_later_job_continues_it(alice):
    """So that a re-dispatch before the first job's first heartbeat (a second attempt, which
    continues) does not continue the previous run's figures."""
    from analysis.observe import Observer, continues_run
    from subtasks.models import Subtask
    from tests.analysis_helpers import ready_task

    subtask = ready_task(alice, vchans=1, algo_type="2").subtasks.get()
    CameraStats.objects.create(subtask=subtask, frames_analysed=999, detections=999, events=3)
    Subtask.objects.filter(pk=subtask.pk).update(attempts=1)
    subtask.refresh_from_db()
    assert not continues_run(subtask, 0)
    Observer(subtask.pk, "n1", 5.0, clips=False, continues=continues_run(subtask, 0))
    row = CameraStats.objects.get(subtask=subtask)
    assert (row.frames_analysed, row.detections, row.events, row.node_name) == (0, 0, 0, "n1")

    CameraStats.objects.filter(subtask=subtask).update(frames_analysed=7, detections=5, reconnects=2)
    Subtask.objects.filter(pk=subtask.pk).update(attempts=2)  # the reaper dispatched it again
    subtask.refresh_from_db()
    assert continues_run(subtask, 0)
    later = Observer(subtask.pk, "n2", 5.0, clips=False, continues=True)
    assert (later.frames_analysed, later.reconnects) == (7, 2)
    pipeline = type("P", (), {"detections": 1, "inference_s": 0.5, "detectors": []})()
    assert later.figures(pipeline)["detections"] == 6


def test_a_streams_first_attempt_handed_back_or_dispatched_again_continues_its_counters(alice):
    """A draining node's hand-back and the admin's "dispatch again" do not count an attempt, and a
    stream has no frame to resume from: its counters go on all the same."""
    from analysis.jobs import resume_point
    from analysis.observe import Observer, continues_run
    from subtasks.models import Subtask
    from tests.analysis_helpers import ready_task

    subtask = ready_task(alice, vchans=1, algo_type="2").subtasks.get()
    Subtask.objects.filter(pk=subtask.pk).update(source_url="rtsp://127.0.0.1:8554/live", attempts=1)
    subtask.refresh_from_db()
    assert not continues_run(subtask, resume_point(subtask))  # the run's first job
    Observer(subtask.pk, "n1", 5.0, clips=False, continues=False)
    CameraStats.objects.filter(subtask=subtask).update(frames_analysed=40, detections=3, reconnects=1)
    # Its heartbeats wrote the stream's frame as the checkpoint; then it was handed back, attempt 1 still.
    Subtask.objects.filter(pk=subtask.pk).update(checkpoint_frame=40)
    subtask.refresh_from_db()
    assert resume_point(subtask) == 0  # a stream goes on live
    assert continues_run(subtask, resume_point(subtask))
    later = Observer(subtask.pk, "n2", 5.0, clips=False, continues=continues_run(subtask, 0))
    assert (later.frames_analysed, later.reconnects) == (40, 1)
    pipeline = type("P", (), {"detections": 2, "inference_s": 0.1, "detectors": []})()
    assert later.figures(pipeline)["detections"] == 5
