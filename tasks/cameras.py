"""Fixed and dome cameras: what a task's scenes may ask of their channel's camera.

The seed: "非球机只支持0" — a channel that is not a dome (PTZ) camera runs only polling mtasks
(type 0), and only a dome camera has presets. Every path that stores scenes (create, update,
the admin's scene and mtask forms) checks them here, with the rule itself on the model
(tasks.models.camera_problems).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tasks.models import MTask, Project, Scene, VideoChannel, camera_problems
from vias.lib.errors import Invalid


def tree_path(scene: Scene, field: str) -> str:
    """Where a problem is in a request body's `mtasks` tree."""
    mtask = f"mtasks[{scene.mtask.position}]"
    return f"{mtask}.type" if field == "type" else f"{mtask}.scenes[{scene.position}].{field}"


def ptz_of(project: Project, refids: Iterable[str], known: Iterable[VideoChannel] = ()) -> dict[str, bool]:
    """Which of the channels named are dome cameras (one query for those not `known`)."""
    ptz = {channel.vchan_refid: channel.ptz for channel in known}
    missing = {refid for refid in refids if refid and refid not in ptz}
    if missing:
        rows = VideoChannel.objects.filter(project=project, vchan_refid__in=missing)
        ptz.update(rows.values_list("vchan_refid", "ptz"))
    return ptz


def check_cameras(
    project: Project,
    scenes: Iterable[Scene],
    known: Iterable[VideoChannel] = (),
    where: Callable[[Scene, str], str] = tree_path,
) -> None:
    """Invalid (400, naming the field) when a scene asks a fixed camera for a preset or its mtask
    for a type other than polling. A scene without a channel is on a fixed camera."""
    scenes = list(scenes)
    ptz = ptz_of(project, (scene.vchan_refid for scene in scenes), known)
    for scene in scenes:
        problems = camera_problems(scene.mtask.type, scene.preset, ptz.get(scene.vchan_refid, False))
        for field, messages in problems.items():
            raise Invalid(messages[0], field=where(scene, field))


def check_mtask(mtask: MTask) -> None:
    """An mtask changed on its own (the admin): its stored scenes against its new type."""
    scenes = list(mtask.scenes.all())
    for scene in scenes:
        scene.mtask = mtask  # the type being saved, not the stored one
    check_cameras(
        mtask.task.project,
        scenes,
        where=lambda scene, field: "type" if field == "type" else f"scenes[{scene.position}].{field}",
    )
