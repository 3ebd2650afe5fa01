"""Shared artefacts (issue 14): snapshots and clips go through the `artefacts` storage, an
S3-compatible object store when VIAS_ARTEFACTS_S3_BUCKET is set (vias/lib/artefacts.py).

The object store is moto's S3 server, started by the test on 127.0.0.1. An analysis node runs as
its own process with its own VIAS_DATA_DIR (another "host": its own disk, its own video and model
files); the web host is this process (a live server on loopback, a different data directory)
and serves the event's snapshot through GET /events/{id}/snapshot, from the object store: the
JPEG is on neither host's disk.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from analysis.models import Detector, Event
from subtasks.choices import State
from subtasks.models import Subtask
from tests.live_server import free_port
from tests.nodes import BIKES, wait_for
from tests.test_jobs import PERSON
from tests.test_nodes import fetch, started_task

moto_server = pytest.importorskip("moto.server", reason="moto[server] is in requirements.txt")
boto3 = pytest.importorskip("boto3")

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "vias-artefacts"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "vias-test", "AWS_SECRET_ACCESS_KEY": "vias-test-secret"}


class ObjectStore:
    """moto's S3 server on a random loopback port, with one bucket."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        self.client.create_bucket(Bucket=BUCKET)

    def env(self) -> dict[str, str]:
        """What a host sets to use this store (README: artefacts on many hosts)."""
        return {
            "VIAS_ARTEFACTS_S3_BUCKET": BUCKET,
            "VIAS_ARTEFACTS_S3_ENDPOINT_URL": self.endpoint,
            "VIAS_ARTEFACTS_S3_REGION": "us-east-1",
            **CREDENTIALS,
        }

    def storage_setting(self) -> dict[str, Any]:
        """STORAGES["artefacts"] as vias/settings.py makes it from env()."""
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": self.endpoint,
                "region_name": "us-east-1",
                "access_key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "secret_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                "file_overwrite": True,
                "default_acl": None,
            },
        }

    def object_keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=BUCKET)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def object_store(settings) -> Iterator[ObjectStore]:
    store = ObjectStore()
    settings.STORAGES = {**settings.STORAGES, "artefacts": store.storage_setting()}
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def node_host() -> Iterator[Path]:
    """Another host's data directory: its own video store and its own copy of the model."""
    directory = Path(tempfile.mkdtemp(prefix="vias-node-"))
    (directory / "videos").mkdir()
    shutil.copy(BIKES, directory / "videos" / "bikes.mp4")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def tiny_model_on(host: Path) -> Detector:
    """The fixed tiny person model, registered by its file name (each host resolves it in its
    own models directory), its file on `host` only."""
    from tests.onnx_models import register_fixed_person_model

    detector = register_fixed_person_model(host / "models", PERSON)
    Detector.objects.filter(pk=detector.pk).update(onnx_file=Path(detector.onnx_file).name)
    return detector


def files_under(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()] if directory.is_dir() else []


def test_a_snapshot_analysed_on_another_host_is_served_by_the_web_host_from_the_object_store(
    alice, object_store, node_host, node_process, live_server
):
    tiny_model_on(node_host)
    node = node_process(
        capacity=1, VIAS_DATA_DIR=str(node_host), SECRET_KEY=settings.SECRET_KEY, **object_store.env()
    )
    _task, subtask = started_task(alice, "bikes.mp4")
    wait_for(
        lambda: fetch(subtask).state in (State.SUCCEEDED, State.FAILED),
        timeout=90,
        what=lambda: f"the end of the run\n{node.output()}",
    )
    done = Subtask.objects.get(pk=subtask.pk)
    assert done.state == State.SUCCEEDED, (done.status_reason, node.output())
    event = Event.objects.get(subtask=subtask, rule="intrusion")
    assert event.snapshot
    # The node wrote the JPEG into the bucket, not onto its disk; the clip follows it there.
    wait_for(lambda: Event.objects.get(pk=event.pk).clip, timeout=30, what="the event's clip")
    event.refresh_from_db()
    assert event.snapshot in object_store.object_keys() and event.clip in object_store.object_keys()
    assert object_store.read(event.clip)[:4] == b"\x1a\x45\xdf\xa3"  # WebM (EBML)
    stored = object_store.read(event.snapshot)
    assert stored[:3] == b"\xff\xd8\xff"
    assert not files_under(node_host / "media")
    # The web host's media directory is shared with the rest of the suite: none of *this*
    # event's files is there.
    local = {
        path.relative_to(settings.MEDIA_ROOT).as_posix() for path in files_under(Path(settings.MEDIA_ROOT))
    }
    assert event.snapshot not in local and event.clip not in local

    # The web host (another data directory) serves it over HTTP, from the object store.
    assert Path(settings.DATA_DIR) != node_host
    headers = {"Authorization": alice.token}
    answer = httpx.get(f"{live_server.url}/events/{event.pk}/snapshot", headers=headers, timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert answer.content == stored
    # Gone from the store: the web host answers 404 in the native envelope, not 500.
    object_store.client.delete_object(Bucket=BUCKET, Key=event.snapshot)
    missing = httpx.get(f"{live_server.url}/events/{event.pk}/snapshot", headers=headers, timeout=30)
    assert missing.status_code == 404 and missing.json()["ecode"] == 404


def test_names_outside_the_store_are_refused_not_served(alice, object_store):
    from vias.lib import artefacts

    assert artefacts.save_bytes("events/t/1/a.jpg", b"one") == "events/t/1/a.jpg"
    assert artefacts.save_bytes("events/t/1/a.jpg", b"two") == "events/t/1/a.jpg"  # overwritten
    assert artefacts.read_bytes("events/t/1/a.jpg") == b"two"
    for name in ("", "events/t/1/none.jpg", "../../etc/passwd", "/etc/passwd"):
        assert artefacts.open_artefact(name) is None, name


def test_the_filesystem_default_keeps_names_under_media_root(settings, tmp_path):
    from vias.lib import artefacts

    settings.MEDIA_ROOT = tmp_path / "media"
    (tmp_path / "secret.txt").write_text("no")
    assert artefacts.save_bytes("events/t/1/a.jpg", b"one") == "events/t/1/a.jpg"
    assert artefacts.save_bytes("events/t/1/a.jpg", b"two") == "events/t/1/a.jpg"
    assert (tmp_path / "media" / "events/t/1/a.jpg").read_bytes() == b"two"
    for name in ("", "events/t/1/none.jpg", "../secret.txt", str(tmp_path / "secret.txt"), "events"):
        assert artefacts.open_artefact(name) is None, name
