"""The task configuration core: projects and tokens, big tasks, mtasks, scenes, storage configs,
video channels. Subtasks live in the subtasks app."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from tasks import constants, validators
from tasks.choices import PICTURE_SOURCES, AccessType, AlgoType, MTaskType, SourceKind, SourceType
from tasks.validators import (
    has_output_mode,
    output_warnings,
    validate_alg_id,
    validate_algo_args,
    validate_calibration_xml,
    validate_detector_models,
    validate_file_ext,
    validate_onvif_url,
    validate_project_id,
    validate_resource_order_id,
    validate_roi_xml,
    validate_service_name,
    validate_service_version,
    validate_source_url,
    validate_task_config,
    validate_task_output,
    validate_task_schedule,
    validate_unid,
    validate_v2_name,
    validate_xml,
)
from vias.lib.crypto import EncryptedCharField
from vias.lib.tenancy import TenantQuerySet


def uuid_str() -> str:
    """A UUID in its 36-character form: the shape of v2 video source and group ids."""
    return str(uuid.uuid4())


def new_id() -> str:
    """32 hex digits: the shape the VCS API shows for task ids."""
    return uuid.uuid4().hex


class ProjectQuerySet(TenantQuerySet):
    project_path = ""  # a project is its own tenant


class Project(models.Model):
    """A tenant: the VIAS v2 `project_id`. Every task, channel and storage config belongs to one."""

    project_id = models.CharField(
        max_length=64, unique=True, validators=[validate_project_id], verbose_name=_("project ID")
    )
    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, blank=True, verbose_name=_("name"))
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="vias_projects", blank=True, verbose_name=_("members")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))

    objects = ProjectQuerySet.as_manager()

    class Meta:
        verbose_name = _("project")
        verbose_name_plural = _("projects")
        ordering = ["project_id"]

    def __str__(self) -> str:
        return self.project_id


class ApiTokenQuerySet(TenantQuerySet):
    def for_key(self, raw: str) -> ApiToken | None:
        return self.select_related("user", "project").filter(key_hash=ApiToken.hash_key(raw)).first()


class ApiToken(models.Model):
    """An API token, stored hashed, bound to a user and a project."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vias_tokens", verbose_name=_("user")
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="tokens", verbose_name=_("project")
    )
    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, blank=True, verbose_name=_("name"))
    prefix = models.CharField(
        max_length=8, help_text=_("the first characters, to recognise a token"), verbose_name=_("prefix")
    )
    key_hash = models.CharField(max_length=64, unique=True, verbose_name=_("key hash"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    last_used_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last used"))

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

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

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="store_confs", verbose_name=_("project")
    )
    unid = models.CharField(max_length=64, validators=[validate_unid], verbose_name=_("ID"))
    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, verbose_name=_("name"))
    file_ext = models.CharField(max_length=10, validators=[validate_file_ext], verbose_name=_("file type"))
    content = models.BinaryField(editable=True, verbose_name=_("content"))
    version = models.PositiveIntegerField(
        default=1, help_text=_("increases on every replace"), verbose_name=_("version")
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("storage configuration")
        verbose_name_plural = _("storage configurations")
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

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="video_channels", verbose_name=_("project")
    )
    vchan_refid = models.CharField(max_length=64, validators=[validate_unid], verbose_name=_("channel ID"))
    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, blank=True, verbose_name=_("name"))
    url = models.CharField(
        max_length=constants.MAX_URL_LENGTH, validators=[validate_source_url], verbose_name=_("source")
    )
    width = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("frame width, when known"), verbose_name=_("width")
    )
    height = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("frame height, when known"), verbose_name=_("height")
    )
    # A dome (PTZ) camera has presets, one per scene; only it runs mtask types 1 and 2 (the seed).
    ptz = models.BooleanField(
        default=False, help_text=_("a dome (PTZ) camera with presets"), verbose_name=_("dome (PTZ) camera")
    )
    onvif_url = models.CharField(
        max_length=constants.MAX_URL_LENGTH,
        blank=True,
        validators=[validate_onvif_url],
        help_text=_("the dome camera's ONVIF device service, e.g. http://10.0.0.5/onvif/device_service"),
        verbose_name=_("ONVIF address"),
    )
    onvif_username = models.CharField(max_length=128, blank=True, verbose_name=_("ONVIF user name"))
    # The camera needs it in the clear (WS-Security digest): stored encrypted (vias/lib/crypto.py),
    # read back in the clear by the node; never shown in answers or in the admin (write-only).
    onvif_password = EncryptedCharField(plain_max_length=128, blank=True, verbose_name=_("ONVIF password"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    # What a VIAS v2 video source adds (tasks/validators.py); empty type_config: not a v2 source.
    access_type = models.CharField(
        max_length=5, choices=AccessType.choices, default=AccessType.CLOUD, verbose_name=_("access type")
    )
    kind = models.CharField(
        max_length=16,
        choices=SourceKind.choices,
        default=SourceKind.URL,
        help_text=_("the v2 type"),
        verbose_name=_("type"),
    )
    type_config = models.TextField(
        max_length=validators.MAX_TYPE_CONFIG, blank=True, verbose_name=_("type configuration")
    )
    latitude = models.CharField(
        max_length=16, blank=True, validators=[validators.validate_latitude], verbose_name=_("latitude")
    )
    longitude = models.CharField(
        max_length=16, blank=True, validators=[validators.validate_longitude], verbose_name=_("longitude")
    )
    tags = models.JSONField(
        default=list, blank=True, validators=[validators.validate_tags], verbose_name=_("tags")
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("video channel")
        verbose_name_plural = _("video channels")
        constraints = [
            models.UniqueConstraint(fields=["project", "vchan_refid"], name="vchan_refid_per_project")
        ]
        ordering = ["vchan_refid"]

    def __str__(self) -> str:
        return self.name or self.vchan_refid

    def clean(self) -> None:
        """ONVIF settings only on a dome camera; a v2 source keeps the v2 name rule, and its url is
        the one its type_config names."""
        if not self.ptz and (self.onvif_url or self.onvif_username or self.onvif_password):
            raise ValidationError(
                {"onvif_url": [_("ONVIF settings are for dome (PTZ) cameras: set ptz, or leave them out")]}
            )
        if not self.type_config:
            return
        try:
            validators.validate_source_name(self.name)
        except ValidationError as exc:
            raise ValidationError({"name": exc.messages}) from None
        self.apply_type_config()

    def apply_type_config(self) -> None:
        """Take the url from type_config (before field validation, which then checks the url)."""
        if not self.type_config:
            return
        try:
            fields = validators.parse_type_config(self.kind, self.type_config)
        except ValidationError as exc:
            raise ValidationError({"type_config": exc.messages}) from None
        self.url = fields["url_address"]


class VideoGroup(models.Model):
    """A VIAS v2 video source group: a named set of the project's video sources."""

    group_id = models.CharField(
        primary_key=True, max_length=36, default=uuid_str, editable=False, verbose_name=_("group ID")
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="video_groups", verbose_name=_("project")
    )
    name = models.CharField(
        max_length=20, validators=[validators.validate_group_name], verbose_name=_("name")
    )
    description = models.CharField(max_length=100, blank=True, verbose_name=_("description"))
    access_type = models.CharField(
        max_length=5, choices=AccessType.choices, default=AccessType.CLOUD, verbose_name=_("access type")
    )
    channels = models.ManyToManyField(
        VideoChannel, blank=True, related_name="groups", verbose_name=_("video channels")
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("video group")
        verbose_name_plural = _("video groups")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class BatchTask(models.Model):
    """A VIAS v2 batch task: one algorithm service over many video sources, one task per source.

    Its tasks carry `batch`; the settings below are copied onto each of them (docs/dialects.md).
    """

    # What a batch copies onto each of its tasks (at creation, and again when it changes).
    TASK_FIELDS = (
        "description",
        "schedule",
        "output",
        "config",
        "service_name",
        "service_version",
        "resource_order_id",
        "company",
        "creator",
    )

    batch_id = models.CharField(
        primary_key=True, max_length=32, default=new_id, editable=False, verbose_name=_("batch ID")
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="batch_tasks", verbose_name=_("project")
    )
    name = models.CharField(
        max_length=constants.V2_MAX_NAME_LENGTH, validators=[validate_v2_name], verbose_name=_("name")
    )
    description = models.TextField(
        max_length=constants.V2_MAX_DESCRIPTION_LENGTH, blank=True, verbose_name=_("description")
    )
    service_name = models.CharField(
        max_length=100, validators=[validate_service_name], verbose_name=_("service")
    )
    service_version = models.CharField(
        max_length=32, validators=[validate_service_version], verbose_name=_("service version")
    )
    resource_order_id = models.CharField(
        max_length=36, blank=True, validators=[validate_resource_order_id], verbose_name=_("resource order")
    )
    company = models.CharField(
        max_length=constants.MAX_NAME_LENGTH, blank=True, help_text=_("vendor"), verbose_name=_("vendor")
    )
    is_saved_as_template = models.BooleanField(default=False, verbose_name=_("saved as a template"))
    schedule = models.JSONField(
        default=dict, blank=True, validators=[validate_task_schedule], verbose_name=_("schedule")
    )
    output = models.JSONField(default=dict, validators=[validate_task_output], verbose_name=_("outputs"))
    config = models.JSONField(
        default=dict, blank=True, validators=[validate_task_config], verbose_name=_("settings")
    )
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("creator"),
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("batch task")
        verbose_name_plural = _("batch tasks")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not has_output_mode(self.output):
            raise ValidationError(
                {"output": _("configure at least one output mode (obs, dis, webhook, event_center)")}
            )

    def output_warnings(self) -> list[str]:
        """Accepted, but worth telling the client (a webhook host that does not resolve yet)."""
        return output_warnings(self.output)


class Task(models.Model):
    """A big (logical) task: what operators see. It never runs itself; its subtasks do."""

    task_id = models.CharField(
        primary_key=True, max_length=32, default=new_id, editable=False, verbose_name=_("task ID")
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="tasks", verbose_name=_("project")
    )
    task_name = models.CharField(max_length=constants.MAX_NAME_LENGTH, verbose_name=_("name"))
    algo_type = models.CharField(max_length=1, choices=AlgoType.choices, verbose_name=_("algorithm type"))
    run_dt = models.DateTimeField(verbose_name=_("run from"))
    play_url = models.CharField(
        max_length=constants.MAX_URL_LENGTH, validators=[validate_source_url], verbose_name=_("play URL")
    )
    source_type = models.CharField(
        max_length=20,
        choices=SourceType.choices,
        default=SourceType.PULL_VIDEO_STREAM,
        verbose_name=_("source type"),
    )
    node_count = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(constants.MAX_NODE_COUNT)],
        verbose_name=_("picture workers"),
    )
    pull_source_url = models.CharField(
        max_length=constants.MAX_URL_LENGTH,
        blank=True,
        validators=[validate_source_url],
        verbose_name=_("picture source URL"),
    )
    store_conf = models.ForeignKey(
        StoreConf,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tasks",
        verbose_name=_("storage configuration"),
    )
    description = models.TextField(
        max_length=constants.MAX_DESCRIPTION_LENGTH, blank=True, verbose_name=_("description")
    )
    detector_models = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_detector_models],
        help_text=_("detector models to run (face, body, motor, no_motor); empty: chosen by algo_type"),
        verbose_name=_("detector models"),
    )
    client_name = models.CharField(
        max_length=constants.MAX_NAME_LENGTH,
        blank=True,
        help_text=_("the client that created it (VCS clientName)"),
        verbose_name=_("client"),
    )
    # Where results go; the analysis engine reads exactly this shape (tasks.validators.validate_task_output).
    output = models.JSONField(
        default=dict, blank=True, validators=[validate_task_output], verbose_name=_("outputs")
    )
    # The VIAS v2 side of a task (docs/dialects.md); blank for tasks made through other APIs.
    schedule = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_task_schedule],
        help_text=_("weekly schedule"),
        verbose_name=_("weekly schedule"),
    )
    schedule_active = models.BooleanField(
        default=False,
        help_text=_("started: its schedule starts and stops it at the window edges"),
        verbose_name=_("schedule active"),
    )
    service_name = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_service_name],
        help_text=_("v2 algorithm service"),
        verbose_name=_("service"),
    )
    service_version = models.CharField(
        max_length=32, blank=True, validators=[validate_service_version], verbose_name=_("service version")
    )
    resource_order_id = models.CharField(
        max_length=36, blank=True, validators=[validate_resource_order_id], verbose_name=_("resource order")
    )
    alg_id = models.CharField(
        max_length=36, blank=True, db_index=True, validators=[validate_alg_id], verbose_name=_("algorithm ID")
    )
    config = models.JSONField(
        default=dict, blank=True, validators=[validate_task_config], verbose_name=_("settings")
    )
    company = models.CharField(
        max_length=constants.MAX_NAME_LENGTH, blank=True, help_text=_("vendor"), verbose_name=_("vendor")
    )
    video_group_id = models.CharField(
        max_length=64, blank=True, validators=[validate_unid], verbose_name=_("video group")
    )
    target_roi = models.CharField(
        max_length=2048,
        blank=True,
        validators=[validators.validate_target_roi],
        verbose_name=_("target ROI"),
    )
    batch = models.ForeignKey(
        BatchTask,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tasks",
        verbose_name=_("batch"),
    )
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("creator"),
    )
    create_dt = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created"))
    update_dt = models.DateTimeField(auto_now=True, verbose_name=_("updated"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        ordering = ["-create_dt"]
        indexes = [models.Index(fields=["project", "-create_dt"], name="task_project_created")]

    def __str__(self) -> str:
        return self.task_name

    @property
    def is_picture_task(self) -> bool:
        return self.source_type in PICTURE_SOURCES

    def output_warnings(self) -> list[str]:
        """Accepted, but worth telling the client (a webhook host that does not resolve yet)."""
        return output_warnings(self.output)

    def clean(self) -> None:
        if self.source_type == SourceType.PULL_PIC_FILES and not self.pull_source_url:
            raise ValidationError({"pull_source_url": _("pull_pic_files needs pull_source_url")})
        if self.store_conf is not None and self.project_id and self.store_conf.project_id != self.project_id:
            raise ValidationError({"store_conf_unid": _("unknown storage config")})
        if self.service_name:
            self._clean_v2()

    def _clean_v2(self) -> None:
        """A task of a v2 algorithm service keeps the v2 rules, whichever API changes it."""
        errors: dict[str, list[Any]] = {}
        try:
            validate_v2_name(self.task_name)
        except ValidationError as exc:
            errors["task_name"] = exc.messages
        if len(self.description) > constants.V2_MAX_DESCRIPTION_LENGTH:
            errors["description"] = [
                _("at most %(n)d characters") % {"n": constants.V2_MAX_DESCRIPTION_LENGTH}
            ]
        if not has_output_mode(self.output):
            errors["output"] = [_("configure at least one output mode (obs, dis, webhook, event_center)")]
        if errors:
            raise ValidationError(errors)


class MTaskQuerySet(TenantQuerySet):
    project_path = "task__project"


class MTask(models.Model):
    """A schedule-and-scenes block of a task (polling, time window or batch)."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="mtasks", verbose_name=_("task"))
    position = models.PositiveIntegerField(default=0, verbose_name=_("position"))
    mtask_unid = models.CharField(
        max_length=64, default=new_id, validators=[validate_unid], verbose_name=_("schedule ID")
    )
    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, blank=True, verbose_name=_("name"))
    type = models.PositiveSmallIntegerField(
        choices=MTaskType.choices, default=MTaskType.POLLING, verbose_name=_("schedule type")
    )
    time_interval = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
        help_text=_("minutes"),
        verbose_name=_("interval"),
    )
    start_time = models.TimeField(null=True, blank=True, verbose_name=_("start time"))
    end_time = models.TimeField(null=True, blank=True, verbose_name=_("end time"))
    progress = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(100)], verbose_name=_("progress")
    )

    objects = MTaskQuerySet.as_manager()

    class Meta:
        verbose_name = _("schedule (mtask)")
        verbose_name_plural = _("schedules (mtasks)")
        ordering = ["task", "position"]
        constraints = [models.UniqueConstraint(fields=["task", "mtask_unid"], name="mtask_unid_per_task")]

    def __str__(self) -> str:
        return self.name or self.mtask_unid

    def clean(self) -> None:
        # The rules tasks.mtask_schedule.DailyWindow runs on (the window is daily, in TIME_ZONE).
        if (self.start_time is None) != (self.end_time is None):
            raise ValidationError({"end_time": [_("give both start_time and end_time, or neither")]})
        if self.start_time is not None and self.start_time == self.end_time:
            raise ValidationError(
                {"end_time": [_("start_time and end_time are equal: the daily window would be empty")]}
            )


def camera_problems(mtask_type: int, preset: int, ptz: bool) -> dict[str, list[str]]:
    """What a scene may not ask of a fixed camera (the seed: "非球机只支持0"): a schedule other
    than polling, or a preset. Empty for a dome camera."""
    if ptz:
        return {}
    problems: dict[str, list[str]] = {}
    if mtask_type != MTaskType.POLLING:
        problems["type"] = [
            _("mtask type %(t)s needs a dome (PTZ) camera; this scene's channel is fixed: use type 0")
            % {"t": mtask_type}
        ]
    if preset:
        problems["preset"] = [
            str(_("a preset needs a dome (PTZ) camera; this scene's channel is fixed: use 0"))
        ]
    return problems


class SceneQuerySet(TenantQuerySet):
    project_path = "mtask__task__project"


class Scene(models.Model):
    """One camera view to analyse: calibration, ROIs, algorithm config and args, the channel."""

    mtask = models.ForeignKey(
        MTask, on_delete=models.CASCADE, related_name="scenes", verbose_name=_("schedule (mtask)")
    )
    position = models.PositiveIntegerField(default=0, verbose_name=_("position"))
    scene_unid = models.CharField(
        max_length=64, default=new_id, validators=[validate_unid], verbose_name=_("scene ID")
    )
    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, blank=True, verbose_name=_("name"))
    preset = models.IntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(10000)], verbose_name=_("PTZ preset")
    )
    calibration_xml = models.TextField(
        default=constants.EMPTY_XML, validators=[validate_calibration_xml], verbose_name=_("calibration")
    )
    config_xml = models.TextField(
        default=constants.EMPTY_XML, validators=[validate_xml], verbose_name=_("algorithm configuration")
    )
    basic_config_xml = models.TextField(
        default=constants.EMPTY_XML,
        validators=[validate_xml],
        verbose_name=_("basic algorithm configuration"),
    )
    link_scenes = models.JSONField(default=list, blank=True, verbose_name=_("linked scenes"))
    algo_type = models.CharField(max_length=1, choices=AlgoType.choices, verbose_name=_("algorithm type"))
    algo_args = models.JSONField(default=dict, blank=True, verbose_name=_("algorithm arguments"))
    is_record = models.BooleanField(default=False, verbose_name=_("record"))
    is_active = models.BooleanField(default=True, verbose_name=_("active"))
    vchan_refid = models.CharField(max_length=64, blank=True, verbose_name=_("video channel ID"))
    play_urls = models.JSONField(default=dict, blank=True, verbose_name=_("play URLs"))
    is_running = models.BooleanField(default=False, verbose_name=_("running"))
    status_reason = models.CharField(max_length=1024, blank=True, verbose_name=_("reason"))

    objects = SceneQuerySet.as_manager()

    class Meta:
        verbose_name = _("scene")
        verbose_name_plural = _("scenes")
        ordering = ["mtask", "position"]

    def __str__(self) -> str:
        return self.name or self.scene_unid

    def clean(self) -> None:
        try:
            task = self.mtask.task  # also set on unsaved instances while a task is being built
        except ObjectDoesNotExist:
            task = None
        errors: dict[str, list[Any]] = {}
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


class SceneRoiQuerySet(TenantQuerySet):
    project_path = "scene__mtask__task__project"


class SceneRoi(models.Model):
    """One of a scene's ordered ROI documents."""

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="rois", verbose_name=_("scene"))
    position = models.PositiveIntegerField(default=0, verbose_name=_("position"))
    xml = models.TextField(default=constants.EMPTY_XML, validators=[validate_roi_xml], verbose_name=_("ROI"))

    objects = SceneRoiQuerySet.as_manager()

    class Meta:
        verbose_name = _("ROI document")
        verbose_name_plural = _("ROI documents")
        ordering = ["scene", "position"]

    def __str__(self) -> str:
        return _("ROI %(n)s of %(scene)s") % {"n": self.position, "scene": self.scene}
