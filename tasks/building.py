"""The task builder: a spec in the core's shape (docs/dialects.md) made into unsaved rows, the
same way for one task and for many (tasks.services.create_task is create_tasks of one).

A spec is validated with the models' own rules while it is built; nothing is written here. The
video channels the specs name are read once for all of them; new ones (a vchans item with a url)
are made only for specs that build. A spec with `config_complete` makes its subtasks
config-complete, hence CONFIGURED, as a creation (no transition, no per-subtask announcement), for
every dialect that has no configuration step (VCS, v2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from subtasks.choices import State
from subtasks.models import Subtask
from tasks import cameras, constants
from tasks.choices import SourceType
from tasks.models import MTask, Project, Scene, SceneRoi, StoreConf, Task, VideoChannel
from vias.lib.errors import Conflict, Invalid, NotFound, clean, prefix_validation_error

# Foreign keys whose rows the caller already holds: validating them would cost a query each.
TASK_CLEAN_EXCLUDE = ["project", "creator", "batch"]
TASK_FIELDS = (
    "task_name",
    "algo_type",
    "run_dt",
    "play_url",
    "source_type",
    "node_count",
    "pull_source_url",
    "description",
    "detector_models",
    "client_name",
    "output",
    "schedule",
    "config",
    "service_name",
    "service_version",
    "resource_order_id",
    "company",
    "creator",
    "alg_id",
    "video_group_id",
    "target_roi",
    "batch",
)
MTASK_FIELDS = ("mtask_unid", "name", "type", "time_interval", "start_time", "end_time")
# What a request may say about a video channel (vchans items, POST/PUT /vchans).
VCHAN_FIELDS = ("vchan_refid", "name", "url", "ptz", "onvif_url", "onvif_username", "onvif_password")
SCENE_FIELDS = (
    "scene_unid",
    "name",
    "preset",
    "calibration_xml",
    "config_xml",
    "basic_config_xml",
    "link_scenes",
    "algo_type",
    "algo_args",
    "is_record",
    "is_active",
    "vchan_refid",
    "play_urls",
)
# Fields a subtask copies from the scene of its video channel when the task is created.
SUBTASK_CONFIG_FIELDS = ("calibration_xml", "config_xml", "algo_args")
# Fields a `vchans` item may carry about its source, kept on that channel's subtask (a recorded file).
SUBTASK_SOURCE_FIELDS = ("video_time_length", "video_begin_time")


def pick(spec: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: spec[name] for name in fields if name in spec}


Tree = tuple[list[MTask], list[Scene], list[SceneRoi]]


@dataclass
class Built:
    """One task as built from its spec: the rows to insert, the new channels it needs."""

    task: Task
    tree: Tree
    subtasks: list[Subtask]
    new_channels: list[VideoChannel] = field(default_factory=list)


class TaskBuilder:
    """Builds the tasks of one project from specs; reads channels and storage configs once."""

    def __init__(self, project: Project, specs: list[dict[str, Any]]) -> None:
        self.project = project
        refids = {vchan["vchan_refid"] for spec in specs for vchan in spec.get("vchans") or []}
        self.channels = {
            c.vchan_refid: c for c in VideoChannel.objects.for_project(project).filter(vchan_refid__in=refids)
        }
        unids = {spec["store_conf_unid"] for spec in specs if spec.get("store_conf_unid")}
        self.confs = {c.unid: c for c in StoreConf.objects.for_project(project).filter(unid__in=unids)}

    def build(self, spec: dict[str, Any], validated: tuple[str, ...] = ()) -> Built:
        """The rows of one task, validated (except the `validated` fields, checked by the caller)."""
        vchans = spec.get("vchans") or []
        spec = self.with_play_url(spec)
        task = Task(project=self.project, store_conf=self._store_conf(spec), **pick(spec, TASK_FIELDS))
        clean(task, "", exclude=[*TASK_CLEAN_EXCLUDE, *validated])
        mtasks, scenes, rois = build_tree(task, spec.get("mtasks") or [])
        sources = source_fields(vchans)
        chosen, new = self.resolve_channels(task, vchans)
        cameras.check_cameras(self.project, scenes, chosen)
        subtasks = ready(split(task, chosen, scenes, rois, sources), spec)
        return Built(task, (mtasks, scenes, rois), subtasks, new)

    def accept(self, built: Built) -> None:
        """A built task will be saved: later specs of this builder share its new channels."""
        for channel in built.new_channels:
            self.channels[channel.vchan_refid] = channel

    def _store_conf(self, spec: dict[str, Any]) -> StoreConf | None:
        unid = spec.get("store_conf_unid")
        if not unid:
            return None
        if unid not in self.confs:
            raise NotFound(_("no storage config %(unid)s") % {"unid": unid}, field="store_conf_unid")
        return self.confs[unid]

    def with_play_url(self, spec: dict[str, Any]) -> dict[str, Any]:
        """A spec without play_url takes its first channel's url (v2 names its sources, not a URL)."""
        if spec.get("play_url") or not spec.get("vchans"):
            return spec
        first = spec["vchans"][0]
        known = self.channels.get(first["vchan_refid"])
        url = first.get("url") or (known.url if known else "")
        if not url:
            raise NotFound(_("no video channel %(r)s") % {"r": first["vchan_refid"]}, field="vchans[0]")
        return {**spec, "play_url": url}

    def resolve_channels(
        self, task: Task, vchan_specs: list[dict[str, Any]]
    ) -> tuple[list[VideoChannel], list[VideoChannel]]:
        """(the channels a video task splits over, those of them that are new): existing ones by
        refid, new ones made (unsaved) from a url."""
        if len(vchan_specs) > constants.MAX_VCHANS_PER_TASK:
            raise Invalid(
                _("at most %(n)d video channels") % {"n": constants.MAX_VCHANS_PER_TASK}, field="vchans"
            )
        if vchan_specs and task.source_type != SourceType.PULL_VIDEO_STREAM:
            raise Invalid(_("vchans are for pull_video_stream tasks only"), field="vchans")
        refids = [spec["vchan_refid"] for spec in vchan_specs]
        if len(set(refids)) != len(refids):
            raise Invalid(_("a video channel is listed twice"), field="vchans")
        channels, new = [], []
        for index, spec in enumerate(vchan_specs):
            channel = self.channels.get(spec["vchan_refid"])
            if channel is None:
                channel = self._new_channel(spec, index)
                new.append(channel)
            elif spec.get("url") and spec["url"] != channel.url:
                raise Conflict(
                    _("video channel %(r)s exists with another url") % {"r": spec["vchan_refid"]},
                    field=f"vchans[{index}]",
                )
            channels.append(channel)
        return channels, new

    def _new_channel(self, spec: dict[str, Any], index: int) -> VideoChannel:
        if not spec.get("url"):
            raise NotFound(
                _("no video channel %(r)s (give its url to create it)") % {"r": spec["vchan_refid"]},
                field=f"vchans[{index}]",
            )
        channel = VideoChannel(project=self.project, **pick(spec, VCHAN_FIELDS))
        clean(channel, f"vchans[{index}]", exclude=["project"])
        return channel


def save(built: list[Built]) -> None:
    """One INSERT per table for all of them (primary keys come back: PostgreSQL, SQLite >= 3.35)."""
    VideoChannel.objects.bulk_create([c for b in built for c in b.new_channels])
    Task.objects.bulk_create([b.task for b in built])
    save_tree(
        [m for b in built for m in b.tree[0]],
        [s for b in built for s in b.tree[1]],
        [r for b in built for r in b.tree[2]],
    )
    Subtask.objects.bulk_create([s for b in built for s in b.subtasks])


def build_tree(
    task: Task, mtask_specs: list[dict[str, Any]]
) -> tuple[list[MTask], list[Scene], list[SceneRoi]]:
    if len(mtask_specs) > constants.MAX_MTASKS_PER_TASK:
        raise Invalid(_("at most %(n)d mtasks") % {"n": constants.MAX_MTASKS_PER_TASK}, field="mtasks")
    mtasks, scenes, rois, unids = [], [], [], set()
    for m_index, m_spec in enumerate(mtask_specs):
        path = f"mtasks[{m_index}]"
        mtask = MTask(task=task, position=m_index, **pick(m_spec, MTASK_FIELDS))
        clean(mtask, path, exclude=["task"])
        if mtask.mtask_unid in unids:
            raise Invalid(
                _("mtask_unid %(u)s is used twice") % {"u": mtask.mtask_unid}, field=f"{path}.mtask_unid"
            )
        unids.add(mtask.mtask_unid)
        mtasks.append(mtask)
        scene_specs = m_spec.get("scenes") or []
        if len(scene_specs) > constants.MAX_SCENES_PER_MTASK:
            raise Invalid(
                _("at most %(n)d scenes") % {"n": constants.MAX_SCENES_PER_MTASK}, field=f"{path}.scenes"
            )
        for s_index, s_spec in enumerate(scene_specs):
            scene, scene_rois = _build_scene(mtask, s_index, s_spec, f"{path}.scenes[{s_index}]")
            scenes.append(scene)
            rois.extend(scene_rois)
    return mtasks, scenes, rois


def _build_scene(mtask: MTask, index: int, spec: dict[str, Any], path: str) -> tuple[Scene, list[SceneRoi]]:
    scene = Scene(mtask=mtask, position=index, **pick(spec, SCENE_FIELDS))
    clean(scene, path, exclude=["mtask"])
    roi_specs = spec.get("rois") or []
    if len(roi_specs) > constants.MAX_ROIS_PER_SCENE:
        raise Invalid(_("at most %(n)d ROIs") % {"n": constants.MAX_ROIS_PER_SCENE}, field=f"{path}.rois")
    rois = []
    for r_index, xml in enumerate(roi_specs):
        roi = SceneRoi(scene=scene, position=r_index, xml=xml)
        clean(roi, f"{path}.rois[{r_index}]", exclude=["scene"])
        rois.append(roi)
    return scene, rois


def save_tree(mtasks: list[MTask], scenes: list[Scene], rois: list[SceneRoi]) -> None:
    # bulk_create sets primary keys (PostgreSQL, SQLite >= 3.35); children pick them up from their parents.
    MTask.objects.bulk_create(mtasks)
    Scene.objects.bulk_create(scenes)
    SceneRoi.objects.bulk_create(rois)


def source_fields(vchan_specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each vchans item's SUBTASK_SOURCE_FIELDS, validated by the Subtask model's own rules."""
    checked = []
    others = [f.name for f in Subtask._meta.fields if f.name not in SUBTASK_SOURCE_FIELDS]
    for index, spec in enumerate(vchan_specs):
        fields = pick(spec, SUBTASK_SOURCE_FIELDS)
        if fields:
            try:
                Subtask(**fields).clean_fields(exclude=others)
            except ValidationError as exc:
                raise prefix_validation_error(exc, f"vchans[{index}]") from None
        checked.append(fields)
    return checked


def split(
    task: Task,
    channels: list[VideoChannel],
    scenes: list[Scene],
    rois: list[SceneRoi],
    sources: list[dict[str, Any]] | None = None,
) -> list[Subtask]:
    """One subtask per video channel; picture tasks get node_count of them (docs/state-machine.md)."""
    if task.is_picture_task:
        source = task.pull_source_url if task.source_type == SourceType.PULL_PIC_FILES else ""
        return [Subtask(task=task, position=i, source_url=source) for i in range(task.node_count)]
    if not channels:
        # No vchans: the task's own play_url is its one video source.
        return [_subtask_for(task, 0, None, task.play_url, scenes, rois)]
    subtasks = [_subtask_for(task, i, c, c.url, scenes, rois) for i, c in enumerate(channels)]
    for subtask, fields in zip(subtasks, sources or [], strict=False):
        for name, value in fields.items():
            setattr(subtask, name, value)
    return subtasks


def _subtask_for(task: Task, position: int, channel: VideoChannel | None, url: str, scenes, rois) -> Subtask:
    refid = channel.vchan_refid if channel else ""
    scene = next((s for s in scenes if s.vchan_refid == refid), scenes[0] if len(scenes) == 1 else None)
    subtask = Subtask(task=task, position=position, video_channel=channel, source_url=url, scene=scene)
    if scene is not None:
        for name in SUBTASK_CONFIG_FIELDS:
            setattr(subtask, name, getattr(scene, name))
        subtask.rois = [roi.xml for roi in rois if roi.scene is scene]
    return subtask


def ready(subtasks: list[Subtask], spec: dict[str, Any]) -> list[Subtask]:
    """With spec["config_complete"] the new subtasks are config-complete, hence CONFIGURED: APIs
    without a configuration step (v2) dispatch what they create. A creation, not a transition."""
    if spec.get("config_complete"):
        for subtask in subtasks:
            subtask.config_complete = True
            subtask.state = State.CONFIGURED
    return subtasks
