"""Throughput paths of detection on tiny ONNX models, CPU provider: rectangular inputs, batch
buffers, the staged BatchingDetector, float16 handling, IO binding and the GPU session options
(analysis/detect/preprocess.py, runtime.py, gpu.py, export.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import onnxruntime as ort
import pytest

from analysis.detect import BatchingDetector, ClassSpec, DetectorSpec, YoloDetector, gpu, yolo
from analysis.detect.export import dynamic_input_size, float16_variant
from analysis.detect.preprocess import BatchBuffers, BufferPool, InputShape
from analysis.detect.providers import CPU, CUDA, TENSORRT
from tests.onnx_models import black, build_model, white, yolov8_output

BODY = ((0, ClassSpec("person", "body")),)
# One box in the middle of a 64×32 input (centre 32, 16; 16×8), score 0.9 on a white frame.
CENTRE = [(32.0, 16.0, 16.0, 8.0, [0.9])]


def spec(path, **extra) -> DetectorSpec:
    values = dict(name="tiny", path=str(path), classes=BODY, input_width=64, input_height=64)
    values.update(extra)
    return DetectorSpec(**values)


@pytest.fixture
def rect_model(tmp_path):
    """Dynamic batch, height and width (the rewritten person model's signature)."""
    return build_model(
        tmp_path / "rect.onnx", yolov8_output(CENTRE, classes=1), batch=None, dynamic_size=True
    )


# ---- input sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ((640, 272), (640, 288)),
        ((272, 640), (288, 640)),
        ((1920, 1080), (640, 384)),
        ((640, 640), (640, 640)),
    ],
)
def test_a_dynamic_model_gets_the_smallest_stride_aligned_rectangle(frame, expected):
    assert InputShape(640, 640, dynamic=True).size_for(*frame) == expected


def test_a_fixed_model_keeps_its_square():
    assert InputShape(640, 640, dynamic=False).size_for(640, 272) == (640, 640)


def test_batch_buffers_give_what_letterbox_and_blob_give_and_are_reused():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (27, 64, 3), np.uint8), rng.integers(0, 256, (40, 50, 3), np.uint8)]
    buffers = BatchBuffers()
    blob, boxes = buffers.prepare(frames, 64, 32)
    expected = yolo.to_blob([yolo.letterbox(f, 64, 32)[0] for f in frames])
    assert blob.shape == (2, 3, 32, 64) and blob.dtype == np.float32
    np.testing.assert_allclose(blob, expected, atol=1e-6)
    assert boxes == [yolo.letterbox(f, 64, 32)[1] for f in frames]
    again, _ = buffers.prepare(frames[:1], 64, 32)
    assert np.shares_memory(again, blob)  # the same memory, not a new allocation per batch
    other, _ = buffers.prepare(frames, 32, 32)  # another input size has its own memory...
    assert not np.shares_memory(other, blob)
    assert np.shares_memory(buffers.prepare(frames, 64, 32)[0], blob)  # ...and the first is kept
    half, _ = BatchBuffers(np.float16).prepare(frames, 64, 32)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float32), expected, atol=2e-3)


def test_a_buffer_pool_hands_each_buffer_to_one_holder_at_a_time():
    pool = BufferPool(size=2)
    first, second = pool.take(), pool.take()
    assert first is not second
    pool.give(first)
    assert pool.take() is first


# ---- rectangular inputs through the detector ---------------------------------------------------------


def test_a_wide_frame_runs_as_a_rectangle_and_boxes_map_back(rect_model):
    detector = YoloDetector(spec(rect_model))
    frame = white(640, 272)  # scale 0.1 → 64×27, padded to 64×32: 2 px grey on top
    assert detector.input_size(frame) == (64, 32)
    [found] = detector.detect_batch([frame])
    # The tiny model scales its score by the input's mean: 27 white rows and 5 grey (114) ones,
    # where the 64×64 square would have had 37 grey rows.
    assert len(found) == 1 and found[0].score == pytest.approx(0.9 * (27 + 5 * 114 / 255) / 32, rel=1e-4)
    # input box (24, 12, 40, 20) − top pad 2, ÷ 0.1
    assert found[0].box == pytest.approx((240.0, 100.0, 400.0, 180.0), abs=0.01)


def test_frames_of_several_sizes_in_one_call_are_grouped_and_keep_their_order(rect_model):
    detector = YoloDetector(spec(rect_model))
    frames = [white(640, 272), black(640, 272), white(64, 64), white(640, 272)]
    results = detector.detect_batch(frames)
    assert [len(r) for r in results] == [1, 0, 1, 1]
    assert results[2][0].box == pytest.approx((24.0, 12.0, 40.0, 20.0))  # 64×64 input, no scale


def test_fp16_in_the_registry_over_a_float32_file_runs_float32(rect_model):
    detector = YoloDetector(spec(rect_model, fp16=True))
    assert not detector.fp16 and detector.input_dtype == np.float32
    assert len(detector.detect(white(64, 32))) == 1


def test_io_binding_on_the_cpu_gives_the_same_detections(rect_model, monkeypatch):
    plain = YoloDetector(spec(rect_model))
    monkeypatch.setenv("VIAS_IO_BINDING", "1")
    bound = YoloDetector(spec(rect_model))
    assert bound.io_binding and not plain.io_binding
    frames = [white(640, 272), black(100, 50), white(64, 64)]
    assert bound.detect_batch(frames) == plain.detect_batch(frames)
    assert bound.detect_batch(frames) == plain.detect_batch(frames)  # the kept input buffers again
    assert sorted(bound._local.device_inputs) == [((1, 3, 64, 64), "<f4"), ((2, 3, 32, 64), "<f4")]


# ---- the staged batch pipeline -----------------------------------------------------------------------


class SlowInference(YoloDetector):
    """Records when each stage ran, and makes inference slow enough for the stages to overlap."""

    def __init__(self, *args, infer_s: float = 0.05, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.infer_s = infer_s
        self.log: list[tuple[str, float, float]] = []
        self.fail_next = False

    def preprocess(self, frames, buffers=None):
        started = time.perf_counter()
        result = super().preprocess(frames, buffers)
        self.log.append(("pre", started, time.perf_counter()))
        return result

    def infer(self, blob):
        started = time.perf_counter()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("inference broke")
        time.sleep(self.infer_s)
        output = super().infer(blob)
        self.log.append(("infer", started, time.perf_counter()))
        return output


def streams(shared, count: int, frames_each: int, frame=None) -> dict[int, list[int]]:
    results: dict[int, list[int]] = {}

    def stream(n: int) -> None:
        results[n] = [
            len(shared.detect(frame if frame is not None else white(640, 272))[0:])
            for _ in range(frames_each)
        ]

    threads = [threading.Thread(target=stream, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_preprocessing_of_the_next_batch_overlaps_inference(rect_model):
    inner = SlowInference(spec(rect_model))
    shared = BatchingDetector(inner, max_batch=2, max_wait_s=0.001)
    try:
        assert streams(shared, 4, 5) == {n: [1] * 5 for n in range(4)}
    finally:
        shared.close()
    infers = [(start, end) for stage, start, end in inner.log if stage == "infer"]
    pres = [start for stage, start, _end in inner.log if stage == "pre"]
    overlapped = sum(any(start < pre < end for pre in pres) for start, end in infers)
    assert overlapped >= 1  # a batch was being prepared while another one ran
    assert shared.frames == 20 and shared.batches < 20


def test_a_full_batch_closes_without_waiting_for_the_deadline(rect_model):
    shared = BatchingDetector(YoloDetector(spec(rect_model)), max_batch=4, max_wait_s=30)
    results: list = []
    try:
        threads = [
            threading.Thread(target=lambda: results.append(shared.detect(white(64, 32)))) for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)  # a hang guard far below the 30 s deadline
        assert len(results) == 4 and shared.batches == 1
    finally:
        shared.close()


def test_the_deadline_is_not_moved_by_requests_that_keep_coming(rect_model):
    """A batch closes max_wait after its first frame even when others arrive more often than
    that; a deadline reset per request would hold the first caller until the others stop."""
    shared = BatchingDetector(YoloDetector(spec(rect_model)), max_batch=10_000, max_wait_s=0.2)
    feeding = threading.Event()
    feeding.set()
    answered_while_feeding: list[bool] = []

    def feed() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not answered_while_feeding:
            threading.Thread(target=shared.detect, args=(white(64, 32),), daemon=True).start()
            time.sleep(0.02)
        feeding.clear()

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        shared.detect(white(64, 32))
        answered_while_feeding.append(feeding.is_set())
    finally:
        feeder.join(timeout=10)
        shared.close()
    assert answered_while_feeding == [True]


def test_an_inference_error_reaches_every_caller_of_that_batch_only(rect_model):
    inner = SlowInference(spec(rect_model), infer_s=0.0)
    shared = BatchingDetector(inner, max_batch=8, max_wait_s=0.01)
    try:
        inner.fail_next = True
        with pytest.raises(RuntimeError, match="inference broke"):
            shared.detect(white(64, 32))
        assert len(shared.detect(white(64, 32))) == 1  # the pipeline still runs
    finally:
        shared.close()


def test_a_detector_without_stages_runs_whole(rect_model):
    class Whole:
        name = "whole"
        categories = frozenset({"face"})

        def detect_batch(self, frames):
            return [[] if f.mean() < 128 else ["found"] for f in frames]

    shared = BatchingDetector(Whole(), max_batch=4, max_wait_s=0.01)
    try:
        assert shared.detect_batch([white(8, 8), black(8, 8)]) == [["found"], []]
    finally:
        shared.close()


def test_streams_of_two_frame_sizes_share_one_batcher(rect_model):
    shared = BatchingDetector(YoloDetector(spec(rect_model)), max_batch=8, max_wait_s=0.005)
    try:
        wide = streams(shared, 3, 4, frame=white(640, 272))
        square = streams(shared, 3, 4, frame=white(64, 64))
    finally:
        shared.close()
    assert wide == square == {n: [1] * 4 for n in range(3)}


# ---- the GPU path's pieces -----------------------------------------------------------------------------


def test_cuda_and_tensorrt_get_explicit_options(tmp_path, monkeypatch):
    monkeypatch.setenv("VIAS_CUDA_DEVICE", "1")
    monkeypatch.setenv("VIAS_TRT_CACHE", str(tmp_path / "trt"))
    cuda = gpu.provider_options(CUDA)
    assert cuda["device_id"] == "1" and cuda["cudnn_conv_algo_search"] == "HEURISTIC"
    assert cuda["arena_extend_strategy"] == "kSameAsRequested"
    trt = gpu.provider_options(TENSORRT)
    assert trt["trt_engine_cache_enable"] == "True" and trt["trt_engine_cache_path"] == str(tmp_path / "trt")
    assert (tmp_path / "trt").is_dir() and trt["trt_fp16_enable"] == "True"
    assert gpu.provider_options(CPU) == {}


def test_the_float16_variant_is_loaded_on_a_gpu_only(tmp_path, monkeypatch):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert gpu.model_file(model, [CUDA, CPU]) == model  # no variant made
    gpu.fp16_path(model).write_bytes(b"y")
    assert gpu.fp16_path(model).name == "m.fp16.onnx"
    assert gpu.model_file(model, [CUDA, CPU]).name == "m.fp16.onnx"
    assert gpu.model_file(model, [TENSORRT, CUDA, CPU]).name == "m.fp16.onnx"
    assert gpu.model_file(model, [CPU]) == model
    monkeypatch.setenv("VIAS_FP16", "0")
    assert gpu.model_file(model, [CUDA, CPU]) == model


def test_the_float16_variant_of_a_model_takes_float16_and_finds_the_same(rect_model, tmp_path):
    data = float16_variant(rect_model.read_bytes())
    assert data is not None
    half = tmp_path / "rect.fp16.onnx"
    half.write_bytes(data)
    session = ort.InferenceSession(str(half), providers=[CPU])
    assert session.get_inputs()[0].type == "tensor(float16)"
    detector = YoloDetector(spec(half))
    assert detector.fp16
    [found] = detector.detect_batch([white(640, 272)])
    assert found[0].box == pytest.approx((240.0, 100.0, 400.0, 180.0), abs=0.5)


def test_the_size_rewrite_refuses_a_graph_without_an_anchor_grid(tmp_path):
    fixed = build_model(tmp_path / "fixed.onnx", yolov8_output(CENTRE, classes=1), width=64, height=64)
    assert dynamic_input_size(fixed.read_bytes()) is None


# ---- how many subtasks one process hosts -------------------------------------------------------------


def test_one_process_hosts_the_whole_node_when_a_gpu_is_usable(settings, monkeypatch):
    from analysis import hosting
    from analysis.detect import providers

    settings.VIAS_SUBTASKS_PER_WORKER = 0  # the default: the hardware decides
    assert hosting.per_worker() == (
        1 if not gpu.on_gpu(providers.usable_providers()) else hosting.per_worker()
    )
    monkeypatch.setattr(providers, "usable_providers", lambda: [CUDA, CPU])  # as on a GPU node
    monkeypatch.setenv("VIAS_NODE_CAPACITY", "16")
    assert hosting.per_worker() == 16
    monkeypatch.setattr(providers, "usable_providers", lambda: [CPU])
    assert hosting.per_worker() == 1
    settings.VIAS_SUBTASKS_PER_WORKER = 4  # an explicit setting wins
    assert hosting.per_worker() == 4


def test_tensorrt_gets_one_profile_for_every_batch_and_aspect(rect_model, tmp_path, monkeypatch):
    monkeypatch.setenv("VIAS_TRT_CACHE", str(tmp_path / "trt"))
    options = gpu.provider_options(TENSORRT, rect_model)
    assert options["trt_profile_min_shapes"] == "images:1x3x32x32"
    assert options["trt_profile_max_shapes"] == "images:32x3x640x640"
    fixed = build_model(tmp_path / "fixed.onnx", yolov8_output(CENTRE, classes=1), batch=1)
    assert "trt_profile_min_shapes" not in gpu.provider_options(TENSORRT, fixed)


def test_while_inference_is_busy_with_a_batch_queued_the_open_batch_grows(rect_model):
    """Six callers one after another (20 ms apart) against an inference of 0.5 s: the first runs
    alone, the second is prepared and waits, and the other four join one open batch instead of
    queueing four batches of one."""
    inner = SlowInference(spec(rect_model), infer_s=0.5)
    shared = BatchingDetector(inner, max_batch=64, max_wait_s=0.001)
    threads = []
    try:
        for _ in range(6):
            threads.append(threading.Thread(target=shared.detect, args=(white(64, 32),)))
            threads[-1].start()
            time.sleep(0.02)
        for thread in threads:
            thread.join(timeout=30)
        assert shared.frames == 6
        assert shared.batches <= 3, shared.batches
    finally:
        shared.close()


# ---- a running job's announcements ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_announcements_from_a_plain_thread_arrive_in_order_over_one_connection(settings):
    """What a job's thread announces (progress once a second) reaches a group's member in order,
    and 20 announcements of two groups each open one Redis connection, not one per call (each
    `async_to_sync` from a plain thread started a loop, and channels_redis a connection per loop)."""
    import redis
    from asgiref.sync import async_to_sync
    from channels.layers import channel_layers, get_channel_layer

    from tests.ws_helpers import PrivateRedis, point_settings_at
    from vias.lib.announce import announce

    server = PrivateRedis()
    server.start()
    try:
        point_settings_at(settings, server.url)
        channel_layers.backends.clear()
        layer = get_channel_layer()
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)("task.t-job", channel)
        stats = redis.Redis.from_url(server.url)
        opened = stats.info("stats")["total_connections_received"]

        def job() -> None:
            for step in range(20):
                announce("p-job", "progress", {"progress": float(step)}, task_id="t-job")

        worker = threading.Thread(target=job)
        worker.start()
        worker.join(timeout=120)
        assert not worker.is_alive()
        new_connections = stats.info("stats")["total_connections_received"] - opened

        async def drain() -> list[float]:
            return [(await layer.receive(channel))["progress"] for _ in range(20)]

        received = async_to_sync(drain)()
        assert received == [float(step) for step in range(20)]
        assert new_connections <= 2, new_connections
        stats.close()
    finally:
        channel_layers.backends.clear()
        server.stop()
