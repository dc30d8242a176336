"""In-memory detection records: one per image, one class list per dataset."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .image_check import check_image

__all__ = ["ImageRecord", "DetectionDataset", "DatasetError", "probe_image", "sanitize_boxes", "MIN_BOX_SIDE"]

# A kept box must span more than this many pixels on each axis: anything thinner is a stray click or a
# sliver cut off by the image border, has no usable IoU, and only adds noise to training and evaluation.
MIN_BOX_SIDE = 1.0
# Float round-off (COCO xywh -> xyxy) may overshoot the border by a hair: clip that without a warning.
_CLIP_TOLERANCE = 1e-2


class DatasetError(ValueError):
    """A dataset cannot be read as asked (missing folder, unknown class, empty split, ...)."""


@dataclass
class ImageRecord:
    """One image and its ground truth.

    ``boxes`` are absolute pixel ``xyxy`` (float32, shape ``[N, 4]``); ``labels`` are contiguous class
    indices into the dataset's ``class_names`` (int64, ``[N]``); ``difficult`` (VOC) and ``iscrowd`` (COCO)
    are bool ``[N]``. ``image_id`` is the id used in COCO json (the real COCO id for COCO data).
    """

    path: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    iscrowd: np.ndarray
    image_id: int

    def __post_init__(self) -> None:
        n = len(self.labels)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(n, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(n)
        self.difficult = np.asarray(self.difficult, dtype=bool).reshape(n)
        self.iscrowd = np.asarray(self.iscrowd, dtype=bool).reshape(n)


@dataclass
class DetectionDataset:
    """A split of a detection dataset.

    ``category_ids[i]`` is the id class index ``i`` has in COCO json: the real, non-contiguous COCO id for
    COCO data, ``i + 1`` otherwise. ``warnings`` counts every record-level problem met while reading
    (key: a short reason, e.g. ``"box clipped to image"``), so nothing is dropped silently.
    """

    name: str
    root: str
    split: str
    layout: str
    class_names: list[str]
    records: list[ImageRecord]
    category_ids: list[int] = field(default_factory=list)
    warnings: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if not self.category_ids:
            self.category_ids = list(range(1, len(self.class_names) + 1))
        if len(self.category_ids) != len(self.class_names):
            raise DatasetError(
                f"{self.name}: {len(self.category_ids)} category ids for {len(self.class_names)} classes"
            )

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> str:
        """One line: images, boxes, classes and the warning counts."""
        boxes = sum(len(r.labels) for r in self.records)
        line = f"{self.name}/{self.split} ({self.layout}): {len(self.records)} images, {boxes} boxes, {self.num_classes} classes"
        if self.warnings:
            line += "; warnings: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.warnings.items()))
        return line


def probe_image(path: str | Path | None, warnings: Counter) -> tuple[int, int] | None:
    """Upright ``(width, height)`` of an image to keep, or ``None`` (counted in ``warnings``) for one to skip:
    missing (``path`` is None or no file), unreadable, truncated or too large (see :mod:`.image_check`)."""
    if path is None or not Path(path).is_file():
        warnings["image missing (skipped)"] += 1
        return None
    size, problem = check_image(path)
    if problem is not None:
        warnings[f"image {problem} (skipped)"] += 1
    return size


def sanitize_boxes(boxes: np.ndarray, width: int, height: int, warnings: Counter) -> tuple[np.ndarray, np.ndarray]:
    """Clip ``xyxy`` boxes to the image and flag the ones worth keeping.

    Returns the clipped boxes and a bool keep-mask. Counts ``"box clipped to image"`` and
    ``"degenerate box dropped"`` (side <= ``MIN_BOX_SIDE`` after clipping, reversed or non-finite) in ``warnings``.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    limits = np.array([width, height, width, height], dtype=np.float32)
    outside = ((boxes < -_CLIP_TOLERANCE) | (boxes > limits + _CLIP_TOLERANCE)).any(axis=1)
    clipped = np.clip(boxes, 0, limits)
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (w > MIN_BOX_SIDE) & (h > MIN_BOX_SIDE)  # False for NaN too
    for key, n in (("box clipped to image", (outside & keep).sum()), ("degenerate box dropped", (~keep).sum())):
        if n:  # only problems that happened get a key
            warnings[key] += int(n)
    return clipped, keep
