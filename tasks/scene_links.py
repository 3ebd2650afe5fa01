"""Which scene configures which subtask: one rule, applied by every path that changes scenes
(docs/state-machine.md, "Scenes configure subtasks").

- A subtask is configured by a scene whose `vchan_refid` is its video channel's, the first in
  mtask then scene order; when no scene names its channel and the task has exactly one scene,
  by that scene (a task over its own `play_url` has no channel).
- A dome (PTZ) camera's channel may be named by several scenes (its presets): the one that
  configures it is the active scene of its mtask's schedule (tasks.mtask_runner sets it); a
  change elsewhere in the tree keeps it when it is still one of the candidates.
- The subtask analyses a copy of its scene's ROIs, calibration, config XML and algo_args, made
  whenever the scene or the link changes, unless the subtask has its own configuration (a
  subtask-level PUT /subtasks/{id}: `follows_scene` false) which scene edits leave alone until
  the operator copies the scene to it again (the scene page's button).

This module computes links and copies configurations; it never sends anything (the services do,
after commit) and never decides whether a change is allowed while subtasks run: it says which
running subtask a change would move to another scene, and the caller refuses that.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from subtasks.choices import ACTIVE_STATES
from subtasks.models import Subtask
from tasks.models import Scene, SceneRoi, Task

# What a subtask copies from its scene (and analyses with).
COPIED = ("rois", "calibration_xml", "config_xml", "algo_args")
SceneKey = tuple[str, str]  # (mtask_unid, scene_unid): survives a tree replaced by PUT /tasks


def scene_key(scene: Scene | None) -> SceneKey | None:
    return None if scene is None else (scene.mtask.mtask_unid, scene.scene_unid)


@dataclass
class Link:
    """A subtask and the scene that configures it after the change."""

    subtask: Subtask
    scene: Scene | None
    before: SceneKey | None

    @property
    def moved(self) -> bool:
        return scene_key(self.scene) != self.before

    @property
    def running(self) -> bool:
        return self.subtask.state in ACTIVE_STATES


def ordered_scenes(task: Task) -> list[Scene]:
    return list(
        Scene.objects.filter(mtask__task=task).select_related("mtask").order_by("mtask__position", "position")
    )


def candidates(scenes: list[Scene], refid: str) -> list[Scene]:
    """The scenes that may configure a subtask of channel `refid` ("" for no channel), in order:
    those naming it, else the task's one scene (as at creation)."""
    named = [scene for scene in scenes if scene.vchan_refid == refid]
    return named or (scenes[:1] if len(scenes) == 1 else [])


def links(task: Task, scenes: list[Scene], before: dict[int, SceneKey | None] | None = None) -> list[Link]:
    """Every subtask of `task` with the scene that configures it among `scenes`.

    `before`: each subtask's scene key before the change (by default: what it points at now).
    """
    subtasks = list(task.subtasks.select_related("video_channel", "scene__mtask").order_by("position"))
    found = []
    for subtask in subtasks:
        channel = subtask.video_channel
        options = candidates(scenes, channel.vchan_refid if channel else "")
        previous = before.get(subtask.pk) if before is not None else scene_key(subtask.scene)
        chosen = options[0] if options else None
        if channel is not None and channel.ptz:
            # A dome keeps the scene its schedule made active, when the change left it there.
            chosen = next((s for s in options if scene_key(s) == previous), chosen)
        found.append(Link(subtask, chosen, previous))
    return found


def moved_while_running(found: Iterable[Link]) -> list[Link]:
    return [link for link in found if link.running and link.moved]


def rois_of(scenes: Iterable[Scene]) -> dict[int, list[str]]:
    by_scene: dict[int, list[str]] = defaultdict(list)
    rows = SceneRoi.objects.filter(scene__in=list(scenes)).order_by("scene_id", "position")
    for scene_id, xml in rows.values_list("scene_id", "xml"):
        by_scene[scene_id].append(xml)
    return by_scene


def configuration_of(scene: Scene, rois: list[str]) -> dict[str, Any]:
    return {
        "rois": list(rois),
        "calibration_xml": scene.calibration_xml,
        "config_xml": scene.config_xml,
        "algo_args": scene.algo_args,
    }


def write(found: list[Link], force: bool = False) -> list[Subtask]:
    """Point each subtask at its scene and copy the scene's configuration into it (those with
    their own configuration keep it, unless `force`). Returns the subtasks whose analysed
    configuration changed. One UPDATE per subtask that changes, none for the others."""
    rois = rois_of(link.scene for link in found if link.scene is not None)
    changed = []
    for link in found:
        subtask, scene = link.subtask, link.scene
        fields: dict[str, Any] = {}
        if (scene.pk if scene else None) != subtask.scene_id:
            fields["scene"] = scene
        if scene is not None and (subtask.follows_scene or force):
            wanted = configuration_of(scene, rois.get(scene.pk, []))
            fields.update({k: v for k, v in wanted.items() if getattr(subtask, k) != v})
            if force and not subtask.follows_scene:
                fields["follows_scene"] = True
        if not fields:
            continue
        Subtask.objects.filter(pk=subtask.pk).update(**fields)
        for name, value in fields.items():
            setattr(subtask, name, value)
        if set(fields) & set(COPIED):
            changed.append(subtask)
    return changed
