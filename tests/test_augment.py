"""The albumentations training pipeline keeps every box valid and aligned with its label."""
from __future__ import annotations

import numpy as np
import pytest

from spikedet.data.augment import PAD_VALUE, apply_transform, letterbox_transform, train_transform
from spikedet.data.records import MIN_BOX_SIDE
from spikedet.engine.inference import letterbox

import albumentations as A


def _random_sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = rng.integers(24, 200, size=2)
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    n = int(rng.integers(0, 12))
    x1, y1 = rng.uniform(0, w - 2, n), rng.uniform(0, h - 2, n)
    x2, y2 = rng.uniform(x1 + 1.5, w), rng.uniform(y1 + 1.5, h)
    boxes = np.stack([x1, y1, x2, y2], 1).astype(np.float32).reshape(n, 4)
    # labels encode the box they belong to, so that any mix-up of boxes and labels shows
    return image, boxes, np.arange(n, dtype=np.int64)


@pytest.mark.parametrize("seed", range(200))
def test_boxes_stay_valid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    A.set_seed(seed) if hasattr(A, "set_seed") else None
    image, boxes, labels = _random_sample(rng)
    size = int(rng.choice([32, 64, 96]))
    transform = train_transform(size)
    transform.set_random_seed(seed)
    out, out_boxes, out_labels = apply_transform(transform, image, boxes, labels)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    assert out_boxes.dtype == np.float32 and out_boxes.shape == (len(out_labels), 4)
    assert np.isfinite(out_boxes).all()
    assert (out_boxes[:, :2] >= 0).all() and (out_boxes[:, 2] <= size).all() and (out_boxes[:, 3] <= size).all()
    assert ((out_boxes[:, 2] - out_boxes[:, 0]) > MIN_BOX_SIDE).all()
    assert ((out_boxes[:, 3] - out_boxes[:, 1]) > MIN_BOX_SIDE).all()
    assert set(out_labels.tolist()) <= set(labels.tolist()) and len(set(out_labels.tolist())) == len(out_labels)


def test_training_letterbox_matches_evaluation_letterbox() -> None:
    """Training sees the images the way evaluation letterboxes them (grey 114, centred)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(48, 80, 3), dtype=np.uint8)
    pipeline = A.Compose(letterbox_transform(64))
    trained = pipeline(image=image)["image"]
    evaluated = letterbox(image, 64)
    assert trained.shape == evaluated.shape
    assert (trained[:12] == PAD_VALUE).all() and (evaluated[:12] == PAD_VALUE).all()
    assert np.abs(trained.astype(int) - evaluated.astype(int)).max() <= 1


def test_boxes_follow_a_flip() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    flip = A.Compose([A.HorizontalFlip(p=1.0)], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]))
    _, boxes, labels = apply_transform(flip, image, np.array([[4.0, 8.0, 20.0, 30.0]]), np.array([1]))
    np.testing.assert_allclose(boxes, [[44.0, 8.0, 60.0, 30.0]])
    assert labels.tolist() == [1]
