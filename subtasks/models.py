"""Subtasks (what actually runs, one per video source) and the analysis nodes that run them."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from subtasks.choices import ACTIVE_STATES, State
from subtasks.validators import validate_positive, validate_roi_list
from tasks import constants
from tasks.models import Scene, Task, VideoChannel
from tasks.validators import validate_algo_args, validate_calibration_xml, validate_xml
from vias.lib.tenancy import TenantQuerySet


class Node(models.Model):
    """An analysis server: a django-q2 cluster with its own queue, registered by itself."""

    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, unique=True, verbose_name=_("name"))
    hostname = models.CharField(max_length=255, blank=True, verbose_name=_("host name"))
    capabilities = models.JSONField(
        default=dict, blank=True, help_text=_("providers, GPU name, models"), verbose_name=_("capabilities")
    )
    capacity = models.PositiveIntegerField(
        default=1, help_text=_("subtasks it runs at once"), verbose_name=_("capacity")
    )
    last_heartbeat = models.DateTimeField(null=True, blank=True, verbose_name=_("last heartbeat"))
    # The node's last round trip to Redis, written with its heartbeat: a node that reaches the
    # database but not Redis (its queue, its jobs' inboxes) takes no new work, and its subtasks
    # move (analysis/dispatch.py). A row made by hand counts as just seen.
    redis_ack_at = models.DateTimeField(
        null=True, blank=True, default=timezone.now, verbose_name=_("last Redis acknowledgement")
    )
    draining = models.BooleanField(
        default=False,
        help_text=_("shutting down: finishes or hands back its subtasks, takes no new ones"),
        verbose_name=_("draining"),
    )
    # The process that registered the name (a random id per `manage.py node`): a second process
    # with a name that is live is refused, and a node whose name was taken over stops.
    instance = models.CharField(max_length=32, blank=True, default="", verbose_name=_("instance"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))

    class Meta:
        verbose_name = _("analysis node")
        verbose_name_plural = _("analysis nodes")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SubtaskQuerySet(TenantQuerySet):
    project_path = "task__project"

    def active(self) -> SubtaskQuerySet:
        return self.filter(state__in=ACTIVE_STATES)


class Subtask(models.Model):
    """The unit that runs on an analysis node: one video source of a big task (or one picture
    worker of a picture task). It is dispatched only once configured and marked config-complete."""

    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="subtasks", verbose_name=_("task"))
    position = models.PositiveIntegerField(default=0, verbose_name=_("position"))
    video_channel = models.ForeignKey(
        VideoChannel,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="subtasks",
        verbose_name=_("video channel"),
    )
    scene = models.ForeignKey(
        Scene,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="subtasks",
        verbose_name=_("scene"),
    )
    source_url = models.CharField(max_length=constants.MAX_URL_LENGTH, blank=True, verbose_name=_("source"))
    state = models.CharField(
        max_length=12, choices=State.choices, default=State.PENDING, db_index=True, verbose_name=_("state")
    )
    config_complete = models.BooleanField(default=False, verbose_name=_("config complete"))
    progress = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(100.0)], verbose_name=_("progress")
    )
    status_reason = models.CharField(max_length=1024, blank=True, verbose_name=_("reason"))
    rois = models.JSONField(default=list, blank=True, validators=[validate_roi_list], verbose_name=_("ROIs"))
    calibration_xml = models.TextField(
        default=constants.EMPTY_XML, validators=[validate_calibration_xml], verbose_name=_("calibration")
    )
    config_xml = models.TextField(
        default=constants.EMPTY_XML, validators=[validate_xml], verbose_name=_("algorithm configuration")
    )
    algo_args = models.JSONField(default=dict, blank=True, verbose_name=_("algorithm arguments"))
    node = models.ForeignKey(
        Node,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="subtasks",
        verbose_name=_("node"),
    )
    # False once configured on its own (PUT /subtasks/{id}): scene edits then leave it alone until
    # the scene is copied to it again (tasks.scene_links).
    follows_scene = models.BooleanField(
        default=True,
        help_text=_("takes its scene's ROIs, calibration and config when the scene changes"),
        verbose_name=_("follows its scene"),
    )
    # Started, but outside its mtask's window: when it runs next (the v2 word: SCHEDULING). It
    # holds no node slot while it waits (docs/state-machine.md, "Mtask schedules").
    waiting_until = models.DateTimeField(null=True, blank=True, verbose_name=_("waiting until"))
    # A recorded file as source (VCS-SPS videoTimeLength / videoBeginTime): analysis dates an event
    # at video_begin_time + its offset in the file, and reports progress against video_time_length.
    video_time_length = models.FloatField(
        null=True,
        blank=True,
        validators=[validate_positive],
        help_text=_("length of the source file, in seconds"),
        verbose_name=_("video length"),
    )
    video_begin_time = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("wall-clock time of the source file's first frame"),
        verbose_name=_("video begin time"),
    )
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))
    # The last frame of a recorded file analysed and written with the heartbeat: a re-dispatched
    # subtask continues after it instead of from frame 0 (reset by a start).
    checkpoint_frame = models.PositiveIntegerField(default=0, verbose_name=_("checkpoint frame"))
    heartbeat_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last heartbeat"))
    started_at = models.DateTimeField(null=True, blank=True, verbose_name=_("started"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated"))

    objects = SubtaskQuerySet.as_manager()

    class Meta:
        verbose_name = _("subtask")
        verbose_name_plural = _("subtasks")
        ordering = ["task", "position"]
        indexes = [models.Index(fields=["task", "state"], name="subtask_task_state")]

    def __str__(self) -> str:
        return f"{self.task_id}#{self.position}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    def clean(self) -> None:
        try:
            validate_algo_args(self.task.algo_type, self.algo_args)
        except ValidationError as exc:
            raise ValidationError({"algo_args": exc.messages}) from None
