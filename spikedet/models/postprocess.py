"""NMS on the decoded layout every detector family outputs, ``[B, 4 + nc, A]``, and boxes back in image pixels."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.records import ImageRecord
from ..env import import_ultralytics
from ..eval.detections import ImageDetections

__all__ = ["decoded_output", "decoded_postprocess", "scaled_nms"]

import_ultralytics()
from ultralytics.utils.nms import non_max_suppression  # noqa: E402
from ultralytics.utils.ops import scale_boxes  # noqa: E402


def decoded_output(output: Any) -> torch.Tensor:
    """The decoded ``[B, 4 + nc, A]`` tensor of a family's eval output. The family contract: the eval output is
    that tensor, or a tuple that starts with it (ultralytics' Detect appends its raw maps)."""
    return output[0] if isinstance(output, (list, tuple)) else output


def scaled_nms(
    output: Any, size: int, shapes: list[tuple[int, int]], conf: float = 0.001, iou: float = 0.7, max_det: int = 300
) -> list[torch.Tensor]:
    """Decoded output of letterboxed ``size × size`` inputs → NMS → ``[N, 6]`` per image: ``xyxy`` in the
    pixels of the original image of shape ``(height, width)``, score, class."""
    kept = non_max_suppression(decoded_output(output), conf_thres=conf, iou_thres=iou, max_det=max_det)
    for det, shape in zip(kept, shapes):
        det[:, :4] = scale_boxes((size, size), det[:, :4].clone(), shape)
    return kept


def decoded_postprocess(
    output: Any, size: int, records: list[ImageRecord], conf: float = 0.001, iou: float = 0.7, max_det: int = 300
) -> list[ImageDetections]:
    """Decoded output ``[B, 4 + nc, A]`` (YOLO's Detect head, or any family's decoder) → NMS → boxes in the
    original image's pixels."""
    shapes = [(rec.height, rec.width) for rec in records]
    kept = [det.cpu() for det in scaled_nms(output, size, shapes, conf, iou, max_det)]  # NMS where the model ran
    return [
        ImageDetections(
            image_id=rec.image_id, boxes=det[:, :4].numpy().astype(np.float32),
            scores=det[:, 4].numpy().astype(np.float32), labels=det[:, 5].numpy().astype(np.int64),
        )
        for det, rec in zip(kept, records)
    ]
