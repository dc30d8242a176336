"""Batched detector inference on a dataset: letterbox, forward (ANN or SNN), then the family's NMS."""
from __future__ import annotations

from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..data.records import DatasetError, DetectionDataset, ImageRecord
from ..eval.detections import ImageDetections
from ..models.postprocess import decoded_postprocess

__all__ = ["letterbox", "to_tensor", "image_batches", "predict_dataset"]


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
            if image.shape[:2] != (rec.height, rec.width):  # boxes are in the record's frame: never mix frames
                raise DatasetError(
                    f"{rec.path}: decoded as {image.shape[1]}x{image.shape[0]}, but its record says "
                    f"{rec.width}x{rec.height}"
                )
            images.append(letterbox(image, size))
        yield to_tensor(images), chunk


def predict_dataset(
    run: Callable[[torch.Tensor], dict[Any, Any]],
    dataset: DetectionDataset,
    size: int,
    batch_size: int = 8,
    desc: str = "predict",
    postprocess: Callable[..., list[ImageDetections]] = decoded_postprocess,
    device: str | torch.device = "cpu",
    **nms: Any,
) -> dict[Any, list[ImageDetections]]:
    """Run ``run(images) -> {key: detector output}`` over the dataset; return detections per key.

    Keys are e.g. ``"ann"`` for an ANN, or each T of a spiking network's anytime outputs. ``postprocess`` is
    the detector family's (``DetectorFamily.postprocess``). The images go to ``device`` (the model's) and stay
    there through NMS; only the kept boxes come back.
    """
    device = torch.device(device)
    results: dict[Any, list[ImageDetections]] = {}
    total = (len(dataset.records) + batch_size - 1) // batch_size
    with torch.no_grad():
        for images, records in tqdm(image_batches(dataset.records, size, batch_size), total=total, desc=desc, leave=False):
            images = images.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else images
            for key, output in run(images).items():
                results.setdefault(key, []).extend(postprocess(output, size, records, **nms))
    return results
