"""Fitting frames into a model's input: the input size for a frame, and a batch letterboxed and
normalised into reused buffers.

A model whose height and width are fixed takes its square (or whatever it was exported with). A
model with dynamic height/width takes the smallest stride-aligned rectangle that holds the frame
scaled to the nominal size: 640×272 footage into a 640-pixel model is 640×288, not 640×640, so
55 % of the square's pixels (all grey padding) are never computed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from analysis.detect.yolo import PAD_VALUE, Letterbox

STRIDE = 32  # YOLOv5/v8's largest feature-map stride: every input side is a multiple of it


@dataclass(frozen=True, slots=True)
class InputShape:
    """What a model accepts: its nominal width/height, and whether either side may change."""

    width: int
    height: int
    dynamic: bool = False
    stride: int = STRIDE

    def size_for(self, frame_width: int, frame_height: int) -> tuple[int, int]:
        """(width, height) of the input for a frame of this size."""
        if not self.dynamic or frame_width <= 0 or frame_height <= 0:
            return self.width, self.height
        scale = min(self.width / frame_width, self.height / frame_height)
        width = _align(round(frame_width * scale), self.stride)
        height = _align(round(frame_height * scale), self.stride)
        return min(width, _align(self.width, self.stride)), min(height, _align(self.height, self.stride))


def _align(value: int, stride: int) -> int:
    return max(stride, math.ceil(value / stride) * stride)


def letterbox_into(frame: np.ndarray, out: np.ndarray) -> Letterbox:
    """Ultralytics' centred letterbox of `frame` into `out` (height×width×3 uint8, written in place)."""
    height, width = out.shape[:2]
    h, w = frame.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = round(w * scale), round(h * scale)
    pad_x, pad_y = (width - new_w) / 2, (height - new_h) / 2
    left, top = round(pad_x - 0.1), round(pad_y - 0.1)
    # Only the borders are painted grey; the picture overwrites the rest.
    out[:top] = PAD_VALUE
    out[top + new_h :] = PAD_VALUE
    out[top : top + new_h, :left] = PAD_VALUE
    out[top : top + new_h, left + new_w :] = PAD_VALUE
    target = out[top : top + new_h, left : left + new_w]
    if (new_w, new_h) == (w, h):
        target[...] = frame
    else:
        cv2.resize(frame, (new_w, new_h), dst=target, interpolation=cv2.INTER_LINEAR)
    return Letterbox(scale, float(left), float(top), w, h)


class BatchBuffers:
    """Reused memory for one batch at a time: letterboxed BGR frames (N, H, W, 3) uint8 and the
    model's blob (N, 3, H, W) RGB 0..1, float32 or float16, per input size. Grows when a larger
    batch comes, never shrinks; `prepare()` answers a view of the first N rows.

    Not shared between batches in flight: a pipeline keeps one per stage slot (BufferPool)."""

    def __init__(self, dtype: np.dtype | type = np.float32) -> None:
        self.dtype = np.dtype(dtype)
        # Per input size, so streams of two aspects in turn do not reallocate every batch.
        self._arrays: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _ensure(self, count: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        arrays = self._arrays.get((width, height))
        if arrays is None or len(arrays[0]) < count:
            arrays = (
                np.empty((count, height, width, 3), np.uint8),
                np.empty((count, 3, height, width), self.dtype),
            )
            self._arrays[(width, height)] = arrays
        return arrays

    def prepare(
        self, frames: Sequence[np.ndarray], width: int, height: int
    ) -> tuple[np.ndarray, list[Letterbox]]:
        """Letterbox every frame into the batch, then BGR→RGB, HWC→CHW and ÷255 for the whole batch
        in one numpy pass. The answer is a view into this object's memory."""
        count = len(frames)
        boxed_all, blob_all = self._ensure(count, width, height)
        letterboxes = [letterbox_into(frame, boxed_all[i]) for i, frame in enumerate(frames)]
        boxed = boxed_all[:count]
        blob = blob_all[:count]
        # One strided pass: channel order reversed and transposed by the view, scaled on write.
        np.multiply(
            boxed[..., ::-1].transpose(0, 3, 1, 2), self.dtype.type(1 / 255.0), out=blob, casting="unsafe"
        )
        return blob, letterboxes


class BufferPool:
    """A few BatchBuffers handed out and given back, so preprocessing batch k+1 never writes into
    the memory inference still reads for batch k."""

    def __init__(self, size: int = 3, dtype: np.dtype | type = np.float32) -> None:
        self._free = [BatchBuffers(dtype) for _ in range(max(1, size))]
        self._ready = threading.Condition()

    def take(self) -> BatchBuffers:
        with self._ready:
            while not self._free:
                self._ready.wait()
            return self._free.pop()

    def give(self, buffers: BatchBuffers) -> None:
        with self._ready:
            self._free.append(buffers)
            self._ready.notify()
