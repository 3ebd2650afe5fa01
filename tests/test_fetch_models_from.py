"""Models without registry access (issue 14): a node with an empty models directory copies the
registered models from the web host (`manage.py fetch_models --from URL`, GET /models with the
node key), over loopback, with PyPI out of reach; its capabilities then list them, and only them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from analysis.models import Detector
from tests.nodes import ROOT, database_url
from tests.onnx_models import register_fixed_person_model
from tests.test_jobs import PERSON
from vias.lib.nodekey import HEADER, node_key

pytestmark = pytest.mark.django_db(transaction=True)

CAPABILITIES = "from analysis.node import models_on_disk; import json; print(json.dumps(models_on_disk()))"


@pytest.fixture
def node_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="vias-node-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def web_model():
    """The tiny model on the web host's disk, registered by file name."""
    detector = register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), PERSON)
    Detector.objects.filter(pk=detector.pk).update(onnx_file=Path(detector.onnx_file).name)
    detector.refresh_from_db()
    return detector


def on_node(node_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """manage.py on the node host: its own data directory, the shared database and SECRET_KEY, and
    a package index that does not answer (no PyPI)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VIAS_")},
        "VIAS_DATA_DIR": str(node_dir),
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_NO_INDEX": "1",
        "VIAS_MODELS_CACHE": str(node_dir / "cache"),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def capabilities(node_dir: Path) -> list[str]:
    result = on_node(node_dir, "shell", "-c", CAPABILITIES)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_node_with_an_empty_cache_gets_the_model_from_the_web_host(live_server, node_dir, web_model):
    assert capabilities(node_dir) == []  # registered, but not on this host's disk
    first = on_node(node_dir, "fetch_models", "--from", live_server.url)
    assert first.returncode == 0, first.stderr
    copied = node_dir / "models" / Path(web_model.onnx_file).name
    assert copied.read_bytes() == web_model.path.read_bytes()
    assert "installed" in first.stdout and "PyPI" not in first.stderr
    assert not (node_dir / "cache").exists()  # nothing was downloaded from a registry
    assert capabilities(node_dir) == [web_model.name]
    # Again: the file is already there with the listed digest; nothing is copied.
    second = on_node(node_dir, "fetch_models", "--from", live_server.url)
    assert second.returncode == 0 and "installed" not in second.stdout, second.stdout


def test_without_the_key_nothing_is_listed_or_served(live_server, web_model, alice):
    url = f"{live_server.url}/models"
    for headers in ({}, {HEADER: "not-the-key"}):
        answer = httpx.get(url, headers=headers, timeout=10)
        assert answer.status_code == 401 and answer.json()["ecode"] == 401, answer.text
    listed = httpx.get(url, headers={HEADER: node_key()}, timeout=10).json()["models"]
    files = {entry["name"]: entry["files"] for entry in listed}
    digest = hashlib.sha256(web_model.path.read_bytes()).hexdigest()
    assert files[web_model.name] == [
        {"path": Path(web_model.onnx_file).name, "size": web_model.path.stat().st_size, "sha256": digest}
    ]
    # An API token works as well; the registry entry whose file is nowhere is not listed.
    with_token = httpx.get(url, headers={"Authorization": alice.token}, timeout=10).json()["models"]
    assert [entry["name"] for entry in with_token] == [web_model.name]
    file_url = f"{live_server.url}/models/{web_model.name}/files/{Path(web_model.onnx_file).name}"
    assert httpx.get(file_url, timeout=10).status_code == 401
    served = httpx.get(file_url, headers={HEADER: node_key()}, timeout=10)
    assert served.status_code == 200 and served.content == web_model.path.read_bytes()


@pytest.mark.parametrize(
    "path",
    ["../secret-key.txt", "../../vias.sqlite3", "other.onnx", "%2e%2e/secret-key.txt", "/etc/passwd"],
)
def test_only_listed_files_are_served(live_server, web_model, path):
    (Path(settings.VIAS_MODELS_DIR) / "other.onnx").write_bytes(b"not registered")
    answer = httpx.get(
        f"{live_server.url}/models/{web_model.name}/files/{path}", headers={HEADER: node_key()}, timeout=10
    )
    assert answer.status_code == 404 and answer.json()["ecode"] == 404, answer.text


def test_a_detector_registered_by_a_path_outside_the_models_directory_is_not_served(
    live_server, web_model, tmp_path
):
    outside = tmp_path / "elsewhere.onnx"
    shutil.copy(web_model.path, outside)
    Detector.objects.filter(pk=web_model.pk).update(onnx_file=str(outside))
    listed = httpx.get(f"{live_server.url}/models", headers={HEADER: node_key()}, timeout=10).json()["models"]
    assert web_model.name not in [entry["name"] for entry in listed]


def test_a_model_the_web_host_does_not_serve_is_named_and_nothing_is_copied(live_server, node_dir, web_model):
    result = on_node(node_dir, "fetch_models", "--from", live_server.url, "--model", "no-such-model")
    assert result.returncode != 0 and "serves no model no-such-model" in result.stderr, result.stderr
    assert not list(node_dir.rglob("*.onnx"))
    chosen = on_node(node_dir, "fetch_models", "--from", live_server.url, "--model", web_model.name)
    assert chosen.returncode == 0, chosen.stderr
    assert [p.name for p in node_dir.rglob("*.onnx")] == [Path(web_model.onnx_file).name]
