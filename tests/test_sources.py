"""Sources (analysis/sources.py): sampling, resuming, corrupt and missing files, dead streams,
the decode-ahead thread, and pictures (decoding pushed bytes, pulling a listing over http)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from analysis.sources import (
    NotAnImage,
    Prefetcher,
    SourceCorrupt,
    SourceMissing,
    SourceUnavailable,
    VideoSource,
    decode_picture,
    is_sampled,
    iter_pictures,
    picture_links,
    sample_step,
)

BIKES = Path(__file__).parent / "data" / "bikes.mp4"  # 250 frames, 640×272, 25 fps


def frames_of(source: VideoSource) -> list:
    with source:
        return list(source.frames())


@pytest.mark.parametrize(("fps", "count", "second"), [(5, 50, 5), (2, 20, 13), (25, 250, 1), (100, 250, 1)])
def test_sampling_at_the_analysis_rate(fps, count, second):
    source = VideoSource(BIKES, fps=fps)
    frames = frames_of(source)
    assert len(frames) == count == source.total_samples
    assert (source.native_fps, source.frame_count, source.width, source.height) == (25.0, 250, 640, 272)
    assert frames[1].index == second
    assert frames[0].image.shape == (272, 640, 3)
    assert frames[-1].offset_s == pytest.approx(frames[-1].index / 25)
    assert source.progress == 1.0


def test_the_default_rate_comes_from_the_settings(settings):
    settings.VIAS_DEFAULT_FPS = 5
    assert VideoSource(BIKES).analysis_fps == 5.0


def test_sampling_is_counted_from_frame_zero():
    step = sample_step(25, 2)
    assert [i for i in range(30) if is_sampled(i, step)] == [0, 13, 25]
    assert all(is_sampled(i, sample_step(10, 20)) for i in range(10))


def test_resuming_gives_the_same_frames_as_the_first_run():
    full = {f.index: f.image for f in frames_of(VideoSource(BIKES, fps=5))}
    resumed = frames_of(VideoSource(BIKES, fps=5, start_frame=101))
    assert [f.index for f in resumed][:3] == [105, 110, 115] and len(resumed) == 29
    assert all(np.array_equal(full[f.index], f.image) for f in resumed)


def test_a_garbage_file_is_corrupt(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64)
    with pytest.raises(SourceCorrupt):
        VideoSource(bad).open()


def test_a_truncated_file_is_corrupt(tmp_path):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(BIKES.read_bytes()[: BIKES.stat().st_size // 2])
    with pytest.raises(SourceCorrupt):
        frames_of(VideoSource(cut, fps=5))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(SourceMissing, match="no video file"):
        VideoSource(tmp_path / "nothing.mp4").open()
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(SourceCorrupt, match="empty"):
        VideoSource(tmp_path / "empty.mp4").open()


def test_a_stream_that_cannot_be_reached_is_unavailable_within_the_timeout(loopback_sources):
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"rtsp://user:\*\*\*@127.0.0.1:9/"):
        VideoSource("rtsp://user:secret@127.0.0.1:9/live", open_timeout_s=2, read_timeout_s=2).open()
    assert time.monotonic() - started < 10


def test_the_decode_ahead_thread_delivers_in_order_and_hands_errors_on():
    source = VideoSource(BIKES, fps=5).open()
    with Prefetcher(source.frames(), size=2) as frames:
        assert [f.index for f in frames] == list(range(0, 250, 5))

    def broken():
        yield 1
        raise SourceUnavailable("gone")

    seen = []
    with pytest.raises(SourceUnavailable, match="gone"):
        for item in Prefetcher(broken()):
            seen.append(item)
    assert seen == [1]


def test_closing_the_decode_ahead_thread_stops_it():
    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    prefetcher = Prefetcher(endless(), size=3)
    for item in prefetcher:
        if item == 5:
            break
    assert not prefetcher._thread.is_alive()
    assert len(produced) <= 5 + 1 + 3 + 1  # at most the queue's worth ahead


# ---- pictures ------------------------------------------------------------------------------------


def png(colour: int = 200, size: int = 16) -> bytes:
    ok, data = cv2.imencode(".png", np.full((size, size, 3), colour, np.uint8))
    assert ok
    return data.tobytes()


def test_a_pushed_picture_is_decoded_and_other_bytes_refused():
    image = decode_picture(png(size=20))
    assert image.shape == (20, 20, 3)
    for data in (b"", b"hello world", b"<svg></svg>", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20):
        with pytest.raises(NotAnImage):
            decode_picture(data)
    with pytest.raises(NotAnImage, match="limit"):
        decode_picture(png(), max_bytes=10)


def test_picture_links_from_json_and_html():
    base = "http://cam.example/pics/"
    assert picture_links(b'["a.jpg", "http://x.example/b.png"]', "application/json", base) == [
        "http://cam.example/pics/a.jpg",
        "http://x.example/b.png",
    ]
    assert picture_links(b'{"images": ["/c.jpg", "file:///etc/passwd"]}', "application/json", base) == [
        "http://cam.example/c.jpg"
    ]
    html = b'<a href="1.JPG">1</a> <img src="sub/2.png?x=1"> <a href="notes.txt">n</a>'
    assert picture_links(html, "text/html", base) == [
        "http://cam.example/pics/1.JPG",
        "http://cam.example/pics/sub/2.png?x=1",
    ]


@pytest.fixture
def picture_server(loopback_sources):
    files = {
        "/list.json": (json.dumps(["a.png", "b.png", "broken.png"]).encode(), "application/json"),
        "/a.png": (png(10), "image/png"),
        "/b.png": (png(250), "image/png"),
        "/broken.png": (b"not a picture", "image/png"),
        "/single": (png(99), "image/png"),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body, kind = files.get(self.path, (b"", ""))
            self.send_response(200 if kind else 404)
            self.send_header("Content-Type", kind or "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_pulling_pictures_from_a_listing_once_each(picture_server):
    seen: set[str] = set()
    pictures = list(iter_pictures(f"{picture_server}/list.json", seen=seen, timeout_s=5))
    assert [p.name.rsplit("/", 1)[1] for p in pictures] == ["a.png", "b.png"]  # broken.png skipped
    assert int(pictures[1].image[0, 0, 0]) == 250
    assert list(iter_pictures(f"{picture_server}/list.json", seen=seen, timeout_s=5)) == []
    [single] = iter_pictures(f"{picture_server}/single", timeout_s=5)
    assert int(single.image[0, 0, 0]) == 99


def test_a_picture_source_that_does_not_answer_is_unavailable(loopback_sources):
    with pytest.raises(SourceUnavailable):
        list(iter_pictures("http://127.0.0.1:9/list.json", timeout_s=2))
    with pytest.raises(SourceUnavailable, match="only http"):
        list(iter_pictures("ftp://127.0.0.1/list"))


def test_waiting_for_a_stalled_source_still_runs_the_callback():
    gate = threading.Event()

    def stalled():
        yield 1
        gate.wait(5)
        yield 2

    calls = []

    def on_wait():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # e.g. the job's StopNow

    seen = []
    with pytest.raises(KeyboardInterrupt):
        for item in Prefetcher(stalled(), on_wait=on_wait, wait_s=0.05):
            seen.append(item)
    gate.set()
    assert seen == [1] and len(calls) == 3
