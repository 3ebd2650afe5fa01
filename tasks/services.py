"""Every change to big tasks, storage configs and video channels goes through these functions.

They take plain data in the core's own shape (see `TaskSpec` in docs/dialects.md), validate
with the models' own rules, write in one transaction and then announce. Dialects translate
their request bodies into that shape and call these; none of them writes models itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from subtasks import services as subtask_services
from subtasks.choices import State
from subtasks.engine import Ack, engine
from subtasks.models import Subtask
from tasks import cameras, constants, scene_links, schedules
from tasks.choices import SourceType
from tasks.models import BatchTask, MTask, Project, Scene, SceneRoi, StoreConf, Task, VideoChannel
from tasks.validators import decode_file_b64
from vias.lib.announce import announce
from vias.lib.errors import (
    Conflict,
    Invalid,
    NotFound,
    ServiceError,
    TooLarge,
    clean,
    flatten_errors,
    prefix_validation_error,
    summary,
)

# What a batch task's spec may set: the fields it copies onto its tasks, and its own.
BATCH_FIELDS = (*BatchTask.TASK_FIELDS, "name", "is_saved_as_template")
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
# What a request may say about a video channel (vchans items, POST/PUT /vchans).
VCHAN_FIELDS = ("vchan_refid", "name", "url", "ptz", "onvif_url", "onvif_username", "onvif_password")
# Fields a subtask copies from the scene of its video channel when the task is created.
SUBTASK_CONFIG_FIELDS = ("calibration_xml", "config_xml", "algo_args")
# Fields a `vchans` item may carry about its source, kept on that channel's subtask (a recorded file).
SUBTASK_SOURCE_FIELDS = ("video_time_length", "video_begin_time")


def _pick(spec: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: spec[name] for name in fields if name in spec}


# ---- tasks ------------------------------------------------------------------------------------


def get_task(project: Project, task_id: str) -> Task:
    task = Task.objects.select_related("store_conf").filter(project=project, task_id=task_id).first()
    if task is None:
        raise NotFound(_("no task %(id)s") % {"id": task_id}, field="task_id")
    return task


def get_store_conf(project: Project, unid: str | None, field: str = "store_conf_unid") -> StoreConf | None:
    """The project's storage config `unid` (None for no unid); NotFound names `field`."""
    if not unid:
        return None
    conf = StoreConf.objects.filter(project=project, unid=unid).first()
    if conf is None:
        raise NotFound(_("no storage config %(unid)s") % {"unid": unid}, field=field)
    return conf


def get_vchan(project: Project, refid: str) -> VideoChannel:
    channel = VideoChannel.objects.filter(project=project, vchan_refid=refid).first()
    if channel is None:
        raise NotFound(_("no video channel %(r)s") % {"r": refid}, field="vchan_refid")
    return channel


@transaction.atomic
def create_task(project: Project, spec: dict[str, Any]) -> Task:
    """Create a big task with its mtasks and scenes and split it into subtasks (nothing is dispatched).

    spec: the task fields, `store_conf_unid`, `mtasks` (each with `scenes`, each with `rois`:
    a list of XML strings) and `vchans` (a list of {vchan_refid, name?, url?}).
    """
    spec = with_play_url(project, spec)
    task = Task(
        project=project,
        store_conf=get_store_conf(project, spec.get("store_conf_unid")),
        **_pick(spec, TASK_FIELDS),
    )
    clean(task, "", exclude=TASK_CLEAN_EXCLUDE)
    mtasks, scenes, rois = _build_tree(task, spec.get("mtasks") or [])
    sources = _source_fields(spec.get("vchans") or [])
    channels = _resolve_channels(project, task, spec.get("vchans") or [])
    cameras.check_cameras(project, scenes, channels)
    task.save()
    _save_tree(mtasks, scenes, rois)
    Subtask.objects.bulk_create(_ready(_split(task, channels, scenes, rois, sources), spec))
    announce(project.project_id, "task.created", {"task_id": task.task_id}, task_id=task.task_id)
    return task


def update_task(task: Task, spec: dict[str, Any]) -> Task:
    """Replace a task's fields and its mtask/scene tree. How it was split stays as it is."""
    return update_task_live(task, spec)[0]


def update_task_live(task: Task, spec: dict[str, Any]) -> tuple[Task, list[Ack]]:
    """update_task, and the running subtasks whose scene changed apply it now: one
    acknowledgement per subtask whose analysed configuration changed (docs/state-machine.md).

    While subtasks run only the mtask tree may change (the other fields as they are), and only so
    that each running subtask keeps its scene; anything else is refused, naming what to stop.
    """
    task, changed = _update_task(task, spec)
    return task, _reach_running(changed)


@transaction.atomic
def _update_task(task: Task, spec: dict[str, Any]) -> tuple[Task, list[Subtask]]:
    task = Task.objects.select_for_update().select_related("project").get(pk=task.pk)
    running = task.subtasks.active().exists()
    if running and _changes_beyond_scenes(task, spec):
        raise Conflict(_("stop the task before changing it: some of its subtasks are running"))
    for name in ("source_type", "node_count", "pull_source_url"):
        if name in spec and spec[name] != getattr(task, name):
            raise Conflict(
                _("%(field)s cannot change once the task is split into subtasks; create a new task")
                % {"field": name},
                field=name,
            )
    if "vchans" in spec:
        raise Invalid(_("vchans cannot change on update; add or delete subtasks instead"), field="vchans")
    algo_type = task.algo_type
    for name, value in _pick(spec, TASK_FIELDS).items():
        setattr(task, name, value)
    if (
        task.algo_type != algo_type
        and "mtasks" not in spec
        and Scene.objects.filter(mtask__task=task).exists()
    ):
        # Scenes must keep their task's algo_type; they are replaced only together with it.
        raise Invalid(_("algo_type cannot change without replacing the task's mtasks"), field="algo_type")
    if "store_conf_unid" in spec:
        task.store_conf = get_store_conf(task.project, spec["store_conf_unid"])
    clean(task, "", exclude=TASK_CLEAN_EXCLUDE)
    changed: list[Subtask] = []
    if "mtasks" in spec:
        mtasks, scenes, rois = _build_tree(task, spec["mtasks"] or [])
        cameras.check_cameras(task.project, scenes)
        before = {link.subtask.pk: link.before for link in scene_links.links(task, [])}
        task.subtasks.update(scene=None)
        task.mtasks.all().delete()
        _save_tree(mtasks, scenes, rois)
        changed = _relink(task, before)
    task.save()
    if task.schedule_active and (task.schedule or "schedule" in spec):
        # A weekly (v2) schedule; an active task without one runs by its mtasks (subtasks.mtask_runs).
        schedules.sync(task)
    announce(task.project.project_id, "task.updated", {"task_id": task.task_id}, task_id=task.task_id)
    return task, changed


def _changes_beyond_scenes(task: Task, spec: dict[str, Any]) -> bool:
    """Whether `spec` changes more than the mtask tree (a client may send back what it read)."""
    if (
        "vchans" in spec
        or "store_conf_unid" in spec
        and spec["store_conf_unid"] != (task.store_conf.unid if task.store_conf else None)
    ):
        return True
    return any(getattr(task, name) != value for name, value in _pick(spec, TASK_FIELDS).items())


def _relink(task: Task, before: dict[int, Any] | None = None, force: bool = False) -> list[Subtask]:
    """The one rule (tasks.scene_links) applied to every subtask of the task; refused when it
    would move a running subtask to another scene. Returns the subtasks whose configuration changed."""
    found = scene_links.links(task, scene_links.ordered_scenes(task), before)
    moving = scene_links.moved_while_running(found)
    if moving:
        names = ", ".join(
            f"#{link.subtask.pk} ({link.subtask.video_channel.vchan_refid if link.subtask.video_channel else _('no channel')}, {link.subtask.state})"
            for link in moving
        )
        raise Conflict(
            _(
                "this change gives running subtask %(subtasks)s another scene; stop it first "
                "(POST /subtasks/{id}/stop), or stop the task"
            )
            % {"subtasks": names}
        )
    return scene_links.write(found, force=force)


def _reach_running(changed: list[Subtask]) -> list[Ack]:
    """After commit: running subtasks re-read their configuration now and acknowledge it
    ("applied" for those not running: they read it when they start)."""
    if not changed:
        return []
    command = {"op": "update", "fields": list(scene_links.COPIED)}
    return engine().send_to_subtasks([subtask.pk for subtask in changed], command)


@transaction.atomic
def replace_vchans(task: Task, vchan_specs: list[dict[str, Any]], ready: bool = False) -> list[Subtask]:
    """Split a video task again over other channels: its subtasks are deleted and made anew.

    vchan_specs as for create_task. Refused while a subtask is active. The new subtasks start
    PENDING with the configuration of their channel's scene, as at creation (CONFIGURED and
    config-complete with `ready`, for APIs that have no configuration step).
    """
    task = Task.objects.select_for_update().select_related("project").get(pk=task.pk)
    if task.source_type != SourceType.PULL_VIDEO_STREAM:
        raise Invalid(_("vchans are for pull_video_stream tasks only"), field="vchans")
    if task.subtasks.active().exists():
        raise Conflict(_("stop the task before changing it: some of its subtasks are running"))
    sources = _source_fields(vchan_specs)
    channels = _resolve_channels(task.project, task, vchan_specs)
    scenes = list(Scene.objects.filter(mtask__task=task).order_by("mtask__position", "position"))
    by_id = {scene.pk: scene for scene in scenes}
    rois = list(SceneRoi.objects.filter(scene__in=scenes).order_by("scene_id", "position"))
    for roi in rois:
        roi.scene = by_id[roi.scene_id]  # _split matches ROIs to scenes by identity
    task.subtasks.all().delete()
    subtasks = _ready(_split(task, channels, scenes, rois, sources), {"config_complete": ready})
    subtasks = Subtask.objects.bulk_create(subtasks)
    task.save(update_fields=["update_dt"])
    announce(task.project.project_id, "task.updated", {"task_id": task.task_id}, task_id=task.task_id)
    return subtasks


def _lock_idle_task(task_id: str) -> Task:
    task = Task.objects.select_for_update().select_related("project").get(pk=task_id)
    if task.subtasks.active().exists():
        raise Conflict(_("stop the task before changing it: some of its subtasks are running"))
    return task


def _announce_changed(task: Task) -> None:
    announce(task.project.project_id, "task.updated", {"task_id": task.task_id}, task_id=task.task_id)


@transaction.atomic
def save_mtasks(task: Task, changed: list[MTask], deleted: list[MTask]) -> None:
    """Add, change and delete some of a task's mtasks (the rest of its tree stays). Validated by
    the models; refused while the task runs, as update_task is."""
    task = _lock_idle_task(task.pk)
    for index, mtask in enumerate(changed):
        mtask.task = task
        clean(mtask, f"mtasks[{index}]")
        if mtask.pk is not None:
            cameras.check_mtask(mtask)
        mtask.save()
    for mtask in deleted:
        Subtask.objects.filter(scene__mtask=mtask).update(scene=None)
        mtask.delete()
    _relink(task)
    _announce_changed(task)


def save_scene(scene: Scene, rois: list[str] | None = None) -> list[Ack]:
    """Add or change one scene of a task and, when `rois` is given, replace its ROI documents in
    that order; then every subtask it configures gets the change (running ones at once, with
    their acknowledgements returned). Validated by the models. While subtasks run, refused only
    when it would give a running subtask another scene (docs/state-machine.md)."""
    return _reach_running(_save_scene(scene, rois))


@transaction.atomic
def _save_scene(scene: Scene, rois: list[str] | None) -> list[Subtask]:
    task = Task.objects.select_for_update().select_related("project").get(pk=scene.mtask.task_id)
    clean(scene, "")  # the model checks algo_type against its task's
    cameras.check_cameras(task.project, [scene], where=lambda _scene, field: field)
    scene.save()
    if rois is not None:
        documents = [SceneRoi(scene=scene, position=i, xml=xml) for i, xml in enumerate(rois)]
        for index, roi in enumerate(documents):
            clean(roi, f"rois[{index}]", exclude=["scene"])
        SceneRoi.objects.filter(scene=scene).delete()
        SceneRoi.objects.bulk_create(documents)
    changed = _relink(task)
    _announce_changed(task)
    return changed


def delete_scene(scene: Scene) -> list[Ack]:
    """Delete a scene; its subtasks are configured by the rule again (refused when that would
    give a running subtask another scene)."""
    return _reach_running(_delete_scene(scene))


@transaction.atomic
def _delete_scene(scene: Scene) -> list[Subtask]:
    task = Task.objects.select_for_update().select_related("project").get(pk=scene.mtask.task_id)
    scene.delete()
    changed = _relink(task)
    _announce_changed(task)
    return changed


def copy_scene_to_subtasks(scene: Scene) -> list[Ack]:
    """The scene page's button: every subtask it configures takes its configuration again (their
    own, from a subtask-level PUT, replaced); running ones at once. One answer per subtask."""
    return _reach_running(_copy_scene(scene))


@transaction.atomic
def _copy_scene(scene: Scene) -> list[Subtask]:
    task = Task.objects.select_for_update().select_related("project").get(pk=scene.mtask.task_id)
    mine = [link for link in scene_links.links(task, scene_links.ordered_scenes(task)) if link.scene == scene]
    scene_links.write(mine, force=True)
    return [link.subtask for link in mine]


@transaction.atomic
def delete_task(task: Task) -> None:
    """Delete a big task. Refused while it has subtasks (the seed's rule): delete those first."""
    count = task.subtasks.count()
    if count:
        raise Conflict(
            _("the task still has %(n)d subtasks; delete them first (DELETE /subtasks/{id})") % {"n": count}
        )
    project_id, task_id = task.project.project_id, task.task_id
    task.delete()
    schedules.remove(task_id)
    announce(project_id, "task.deleted", {"task_id": task_id}, task_id=task_id)


def _build_tree(
    task: Task, mtask_specs: list[dict[str, Any]]
) -> tuple[list[MTask], list[Scene], list[SceneRoi]]:
    if len(mtask_specs) > constants.MAX_MTASKS_PER_TASK:
        raise Invalid(_("at most %(n)d mtasks") % {"n": constants.MAX_MTASKS_PER_TASK}, field="mtasks")
    mtasks, scenes, rois, unids = [], [], [], set()
    for m_index, m_spec in enumerate(mtask_specs):
        path = f"mtasks[{m_index}]"
        mtask = MTask(task=task, position=m_index, **_pick(m_spec, MTASK_FIELDS))
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
    scene = Scene(mtask=mtask, position=index, **_pick(spec, SCENE_FIELDS))
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


def _save_tree(mtasks: list[MTask], scenes: list[Scene], rois: list[SceneRoi]) -> None:
    # bulk_create sets primary keys (PostgreSQL, SQLite >= 3.35); children pick them up from their parents.
    MTask.objects.bulk_create(mtasks)
    Scene.objects.bulk_create(scenes)
    SceneRoi.objects.bulk_create(rois)


def _resolve_channels(project: Project, task: Task, vchan_specs: list[dict[str, Any]]) -> list[VideoChannel]:
    """The channels a video task splits over: existing ones by refid, new ones created here."""
    if len(vchan_specs) > constants.MAX_VCHANS_PER_TASK:
        raise Invalid(
            _("at most %(n)d video channels") % {"n": constants.MAX_VCHANS_PER_TASK}, field="vchans"
        )
    if vchan_specs and task.source_type != SourceType.PULL_VIDEO_STREAM:
        raise Invalid(_("vchans are for pull_video_stream tasks only"), field="vchans")
    refids = [spec["vchan_refid"] for spec in vchan_specs]
    if len(set(refids)) != len(refids):
        raise Invalid(_("a video channel is listed twice"), field="vchans")
    existing = {
        c.vchan_refid: c for c in VideoChannel.objects.filter(project=project, vchan_refid__in=refids)
    }
    channels, new = [], []
    for index, spec in enumerate(vchan_specs):
        channel = existing.get(spec["vchan_refid"])
        if channel is None:
            if not spec.get("url"):
                raise NotFound(
                    _("no video channel %(r)s (give its url to create it)") % {"r": spec["vchan_refid"]},
                    field=f"vchans[{index}]",
                )
            channel = VideoChannel(project=project, **_pick(spec, VCHAN_FIELDS))
            clean(channel, f"vchans[{index}]", exclude=["project"])
            new.append(channel)
        elif spec.get("url") and spec["url"] != channel.url:
            raise Conflict(
                _("video channel %(r)s exists with another url") % {"r": spec["vchan_refid"]},
                field=f"vchans[{index}]",
            )
        channels.append(channel)
    VideoChannel.objects.bulk_create(new)
    return channels


def _source_fields(vchan_specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each vchans item's SUBTASK_SOURCE_FIELDS, validated by the Subtask model's own rules."""
    checked = []
    others = [f.name for f in Subtask._meta.fields if f.name not in SUBTASK_SOURCE_FIELDS]
    for index, spec in enumerate(vchan_specs):
        fields = _pick(spec, SUBTASK_SOURCE_FIELDS)
        if fields:
            try:
                Subtask(**fields).clean_fields(exclude=others)
            except ValidationError as exc:
                raise prefix_validation_error(exc, f"vchans[{index}]") from None
        checked.append(fields)
    return checked


def _split(
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


# ---- storage configs ----------------------------------------------------------------------------


def _store_conf_from(project: Project, spec: dict[str, Any], conf: StoreConf | None = None) -> StoreConf:
    conf = conf or StoreConf(project=project, unid=spec.get("unid", ""))
    conf.name = spec.get("name", conf.name)
    conf.file_ext = spec.get("file_ext", conf.file_ext)
    if "file_b64" in spec:
        try:
            conf.content = decode_file_b64(spec["file_b64"])
        except ValidationError as exc:
            if exc.code == "too_large":
                raise TooLarge(exc.messages[0], field="file_b64") from None
            raise ValidationError({"file_b64": exc.messages}) from None
    clean(conf, "", exclude=["project"])
    return conf


@transaction.atomic
def create_store_conf(project: Project, spec: dict[str, Any]) -> StoreConf:
    if StoreConf.objects.filter(project=project, unid=spec.get("unid")).exists():
        raise Conflict(_("storage config %(u)s already exists") % {"u": spec.get("unid")}, field="unid")
    conf = _store_conf_from(project, spec)
    conf.save()
    announce(project.project_id, "store_conf.created", {"unid": conf.unid})
    return conf


@transaction.atomic
def replace_store_conf(conf: StoreConf, spec: dict[str, Any]) -> StoreConf:
    """Replace a storage config's file; its version increases. Running subtasks hear of it
    through the control channel (analysis issue); the old file is not kept."""
    conf = StoreConf.objects.select_for_update().select_related("project").get(pk=conf.pk)
    if spec.get("unid", conf.unid) != conf.unid:
        raise Invalid(_("unid cannot change"), field="unid")
    conf = _store_conf_from(conf.project, spec, conf)
    conf.version += 1
    conf.save()
    announce(conf.project.project_id, "store_conf.replaced", {"unid": conf.unid, "version": conf.version})
    return conf


def replace_store_conf_and_push(
    conf: StoreConf, spec: dict[str, Any], timeout: float | None = None
) -> tuple[StoreConf, list[Ack]]:
    """Replace a storage config, then send it to every running subtask of every task using it
    and wait for their acknowledgements. The old file is not kept, so delivery is what counts."""
    conf = replace_store_conf(conf, spec)
    return conf, engine().push_store_conf(conf, timeout)


@transaction.atomic
def delete_store_conf(conf: StoreConf) -> None:
    used = conf.tasks.count()
    if used:
        raise Conflict(_("storage config %(u)s is used by %(n)d tasks") % {"u": conf.unid, "n": used})
    project_id, unid = conf.project.project_id, conf.unid
    conf.delete()
    announce(project_id, "store_conf.deleted", {"unid": unid})


# ---- video channels ------------------------------------------------------------------------------


@transaction.atomic
def create_vchan(project: Project, spec: dict[str, Any]) -> VideoChannel:
    if VideoChannel.objects.filter(project=project, vchan_refid=spec.get("vchan_refid")).exists():
        raise Conflict(
            _("video channel %(r)s already exists") % {"r": spec.get("vchan_refid")}, field="vchan_refid"
        )
    channel = VideoChannel(project=project, **_pick(spec, (*VCHAN_FIELDS, "width", "height")))
    clean(channel, "", exclude=["project"])
    channel.save()
    announce(project.project_id, "vchan.created", {"vchan_refid": channel.vchan_refid})
    return channel


@transaction.atomic
def update_vchan(channel: VideoChannel, spec: dict[str, Any]) -> VideoChannel:
    if spec.get("vchan_refid", channel.vchan_refid) != channel.vchan_refid:
        raise Invalid(_("vchan_refid cannot change"), field="vchan_refid")
    if "url" in spec and spec["url"] != channel.url and channel.subtasks.active().exists():
        raise Conflict(
            _("the channel is being analysed; stop its subtasks before changing its url"), field="url"
        )
    for name, value in _pick(spec, (*VCHAN_FIELDS[1:], "width", "height")).items():
        setattr(channel, name, value)
    clean(channel, "", exclude=["project"])
    channel.save()
    channel.subtasks.exclude(source_url=channel.url).update(source_url=channel.url)
    announce(channel.project.project_id, "vchan.updated", {"vchan_refid": channel.vchan_refid})
    return channel


@transaction.atomic
def delete_vchan(channel: VideoChannel) -> None:
    used = channel.subtasks.count()
    if used:
        raise Conflict(
            _("video channel %(r)s is used by %(n)d subtasks") % {"r": channel.vchan_refid, "n": used}
        )
    project_id, refid = channel.project.project_id, channel.vchan_refid
    channel.delete()
    announce(project_id, "vchan.deleted", {"vchan_refid": refid})


# ---- tasks without a configuration step, algorithm services, bulk creation, batch tasks (VIAS v2) ----


def _ready(subtasks: list[Subtask], spec: dict[str, Any]) -> list[Subtask]:
    """With spec["config_complete"] the new subtasks are config-complete, hence CONFIGURED: APIs
    without a configuration step (v2) dispatch what they create. A creation, not a transition."""
    if spec.get("config_complete"):
        for subtask in subtasks:
            subtask.config_complete = True
            subtask.state = State.CONFIGURED
    return subtasks


def with_play_url(project: Project, spec: dict[str, Any]) -> dict[str, Any]:
    """A spec without play_url takes its first channel's url (v2 names its sources, not a URL)."""
    if spec.get("play_url") or not spec.get("vchans"):
        return spec
    first = spec["vchans"][0]
    url = first.get("url") or (
        VideoChannel.objects.filter(project=project, vchan_refid=first["vchan_refid"])
        .values_list("url", flat=True)
        .first()
    )
    if not url:
        raise NotFound(_("no video channel %(r)s") % {"r": first["vchan_refid"]}, field="vchans[0]")
    return {**spec, "play_url": url}


@transaction.atomic
def purge_task(task: Task) -> None:
    """Delete a task with its subtasks (v2 DELETE). Refused while a subtask is active: stop it first."""
    task = Task.objects.select_for_update().select_related("project").get(pk=task.pk)
    if task.subtasks.active().exists():
        raise Conflict(_("stop the task before deleting it: some of its subtasks are running"))
    project_id, task_id = task.project.project_id, task.task_id
    task.subtasks.all().delete()
    task.delete()
    schedules.remove(task_id)
    announce(project_id, "task.deleted", {"task_id": task_id}, task_id=task_id)


@dataclass
class BulkResult:
    """What a bulk creation made, and why each item that failed did (in the order given)."""

    tasks: list[Task] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def _failure(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return summary(flatten_errors(exc))
    return f"{exc.field}: {exc.message}" if getattr(exc, "field", None) else str(exc)


def create_tasks(
    project: Project, specs: list[dict[str, Any]], validated: tuple[str, ...] = ()
) -> BulkResult:
    """Create many tasks at once over existing video channels: one read of the channels and one
    INSERT per table whatever their number. An item that fails is reported, not fatal to others.

    Each spec as for create_task, except that `vchans` must name existing channels. `validated`:
    fields the caller has already validated with the same validators (a batch's output, schedule
    and config are checked once on the BatchTask, not once per task: the webhook check resolves
    its host). One announcement, `tasks.created` with the ids, tells the project about all of them.
    """
    refids = {vchan["vchan_refid"] for spec in specs for vchan in spec.get("vchans") or []}
    channels = {
        c.vchan_refid: c for c in VideoChannel.objects.filter(project=project, vchan_refid__in=refids)
    }
    result, trees, subtasks = BulkResult(), ([], [], []), []
    for index, spec in enumerate(specs):
        try:
            task, tree, parts = _build_bulk(project, spec, channels, validated)
        except (ServiceError, ValidationError) as exc:
            result.errors.append((index, _failure(exc)))
            continue
        result.tasks.append(task)
        for bucket, items in zip(trees, tree, strict=True):
            bucket.extend(items)
        subtasks.extend(parts)
    Task.objects.bulk_create(result.tasks)
    _save_tree(*trees)
    Subtask.objects.bulk_create(subtasks)
    if result.tasks:
        announce(project.project_id, "tasks.created", {"task_ids": [task.task_id for task in result.tasks]})
    return result


def _build_bulk(
    project: Project, spec: dict[str, Any], channels: dict[str, VideoChannel], validated: tuple[str, ...]
):
    chosen = []
    for index, vchan in enumerate(spec.get("vchans") or []):
        channel = channels.get(vchan["vchan_refid"])
        if channel is None:
            raise NotFound(
                _("no video channel %(r)s") % {"r": vchan["vchan_refid"]}, field=f"vchans[{index}]"
            )
        chosen.append(channel)
    if len({c.pk for c in chosen}) != len(chosen):
        raise Invalid(_("a video channel is listed twice"), field="vchans")
    if chosen and not spec.get("play_url"):
        spec = {**spec, "play_url": chosen[0].url}
    task = Task(project=project, **_pick(spec, TASK_FIELDS))
    clean(task, "", exclude=[*TASK_CLEAN_EXCLUDE, *validated])
    mtasks, scenes, rois = _build_tree(task, spec.get("mtasks") or [])
    sources = _source_fields(spec.get("vchans") or [])
    return task, (mtasks, scenes, rois), _ready(_split(task, chosen, scenes, rois, sources), spec)


@dataclass
class BatchResult:
    """A batch operation's answer: v2 {total_count, failed_count, succeed_count, id, error_list}."""

    batch: BatchTask
    total: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.errors)

    @property
    def succeeded(self) -> int:
        return self.total - len(self.errors)


def get_batch(project: Project, batch_id: str) -> BatchTask:
    batch = BatchTask.objects.filter(project=project, batch_id=batch_id).first()
    if batch is None:
        raise NotFound(_("no batch task %(id)s") % {"id": batch_id}, field="batch_id")
    return batch


def _batch_task_specs(
    batch: BatchTask, sources: list[dict[str, Any]], task_defaults: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """One task spec per video source (those listed twice are refused with a reason)."""
    common = {
        **task_defaults,
        **{name: getattr(batch, name) for name in BatchTask.TASK_FIELDS},
        "run_dt": timezone.now(),
        "source_type": SourceType.PULL_VIDEO_STREAM,
        "batch": batch,
        "config_complete": True,
    }
    base = batch.name[: constants.V2_MAX_NAME_LENGTH - 6]
    specs, labels, errors, seen = [], [], [], set()
    for index, source in enumerate(sources):
        label = source.get("label") or str(index)
        if source["vchan_refid"] in seen:
            errors.append(f"{label}: " + _("a video source is listed twice"))
            continue
        seen.add(source["vchan_refid"])
        specs.append(
            {
                **common,
                "task_name": f"{base}_{index + 1}",
                "vchans": [{"vchan_refid": source["vchan_refid"]}],
                "video_group_id": source.get("video_group_id", ""),
                "target_roi": source.get("target_roi", ""),
            }
        )
        labels.append(label)
    return specs, labels, errors


def _add_batch_tasks(
    batch: BatchTask, sources: list[dict[str, Any]], task_defaults: dict[str, Any]
) -> BatchResult:
    specs, labels, errors = _batch_task_specs(batch, sources, task_defaults)
    made = create_tasks(batch.project, specs, validated=("output", "schedule", "config"))
    errors += [f"{labels[index]}: {message}" for index, message in made.errors]
    return BatchResult(batch, total=len(sources), errors=errors)


@transaction.atomic
def create_batch(
    project: Project,
    spec: dict[str, Any],
    sources: list[dict[str, Any]],
    task_defaults: dict[str, Any] | None = None,
) -> BatchResult:
    """A batch task and one task per video source, in one transaction with bulk inserts.

    spec: BATCH_FIELDS; sources: [{vchan_refid, video_group_id?, target_roi?, label?}], where
    `label` names the source in error messages. A source that fails is counted and listed.
    task_defaults: task fields every task of the batch starts from (v2: what its algorithm
    service stands for, tasks/api/v2/algorithms.py).
    """
    batch = BatchTask(project=project, **_pick(spec, BATCH_FIELDS))
    clean(batch, "", exclude=["project", "creator"])
    batch.save()
    result = _add_batch_tasks(batch, sources, task_defaults or {})
    announce(project.project_id, "batch.created", {"batch_id": batch.batch_id})
    return result


def _refuse_if_running(batch: BatchTask, message: str) -> None:
    if Subtask.objects.filter(task__batch=batch).active().exists():
        raise Conflict(message)


def _delete_batch_tasks(batch: BatchTask) -> int:
    task_ids = list(Task.objects.filter(batch=batch).values_list("task_id", flat=True))
    Subtask.objects.filter(task_id__in=task_ids).delete()
    Task.objects.filter(task_id__in=task_ids).delete()
    for task_id in task_ids:
        schedules.remove(task_id)
    return len(task_ids)


@transaction.atomic
def update_batch(
    batch: BatchTask,
    spec: dict[str, Any],
    sources: list[dict[str, Any]] | None = None,
    task_defaults: dict[str, Any] | None = None,
) -> BatchResult:
    """Change a batch's settings (copied onto its tasks); `sources` replaces its tasks. Refused
    while one of its tasks runs; service_name cannot change."""
    batch = BatchTask.objects.select_for_update().select_related("project").get(pk=batch.pk)
    if spec.get("service_name", batch.service_name) != batch.service_name:
        raise Invalid(
            _("cannot change (it is %(name)s)") % {"name": batch.service_name}, field="service_name"
        )
    _refuse_if_running(batch, _("stop the batch task before changing it: some of its tasks are running"))
    for name, value in _pick(spec, BATCH_FIELDS).items():
        setattr(batch, name, value)
    clean(batch, "", exclude=["project", "creator"])
    batch.save()
    announce(batch.project.project_id, "batch.updated", {"batch_id": batch.batch_id})
    if sources is not None:
        _delete_batch_tasks(batch)
        return _add_batch_tasks(batch, sources, task_defaults or {})
    tasks = Task.objects.filter(batch=batch)
    changes = {name: getattr(batch, name) for name in BatchTask.TASK_FIELDS if name != "creator"}
    total = tasks.update(**changes, update_dt=timezone.now())
    for task in tasks.filter(schedule_active=True):
        schedules.sync(task)
    return BatchResult(batch, total=total)


@transaction.atomic
def delete_batch(batch: BatchTask) -> BatchResult:
    """Delete a batch with its tasks and their subtasks. Refused while one of its tasks runs."""
    batch = BatchTask.objects.select_for_update().select_related("project").get(pk=batch.pk)
    _refuse_if_running(batch, _("stop the batch task before deleting it: some of its tasks are running"))
    total = _delete_batch_tasks(batch)
    project_id, batch_id = batch.project.project_id, batch.batch_id
    batch.delete()
    announce(project_id, "batch.deleted", {"batch_id": batch_id})
    return BatchResult(BatchTask(batch_id=batch_id), total=total)


def run_batch(batch: BatchTask, action: str) -> BatchResult:
    """Start or stop every task of a batch (the core start_task / stop_task); a task that cannot
    is counted and listed, the others go on."""
    act = subtask_services.start_task if action == schedules.START else subtask_services.stop_task
    tasks = list(Task.objects.filter(batch=batch).select_related("project").order_by("task_name", "task_id"))
    result = BatchResult(batch, total=len(tasks))
    for task in tasks:
        try:
            with transaction.atomic():
                act(task)
        except ServiceError as exc:
            result.errors.append(f"{task.task_id}: {exc.message}")
    return result
