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
from django.utils.translation import gettext as _

from subtasks import callbacks
from subtasks import services as subtask_services
from subtasks.engine import APPLIED, Ack, engine
from subtasks.models import Subtask
from tasks import building, cameras, scene_links, schedules
from tasks.building import (
    TASK_CLEAN_EXCLUDE,
    TASK_FIELDS,
    VCHAN_FIELDS,
    TaskBuilder,
    build_tree,
    pick,
    source_fields,
    split,
)
from tasks.building import ready as make_ready
from tasks.choices import SourceType
from tasks.models import MTask, Project, Scene, SceneRoi, StoreConf, Task, VideoChannel
from tasks.validators import decode_file_b64, type_config_for_url
from vias.lib.announce import announce
from vias.lib.broker import require_broker
from vias.lib.errors import (
    Conflict,
    Invalid,
    NotFound,
    ServiceError,
    TooLarge,
    clean,
    flatten_errors,
    summary,
)

# ---- tasks ------------------------------------------------------------------------------------


def get_task(project: Project, task_id: str) -> Task:
    task = Task.objects.for_project(project).select_related("store_conf").filter(task_id=task_id).first()
    if task is None:
        raise NotFound(_("no task %(id)s") % {"id": task_id}, field="task_id")
    return task


def get_store_conf(project: Project, unid: str, field: str = "store_conf_unid") -> StoreConf:
    """The project's storage config `unid`; NotFound names `field`."""
    conf = StoreConf.objects.for_project(project).filter(unid=unid).first()
    if conf is None:
        raise NotFound(_("no storage config %(unid)s") % {"unid": unid}, field=field)
    return conf


def get_vchan(project: Project, refid: str) -> VideoChannel:
    channel = VideoChannel.objects.for_project(project).filter(vchan_refid=refid).first()
    if channel is None:
        raise NotFound(_("no video channel %(r)s") % {"r": refid}, field="vchan_refid")
    return channel


@transaction.atomic
def create_task(project: Project, spec: dict[str, Any]) -> Task:
    """Create a big task with its mtasks and scenes and split it into subtasks (nothing is dispatched).

    spec: the task fields, `store_conf_unid`, `mtasks` (each with `scenes`, each with `rois`:
    a list of XML strings), `vchans` (a list of {vchan_refid, name?, url?}) and, for dialects
    without a configuration step, `config_complete`. The builder is create_tasks' (tasks/building.py).
    """
    built = TaskBuilder(project, [spec]).build(spec)
    building.save([built])
    task = built.task
    announce(project.project_id, "task.created", {"task_id": task.task_id}, task_id=task.task_id)
    return task


def update_task(task: Task, spec: dict[str, Any], vchans: list[dict[str, Any]] | None = None) -> Task:
    """Replace a task's fields and its mtask/scene tree. How it was split stays as it is, unless
    the dialect re-splits on update (VCS, v2): then `vchans` are its new channels, as in
    replace_vchans (config-complete with spec["config_complete"]), and a spec without play_url
    takes the first one's."""
    return update_task_live(task, spec, vchans)[0]


def update_task_live(
    task: Task, spec: dict[str, Any], vchans: list[dict[str, Any]] | None = None
) -> tuple[Task, list[Ack]]:
    """update_task, and the running subtasks whose scene changed apply it now: one
    acknowledgement per subtask whose analysed configuration changed (docs/state-machine.md).

    While subtasks run only the mtask tree may change (the other fields as they are), and only so
    that each running subtask keeps its scene; anything else is refused, naming what to stop.
    """
    task, changed = _update_task(task, spec, vchans)
    return task, _reach_running(changed)


@transaction.atomic
def _update_task(
    task: Task, spec: dict[str, Any], vchans: list[dict[str, Any]] | None
) -> tuple[Task, list[Subtask]]:
    if vchans is not None:
        spec = TaskBuilder(task.project, [{"vchans": vchans}]).with_play_url({**spec, "vchans": vchans})
        spec.pop("vchans")
    task = Task.objects.select_for_update().select_related("project").get(pk=task.pk)
    running = task.subtasks.active().exists()
    if running and (vchans is not None or _changes_beyond_scenes(task, spec)):
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
    algo_type, when = task.algo_type, (task.run_dt, task.schedule)
    for name, value in pick(spec, TASK_FIELDS).items():
        setattr(task, name, value)
    if (
        task.algo_type != algo_type
        and "mtasks" not in spec
        and Scene.objects.filter(mtask__task=task).exists()
    ):
        # Scenes must keep their task's algo_type; they are replaced only together with it.
        raise Invalid(_("algo_type cannot change without replacing the task's mtasks"), field="algo_type")
    if "store_conf_unid" in spec:
        unid = spec["store_conf_unid"]
        task.store_conf = get_store_conf(task.project, unid) if unid else None
    clean(task, "", exclude=TASK_CLEAN_EXCLUDE)
    changed: list[Subtask] = []
    if "mtasks" in spec:
        before = {link.subtask.pk: link.before for link in scene_links.links(task, [])}
        _replace_tree(task, spec["mtasks"] or [])
        changed = _relink(task, before)
    task.save()
    if vchans is not None:
        _resplit(task, vchans, bool(spec.get("config_complete")))
    if task.schedule_active and (task.schedule or "schedule" in spec):
        # A weekly (v2) schedule; an active task without one runs by its mtasks (subtasks.mtask_runs).
        schedules.sync(task)
    if "mtasks" in spec or vchans is not None or (task.run_dt, task.schedule) != when:
        subtask_services.replan_task(task)  # a started task follows its edited schedule at once
    announce(task.project.project_id, "task.updated", {"task_id": task.task_id}, task_id=task.task_id)
    return task, changed


def _keep_unids(specs: list[Any], mtasks: list[MTask], scenes: list[Scene]) -> list[Any]:
    """A PUT body's mtasks and scenes without `mtask_unid` / `scene_unid` are the task's mtask and
    scene at the same position (a client may send back what it read without them): they keep their
    ids, so that they are edited in place, not made anew with new ids. An id the body names
    elsewhere is not given twice."""
    if not isinstance(specs, list):
        return specs  # build_tree's validation answers
    named = {m.get("mtask_unid") for m in specs if isinstance(m, dict)}
    by_unid = {m.mtask_unid: m for m in mtasks}
    kept = []
    for index, m_spec in enumerate(specs):
        if not isinstance(m_spec, dict):
            kept.append(m_spec)
            continue
        if "mtask_unid" not in m_spec and index < len(mtasks) and mtasks[index].mtask_unid not in named:
            m_spec = {**m_spec, "mtask_unid": mtasks[index].mtask_unid}
        old = by_unid.get(str(m_spec.get("mtask_unid")))
        scene_specs = m_spec.get("scenes")
        if old is not None and isinstance(scene_specs, list):
            olds = [scene for scene in scenes if scene.mtask_id == old.pk]
            names = {sc.get("scene_unid") for sc in scene_specs if isinstance(sc, dict)}
            m_spec = {
                **m_spec,
                "scenes": [
                    {**sc, "scene_unid": olds[i].scene_unid}
                    if isinstance(sc, dict)
                    and "scene_unid" not in sc
                    and i < len(olds)
                    and olds[i].scene_unid not in names
                    else sc
                    for i, sc in enumerate(scene_specs)
                ],
            }
        kept.append(m_spec)
    return kept


def _replace_tree(task: Task, specs: list[Any]) -> None:
    """Replace the task's mtask/scene tree with `specs` (validated by the models), editing in place
    the mtasks and scenes it names again by `(mtask_unid, scene_unid)`: same rows, same ids, the
    subtasks' links and the mtasks' progress kept; the others are deleted or made. ROIs are
    replaced (they have no identity)."""
    old_mtasks = list(task.mtasks.order_by("position"))
    old_scenes = list(Scene.objects.filter(mtask__task=task).order_by("mtask__position", "position"))
    mtasks, scenes, rois = build_tree(task, _keep_unids(specs, old_mtasks, old_scenes))
    cameras.check_cameras(task.project, scenes)
    mtask_of = {m.mtask_unid: m for m in old_mtasks}
    for mtask in mtasks:
        old = mtask_of.get(mtask.mtask_unid)
        if old is not None:
            mtask.pk, mtask.progress = old.pk, old.progress
    kept_ids = {m.pk for m in mtasks if m.pk is not None}
    scene_of: dict[tuple[int, str], Scene] = {}
    for scene in old_scenes:
        scene_of.setdefault((scene.mtask_id, scene.scene_unid), scene)
    for scene in scenes:
        old_scene = scene_of.pop((scene.mtask.pk, scene.scene_unid), None) if scene.mtask.pk else None
        if old_scene is not None:
            scene.pk, scene.is_running, scene.status_reason = (
                old_scene.pk,
                old_scene.is_running,
                old_scene.status_reason,
            )
    kept_scenes = {scene.pk for scene in scenes if scene.pk is not None}
    SceneRoi.objects.filter(scene__mtask__task=task).delete()
    Scene.objects.filter(mtask__task=task).exclude(pk__in=kept_scenes).delete()  # subtasks: SET_NULL
    task.mtasks.exclude(pk__in=kept_ids).delete()
    fields = [*building.MTASK_FIELDS, "position"]
    MTask.objects.bulk_update([m for m in mtasks if m.pk is not None], fields)
    MTask.objects.bulk_create([m for m in mtasks if m.pk is None])
    # Children take their new parents' primary keys as they are saved (bulk_create, bulk_update).
    scene_fields = [*building.SCENE_FIELDS, "position", "mtask"]
    Scene.objects.bulk_update([scene for scene in scenes if scene.pk is not None], scene_fields)
    Scene.objects.bulk_create([scene for scene in scenes if scene.pk is None])
    SceneRoi.objects.bulk_create(rois)


def _changes_beyond_scenes(task: Task, spec: dict[str, Any]) -> bool:
    """Whether `spec` changes more than the mtask tree (a client may send back what it read)."""
    if (
        "vchans" in spec
        or "store_conf_unid" in spec
        and spec["store_conf_unid"] != (task.store_conf.unid if task.store_conf else None)
    ):
        return True
    return any(getattr(task, name) != value for name, value in pick(spec, TASK_FIELDS).items())


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
    if task.subtasks.active().exists():
        raise Conflict(_("stop the task before changing it: some of its subtasks are running"))
    subtasks = _resplit(task, vchan_specs, ready)
    task.save(update_fields=["update_dt"])
    announce(task.project.project_id, "task.updated", {"task_id": task.task_id}, task_id=task.task_id)
    return subtasks


def _resplit(task: Task, vchan_specs: list[dict[str, Any]], ready: bool) -> list[Subtask]:
    if task.source_type != SourceType.PULL_VIDEO_STREAM:
        raise Invalid(_("vchans are for pull_video_stream tasks only"), field="vchans")
    sources = source_fields(vchan_specs)
    channels, new = TaskBuilder(task.project, [{"vchans": vchan_specs}]).resolve_channels(task, vchan_specs)
    VideoChannel.objects.bulk_create(new)
    scenes = list(Scene.objects.filter(mtask__task=task).order_by("mtask__position", "position"))
    by_id = {scene.pk: scene for scene in scenes}
    rois = list(SceneRoi.objects.filter(scene__in=scenes).order_by("scene_id", "position"))
    for roi in rois:
        roi.scene = by_id[roi.scene_id]  # split matches ROIs to scenes by identity
    before = callbacks.task_state_before(task)
    task.subtasks.all().delete()
    subtasks = make_ready(split(task, channels, scenes, rois, sources), {"config_complete": ready})
    made = Subtask.objects.bulk_create(subtasks)
    callbacks.subtasks_changed(task, before, _("split again over other video channels"))
    return made


def _announce_changed(task: Task) -> None:
    announce(task.project.project_id, "task.updated", {"task_id": task.task_id}, task_id=task.task_id)


@transaction.atomic
def save_mtasks(task: Task, changed: list[MTask], deleted: list[MTask]) -> None:
    """Add, change and delete some of a task's mtasks (the rest of its tree stays). Validated by
    the models. While the task runs, refused when it would give a running subtask another scene
    (as update_task is); a started task follows the edited schedules at once (replan_task)."""
    task = Task.objects.select_for_update().select_related("project").get(pk=task.pk)
    for index, mtask in enumerate(changed):
        mtask.task = task
        clean(mtask, f"mtasks[{index}]")
        if mtask.pk is not None:
            cameras.check_mtask(mtask)
        mtask.save()
    before = {link.subtask.pk: link.before for link in scene_links.links(task, [])}
    for mtask in deleted:
        Subtask.objects.filter(scene__mtask=mtask).update(scene=None)
        mtask.delete()
    _relink(task, before)
    subtask_services.replan_task(task)
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
    subtask_services.replan_task(task)  # a rotation of another length
    _announce_changed(task)
    return changed


def delete_scene(scene: Scene) -> list[Ack]:
    """Delete a scene; its subtasks are configured by the rule again (refused when that would
    give a running subtask another scene)."""
    return _reach_running(_delete_scene(scene))


@transaction.atomic
def _delete_scene(scene: Scene) -> list[Subtask]:
    task = Task.objects.select_for_update().select_related("project").get(pk=scene.mtask.task_id)
    before = {link.subtask.pk: link.before for link in scene_links.links(task, [])}
    scene.delete()
    changed = _relink(task, before)
    subtask_services.replan_task(task)
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
    if StoreConf.objects.for_project(project).filter(unid=spec.get("unid")).exists():
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
    and wait for their acknowledgements. The old file is not kept, so delivery is what counts.
    During a Redis outage: 503 before anything is written."""
    require_broker()
    conf = replace_store_conf(conf, spec)
    acks = engine().push_store_conf(conf, timeout)
    # The subtasks that were not running read the new file when they start: "applied".
    pushed = {ack.subtask_id for ack in acks}
    idle = (
        Subtask.objects.filter(task__store_conf=conf)
        .exclude(pk__in=pushed)
        .order_by("task_id", "position")
        .values_list("pk", flat=True)
    )
    return conf, [
        *acks,
        *(Ack(pk, APPLIED, _("not running: uses the new file when it starts")) for pk in idle),
    ]


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
    if VideoChannel.objects.for_project(project).filter(vchan_refid=spec.get("vchan_refid")).exists():
        raise Conflict(
            _("video channel %(r)s already exists") % {"r": spec.get("vchan_refid")}, field="vchan_refid"
        )
    channel = VideoChannel(project=project, **pick(spec, (*VCHAN_FIELDS, "width", "height")))
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
    for name, value in pick(spec, (*VCHAN_FIELDS[1:], "width", "height")).items():
        setattr(channel, name, value)
    if channel.type_config and "url" in spec:  # a v2 source: its address is its type_config
        channel.type_config = type_config_for_url(channel.url)
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


def _failure(exc: ServiceError | ValidationError) -> str:
    if isinstance(exc, ValidationError):
        return summary(flatten_errors(exc))
    return f"{exc.field}: {exc.message}" if exc.field else exc.message


@transaction.atomic(savepoint=False)  # inside a batch's transaction: no savepoint of its own
def create_tasks(
    project: Project, specs: list[dict[str, Any]], validated: tuple[str, ...] = ()
) -> BulkResult:
    """Create many tasks at once, each as create_task would: one read of the channels and one
    INSERT per table whatever their number. An item that fails is reported, not fatal to others.

    `validated`: fields the caller has already validated with the same validators (a batch's
    output, schedule and config are checked once on the BatchTask, not once per task: the webhook
    check resolves its host). One announcement, `tasks.created` with the ids, tells the project
    about all of them (one per task cost 80% of a bulk creation, docs/benchmarks.md).
    """
    builder, built, result = TaskBuilder(project, specs), [], BulkResult()
    for index, spec in enumerate(specs):
        try:
            one = builder.build(spec, validated)
        except (ServiceError, ValidationError) as exc:
            result.errors.append((index, _failure(exc)))
            continue
        builder.accept(one)
        built.append(one)
    building.save(built)
    result.tasks = [one.task for one in built]
    if result.tasks:
        announce(project.project_id, "tasks.created", {"task_ids": [task.task_id for task in result.tasks]})
    return result
