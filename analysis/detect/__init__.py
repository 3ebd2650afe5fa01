"""Detection: onnxruntime YOLO detectors from the registry, the Haar face fallback, providers.

The lead's job and the `analyze` command use:
    detectors_for(categories) -> list of detectors (MissingModel when a category has none)
    detector.detect_batch(frames) -> list[list[Detection]]
    capabilities() -> dict for the Node row
"""

from analysis.detect.face import HaarFaceDetector
from analysis.detect.providers import capabilities, gpu_name, usable_providers
from analysis.detect.registry import MissingModel, check_categories, detectors_for, pick_specs
from analysis.detect.runtime import (
    BatchingDetector,
    ClassSpec,
    Detection,
    DetectorSpec,
    FrameDetector,
    YoloDetector,
    get_session,
)

__all__ = [
    "BatchingDetector",
    "ClassSpec",
    "Detection",
    "DetectorSpec",
    "FrameDetector",
    "HaarFaceDetector",
    "MissingModel",
    "YoloDetector",
    "capabilities",
    "check_categories",
    "detectors_for",
    "get_session",
    "gpu_name",
    "pick_specs",
    "usable_providers",
]
