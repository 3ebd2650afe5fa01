"""Validators of the subtask model's own fields (the XML ones are the task core's, tasks/validators.py)."""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from tasks import constants
from tasks.validators import validate_roi_xml


def validate_roi_list(value: object) -> None:
    if not isinstance(value, list) or len(value) > constants.MAX_ROIS_PER_SCENE:
        raise ValidationError(
            _("rois must be a list of at most %(n)d XML documents") % {"n": constants.MAX_ROIS_PER_SCENE}
        )
    for index, item in enumerate(value):
        try:
            validate_roi_xml(item)
        except ValidationError as exc:
            raise ValidationError(f"[{index}]: {exc.messages[0]}") from None


def validate_positive(value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValidationError(_("must be a number greater than 0"))
