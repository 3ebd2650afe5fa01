"""Video sources (video channels with their v2 fields) and video source groups: every change
goes through these functions, which validate with the models' rules, write, then announce.

The VIAS v2 dialect (tasks/api/v2/sources.py) translates its bodies into these specs. A video
source is a `VideoChannel`: the native `/vchans` and v2 `/source` show the same rows.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from tasks.models import Project, VideoChannel, VideoGroup, uuid_str
from tasks.services import delete_vchan
from vias.lib.announce import announce
from vias.lib.errors import Conflict, Invalid, NotFound, clean

SOURCE_FIELDS = ("name", "access_type", "kind", "type_config", "latitude", "longitude", "tags")
GROUP_FIELDS = ("name", "description", "access_type")


def get_source(project: Project, source_id: str) -> VideoChannel:
    channel = VideoChannel.objects.for_project(project).filter(vchan_refid=source_id).first()
    if channel is None:
        raise NotFound(_("no video source %(id)s") % {"id": source_id}, field="video_source_id")
    return channel


def get_group(project: Project, group_id: str) -> VideoGroup:
    group = VideoGroup.objects.for_project(project).filter(group_id=group_id).first()
    if group is None:
        raise NotFound(_("no video source group %(id)s") % {"id": group_id}, field="video_group_id")
    return group


def _groups_of(project: Project, group_ids: list[str]) -> list[VideoGroup]:
    found = {g.group_id: g for g in VideoGroup.objects.for_project(project).filter(group_id__in=group_ids)}
    for index, group_id in enumerate(group_ids):
        if group_id not in found:
            raise NotFound(
                _("no video source group %(id)s") % {"id": group_id}, field=f"video_group_ids[{index}]"
            )
    return [found[g] for g in dict.fromkeys(group_ids)]


def _sources_of(project: Project, source_ids: list[str], access_type: str) -> list[VideoChannel]:
    """The project's channels named by `source_ids`, each of the group's access type."""
    found = {
        c.vchan_refid: c for c in VideoChannel.objects.for_project(project).filter(vchan_refid__in=source_ids)
    }
    for index, source_id in enumerate(source_ids):
        channel = found.get(source_id)
        if channel is None:
            raise NotFound(
                _("no video source %(id)s") % {"id": source_id}, field=f"video_source_ids[{index}]"
            )
        if channel.access_type != access_type:
            raise Invalid(
                _("video source %(id)s is %(a)s, the group is %(g)s")
                % {"id": source_id, "a": channel.access_type, "g": access_type},
                field=f"video_source_ids[{index}]",
            )
    return [found[s] for s in dict.fromkeys(source_ids)]


def _check_groups_access(channel: VideoChannel, groups: list[VideoGroup]) -> None:
    for index, group in enumerate(groups):
        if group.access_type != channel.access_type:
            raise Invalid(
                _("group %(g)s is %(a)s, the video source is %(s)s")
                % {"g": group.group_id, "a": group.access_type, "s": channel.access_type},
                field=f"video_group_ids[{index}]",
            )


def _validated(channel: VideoChannel) -> VideoChannel:
    channel.apply_type_config()
    clean(channel, "", exclude=["project"])
    return channel


@transaction.atomic
def create_source(project: Project, spec: dict[str, Any], quota: int | None = None) -> VideoChannel:
    """spec: SOURCE_FIELDS, optional `vchan_refid` (else a UUID) and `group_ids`; refused when the
    project already has `quota` video channels."""
    _check_quota(VideoChannel.objects.for_project(project), quota, _("video sources"))
    refid = spec.get("vchan_refid") or uuid_str()
    if VideoChannel.objects.for_project(project).filter(vchan_refid=refid).exists():
        raise Conflict(_("video source %(id)s already exists") % {"id": refid}, field="vchan_refid")
    channel = VideoChannel(project=project, vchan_refid=refid, **_pick(spec, SOURCE_FIELDS))
    _validated(channel)
    groups = _groups_of(project, spec.get("group_ids") or [])
    _check_groups_access(channel, groups)
    channel.save()
    channel.groups.add(*groups)
    announce(project.project_id, "vchan.created", {"vchan_refid": channel.vchan_refid})
    return channel


@transaction.atomic
def update_source(channel: VideoChannel, spec: dict[str, Any]) -> VideoChannel:
    """Change the given SOURCE_FIELDS; the url (from type_config) not while a subtask runs on it."""
    old_url = channel.url
    for name, value in _pick(spec, SOURCE_FIELDS).items():
        setattr(channel, name, value)
    _validated(channel)
    if channel.url != old_url and channel.subtasks.active().exists():
        raise Conflict(
            _("the video source is being analysed; stop its tasks before changing its address"),
            field="type_config",
        )
    if "group_ids" in spec:
        groups = _groups_of(channel.project, spec["group_ids"])
        _check_groups_access(channel, groups)
        channel.groups.set(groups)
    channel.save()
    channel.subtasks.exclude(source_url=channel.url).update(source_url=channel.url)
    announce(channel.project.project_id, "vchan.updated", {"vchan_refid": channel.vchan_refid})
    return channel


def delete_source(channel: VideoChannel) -> None:
    """Refused (409) while a task uses it; its group memberships go with it."""
    delete_vchan(channel)


@transaction.atomic
def create_group(project: Project, spec: dict[str, Any], quota: int | None = None) -> VideoGroup:
    """spec: GROUP_FIELDS and `source_ids`; refused when the project already has `quota` groups."""
    _check_quota(VideoGroup.objects.for_project(project), quota, _("video source groups"))
    group = VideoGroup(project=project, **_pick(spec, GROUP_FIELDS))
    clean(group, "", exclude=["project"])
    sources = _sources_of(project, spec.get("source_ids") or [], group.access_type)
    group.save()
    group.channels.add(*sources)
    announce(project.project_id, "video_group.created", {"video_group_id": group.group_id})
    return group


@transaction.atomic
def update_group(group: VideoGroup, spec: dict[str, Any]) -> VideoGroup:
    """Change name / description; `source_ids`, when given, replaces the members."""
    for name, value in _pick(spec, ("name", "description")).items():
        setattr(group, name, value)
    clean(group, "", exclude=["project"])
    if "source_ids" in spec:
        group.channels.set(_sources_of(group.project, spec["source_ids"], group.access_type))
    group.save()
    announce(group.project.project_id, "video_group.updated", {"video_group_id": group.group_id})
    return group


@transaction.atomic
def delete_group(group: VideoGroup) -> None:
    """The group goes; its video sources stay. Tasks keep the group id they were made with."""
    project_id, group_id = group.project.project_id, group.group_id
    group.delete()
    announce(project_id, "video_group.deleted", {"video_group_id": group_id})


def _check_quota(existing: Any, quota: int | None, what: str) -> None:
    if quota is not None and existing.count() >= quota:
        raise Invalid(_("the project already has %(n)d %(what)s, its quota") % {"n": quota, "what": what})


def _pick(spec: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: spec[name] for name in fields if name in spec}
