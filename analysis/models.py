"""Analysis models: the detector registry, the events analysis finds, and webhook deliveries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Self

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tasks import constants
from tasks.choices import DetectorModel as Category
from vias.lib import onnx_heads
from vias.lib.tenancy import TenantQuerySet


class Head(models.TextChoices):
    """How a model's output tensor is decoded."""

    YOLOV8 = "yolov8", _("YOLOv8 / YOLO11 (1×(4+classes)×anchors)")
    YOLOV5 = "yolov5", _("YOLOv5 / Darknet (1×anchors×(5+classes))")
    MTCNN = "mtcnn", _("MTCNN face cascade (pnet, rnet, onet files side by side)")


MTCNN_STAGES = ("pnet.onnx", "rnet.onnx", "onet.onnx")


class Role(models.TextChoices):
    """What a registered model is used for."""

    DETECTOR = "detector", _("detector: finds the objects of its categories")
    ATTRIBUTE = "attribute", _("attribute: second stage on another detector's crops (e.g. fall)")


def validate_classes(value: object) -> None:
    """{"<class index>": {"label": str, "category": face|body|motor|no_motor, "attributes": [str]}}"""
    if not isinstance(value, dict) or not value:
        raise ValidationError(_("classes must map class indexes to categories"))
    for index, spec in value.items():
        if not str(index).isdigit():
            raise ValidationError(_("class index %(i)s is not a whole number") % {"i": index})
        if not isinstance(spec, dict) or spec.get("category") not in Category.values:
            raise ValidationError(
                _("class %(i)s: category must be one of %(c)s")
                % {"i": index, "c": ", ".join(Category.values)}
            )
        attributes = spec.get("attributes", [])
        if not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes):
            raise ValidationError(_("class %(i)s: attributes must be a list of words") % {"i": index})


FILTER_KEYS = {"min_score", "min_area", "max_area", "min_aspect", "max_aspect"}


def validate_filters(value: object) -> None:
    """{"<category>": {"min_score": 0..1, "min_area"/"max_area": pixels, "min_aspect"/"max_aspect": w/h}}"""
    if not isinstance(value, dict):
        raise ValidationError(_("filters must map categories to limits"))
    for category, limits in value.items():
        if category not in Category.values:
            raise ValidationError(_("filters: unknown category %(c)s") % {"c": category})
        if not isinstance(limits, dict) or set(limits) - FILTER_KEYS:
            raise ValidationError(
                _("filters.%(c)s: allowed limits are %(k)s")
                % {"c": category, "k": ", ".join(sorted(FILTER_KEYS))}
            )
        for key, number in limits.items():
            if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
                raise ValidationError(
                    _("filters.%(c)s.%(k)s must be a number ≥ 0") % {"c": category, "k": key}
                )


class Detector(models.Model):
    """A registered ONNX detector (admin-editable). Analysis picks, per category a task asks for,
    the enabled detector with the highest priority that maps some class onto that category."""

    name = models.CharField(max_length=constants.MAX_NAME_LENGTH, unique=True, verbose_name=_("name"))
    onnx_file = models.CharField(
        max_length=1024,
        help_text=_("file name under the models directory (VIAS_DATA_DIR/models), or a full path"),
        verbose_name=_("ONNX file"),
    )
    head = models.CharField(
        max_length=8, choices=Head.choices, default=Head.YOLOV8, verbose_name=_("output head")
    )
    input_width = models.PositiveIntegerField(
        default=640,
        validators=[MinValueValidator(32), MaxValueValidator(4096)],
        verbose_name=_("input width"),
    )
    input_height = models.PositiveIntegerField(
        default=640,
        validators=[MinValueValidator(32), MaxValueValidator(4096)],
        verbose_name=_("input height"),
    )
    classes = models.JSONField(
        validators=[validate_classes], help_text=_("class index → category"), verbose_name=_("classes")
    )
    score_threshold = models.FloatField(
        default=0.35,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("score threshold"),
    )
    nms_iou = models.FloatField(
        default=0.45, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)], verbose_name=_("NMS IoU")
    )
    filters = models.JSONField(
        default=dict, blank=True, validators=[validate_filters], verbose_name=_("filters")
    )
    fp16 = models.BooleanField(
        default=False, help_text=_("the model takes float16 input"), verbose_name=_("FP16")
    )
    priority = models.IntegerField(default=0, verbose_name=_("priority"))
    role = models.CharField(
        max_length=10, choices=Role.choices, default=Role.DETECTOR, verbose_name=_("role")
    )
    enabled = models.BooleanField(default=True, verbose_name=_("enabled"))
    licence = models.CharField(max_length=255, blank=True, verbose_name=_("licence"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))

    class Meta:
        verbose_name = _("detector")
        verbose_name_plural = _("detectors")
        ordering = ["-priority", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def path(self) -> Path:
        path = Path(self.onnx_file)
        return path if path.is_absolute() else Path(settings.VIAS_MODELS_DIR) / path

    def categories(self) -> set[str]:
        return {spec["category"] for spec in self.classes.values()}

    def attributes(self) -> set[str]:
        return {a for spec in self.classes.values() for a in spec.get("attributes", [])}

    def clean(self) -> None:
        """The file must be a model this system runs, with the head and classes the row says."""
        if not self.path.is_file():
            raise ValidationError({"onnx_file": _("no file %(p)s") % {"p": self.path}})
        if self.head == Head.MTCNN:
            missing = [n for n in MTCNN_STAGES if not (self.path.parent / n).is_file()]
            if missing:
                raise ValidationError(
                    {"onnx_file": _("an MTCNN cascade needs %(f)s next to it") % {"f": ", ".join(missing)}}
                )
            return
        try:
            info = onnx_heads.inspect(self.path)
        except onnx_heads.UnsupportedModel as exc:
            raise ValidationError({"onnx_file": str(exc)}) from exc
        if info.head != self.head:
            raise ValidationError(
                {
                    "head": _("the file's output is a %(found)s head, not %(set)s")
                    % {"found": info.head, "set": self.head}
                }
            )
        too_high = sorted(int(i) for i in (self.classes or {}) if str(i).isdigit() and int(i) >= info.classes)
        if too_high:
            raise ValidationError(
                {
                    "classes": _("the model has %(n)s classes; no class %(i)s")
                    % {"n": info.classes, "i": too_high[0]}
                }
            )


# An event's clip is written a few seconds after it (analysis/clips.py: 3 s after the event, then
# encoded); one not there after this long is not coming (the run ended, or the write failed).
CLIP_PENDING_S = 120


class EventQuerySet(TenantQuerySet):
    project_path = "task__project"


class Event(models.Model):
    """Something a rule found: who, where, when, how sure, and the picture."""

    subtask = models.ForeignKey(
        "subtasks.Subtask", on_delete=models.CASCADE, related_name="events", verbose_name=_("subtask")
    )
    # Denormalised so the lists filter by task without a join on every row.
    task = models.ForeignKey(
        "tasks.Task", on_delete=models.CASCADE, related_name="events", verbose_name=_("task")
    )
    # Same run (or redelivery) of the same frames gives the same key: no duplicate events.
    key = models.CharField(max_length=200, verbose_name=_("key"))
    occurred_at = models.DateTimeField(
        db_index=True, help_text=_("video begin time + offset, or wall time"), verbose_name=_("when")
    )
    offset_s = models.FloatField(
        default=0.0, help_text=_("seconds from the start of the source"), verbose_name=_("offset (s)")
    )
    frame_index = models.PositiveIntegerField(default=0, verbose_name=_("frame"))
    category = models.CharField(max_length=16, choices=Category.choices, verbose_name=_("category"))
    rule = models.CharField(max_length=32, db_index=True, verbose_name=_("rule"))
    zone = models.CharField(max_length=constants.MAX_NAME_LENGTH, blank=True, verbose_name=_("zone"))
    box = models.JSONField(default=list, help_text=_("x1, y1, x2, y2 in pixels"), verbose_name=_("box"))
    score = models.FloatField(default=0.0, verbose_name=_("score"))
    track_id = models.IntegerField(null=True, blank=True, verbose_name=_("track"))
    attributes = models.JSONField(default=dict, blank=True, verbose_name=_("attributes"))
    snapshot = models.CharField(
        max_length=255, blank=True, help_text=_("JPEG under MEDIA_ROOT"), verbose_name=_("snapshot file")
    )
    # Written by the node a few seconds after the event (analysis/clips.py), so empty at first.
    clip = models.CharField(
        max_length=255,
        blank=True,
        help_text=_("WebM (VP8) clip under MEDIA_ROOT"),
        verbose_name=_("clip file"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))

    objects = EventQuerySet.as_manager()

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["-occurred_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["subtask", "key"], name="event_unique_per_subtask")]
        indexes = [models.Index(fields=["task", "occurred_at"], name="event_task_time")]

    def __str__(self) -> str:
        from analysis.choices import RULE_LABELS

        rule = RULE_LABELS.get(self.rule, self.rule)
        return f"{rule} · {self.get_category_display()} @ {self.offset_s:.1f} s"

    @property
    def snapshot_url(self) -> str:
        """Where an API client fetches the JPEG (with its token: GET /events/{id}/snapshot)."""
        return f"/events/{self.pk}/snapshot" if self.snapshot else ""

    @property
    def clip_pending(self) -> bool:
        """No clip yet, but the node is recording one: a video event (not a picture's) with clips
        on, written a few seconds after the event (CLIP_PENDING_S: then it is not coming)."""
        if self.clip or not settings.VIAS_EVENT_CLIPS or not self.snapshot:
            return False
        if "picture" in (self.attributes or {}):
            return False
        created = self.created_at or timezone.now()  # unsaved: just made
        return timezone.now() - created < timedelta(seconds=CLIP_PENDING_S)

    @property
    def clip_url(self) -> str:
        """Where an API client fetches the WebM clip (with its token: GET /events/{id}/clip): once
        written, or while it is being recorded (that URL answers 404 until the clip is there)."""
        return f"/events/{self.pk}/clip" if self.clip or self.clip_pending else ""

    def as_message(self) -> dict[str, Any]:
        """The event as every output sends it (webhook body, stream entry, websocket push)."""
        return {
            "event_id": self.pk,
            "task_id": self.task_id,
            "subtask_id": self.subtask_id,
            "occurred_at": self.occurred_at.isoformat(),
            "offset_s": round(self.offset_s, 3),
            "frame_index": self.frame_index,
            "category": self.category,
            "rule": self.rule,
            "zone": self.zone,
            "box": self.box,
            "score": round(self.score, 4),
            "track_id": self.track_id,
            "attributes": self.attributes,
            "snapshot_url": self.snapshot_url,
            "clip_url": self.clip_url,
        }


class DeliveryQuerySet(TenantQuerySet):
    """An event's delivery belongs to its event's task's project; a task-state callback (no event)
    to its task's. Both paths, so that an operator sees the callbacks of their tasks too."""

    project_path = "event__task__project"
    callback_path = "task__project"

    def for_project(self, project: Any) -> Self:
        return self.filter(
            models.Q(**{f"{self.project_path}__pk": project.pk})
            | models.Q(event__isnull=True, **{f"{self.callback_path}__pk": project.pk})
        )

    def visible_to(self, user: Any) -> Self:
        if getattr(user, "is_superuser", False):
            return self
        if not getattr(user, "is_authenticated", False):
            return self.none()
        # The user's tasks as a subquery rather than two joins through the members: one row each.
        tasks = self.model._meta.get_field("task").related_model.objects.visible_to(user).values("pk")
        return self.filter(models.Q(event__task__in=tasks) | models.Q(event__isnull=True, task__in=tasks))


class Delivery(models.Model):
    """One attempt to send one event to one output (webhook POST, Redis stream, result file)."""

    class Output(models.TextChoices):
        WEBHOOK = "webhook", _("webhook")
        DIS = "dis", _("Redis stream")
        OBS = "obs", _("result file")
        CALLBACK = "callback", _("task-state callback")

    # An event's delivery, or (no event) a task-state callback of `task`.
    event = models.ForeignKey(
        Event,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("event"),
    )
    task = models.ForeignKey(
        "tasks.Task",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="callback_deliveries",
        verbose_name=_("task"),
    )
    output = models.CharField(max_length=8, choices=Output.choices, verbose_name=_("output"))
    target = models.CharField(max_length=1024, verbose_name=_("target"))
    attempt = models.PositiveSmallIntegerField(default=1, verbose_name=_("attempt"))
    ok = models.BooleanField(default=False, verbose_name=_("delivered"))
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, verbose_name=_("status code"))
    error = models.CharField(max_length=1024, blank=True, verbose_name=_("error"))
    duration_ms = models.FloatField(default=0.0, verbose_name=_("duration (ms)"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("when"))

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = _("delivery")
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = _("deliveries")

    def __str__(self) -> str:
        return f"{self.output} #{self.attempt} {'ok' if self.ok else 'failed'}"


class CameraStatsQuerySet(TenantQuerySet):
    project_path = "subtask__task__project"


class CameraStats(models.Model):
    """What a subtask's running job measured, written once a second with its heartbeat
    (analysis/observe.py): the per-camera figures on the console and the gauges on /metrics.
    Kept after the run ends, so a finished subtask still says what it saw (or that it saw nothing)."""

    subtask = models.OneToOneField(
        "subtasks.Subtask", on_delete=models.CASCADE, primary_key=True, related_name="camera_stats"
    )
    node_name = models.CharField(_("node"), max_length=constants.MAX_NAME_LENGTH, blank=True)
    provider = models.CharField(_("provider"), max_length=64, blank=True, help_text=_("CPU or CUDA"))
    frames_decoded = models.PositiveBigIntegerField(_("frames decoded"), default=0)
    frames_analysed = models.PositiveBigIntegerField(_("frames analysed"), default=0)
    source_fps = models.FloatField(_("source fps"), default=0.0)
    analysed_fps = models.FloatField(_("analysed fps"), default=0.0, help_text=_("over the last seconds"))
    detections = models.PositiveBigIntegerField(_("detections"), default=0)
    detections_per_minute = models.FloatField(_("detections per minute"), default=0.0)
    inference_ms = models.FloatField(_("inference ms"), default=0.0, help_text=_("mean per analysed frame"))
    inference_seconds = models.FloatField(_("inference seconds"), default=0.0, help_text=_("in total"))
    reconnects = models.PositiveIntegerField(_("reconnects"), default=0)
    events = models.PositiveBigIntegerField(_("events"), default=0)
    last_frame_at = models.DateTimeField(_("last frame"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = CameraStatsQuerySet.as_manager()

    class Meta:
        verbose_name = _("camera statistics")
        verbose_name_plural = _("camera statistics")

    def __str__(self) -> str:
        return f"subtask {self.subtask_id}: {self.frames_analysed} frames, {self.detections} detections"

    @property
    def saw_nothing(self) -> bool:
        """Analysed frames and not one detection: worth saying on the page (wrong model? dark?)."""
        return self.frames_analysed > 0 and self.detections == 0
