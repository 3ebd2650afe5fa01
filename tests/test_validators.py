"""Field validators of the task core (tasks/validators.py): source URLs, base64 files, algo_args.

Source URLs reach FFmpeg through OpenCV, so everything that names a local file outside the
video store, or one of FFmpeg's own protocols, must be refused.
"""

from __future__ import annotations

import base64
import json
import math

import pytest
from django.core.exceptions import ValidationError

from tasks.choices import AlgoType
from tasks.validators import (
    ALGO_ARGS,
    decode_file_b64,
    resolve_video_path,
    validate_algo_args,
    validate_source_url,
    videos_dir,
)

# ---- source URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://192.168.9.155:8554/live",
        "rtsps://camera.example/stream?channel=1",
        "http://10.0.0.1/video.mjpg",
        "https://cdn.example/live/index.m3u8",
        "RTSP://CAMERA.EXAMPLE/live",
        "rtsp://admin:secret@10.0.0.1:554/Streaming/Channels/101",
        "http://[2001:db8::1]:8080/stream",
    ],
)
def test_stream_urls_are_accepted(url):
    validate_source_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "file:/etc/passwd",
        "file:etc/passwd",
        "FILE:///etc/passwd",
        "concat:a.mp4|/etc/passwd",
        "concat:rtsp://a/x|file:///etc/passwd",
        "subfile:,,start,0,end,0,,:/etc/passwd",
        "subfile,,start,0,end,0,,:/etc/passwd",
        "pipe:0",
        "pipe:",
        "fd:3",
        "data:text/plain;base64,SGVsbG8=",
        "data:,hello",
        "async:file:///etc/passwd",
        "crypto+file:///etc/passwd",
        "cache:http://a/b",
        "tcp://10.0.0.1:1234",
        "udp://10.0.0.1:1234",
        "ftp://example.com/a.mp4",
        "gopher://example.com/",
        "javascript:alert(1)",
        "C:/videos/a.mp4",
        "c:\\videos\\a.mp4",
    ],
)
def test_other_schemes_and_protocols_are_refused(url):
    with pytest.raises(ValidationError):
        validate_source_url(url)


@pytest.mark.parametrize(
    "url",
    ["rtsp://", "rtsp:///live", "http://", "https:///etc/passwd", "http:////etc/passwd", "rtsp://:554/live"],
)
def test_stream_url_without_host_is_refused(url):
    with pytest.raises(ValidationError):
        validate_source_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "/etc/passwd",
        "/",
        "//server/share/a.mp4",
        "../secret.mp4",
        "../../../../etc/passwd",
        "clips/../../secret.mp4",
        "clips/../../../etc/passwd",
        "..",
        ".",
        "",
        " ",
        " rtsp://a/b",
        "rtsp://a/b ",
        "rtsp://a/b\n",
        "a.mp4\x00.txt",
        "clips\\..\\..\\secret.mp4",
    ],
)
def test_paths_outside_the_video_store_are_refused(url):
    with pytest.raises(ValidationError):
        validate_source_url(url)


@pytest.mark.parametrize(
    "path", ["a.mp4", "clips/2024/a.mp4", "./a.mp4", "clips/../a.mp4", "not-there-yet.mkv"]
)
def test_relative_paths_inside_the_video_store_are_accepted(path):
    validate_source_url(path)
    assert videos_dir().resolve() in resolve_video_path(path).parents


def test_video_store_is_under_data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    assert videos_dir() == tmp_path / "videos"
    assert resolve_video_path("a/b.mp4") == (tmp_path / "videos" / "a" / "b.mp4").resolve()


def test_symlink_out_of_the_video_store_is_refused(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    store = tmp_path / "videos"
    store.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"x")
    (store / "escape").symlink_to(outside)
    (store / "inside.mp4").write_bytes(b"x")
    validate_source_url("inside.mp4")
    with pytest.raises(ValidationError, match="leaves the video store"):
        validate_source_url("escape/secret.mp4")


def test_messages_say_what_is_wrong():
    with pytest.raises(ValidationError, match="scheme file: is not allowed"):
        validate_source_url("file:///etc/passwd")
    with pytest.raises(ValidationError, match="has no host"):
        validate_source_url("rtsp:///live")
    with pytest.raises(ValidationError, match="leaves the video store"):
        validate_source_url("../x.mp4")
    with pytest.raises(ValidationError, match="relative to the video store"):
        validate_source_url("/etc/passwd")


# ---- base64 files ----------------------------------------------------------------------------------


def test_decode_file_b64_round_trips_bytes():
    data = bytes(range(256)) * 4
    assert decode_file_b64(base64.b64encode(data).decode()) == data


def test_decode_file_b64_ignores_line_breaks():
    encoded = base64.encodebytes(b"x" * 200).decode()  # MIME style: a newline every 76 characters
    assert "\n" in encoded
    assert decode_file_b64(encoded) == b"x" * 200


@pytest.mark.parametrize(
    "value",
    ["not base64!", "YQ", "YQ=", "Y===", "YWJj*", "YWJj\x00", "ŸŸŸŸ", "-_-_"],
)
def test_decode_file_b64_refuses_invalid_base64(value):
    with pytest.raises(ValidationError, match="not valid base64"):
        decode_file_b64(value)


@pytest.mark.parametrize("value", [None, 42, b"YWJj", ["YWJj"], {"b64": "YWJj"}])
def test_decode_file_b64_refuses_non_strings(value):
    with pytest.raises(ValidationError, match="base64 string"):
        decode_file_b64(value)


def test_decode_file_b64_size_cap(settings):
    settings.VIAS_MAX_STORE_CONF_BYTES = 30
    assert decode_file_b64(base64.b64encode(b"x" * 30).decode()) == b"x" * 30
    with pytest.raises(ValidationError, match="over the limit of 30 bytes"):
        decode_file_b64(base64.b64encode(b"x" * 31).decode())
    # Far too long is refused before any decoding.
    with pytest.raises(ValidationError, match="over the limit"):
        decode_file_b64("A" * 10_000)


# ---- algo_args ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algo_type", "args"),
    [
        (AlgoType.TRAFFIC, {}),
        (AlgoType.TRAFFIC, {"fps": 25, "min_score": 0.5, "speed_limit_kmh": 60, "min_track_frames": 3}),
        (AlgoType.TRAFFIC, {"fps": 0.1, "min_score": 0, "speed_limit_kmh": 300.0, "min_track_frames": 1000}),
        (AlgoType.PASSENGER_FLOW, {"occupancy_limit": 0, "min_track_frames": 1}),
        (AlgoType.PASSENGER_FLOW, {"occupancy_limit": 100000}),
        (AlgoType.SECURITY, {"loiter_seconds": 30, "detect_fall": True}),
        (AlgoType.SECURITY, {"detect_fall": False}),
        (AlgoType.ILLEGAL_PARKING, {"park_seconds": 86400}),
        (AlgoType.FACE, {"min_face_px": 8, "fps": 60}),
        (AlgoType.FACE, {"min_face_px": 4096.0}),  # an integral float is an integer in JSON terms
        ("1", {"occupancy_limit": 5}),  # the plain code works as well as the enum member
    ],
)
def test_valid_algo_args(algo_type, args):
    validate_algo_args(algo_type, args)


def test_every_type_has_a_table():
    assert set(ALGO_ARGS) == set(AlgoType)


@pytest.mark.parametrize(
    ("algo_type", "args", "fragment"),
    [
        (AlgoType.TRAFFIC, {"occupancy_limit": 5}, "unknown key 'occupancy_limit' for algo_type 0"),
        (AlgoType.FACE, {"speed_limit_kmh": 50}, "unknown key"),
        (AlgoType.SECURITY, {"FPS": 5}, "unknown key 'FPS'"),
        (AlgoType.SECURITY, {"": 5}, "unknown key"),
        ("9", {"min_face_px": 20}, "unknown key"),
    ],
)
def test_unknown_keys_are_refused_and_the_allowed_ones_listed(algo_type, args, fragment):
    with pytest.raises(ValidationError) as exc:
        validate_algo_args(algo_type, args)
    message = exc.value.messages[0]
    assert fragment in message
    assert "allowed: " in message and "fps" in message


@pytest.mark.parametrize("args", [None, [], "fps=5", 5, [("fps", 5)]])
def test_algo_args_must_be_an_object(args):
    with pytest.raises(ValidationError, match="must be an object"):
        validate_algo_args(AlgoType.TRAFFIC, args)


@pytest.mark.parametrize(
    ("algo_type", "args", "fragment"),
    [
        # wrong types
        (AlgoType.TRAFFIC, {"fps": "25"}, "fps must be a float"),
        (AlgoType.TRAFFIC, {"fps": None}, "fps must be a float"),
        (AlgoType.TRAFFIC, {"fps": [25]}, "fps must be a float"),
        (AlgoType.TRAFFIC, {"min_track_frames": 2.5}, "min_track_frames must be a int"),
        (AlgoType.TRAFFIC, {"min_track_frames": "3"}, "min_track_frames must be a int"),
        (AlgoType.SECURITY, {"detect_fall": 1}, "detect_fall must be true or false"),
        (AlgoType.SECURITY, {"detect_fall": "true"}, "true or false"),
        (AlgoType.SECURITY, {"detect_fall": None}, "true or false"),
        # bool is not a number, even though Python says True == 1
        (AlgoType.TRAFFIC, {"min_track_frames": True}, "must be a int"),
        (AlgoType.TRAFFIC, {"fps": True}, "must be a float"),
        (AlgoType.PASSENGER_FLOW, {"occupancy_limit": False}, "must be a int"),
        # not finite
        (AlgoType.TRAFFIC, {"fps": math.nan}, "must be a float"),
        (AlgoType.TRAFFIC, {"fps": math.inf}, "must be a float"),
        (AlgoType.TRAFFIC, {"speed_limit_kmh": -math.inf}, "must be a float"),
        (AlgoType.TRAFFIC, {"min_track_frames": math.nan}, "must be a int"),
        (AlgoType.TRAFFIC, {"min_track_frames": math.inf}, "must be a int"),
        # out of range, just past each bound
        (AlgoType.TRAFFIC, {"fps": 0.09}, "fps must be within 0.1..60.0"),
        (AlgoType.TRAFFIC, {"fps": 60.01}, "within"),
        (AlgoType.TRAFFIC, {"fps": 0}, "within"),
        (AlgoType.TRAFFIC, {"min_score": -0.01}, "within 0.0..1.0"),
        (AlgoType.TRAFFIC, {"min_score": 1.01}, "within"),
        (AlgoType.TRAFFIC, {"speed_limit_kmh": 0.5}, "within"),
        (AlgoType.TRAFFIC, {"speed_limit_kmh": 301}, "within"),
        (AlgoType.TRAFFIC, {"min_track_frames": 0}, "within 1..1000"),
        (AlgoType.TRAFFIC, {"min_track_frames": 1001}, "within"),
        (AlgoType.PASSENGER_FLOW, {"occupancy_limit": -1}, "within"),
        (AlgoType.PASSENGER_FLOW, {"occupancy_limit": 100001}, "within"),
        (AlgoType.SECURITY, {"loiter_seconds": 86401}, "within"),
        (AlgoType.ILLEGAL_PARKING, {"park_seconds": 0.5}, "within"),
        (AlgoType.FACE, {"min_face_px": 7}, "within 8..4096"),
        (AlgoType.FACE, {"min_face_px": 4097}, "within"),
    ],
)
def test_invalid_algo_args(algo_type, args, fragment):
    with pytest.raises(ValidationError) as exc:
        validate_algo_args(algo_type, args)
    assert fragment in exc.value.messages[0]


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("fps", "1" + "0" * 400),
        ("min_track_frames", "1" + "0" * 400),
        ("occupancy_limit", "-" + "9" * 400),
        ("min_score", "1" + "0" * 400),
    ],
    ids=["fps", "min_track_frames", "occupancy_limit", "min_score"],
)
def test_huge_json_integers_are_refused_not_crashed(key, text):
    # JSON has no integer limit: json.loads gives Python ints that do not fit in a float.
    args = json.loads(f'{{"{key}": {text}}}')
    with pytest.raises(ValidationError):
        validate_algo_args(AlgoType.PASSENGER_FLOW if key == "occupancy_limit" else AlgoType.TRAFFIC, args)


def test_json_nan_and_infinity_from_a_request_body_are_refused():
    # Python's json module accepts these non-standard literals unless told otherwise.
    for literal in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValidationError):
            validate_algo_args(AlgoType.TRAFFIC, json.loads(f'{{"fps": {literal}}}'))
