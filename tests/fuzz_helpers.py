"""Schemathesis against a live VIAS (no tests here): objects to aim at, the configuration, the
run and its counts. Used by tests/test_schemathesis.py (a bounded run) and bench/bench_hostile.py
(a longer one). Everything goes over HTTP, as a client would: no ORM.

The objects are made through each dialect's API before the run (a native task with its subtasks,
a storage config, a video channel, a v2 video source, task and batch task, a VCS compute task), and
their ids are handed to schemathesis as dictionaries bound to the path parameters, so that about
half of the generated requests reach a real object instead of a 404.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import task_body
from tests.test_v2_helpers import batch_body, group_body, source_body
from tests.test_v2_helpers import task_body as v2_task_body
from tests.vcs_helpers import compute_body, device

ROOT = Path(__file__).resolve().parent.parent
BIKES = ROOT / "tests" / "data" / "bikes.mp4"
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"
# A failure's code in the report (schemathesis's ST1xx/ST2xx) -> what it counts as.
KINDS = {
    "ST101": "server_errors",
    "ST102": "server_errors",
    "ST103": "undocumented_statuses",
    "ST108": "schema_violations",
    "ST202": "rejected_valid",
    "ST201": "accepted_invalid",
}
# Asked for by the bench (--agreement): do the validators accept what the schema calls valid and
# refuse what it calls invalid? Counted, not required to be 0.
AGREEMENT_CHECKS = "positive_data_acceptance,negative_data_rejection"


@dataclass
class FuzzResult:
    """What one schemathesis run found."""

    cases: int = 0
    operations: int = 0
    failures: int = 0
    server_errors: int = 0
    undocumented_statuses: int = 0
    schema_violations: int = 0
    rejected_valid: int = 0
    accepted_invalid: int = 0
    other_failures: int = 0
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "messages"}


def _ok(answer: httpx.Response) -> Any:
    assert answer.status_code in (200, 201), (answer.request.url, answer.status_code, answer.text[:500])
    return answer.json()


def seed_objects(base: str, token: str, project_id: str, data_dir: Path) -> dict[str, list[str]]:
    """One object of each kind in `project_id`, made through the APIs; {path parameter: [ids]}."""
    videos = data_dir / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    shutil.copy(BIKES, videos / "lzfg54fg871fghwa.mp4")
    with httpx.Client(base_url=base, headers={"Authorization": token}, timeout=30) as client:
        task = _ok(client.post("/tasks", json=task_body(vchans=2, task_name="fuzz target")))["data"]
        subtasks = _ok(client.get(f"/tasks/{task['task_id']}/subtasks"))["list_data"]
        conf = {"unid": "fuzz-conf", "name": "fuzz", "file_ext": "xml", "file_b64": "PHJvb3QvPg=="}
        _ok(client.post("/store_confs", json=conf))
        _ok(client.post("/vchans", json={"vchan_refid": "fuzz-cam", "url": "rtsp://10.9.9.9/live"}))
        v2 = f"/v2/{project_id}"
        source_id = _ok(client.post(f"{v2}/source", json=source_body("fuzz src", "rtsp://10.9.9.8/x")))[
            "video_source_id"
        ]
        group_id = _ok(client.post(f"{v2}/video-group", json=group_body("fuzz_group", [source_id])))[
            "video_group_id"
        ]
        v2_task = _ok(client.post(f"{v2}/services/face/tasks", json=v2_task_body([source_id])))
        batch = _ok(client.post(f"{v2}/batch-tasks", json=batch_body([source_id])))
        vcs = _ok(
            client.post(
                "/vcs/console/task/createComputeTask", json=compute_body(devices=[device("fuzz-vcs-cam")])
            )
        )
    return {
        "task_id": [task["task_id"], v2_task["id"], vcs["Data"]["taskId"]],
        "subtask_id": [str(s["subtask_id"]) for s in subtasks],
        "unid": ["fuzz-conf"],
        "vchan_refid": ["fuzz-cam", "cam-0"],
        "source_id": [source_id],
        "group_id": [group_id],
        "batch_id": [batch["id"]],
    }


def write_config(path: Path, token: str, project_id: str, ids: dict[str, list[str]]) -> Path:
    """schemathesis.toml: the token on every request, the project's own path, the seeded ids."""
    lines = [f"headers = {{ Authorization = {json.dumps(token)} }}", ""]
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines += ["[parameters]", f'"path.project_id" = {json.dumps(project_id)}']
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in ids]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_schemathesis(
    schema_url: str,
    config: Path,
    report_dir: Path,
    *,
    max_examples: int,
    phases: str = "examples,fuzzing",
    workers: int = 2,
    seed: int = 1,
    timeout_s: float = 600,
    extra_checks: str = "",
) -> FuzzResult:
    """Run `schemathesis run` (the CLI, in a subprocess) and count what it found."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        schema_url,
        "--checks",
        ",".join(filter(None, [CHECKS, extra_checks])),
        "--max-examples",
        str(max_examples),
        "--phases",
        phases,
        "--workers",
        str(workers),
        "--seed",
        str(seed),
        "--no-shrink",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report_dir / "junit.xml"),
    ]
    done = subprocess.run(command, cwd=report_dir, capture_output=True, text=True, timeout=timeout_s)
    output = done.stdout + done.stderr
    result = FuzzResult()
    if match := re.search(r"(\d+) generated", output):
        result.cases = int(match.group(1))
    if match := re.search(r"in ([\d.]+)s =", output):
        result.seconds = float(match.group(1))
    junit = report_dir / "junit.xml"
    assert junit.exists(), output[-3000:]
    for case in ET.parse(junit).getroot().iter("testcase"):
        result.operations += 1
        for failure in [*case.iter("failure"), *case.iter("error")]:
            text = failure.text or failure.get("message") or ""
            result.messages.append(f"{case.get('name')}: {text[:1500]}")
            for code in re.findall(r"^- (ST\d+)\b", text, re.M) or ["?"]:
                result.failures += 1
                kind = KINDS.get(code, "other_failures")
                setattr(result, kind, getattr(result, kind) + 1)
    if done.returncode not in (0, 1):  # 1: failures found (counted above); anything else broke
        raise AssertionError(f"schemathesis exited with {done.returncode}:\n{output[-3000:]}")
    return result
