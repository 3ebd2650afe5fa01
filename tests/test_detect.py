"""Detection (analysis/detect): letterbox, YOLOv8/YOLOv5 decoding, NMS, class mapping, filters,
batching, sessions, providers and the registry, on tiny ONNX models built in the tests."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from analysis.detect import (
    BatchingDetector,
    ClassSpec,
    DetectorSpec,
    MissingModel,
    YoloDetector,
    capabilities,
    detectors_for,
    get_session,
    runtime,
    usable_providers,
    yolo,
)
from analysis.detect import face as haar
from analysis.models import Detector
from tests.onnx_models import black, build_model, white, yolov5_output, yolov8_output

BODY_FALL = ((0, ClassSpec("Normal", "body")), (1, ClassSpec("Fall", "body", ("fall",))))


def spec(path, **extra) -> DetectorSpec:
    values = {
        "name": "tiny",
        "path": str(path),
        "input_width": 64,
        "input_height": 64,
        "classes": BODY_FALL,
        "score_threshold": 0.3,
        "nms_iou": 0.45,
    }
    values.update(extra)
    return DetectorSpec(**values)


def boxes_of(detections):
    return [tuple(round(v, 3) for v in d.box) for d in detections]


# ---- letterbox ---------------------------------------------------------------------------------


def test_letterbox_centres_the_resized_frame_and_maps_boxes_back():
    frame = np.zeros((64, 128, 3), np.uint8)  # 2:1, into a 64×64 input: scale 0.5, 16 px bars
    boxed, box = yolo.letterbox(frame, 64, 64)
    assert boxed.shape == (64, 64, 3)
    assert (box.scale, box.pad_x, box.pad_y) == (0.5, 0.0, 16.0)
    assert (boxed[:16] == yolo.PAD_VALUE).all() and (boxed[48:] == yolo.PAD_VALUE).all()
    assert (boxed[16:48] == 0).all()
    back = yolo.unletterbox(np.array([[24, 28, 40, 36], [-10, 0, 70, 70]], np.float32), box)
    assert back.tolist() == [[48, 24, 80, 40], [0, 0, 128, 64]]  # the second one clipped to the frame


def test_blob_is_rgb_nchw_in_0_to_1_and_float16_on_request():
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[..., 2] = 255  # red in BGR
    blob = yolo.to_blob([frame])
    assert blob.shape == (1, 3, 4, 4) and blob.dtype == np.float32
    assert blob[0, 0].max() == 1.0 and blob[0, 2].max() == 0.0  # channel 0 is red
    assert yolo.to_blob([frame], fp16=True).dtype == np.float16


# ---- YOLOv8 --------------------------------------------------------------------------------------


def test_yolov8_boxes_map_back_to_frame_pixels_exactly(tmp_path):
    output = yolov8_output([(32, 32, 16, 8, [0.9, 0.0]), (10, 40, 4, 4, [0.1, 0.2])], classes=2)
    detector = YoloDetector(spec(build_model(tmp_path / "m.onnx", output, scale_by_mean=False)))
    found = detector.detect(np.zeros((64, 128, 3), np.uint8))
    assert boxes_of(found) == [(48.0, 24.0, 80.0, 40.0)]  # the second anchor is under the threshold
    assert found[0].category == "body" and found[0].label == "Normal" and found[0].attributes == ()
    assert found[0].score == pytest.approx(0.9)
    assert found[0].detector == "tiny"


def test_nms_suppresses_overlaps_of_one_class_only(tmp_path):
    output = yolov8_output(
        [
            (32, 32, 20, 20, [0.8, 0.0]),
            (33, 33, 20, 20, [0.9, 0.0]),  # same class, IoU ≈ 0.82: the 0.8 one goes
            (32, 32, 20, 20, [0.0, 0.7]),  # other class on the same spot: kept
            (10, 10, 6, 6, [0.6, 0.0]),  # same class, elsewhere: kept
        ],
        classes=2,
    )
    detector = YoloDetector(spec(build_model(tmp_path / "m.onnx", output, scale_by_mean=False)))
    found = detector.detect(np.zeros((64, 64, 3), np.uint8))
    assert [(d.label, round(d.score, 2)) for d in found] == [("Normal", 0.9), ("Fall", 0.7), ("Normal", 0.6)]
    assert found[1].attributes == ("fall",) and found[1].category == "body"
    assert boxes_of(found)[0] == (23.0, 23.0, 43.0, 43.0)


def test_classes_of_one_meaning_compete_in_nms(tmp_path):
    """A car also scored as a truck (both `motor`, no attributes) is one box, the better one; a
    person on the same spot, or a `Fall` beside `Normal` (the test above), is not suppressed."""
    output = yolov8_output(
        [
            (32, 32, 20, 20, [0.0, 0.8, 0.0]),  # car
            (33, 33, 20, 20, [0.0, 0.0, 0.6]),  # truck on the same car: IoU ≈ 0.82, it goes
            (32, 32, 20, 20, [0.5, 0.0, 0.0]),  # a person there: kept
            (10, 10, 6, 6, [0.0, 0.0, 0.7]),  # a truck elsewhere: kept
        ],
        classes=3,
    )
    classes = (
        (0, ClassSpec("person", "body")),
        (1, ClassSpec("car", "motor")),
        (2, ClassSpec("truck", "motor")),
    )
    path = build_model(tmp_path / "m.onnx", output, scale_by_mean=False)
    found = YoloDetector(spec(path, classes=classes)).detect(np.zeros((64, 64, 3), np.uint8))
    assert [(d.label, round(d.score, 2)) for d in found] == [("car", 0.8), ("truck", 0.7), ("person", 0.5)]


def test_unmapped_classes_and_unwanted_categories_are_dropped(tmp_path):
    output = yolov8_output(
        [(16, 16, 8, 8, [0.9, 0.0, 0.0]), (48, 48, 8, 8, [0.0, 0.0, 0.9]), (40, 16, 8, 8, [0.0, 0.9, 0.0])],
        classes=3,
    )
    path = build_model(tmp_path / "m.onnx", output, scale_by_mean=False)
    classes = ((0, ClassSpec("person", "body")), (1, ClassSpec("car", "motor")))  # class 2: not mapped
    both = YoloDetector(spec(path, classes=classes)).detect(np.zeros((64, 64, 3), np.uint8))
    assert sorted(d.category for d in both) == ["body", "motor"]
    only_cars = YoloDetector(spec(path, classes=classes), categories={"motor"})
    assert [d.label for d in only_cars.detect(np.zeros((64, 64, 3), np.uint8))] == ["car"]


def test_per_category_filters(tmp_path):
    output = yolov8_output(
        [
            (8, 8, 4, 4, [0.9, 0.0]),  # 16 px²: under min_area
            (32, 32, 20, 10, [0.9, 0.0]),  # aspect 2.0: over max_aspect
            (50, 40, 10, 20, [0.5, 0.0]),  # fine but score 0.5 < min_score 0.6
            (20, 50, 10, 12, [0.8, 0.0]),  # kept
            (50, 10, 4, 4, [0.0, 0.25]),  # under the detector threshold 0.3, but no filter for it
        ],
        classes=2,
    )
    path = build_model(tmp_path / "m.onnx", output, scale_by_mean=False)
    filters = (("body", (("max_aspect", 1.5), ("min_area", 50.0), ("min_score", 0.6))),)
    found = YoloDetector(spec(path, filters=filters)).detect(np.zeros((64, 64, 3), np.uint8))
    assert boxes_of(found) == [(15.0, 44.0, 25.0, 56.0)]


def test_a_filter_can_lower_a_category_threshold(tmp_path):
    output = yolov8_output([(32, 32, 10, 10, [0.2, 0.0])], classes=2)
    path = build_model(tmp_path / "m.onnx", output, scale_by_mean=False)
    assert YoloDetector(spec(path)).detect(np.zeros((64, 64, 3), np.uint8)) == []
    lowered = YoloDetector(spec(path, filters=(("body", (("min_score", 0.1),)),)))
    assert len(lowered.detect(np.zeros((64, 64, 3), np.uint8))) == 1


# ---- YOLOv5, fp16, batches ------------------------------------------------------------------------


def test_yolov5_confidence_is_objectness_times_class_score(tmp_path):
    output = yolov5_output(
        [(32, 32, 16, 16, 0.9, [0.5, 1.0]), (10, 10, 4, 4, 0.2, [1.0, 0.0])],  # 0.9 (Fall), 0.2: too low
        classes=2,
    )
    path = build_model(tmp_path / "v5.onnx", output, head="yolov5", scale_by_mean=False)
    found = YoloDetector(spec(path, head="yolov5")).detect(np.zeros((64, 64, 3), np.uint8))
    assert [(d.label, round(d.score, 3)) for d in found] == [("Fall", 0.9)]
    assert boxes_of(found) == [(24.0, 24.0, 40.0, 40.0)]


def test_float16_input(tmp_path):
    output = yolov8_output([(32, 32, 16, 16, [0.9, 0.0])], classes=2)
    path = build_model(tmp_path / "h.onnx", output, fp16=True, scale_by_mean=False)
    detector = YoloDetector(spec(path, fp16=True))
    assert detector.fp16
    assert len(detector.detect(np.zeros((64, 64, 3), np.uint8))) == 1
    # The session's input type wins when the registry says otherwise.
    assert YoloDetector(spec(path, fp16=False)).fp16


@pytest.mark.parametrize("batch", [None, 1], ids=["dynamic-batch", "fixed-batch-1"])
def test_detect_batch_keeps_each_frame_its_own_result(tmp_path, batch):
    output = yolov8_output([(32, 32, 16, 16, [0.9, 0.0])], classes=2)
    path = build_model(tmp_path / "b.onnx", output, batch=batch)
    detector = YoloDetector(spec(path))
    assert detector.max_batch == (runtime.MAX_BATCH if batch is None else 1)
    results = detector.detect_batch([white(64, 64), black(64, 64), white(128, 128)])
    assert [len(r) for r in results] == [1, 0, 1]
    assert boxes_of(results[2]) == [(48.0, 48.0, 80.0, 80.0)]  # scale 0.5 → ×2
    assert results[0][0].score == pytest.approx(0.9)


def test_batching_detector_serves_threads_with_one_shared_session(tmp_path):
    output = yolov8_output([(32, 32, 16, 16, [0.9, 0.0])], classes=2)
    detector = YoloDetector(spec(build_model(tmp_path / "d.onnx", output, batch=None)))
    shared = BatchingDetector(detector, max_batch=8, max_wait_s=0.05)
    results: dict[int, list] = {}

    def stream(n: int) -> None:
        frames = [white(64, 64) if (n + i) % 2 == 0 else black(64, 64) for i in range(3)]
        results[n] = [len(r) for r in shared.detect_batch(frames)]

    threads = [threading.Thread(target=stream, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shared.close()
    assert results == {n: [1 - (n + i) % 2 for i in range(3)] for n in range(4)}
    assert shared.frames == 12 and shared.batches < 12  # requests were merged


def test_one_session_per_model_file(tmp_path):
    path = build_model(tmp_path / "s.onnx", yolov8_output([(32, 32, 8, 8, [0.9])], classes=1))
    assert get_session(path) is get_session(path)
    first, second = YoloDetector(spec(path)), YoloDetector(spec(path, name="again"))
    assert first.session is second.session


# ---- providers ------------------------------------------------------------------------------------


def test_providers_end_with_the_cpu_and_capabilities_describe_the_node(db):
    providers = usable_providers()
    assert providers[-1] == "CPUExecutionProvider"
    assert "TensorrtExecutionProvider" not in providers  # only when VIAS_TENSORRT=1
    caps = capabilities()
    assert caps["providers"] == providers
    assert isinstance(caps["gpu"], str) and "registry-entry" in caps["models"]


# ---- registry -------------------------------------------------------------------------------------


def register(name: str, path, classes: dict, priority: int = 0, enabled: bool = True) -> Detector:
    return Detector.objects.create(
        name=name,
        onnx_file=str(path),
        classes=classes,
        priority=priority,
        enabled=enabled,
        input_width=64,
        input_height=64,
    )


@pytest.fixture
def tiny_path(tmp_path, db):
    Detector.objects.all().delete()  # the suite's placeholder entry (tests/conftest.py)
    return build_model(tmp_path / "r.onnx", yolov8_output([(32, 32, 8, 8, [0.9, 0.9])], classes=2))


def test_detectors_for_picks_the_enabled_detector_with_the_highest_priority(db, tiny_path):
    register("low", tiny_path, {"0": {"label": "person", "category": "body"}}, priority=1)
    register("high", tiny_path, {"0": {"label": "person", "category": "body"}}, priority=5)
    register("off", tiny_path, {"0": {"label": "person", "category": "body"}}, priority=9, enabled=False)
    [chosen] = detectors_for(["body"])
    assert chosen.name == "high" and chosen.categories == {"body"}


def test_one_model_covering_two_categories_runs_once(db, tiny_path):
    register(
        "coco",
        tiny_path,
        {"0": {"label": "person", "category": "body"}, "1": {"label": "car", "category": "motor"}},
    )
    [chosen] = detectors_for(["body", "motor"])
    assert chosen.categories == {"body", "motor"}


def test_a_category_without_a_model_is_refused_with_its_name(db, tiny_path):
    register("people", tiny_path, {"0": {"label": "person", "category": "body"}})
    with pytest.raises(MissingModel, match="motor") as exc:
        detectors_for(["body", "motor"])
    assert exc.value.category == "motor"
    Detector.objects.all().delete()
    with pytest.raises(MissingModel, match="fetch_models"):
        detectors_for(["body"])


def test_a_registered_model_whose_file_is_gone_is_refused(db, tmp_path):
    register("ghost", tmp_path / "nothing.onnx", {"0": {"label": "person", "category": "body"}})
    with pytest.raises(MissingModel, match="no model file"):
        detectors_for(["body"])


def test_face_falls_back_to_the_haar_cascade(db):
    Detector.objects.all().delete()
    assert haar.available()  # the pinned OpenCV 4 wheel ships the cascade and its classifier
    [chosen] = detectors_for(["face"])
    assert chosen.name == haar.NAME
    assert chosen.detect(black(320, 240)) == []


def test_without_the_cascade_face_needs_a_model_and_says_so(db, monkeypatch):
    Detector.objects.all().delete()
    monkeypatch.setattr(haar, "available", lambda: False)  # as with OpenCV 5's wheels
    with pytest.raises(MissingModel, match="face") as exc:
        detectors_for(["face"])
    assert "Haar" in str(exc.value)


def test_a_registered_face_model_wins_over_the_fallback(db, tiny_path):
    register("faces", tiny_path, {"0": {"label": "face", "category": "face"}})
    [chosen] = detectors_for(["face"])
    assert chosen.name == "faces"
