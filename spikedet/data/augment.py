"""Box-safe training augmentation (albumentations) and the letterbox every detector is evaluated with.

Training: a box-keeping random crop (zoom in), letterbox to ``size × size`` (grey 114, centred, as
:func:`spikedet.engine.inference.letterbox`), a random scale/translate, horizontal flip and colour jitter.
albumentations moves the boxes with the pixels; boxes mostly pushed out of the image are dropped and the rest
clipped, so every box that leaves the pipeline is valid (inside the image, wider and taller than
``MIN_BOX_SIDE``).
"""
from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from .records import MIN_BOX_SIDE

__all__ = ["PAD_VALUE", "letterbox_transform", "train_transform", "apply_transform"]

PAD_VALUE = 114


def letterbox_transform(size: int) -> list[A.BasicTransform]:
    """Resize the longer side to ``size`` and pad to a centred square."""
    return [
        A.LongestMaxSize(max_size=size, interpolation=cv2.INTER_LINEAR),
        A.PadIfNeeded(size, size, position="center", border_mode=cv2.BORDER_CONSTANT, fill=PAD_VALUE),
    ]


def train_transform(size: int, scale: tuple[float, float] = (0.75, 1.25), min_visibility: float = 0.3) -> A.Compose:
    """The training pipeline for RGB uint8 images with ``pascal_voc`` (``xyxy`` pixel) boxes and ``labels``.

    ``min_visibility``: a box keeping less than this fraction of its area after crop/scale is dropped.
    """
    return A.Compose(
        [
            A.BBoxSafeRandomCrop(erosion_rate=0.0, p=0.3),
            *letterbox_transform(size),
            A.Affine(
                scale=scale, translate_percent=(-0.1, 0.1), border_mode=cv2.BORDER_CONSTANT, fill=PAD_VALUE, p=0.7
            ),
            A.HorizontalFlip(p=0.5),
            A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.5, hue=0.03, p=0.8),
        ],
        bbox_params=A.BboxParams(
            format="pascal_voc", label_fields=["labels"], min_visibility=min_visibility, clip=True,
            filter_invalid_bboxes=True,
        ),
    )


def apply_transform(
    transform: A.Compose, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``transform``; returns the image and the valid boxes (float32 ``[N, 4]``) with their labels."""
    out = transform(image=image, bboxes=np.asarray(boxes, np.float32).reshape(-1, 4), labels=np.asarray(labels))
    image = out["image"]
    boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
    labels = np.asarray(out["labels"], np.int64).reshape(-1)
    h, w = image.shape[:2]
    boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
    keep = ((boxes[:, 2] - boxes[:, 0]) > MIN_BOX_SIDE) & ((boxes[:, 3] - boxes[:, 1]) > MIN_BOX_SIDE)
    return image, boxes[keep], labels[keep]
