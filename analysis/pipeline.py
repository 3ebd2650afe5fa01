"""One analysed frame: detectors, then the rule engine; and the snapshot of a finding.

pipeline = Pipeline(detectors_for(categories), RuleEngine(algo_type, rois, calibration, args))
for frame in source:                                    # analysis.sources
    for finding in pipeline.process(frame.image, frame.index, frame.offset_s):
        jpeg = render_snapshot(frame.image, finding)
pipeline.flush()                                        # end of the source
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from analysis.detect.attributes import AttributeStage
from analysis.detect.registry import MissingModel, attribute_detector
from analysis.detect.riders import merge_riders
from analysis.detect.runtime import Detection, FrameDetector
from analysis.rules.engine import Finding, RuleEngine
from tasks.xmlformats import Zone

log = logging.getLogger(__name__)

BOX_COLOUR = (0, 0, 255)  # BGR red
ROI_COLOUR = (0, 255, 255)  # BGR yellow
TEXT_COLOUR = (255, 255, 255)
JPEG_QUALITY = 85


class Pipeline:
    """Detectors and a rule engine, applied frame by frame (or to a batch of consecutive frames)."""

    def __init__(
        self,
        detectors: Sequence[FrameDetector],
        engine: RuleEngine,
        stages: Sequence[AttributeStage] | None = None,
    ) -> None:
        """`stages`: second-stage attribute models; by default, those the engine's rules ask for
        (the fall model when a fall rule is configured), from the registry (MissingModel when
        one is asked for and none is registered)."""
        self.detectors = list(detectors)
        self.engine = engine
        self.frames = 0
        # Read by the per-camera stats (analysis/observe.py).
        self.detections = 0
        self.inference_s = 0.0
        # Bicycles take their riders in when the rules count bicycles and persons are detected.
        self._riders = "no_motor" in engine.categories and any("body" in d.categories for d in self.detectors)
        self._stages: dict[str, AttributeStage] = {s.attribute: s for s in stages or ()}
        self._registry_stages = stages is None
        if self._registry_stages:
            for attribute in engine.wanted_attributes():
                self._stages[attribute] = AttributeStage(attribute_detector(attribute), attribute)

    def stages(self) -> list[AttributeStage]:
        """The attribute stages the rules ask for now (a reconfigured engine may ask for more)."""
        wanted = self.engine.wanted_attributes()
        for attribute in wanted - set(self._stages):
            if not self._registry_stages:
                continue
            try:
                self._stages[attribute] = AttributeStage(attribute_detector(attribute), attribute)
            except MissingModel as exc:  # a running job keeps going without it
                log.warning("%s", exc)
        return [stage for attribute, stage in self._stages.items() if attribute in wanted]

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        merged: list[list[Detection]] = [[] for _ in frames]
        for detector in self.detectors:
            for found, detections in zip(merged, detector.detect_batch(frames), strict=True):
                found.extend(detections)
        merged = [merge_riders(found) if self._riders else found for found in merged]
        for stage in self.stages():
            merged = stage.apply(frames, merged)
        return merged

    def process(self, frame: np.ndarray, frame_index: int, offset_s: float) -> list[Finding]:
        return self.process_batch([frame], [frame_index], [offset_s])[0]

    def process_batch(
        self, frames: Sequence[np.ndarray], frame_indices: Sequence[int], offsets: Sequence[float]
    ) -> list[list[Finding]]:
        """Consecutive frames of one source, detected as one batch; rules then run in order."""
        began = time.perf_counter()
        detections = self.detect(frames) if frames else []
        self.inference_s += time.perf_counter() - began
        self.detections += sum(len(found) for found in detections)
        results = []
        for frame, index, offset, found in zip(frames, frame_indices, offsets, detections, strict=True):
            results.append(self.engine.step(found, index, offset, frame.shape, frame))
            self.frames += 1
        return results

    def flush(self) -> list[Finding]:
        return self.engine.flush()


def render_snapshot(
    frame: np.ndarray | None,
    finding: Finding,
    quality: int = JPEG_QUALITY,
    draw_result: bool = True,
    zones: Iterable[Zone] = (),
) -> bytes:
    """A JPEG of the frame with the finding's box and label drawn (unless not `draw_result`) and
    the `zones` outlined; for a face capture, its best crop. The v2 switches choose (docs/dialects.md)."""
    if finding.crop is not None and finding.crop.size:
        image = finding.crop
    elif frame is not None:
        image = frame.copy()
        for zone in zones:
            _draw_zone(image, zone)
        if draw_result:
            _draw_finding(image, finding)
    else:
        raise ValueError("a snapshot needs the frame or the finding's crop")
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("the snapshot could not be encoded")
    return encoded.tobytes()


def _draw_zone(image: np.ndarray, zone: Zone) -> None:
    height, width = image.shape[:2]
    points = np.array([[round(x * width), round(y * height)] for x, y in zone.points], dtype=np.int32)
    cv2.polylines(image, [points], True, ROI_COLOUR, max(2, round(min(width, height) / 300)))


def _draw_finding(image: np.ndarray, finding: Finding) -> None:
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in finding.box)
    thickness = max(2, round(min(width, height) / 300))
    cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOUR, thickness)
    label = finding.rule + (f" #{finding.track_id}" if finding.track_id is not None else "")
    if finding.zone:
        label += f" {finding.zone}"
    scale = max(0.5, min(width, height) / 800)
    (text_w, text_h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = max(0, y1 - text_h - baseline - 2)
    cv2.rectangle(image, (x1, top), (x1 + text_w + 4, top + text_h + baseline + 2), BOX_COLOUR, -1)
    cv2.putText(
        image, label, (x1 + 2, top + text_h), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, 1, cv2.LINE_AA
    )
