"""The task configuration core: projects and tokens, big tasks, mtasks, scenes, storage configs,
video channels. Subtasks live in the subtasks app."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from tasks import constants
from tasks.choices import PICTURE_SOURCES, AlgoType, MTaskType, SourceType
from tasks.validators import (
    validate_algo_args,
    validate_calibration_xml,
    validate_detector_models,
    validate_file_ext,
    validate_project_id,
    validate_roi_xml,
    validate_source_url,
    validate_unid,
    validate_xml,
)


def new_id() -> str:
    """32 hex digits: the shape the VCS API shows for task ids."""
    return uuid.uuid4().hex


class Project(models.Model):
    """A tenant: the VIAS v2 `project_id`. Every task, channel and storage config belongs to one."""

    project_id = models.CharField(max_length=64, unique=True, validators=[validate_project_id])
    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="vias_projects", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id"]

    def __str__(self) -> str:
        return self.project_id


class ApiTokenQuerySet(models.QuerySet):
    def for_key(self, raw: str) -> ApiToken | None:
        return self.select_related("user", "project").filter(key_hash=ApiToken.hash_key(raw)).first()


class ApiToken(models.Model):
    """An API token, stored hashed, bound to a user and a project."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vias_tokens")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, blank=True)
    prefix = models.CharField(max_length=8, help_text=_("the first characters, to recognise a token"))
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user}, {self.project})"

    @staticmethod
    def hash_key(raw: str) -> str:
        # Tokens are 256 random bits, so a plain digest is enough: there is nothing to brute-force.
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    @classmethod
    def issue(cls, user, project: Project, name: str = "") -> tuple[ApiToken, str]:
        """A new token; the raw key is returned once and never stored."""
        raw = secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, project=project, name=name, prefix=raw[:8], key_hash=cls.hash_key(raw)
        )
        return token, raw


class StoreConf(models.Model):
    """A named storage configuration file that tells analysis where and how to store results."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="store_confs")
    unid = models.CharField(max_length=64, validators=[validate_unid])
    name = models.CharField(max_length=constants.MAX_NAME_LENGTH)
    file_ext = models.CharField(max_length=10, validators=[validate_file_ext])
    content = models.BinaryField(editable=True)
    version = models.PositiveIntegerField(default=1, help_text=_("increases on every replace"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "unid"], name="store_conf_unid_per_project")
        ]
        ordering = ["unid"]

    def __str__(self) -> str:
        return f"{self.name} ({self.unid})"

    def clean(self) -> None:
        cap = settings.VIAS_MAX_STORE_CONF_BYTES
        if self.content is not None and len(self.content) > cap:
            raise ValidationError(
                {"content": _("the file is over the limit of %(cap)d bytes") % {"cap": cap}}
            )
        if self.file_ext and self.file_ext.lower() == "xml" and self.content:
            try:
                validate_xml(bytes(self.content))
            except ValidationError as exc:
                raise ValidationError({"file_b64": exc.messages}) from None


class VideoChannel(models.Model):
    """A camera or stream source; a video task gets one subtask per channel."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="video_channels")
    vchan_refid = models.CharField(max_length=64, validators=[validate_unid])
    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, blank=True)
    url = models.CharField(max_length=constants.MAX_URL_LENGTH, validators=[validate_source_url])
    width = models.PositiveIntegerField(null=True, blank=True, help_text=_("frame width, when known"))
    height = models.PositiveIntegerField(null=True, blank=True, help_text=_("frame height, when known"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "vchan_refid"], name="vchan_refid_per_project")
        ]
        ordering = ["vchan_refid"]

    def __str__(self) -> str:
        return self.name or self.vchan_refid


class TaskQuerySet(models.QuerySet):
    def for_project(self, project: Project) -> TaskQuerySet:
        return self.filter(project=project)


class Task(models.Model):
    """A big (logical) task: what operators see. It never runs itself; its subtasks do."""

    task_id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    task_name = models.CharField(max_length=constants.MAX_NAME_LENGTH)
    algo_type = models.CharField(max_length=1, choices=AlgoType.choices)
    run_dt = models.DateTimeField()
    play_url = models.CharField(max_length=constants.MAX_URL_LENGTH, validators=[validate_source_url])
    source_type = models.CharField(
        max_length=20, choices=SourceType.choices, default=SourceType.PULL_VIDEO_STREAM
    )
    node_count = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(constants.MAX_NODE_COUNT)]
    )
    pull_source_url = models.CharField(
        max_length=constants.MAX_URL_LENGTH, blank=True, validators=[validate_source_url]
    )
    store_conf = models.ForeignKey(
        StoreConf, null=True, blank=True, on_delete=models.PROTECT, related_name="tasks"
    )
    description = models.TextField(max_length=constants.MAX_DESCRIPTION_LENGTH, blank=True)
    detector_models = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_detector_models],
        help_text=_("detector models to run (face, body, motor, no_motor); empty: chosen by algo_type"),
    )
    client_name = models.CharField(
        max_length=constants.MAX_NAME_LENGTH,
        blank=True,
        help_text=_("the client that created it (VCS clientName)"),
    )
    create_dt = models.DateTimeField(auto_now_add=True, db_index=True)
    update_dt = models.DateTimeField(auto_now=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["-create_dt"]
        indexes = [models.Index(fields=["project", "-create_dt"], name="task_project_created")]

    def __str__(self) -> str:
        return self.task_name

    @property
    def is_picture_task(self) -> bool:
        return self.source_type in PICTURE_SOURCES

    def clean(self) -> None:
        if self.source_type == SourceType.PULL_PIC_FILES and not self.pull_source_url:
            raise ValidationError({"pull_source_url": _("pull_pic_files needs pull_source_url")})
        if self.store_conf_id and self.project_id and self.store_conf.project_id != self.project_id:
            raise ValidationError({"store_conf_unid": _("unknown storage config")})


class MTask(models.Model):
    """A schedule-and-scenes block of a task (polling, time window or batch)."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="mtasks")
    position = models.PositiveIntegerField(default=0)
    mtask_unid = models.CharField(max_length=64, default=new_id, validators=[validate_unid])
    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, blank=True)
    type = models.PositiveSmallIntegerField(choices=MTaskType.choices, default=MTaskType.POLLING)
    time_interval = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)], help_text=_("minutes")
    )
    start_time = models.TimeField(null=True, blank=True)
    end_time = models.TimeField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])

    class Meta:
        ordering = ["task", "position"]
        constraints = [models.UniqueConstraint(fields=["task", "mtask_unid"], name="mtask_unid_per_task")]

    def __str__(self) -> str:
        return self.name or self.mtask_unid


class Scene(models.Model):
    """One camera view to analyse: calibration, ROIs, algorithm config and args, the channel."""

    mtask = models.ForeignKey(MTask, on_delete=models.CASCADE, related_name="scenes")
    position = models.PositiveIntegerField(default=0)
    scene_unid = models.CharField(max_length=64, default=new_id, validators=[validate_unid])
    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, blank=True)
    preset = models.IntegerField(default=0, validators=[MinValueValidator(0), MaxValueValidator(10000)])
    calibration_xml = models.TextField(default=constants.EMPTY_XML, validators=[validate_calibration_xml])
    config_xml = models.TextField(default=constants.EMPTY_XML, validators=[validate_xml])
    basic_config_xml = models.TextField(default=constants.EMPTY_XML, validators=[validate_xml])
    link_scenes = models.JSONField(default=list, blank=True)
    algo_type = models.CharField(max_length=1, choices=AlgoType.choices)
    algo_args = models.JSONField(default=dict, blank=True)
    is_record = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    vchan_refid = models.CharField(max_length=64, blank=True)
    play_urls = models.JSONField(default=dict, blank=True)
    is_running = models.BooleanField(default=False)
    status_reason = models.CharField(max_length=1024, blank=True)

    class Meta:
        ordering = ["mtask", "position"]

    def __str__(self) -> str:
        return self.name or self.scene_unid

    def clean(self) -> None:
        try:
            task = self.mtask.task  # also set on unsaved instances while a task is being built
        except ObjectDoesNotExist:
            task = None
        errors: dict[str, list[str]] = {}
        if task is not None and self.algo_type != task.algo_type:
            errors["algo_type"] = [
                _("must equal the task's algo_type %(expected)s, not %(got)s")
                % {"expected": task.algo_type, "got": self.algo_type}
            ]
        try:
            validate_algo_args(self.algo_type, self.algo_args)
        except ValidationError as exc:
            errors["algo_args"] = exc.messages
        if not isinstance(self.link_scenes, list):
            errors["link_scenes"] = [_("link_scenes must be a list")]
        if not isinstance(self.play_urls, dict):
            errors["play_urls"] = [_("play_urls must be an object")]
        if errors:
            raise ValidationError(errors)


class SceneRoi(models.Model):
    """One of a scene's ordered ROI documents."""

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="rois")
    position = models.PositiveIntegerField(default=0)
    xml = models.TextField(default=constants.EMPTY_XML, validators=[validate_roi_xml])

    class Meta:
        ordering = ["scene", "position"]

    def __str__(self) -> str:
        return f"ROI {self.position} of {self.scene}"
