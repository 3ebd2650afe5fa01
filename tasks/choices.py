"""Vocabularies of the task configuration core (see docs/glossary and the seeds)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class AlgoType(models.TextChoices):
    """The seed's fixed algorithm types; scenes repeat their task's."""

    TRAFFIC = "0", _("traffic")
    PASSENGER_FLOW = "1", _("passenger flow")
    SECURITY = "2", _("security")
    ILLEGAL_PARKING = "3", _("illegal parking")
    FACE = "4", _("face")


class SourceType(models.TextChoices):
    PULL_VIDEO_STREAM = "pull_video_stream", _("pull video stream")
    PULL_PIC_FILES = "pull_pic_files", _("pull picture files")
    PUSH_PIC_FILES = "push_pic_files", _("push picture files")


PICTURE_SOURCES = {SourceType.PULL_PIC_FILES, SourceType.PUSH_PIC_FILES}


class MTaskType(models.IntegerChoices):
    POLLING = 0, _("polling")
    TIME_WINDOW = 1, _("time window")
    BATCH = 2, _("batch")


class RoiMode(models.TextChoices):
    INCLUDE = "include", _("include")
    EXCLUDE = "exclude", _("exclude")


class LineDirection(models.TextChoices):
    """Which crossings of a line count: A→B is the order of its two points."""

    BOTH = "both", _("both directions")
    LEFT_TO_RIGHT = "left_to_right", _("from the left of A→B to its right")
    RIGHT_TO_LEFT = "right_to_left", _("from the right of A→B to its left")


class DetectorModel(models.TextChoices):
    """Detector models a task may name (the VCS-SPS `algorithms[].models`); none: chosen by algo_type."""

    FACE = "face", _("face")
    BODY = "body", _("body")
    MOTOR = "motor", _("motor vehicle")
    NO_MOTOR = "no_motor", _("non-motor vehicle")


class AccessType(models.TextChoices):
    CLOUD = "cloud", _("cloud")
    EDGE = "edge", _("edge")


class SourceKind(models.TextChoices):
    """The v2 `type` of a video source. `url` and `obs` (from the video store) can be analysed
    here (docs/dialects.md)."""

    URL = "url", "url"
    RESTFUL = "restful", "restful"
    VCN = "vcn", "vcn"
    OBS = "obs", "obs"
    CAMERA = "camera", "camera"
    IVM = "ivm", "ivm"
    VCN_RESTFUL = "vcn_restful", "vcn_restful"
