"""Batched detector inference on a dataset: letterbox, forward (ANN or SNN), NMS, boxes back in image pixels."""
from __future__ import annotations

from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..data.records import DatasetError, DetectionDataset, ImageRecord
from ..env import import_ultralytics
from ..eval.detections import ImageDetections

__all__ = ["letterbox", "to_tensor", "image_batches", "scaled_nms", "yolo_postprocess", "predict_dataset"]

import_ultralytics()
from ultralytics.utils.nms import non_max_suppression  # noqa: E402
from ultralytics.utils.ops import scale_boxes  # noqa: E402


def letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """Resize keeping the aspect ratio and pad to ``size × size`` with grey (114), centred, as ultralytics."""
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    nh, nw = round(h * r), round(w * r)
    if (nh, nw) != (h, w):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (size - nh) // 2, (size - nw) // 2
    out = np.full((size, size, 3), 114, dtype=np.uint8)
    out[top : top + nh, left : left + nw] = image
    return out


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """BGR uint8 images → RGB float tensor ``[B, 3, H, W]`` in [0, 1]."""
    batch = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(batch)).float().div_(255.0)


def image_batches(records: list[ImageRecord], size: int, batch_size: int) -> Iterator[tuple[torch.Tensor, list[ImageRecord]]]:
    """Letterboxed tensors for the records, ``batch_size`` at a time."""
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        images = []
        for rec in chunk:
            image = cv2.imread(rec.path, cv2.IMREAD_COLOR)
            if image is None:
                raise DatasetError(f"cannot read image {rec.path}")
            images.append(letterbox(image, size))
        yield to_tensor(images), chunk


def scaled_nms(
    output: Any, size: int, shapes: list[tuple[int, int]], conf: float = 0.001, iou: float = 0.7, max_det: int = 300
) -> list[torch.Tensor]:
    """Detect-head output of letterboxed ``size × size`` inputs → NMS → ``[N, 6]`` per image: ``xyxy`` in the
    pixels of the original image of shape ``(height, width)``, score, class."""
    pred = output[0] if isinstance(output, (list, tuple)) else output
    kept = non_max_suppression(pred, conf_thres=conf, iou_thres=iou, max_det=max_det)
    for det, shape in zip(kept, shapes):
        det[:, :4] = scale_boxes((size, size), det[:, :4].clone(), shape)
    return kept


def yolo_postprocess(
    output: Any, size: int, records: list[ImageRecord], conf: float = 0.001, iou: float = 0.7, max_det: int = 300
) -> list[ImageDetections]:
    """Decoded output ``[B, 4 + nc, A]`` (YOLO's Detect head, or any family's decoder) → NMS → boxes in the
    original image's pixels."""
    kept = scaled_nms(output, size, [(rec.height, rec.width) for rec in records], conf, iou, max_det)
    return [
        ImageDetections(
            image_id=rec.image_id, boxes=det[:, :4].numpy().astype(np.float32),
            scores=det[:, 4].numpy().astype(np.float32), labels=det[:, 5].numpy().astype(np.int64),
        )
        for det, rec in zip(kept, records)
    ]


def predict_dataset(
    run: Callable[[torch.Tensor], dict[Any, Any]],
    dataset: DetectionDataset,
    size: int,
    batch_size: int = 8,
    desc: str = "predict",
    postprocess: Callable[..., list[ImageDetections]] = yolo_postprocess,
    **nms: Any,
) -> dict[Any, list[ImageDetections]]:
    """Run ``run(images) -> {key: detector output}`` over the dataset; return detections per key.

    Keys are e.g. ``"ann"`` for an ANN, or each T of a spiking network's anytime outputs. ``postprocess`` is
    the detector family's (``DetectorFamily.postprocess``).
    """
    results: dict[Any, list[ImageDetections]] = {}
    total = (len(dataset.records) + batch_size - 1) // batch_size
    with torch.no_grad():
        for images, records in tqdm(image_batches(dataset.records, size, batch_size), total=total, desc=desc, leave=False):
            for key, output in run(images).items():
                results.setdefault(key, []).extend(postprocess(output, size, records, **nms))
    return results
