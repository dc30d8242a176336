"""PASCAL VOC mAP: per-class AP at one IoU threshold, difficult objects ignored."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..data.records import DetectionDataset
from .detections import ImageDetections, check_detections

__all__ = ["VocResult", "evaluate_voc", "voc_ap", "box_iou"]


@dataclass
class VocResult:
    """mAP at ``iou_threshold`` (0.5 unless asked otherwise) and the AP of every class by name.

    A class with no (non-difficult) ground truth has AP ``nan`` and is left out of the mean.
    """

    map50: float
    per_class_ap: dict[str, float]
    iou_threshold: float = 0.5
    use_07_metric: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with ``[M, 4]`` boxes, in continuous coordinates.

    Unlike the VOC devkit there is no ``+1`` on widths: our boxes are 0-based continuous pixel coordinates,
    not inclusive integer pixel indices, so ``x2 - x1`` already is the width. Computed in float64 so an IoU
    that is exactly the threshold compares as equal.
    """
    box, boxes = np.asarray(box, dtype=np.float64), np.asarray(boxes, dtype=np.float64)
    wh = np.clip(np.minimum(box[2:], boxes[:, 2:]) - np.maximum(box[:2], boxes[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    union = _area(box) + _area(boxes) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """AP from a precision/recall curve (points in detection-rank order).

    Default: area under the monotone (non-increasing) precision envelope, all recall points (VOC2010+).
    ``use_07_metric``: mean of the envelope at the 11 recalls 0, 0.1, ..., 1 (VOC2007).
    """
    if use_07_metric:
        points = [precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0, 1, 11)]
        return float(np.mean(points))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _class_ap(
    gt: dict[int, tuple[np.ndarray, np.ndarray]], dets: list[tuple[float, int, np.ndarray]],
    iou_threshold: float, use_07_metric: bool,
) -> float:
    """AP of one class. ``gt``: image id → (boxes, ignored); ``dets``: (score, image id, box)."""
    npos = sum(int((~ignored).sum()) for _, ignored in gt.values())
    if npos == 0:
        return math.nan
    matched = {image_id: np.zeros(len(boxes), dtype=bool) for image_id, (boxes, _) in gt.items()}
    # Stable sort: equal scores keep their input order, so the result is deterministic.
    hits = []  # one per counted detection, in rank order: True = TP, False = FP
    for _, image_id, box in sorted(dets, key=lambda d: -d[0]):
        if image_id not in gt:
            hits.append(False)
            continue
        boxes, ignored = gt[image_id]
        ious = box_iou(box, boxes)
        best = int(ious.argmax())
        # VOC rule: only the highest-IoU ground truth is tried; if it is taken, the detection is a duplicate.
        if ious[best] <= iou_threshold:
            hits.append(False)
        elif ignored[best]:
            continue  # on a difficult object: neither TP nor FP
        elif matched[image_id][best]:
            hits.append(False)
        else:
            matched[image_id][best] = True
            hits.append(True)
    tp = np.cumsum(np.array(hits, dtype=bool))
    return voc_ap(tp / npos, tp / np.arange(1, len(hits) + 1), use_07_metric)


def evaluate_voc(
    dataset: DetectionDataset, dets: list[ImageDetections], iou_threshold: float = 0.5, use_07_metric: bool = False
) -> VocResult:
    """PASCAL VOC evaluation of ``dets`` against ``dataset``.

    Per class, detections are taken by decreasing score; each is matched to the ground truth of its class in
    its image with the highest IoU, and is a TP if that IoU is above ``iou_threshold`` and the ground truth is
    not yet matched, else a FP. Ground truth marked ``difficult`` (or ``iscrowd``) is ignored: it is not
    counted in the positives, and a detection matched to it is neither TP nor FP. AP is the area under the
    precision envelope (VOC2010+), or the 11-point VOC2007 AP with ``use_07_metric``. IoU is computed in
    continuous coordinates, without the devkit's ``+1`` (see :func:`box_iou`).
    """
    if not 0.0 <= iou_threshold < 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1), got {iou_threshold}")
    check_detections(dets, dataset.num_classes, (r.image_id for r in dataset.records))

    gt: list[dict[int, tuple[np.ndarray, np.ndarray]]] = [{} for _ in range(dataset.num_classes)]
    for record in dataset.records:
        ignored = record.difficult | record.iscrowd
        for c in np.unique(record.labels).tolist():
            mask = record.labels == c
            gt[c][record.image_id] = (record.boxes[mask], ignored[mask])
    by_class: list[list[tuple[float, int, np.ndarray]]] = [[] for _ in range(dataset.num_classes)]
    for det in dets:
        for box, score, label in zip(det.boxes, det.scores.tolist(), det.labels.tolist()):
            by_class[label].append((score, det.image_id, box))

    aps = [_class_ap(gt[c], by_class[c], iou_threshold, use_07_metric) for c in range(dataset.num_classes)]
    valid = [ap for ap in aps if not math.isnan(ap)]
    mean = float(np.mean(valid)) if valid else math.nan
    return VocResult(map50=mean, per_class_ap=dict(zip(dataset.class_names, aps)),
                     iou_threshold=iou_threshold, use_07_metric=use_07_metric)
