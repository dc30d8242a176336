"""A detector's output for one image, and its conversion to the COCO result format."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["ImageDetections", "to_coco_results", "xyxy_to_xywh", "check_detections"]


@dataclass
class ImageDetections:
    """Detections of one image.

    ``boxes`` are absolute pixel ``xyxy`` (float32, ``[N, 4]``), ``scores`` float32 ``[N]``, ``labels``
    contiguous class indices (int64, ``[N]``), i.e. the same conventions as :class:`ImageRecord`.
    """

    image_id: int
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        self.image_id = int(self.image_id)
        boxes = np.asarray(self.boxes, dtype=np.float32)
        scores = np.asarray(self.scores, dtype=np.float32)
        labels = np.asarray(self.labels)
        n = len(scores)
        # An empty box array may come as shape (0,) from a list; anything else must be exactly [N, 4].
        if boxes.size == 0 and n == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.shape != (n, 4) or scores.shape != (n,) or labels.shape != (n,):
            raise ValueError(
                f"image {self.image_id}: detections need boxes [N, 4], scores [N], labels [N]; "
                f"got boxes {list(boxes.shape)}, scores {list(scores.shape)}, labels {list(labels.shape)}"
            )
        if n and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"image {self.image_id}: labels must be integers, got dtype {labels.dtype}")
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise ValueError(f"image {self.image_id}: boxes and scores must be finite (found NaN or inf)")
        self.boxes, self.scores, self.labels = boxes, scores, labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.scores)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """``[N, 4]`` xyxy → xywh in float64 (json wants Python floats; float32 would add noise digits)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def check_detections(dets: Iterable[ImageDetections], num_classes: int, image_ids: Iterable[int] | None = None) -> None:
    """Raise ``ValueError`` on a label outside ``[0, num_classes)``, a repeated image, or an unknown image.

    ``image_ids`` (the dataset's images, which must be unique) is optional: without it only labels and
    repeats are checked.
    """
    known = None
    if image_ids is not None:
        image_ids = list(image_ids)
        known = set(image_ids)
        if len(known) != len(image_ids):
            repeated = next(i for i in image_ids if image_ids.count(i) > 1)
            raise ValueError(f"the dataset's image ids are not unique (id {repeated} repeats)")
    seen: set[int] = set()
    for det in dets:
        if det.image_id in seen:
            raise ValueError(f"image {det.image_id} appears more than once in the detections")
        seen.add(det.image_id)
        if known is not None and det.image_id not in known:
            raise ValueError(f"detections for image id {det.image_id}, which is not in the dataset")
        bad = det.labels[(det.labels < 0) | (det.labels >= num_classes)]
        if len(bad):
            raise ValueError(
                f"image {det.image_id}: label {int(bad[0])} is out of range for {num_classes} classes "
                f"(labels are contiguous indices 0..{num_classes - 1})"
            )


def to_coco_results(dets: list[ImageDetections], category_ids: list[int]) -> list[dict]:
    """Detections as a COCO result list: one ``{image_id, category_id, bbox, score}`` per box.

    ``category_id`` is ``category_ids[label]``, the dataset's real COCO id (not the contiguous index);
    ``bbox`` is xywh rounded to 3 decimals, as in the official result files.
    """
    check_detections(dets, len(category_ids))
    results = []
    for det in dets:
        xywh = np.round(xyxy_to_xywh(det.boxes), 3).tolist()
        for bbox, score, label in zip(xywh, det.scores.tolist(), det.labels.tolist()):
            results.append(
                {"image_id": det.image_id, "category_id": int(category_ids[label]), "bbox": bbox, "score": score}
            )
    return results
