"""Synthetic generator: determinism, valid tight boxes, both layouts, the manifest cache."""
import json
from pathlib import Path

import numpy as np
import pytest

from spikedet.data import CLASS_NAMES, DatasetError, generate_synthetic, read_coco, read_voc
from spikedet.data.synthetic import _sample_shape, ensure_synthetic, render_image

SMALL = dict(num_images=20, image_size=96, progress=False)


def _json_bytes(root: Path) -> bytes:
    return b"".join((root / "annotations" / f"instances_{s}.json").read_bytes() for s in ("train", "val"))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("syn") / "a", layout="both", **SMALL)


def test_same_seed_same_bytes_other_seed_differs(small_set: Path, tmp_path: Path) -> None:
    assert _json_bytes(generate_synthetic(tmp_path / "b", **SMALL)) == _json_bytes(small_set)
    assert _json_bytes(generate_synthetic(tmp_path / "c", seed=1, **SMALL)) != _json_bytes(small_set)


def test_result_does_not_depend_on_worker_count(tmp_path: Path) -> None:
    args = dict(num_images=64, image_size=48, progress=False)
    one = generate_synthetic(tmp_path / "one", workers=1, **args)
    two = generate_synthetic(tmp_path / "two", workers=2, **args)
    assert _json_bytes(one) == _json_bytes(two)
    assert (one / "val" / "000064.jpg").read_bytes() == (two / "val" / "000064.jpg").read_bytes()


def test_coco_layout_reads_back_clean(small_set: Path) -> None:
    train, val = read_coco(small_set, "train"), read_coco(small_set, "val")
    assert (len(train), len(val)) == (16, 4)
    assert train.class_names == list(CLASS_NAMES) and train.category_ids == [1, 2, 3, 4, 5, 6]
    assert dict(train.warnings) == dict(val.warnings) == {}
    labels = np.concatenate([r.labels for r in train.records + val.records])
    assert set(labels.tolist()) == set(range(len(CLASS_NAMES)))
    for r in train.records + val.records:
        assert (r.width, r.height) == (96, 96) and 1 <= len(r.labels) <= 8
        assert (r.boxes >= 0).all() and (r.boxes <= 96).all()
        assert ((r.boxes[:, 2:] - r.boxes[:, :2]) >= 2).all()


def test_voc_layout_matches_coco_layout(small_set: Path) -> None:
    voc, coco = read_voc(small_set, "trainval"), read_coco(small_set, "train").records + read_coco(small_set, "val").records
    assert dict(voc.warnings) == {} and voc.class_names == sorted(CLASS_NAMES)
    for v, c in zip(voc.records, coco):
        names = [voc.class_names[i] for i in v.labels]
        assert names == [CLASS_NAMES[i] for i in c.labels]
        np.testing.assert_allclose(v.boxes, c.boxes, atol=1.0)  # VOC stores the touched pixels


def test_boxes_are_tight_around_the_drawn_shape() -> None:
    rng = np.random.default_rng(3)
    checked = 0
    while checked < 200:
        shape = _sample_shape(rng, 64)
        if shape is None:
            continue
        _, mask, box = shape
        ys, xs = np.nonzero(mask)  # every pixel the shape touches, however little
        pixel_box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        np.testing.assert_allclose(pixel_box, [*np.floor(box[:2]), *np.ceil(box[2:])], atol=1)
        assert (pixel_box[:2] <= box[:2] + 0.25).all() and (pixel_box[2:] >= box[2:] - 0.25).all()
        checked += 1


def test_render_is_a_pure_function_of_seed_and_index() -> None:
    a, b = render_image(0, 5, 64), render_image(0, 5, 64)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (64, 64, 3) and a[0].dtype == np.uint8


def test_manifest_cache_is_reused_or_regenerated(tmp_path: Path) -> None:
    root = ensure_synthetic(tmp_path / "cache", num_images=10, image_size=64)
    manifest = json.loads((root / "manifest.json").read_text())
    assert (manifest["num_images"], manifest["image_size"], manifest["seed"]) == (10, 64, 0)
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert ensure_synthetic(tmp_path / "cache", num_images=10, image_size=64) == root
    assert (root / "manifest.json").stat().st_mtime_ns == stamp
    ensure_synthetic(tmp_path / "cache", num_images=12, image_size=64)
    assert len(read_coco(root, "train")) + len(read_coco(root, "val")) == 12


def test_refuses_a_foreign_folder_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="refusing"):
        generate_synthetic(tmp_path, **SMALL)
    with pytest.raises(DatasetError, match="unknown synthetic layout"):
        generate_synthetic(tmp_path / "x", layout="yolo", **SMALL)
