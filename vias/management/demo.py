"""`manage.py up --demo`: a demo task on the bundled sample video, started, and where to watch it.

The task counts people (passenger flow, algo_type 1) with one zone ("street": occupancy changes)
and one counting line ("counter": crossings) on vias/demo/bikes.mp4, so that a newcomer sees
events with snapshots within a minute of the first command. Everything goes through the same
core services as the APIs and the admin: create, config complete, start.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import CommandError, OutputWrapper
from django.utils import timezone

DEMO_VIDEO = Path(__file__).resolve().parent.parent / "demo" / "bikes.mp4"
STORED_NAME = "demo-bikes.mp4"
PROJECT_ID = "default"
TASK_NAME = "demo: people on a street"
DEMO_ROI = (
    '<root><polygon name="street" mode="include">'
    '<point x="0.02" y="0.35"/><point x="0.98" y="0.35"/><point x="0.98" y="0.98"/><point x="0.02" y="0.98"/>'
    '</polygon><line name="counter" direction="both"><point x="0.5" y="0.05"/><point x="0.5" y="0.95"/>'
    "</line></root>"
)


@dataclass(frozen=True)
class Demo:
    task_id: str
    started: list[str]


def install_default_models(stdout: OutputWrapper) -> bool:
    """The default person model, downloaded once into the cache and registered (fetch_models).
    A failure (no network, no cache) is reported, not fatal: the rest of VIAS still runs."""
    try:
        call_command("fetch_models", stdout=stdout)
        return True
    except CommandError as exc:
        stdout.write(f"No analysis model installed ({exc}); run `python manage.py fetch_models` later.")
        return False


def copy_sample_video() -> str:
    """The sample in the video store, where a task's play_url names it; its name there."""
    from tasks.validators import videos_dir

    target = videos_dir() / STORED_NAME
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEMO_VIDEO, target)
    return STORED_NAME


def demo_spec(video: str) -> dict:
    scene = {"scene_unid": "demo-street", "name": "street", "algo_type": "1", "rois": [DEMO_ROI]}
    return {
        "task_name": TASK_NAME,
        "algo_type": "1",
        "run_dt": timezone.now(),
        "play_url": video,
        "description": "created by `manage.py up --demo`",
        "mtasks": [
            {
                "mtask_unid": "demo-all-day",
                "name": "all day",
                "type": 0,
                "time_interval": 5,
                "start_time": "00:00:00",
                "end_time": "23:59:59",
                "scenes": [scene],
            }
        ],
    }


def start_demo() -> Demo:
    """Create the demo task (once: a second `up --demo` starts the same task again) and start it."""
    from subtasks import services as subtask_services
    from subtasks.models import Subtask
    from tasks import services
    from tasks.models import Project, Task

    project, _created = Project.objects.get_or_create(project_id=PROJECT_ID, defaults={"name": PROJECT_ID})
    task = Task.objects.filter(project=project, task_name=TASK_NAME).first()
    if task is None:
        task = services.create_task(project, demo_spec(copy_sample_video()))
    else:
        copy_sample_video()
    for subtask in Subtask.objects.filter(task=task, config_complete=False):
        subtask_services.mark_config_complete(subtask)
    outcomes = subtask_services.start_task(task)
    return Demo(task.task_id, [f"subtask {o.subtask_id}: {o.state}" for o in outcomes])


def describe(demo: Demo, base_url: str) -> list[str]:
    """The lines `up` prints: where to watch the demo."""
    return [
        f"  Demo:     task {demo.task_id} started ({'; '.join(demo.started)})",
        f"            watch it: {base_url}/admin/tasks/task/{demo.task_id}/change/",
        f"            its events: {base_url}/admin/analysis/event/?task__task_id__exact={demo.task_id}",
    ]
