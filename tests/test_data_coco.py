"""COCO reader and writer: coco-tiny, round trips, malformed fixtures."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spikedet.data import DatasetError, read_coco, read_voc, write_coco_json

COCO_TINY = {"train2017": (705, 6), "val2017": (815, 11)}  # boxes, crowd boxes


def assert_same_records(a, b) -> None:
    assert len(a.records) == len(b.records)
    for ra, rb in zip(a.records, b.records):
        assert (Path(ra.path).name, ra.width, ra.height) == (Path(rb.path).name, rb.width, rb.height)
        np.testing.assert_array_equal(ra.labels, rb.labels)
        np.testing.assert_array_equal(ra.difficult, rb.difficult)
        np.testing.assert_array_equal(ra.iscrowd, rb.iscrowd)
        np.testing.assert_allclose(ra.boxes, rb.boxes, atol=1e-3)


def as_coco_folder(root: Path, dataset, image_dir: Path) -> Path:
    """A COCO folder holding ``dataset`` as json, its images linked in."""
    write_coco_json(dataset, root / "annotations" / f"instances_{dataset.split}.json")
    (root / dataset.split).symlink_to(image_dir, target_is_directory=True)
    return root


@pytest.mark.parametrize("split", sorted(COCO_TINY))
def test_coco_tiny(shared_datasets: Path, split: str) -> None:
    root = shared_datasets / "coco-tiny"
    raw = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
    dataset = read_coco(root, split)

    assert dataset.category_ids == sorted(c["id"] for c in raw["categories"])
    assert len(dataset.category_ids) == 80 and max(dataset.category_ids) == 90  # real, non-contiguous ids
    assert dataset.class_names[dataset.category_ids.index(1)] == "person"
    assert [r.image_id for r in dataset.records] == sorted(i["id"] for i in raw["images"])
    assert dict(dataset.warnings) == {}
    boxes, crowd = COCO_TINY[split]
    assert sum(len(r.labels) for r in dataset.records) == boxes
    assert sum(int(r.iscrowd.sum()) for r in dataset.records) == crowd
    # label -> category id -> name agrees with the json for every annotation
    names = {c["id"]: c["name"] for c in raw["categories"]}
    first = next(a for a in raw["annotations"] if a["image_id"] == dataset.records[0].image_id)
    x, y, w, h = first["bbox"]
    record = dataset.records[0]
    k = int(np.argmin(np.abs(record.boxes - [x, y, x + w, y + h]).sum(axis=1)))
    np.testing.assert_allclose(record.boxes[k], [x, y, x + w, y + h], atol=1e-3)
    assert dataset.class_names[record.labels[k]] == names[first["category_id"]]


def test_coco_category_ids_survive_a_round_trip(shared_datasets: Path, tmp_path: Path) -> None:
    original = read_coco(shared_datasets / "coco-tiny", "val2017")
    again = read_coco(as_coco_folder(tmp_path, original, shared_datasets / "coco-tiny" / "val2017"), "val2017")
    assert (again.class_names, again.category_ids) == (original.class_names, original.category_ids)
    assert [r.image_id for r in again.records] == [r.image_id for r in original.records]
    assert_same_records(original, again)


def test_voc_to_coco_and_back_is_identical(shared_datasets: Path, tmp_path: Path) -> None:
    voc = read_voc(shared_datasets / "bccd", "val")
    coco = read_coco(as_coco_folder(tmp_path, voc, shared_datasets / "bccd" / "JPEGImages"), "val")
    assert (coco.class_names, coco.category_ids) == (voc.class_names, [1, 2, 3])
    assert_same_records(voc, coco)
    for a, b in zip(voc.records, coco.records):
        np.testing.assert_array_equal(a.boxes, b.boxes)  # integer VOC boxes: exact


def test_difficult_is_written_as_ignored_crowd_and_read_back(tmp_path: Path) -> None:
    from test_data_voc import make_voc

    items = {"a": {"objects": [("cat", 5, 5, 20, 20, 1), ("cat", 21, 5, 40, 20)]}}
    voc = read_voc(make_voc(tmp_path / "voc", items), "train")
    path = write_coco_json(voc, tmp_path / "gt.json")
    anns = json.loads(path.read_text())["annotations"]
    assert [(a["iscrowd"], a.get("difficult", 0)) for a in anns] == [(1, 1), (0, 0)]
    assert anns[0]["area"] == 16 * 16 and anns[0]["bbox"] == [4, 4, 16, 16]
    back = read_coco(as_coco_folder(tmp_path / "coco", voc, tmp_path / "voc" / "JPEGImages"), "train")
    assert back.records[0].difficult.tolist() == [True, False] and back.records[0].iscrowd.tolist() == [False, False]


def test_write_coco_json_is_deterministic(shared_datasets: Path, tmp_path: Path) -> None:
    dataset = read_coco(shared_datasets / "coco-tiny", "train2017")
    first, second = (write_coco_json(dataset, tmp_path / name) for name in ("a.json", "b.json"))
    assert first.read_bytes() == second.read_bytes()


def make_coco(root: Path, split: str, images: list[dict], annotations: list[dict], nested: bool = False) -> Path:
    """A COCO folder; each image has ``state`` ok / missing / corrupt and optionally its ``actual`` size."""
    image_dir = root / "images" / split if nested else root / split
    image_dir.mkdir(parents=True)
    for im in images:
        if im.get("state") == "ok":
            Image.new("RGB", im.get("actual", (im["width"], im["height"]))).save(image_dir / im["file_name"])
        elif im.get("state") == "corrupt":
            (image_dir / im["file_name"]).write_bytes(b"\x89PNG broken")
    data = {
        "images": [{k: v for k, v in im.items() if k not in ("state", "actual")} for im in images],
        "annotations": annotations,
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
    }
    (root / "annotations").mkdir()
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


def test_malformed_coco_fixture(tmp_path: Path) -> None:
    images = [
        {"id": 10, "file_name": "a.jpg", "width": 50, "height": 40, "state": "ok"},
        {"id": 11, "file_name": "b.jpg", "width": 50, "height": 40, "state": "missing"},
        {"id": 12, "file_name": "c.png", "width": 50, "height": 40, "state": "corrupt"},
        {"id": 13, "file_name": "d.jpg", "width": 50, "height": 40, "state": "ok"},  # no annotations
        {"id": 14, "file_name": "e.jpg", "width": 99, "height": 40, "state": "ok", "actual": (50, 40)},
    ]
    anns = [
        {"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 2, 10, 10], "iscrowd": 0},
        {"id": 2, "image_id": 10, "category_id": 3, "bbox": [40, 30, 20, 20], "iscrowd": 1},  # crosses the border
        {"id": 3, "image_id": 10, "category_id": 3, "bbox": [5, 5, 0.5, 10], "iscrowd": 0},  # degenerate
        {"id": 4, "image_id": 10, "category_id": 99, "bbox": [5, 5, 5, 5], "iscrowd": 0},  # unknown category
        {"id": 5, "image_id": 10, "category_id": 7, "bbox": [5, "x", 5, 5], "iscrowd": 0},  # malformed
        {"id": 6, "image_id": 77, "category_id": 7, "bbox": [5, 5, 5, 5], "iscrowd": 0},  # unknown image
    ]
    dataset = read_coco(make_coco(tmp_path, "train", images, anns, nested=True), "train")
    assert dataset.warnings == Counter(
        {
            "image missing (skipped)": 1,
            "image unreadable (skipped)": 1,
            "json size differs from image (image used)": 1,
            "box clipped to image": 1,
            "degenerate box dropped": 1,
            "malformed annotation dropped": 2,
            "annotation of unknown image dropped": 1,
        }
    )
    assert (dataset.class_names, dataset.category_ids) == (["dog", "cat"], [3, 7])  # sorted by id
    assert [r.image_id for r in dataset.records] == [10, 13, 14]
    a, d, e = dataset.records
    np.testing.assert_allclose(a.boxes, [[1, 2, 11, 12], [40, 30, 50, 40]])
    assert a.labels.tolist() == [1, 0] and a.iscrowd.tolist() == [False, True]
    assert d.boxes.shape == (0, 4) and d.labels.shape == (0,)
    assert e.width == 50


def test_coco_class_names_and_errors(tmp_path: Path) -> None:
    images = [{"id": 1, "file_name": "a.jpg", "width": 50, "height": 40, "state": "ok"}]
    anns = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 10, 10], "iscrowd": 0}]
    root = make_coco(tmp_path, "val", images, anns)
    dataset = read_coco(root, "val", class_names=["cat", "dog"])
    assert (dataset.category_ids, dataset.records[0].labels.tolist()) == ([7, 3], [0])
    with pytest.raises(DatasetError, match="'bird'"):
        read_coco(root, "val", class_names=["cat", "bird"])
    with pytest.raises(DatasetError, match="category 7, not in class_names"):
        read_coco(root, "val", class_names=["dog"])
    with pytest.raises(DatasetError, match=r"not found \(found: \['instances_val.json'\]\)"):
        read_coco(root, "train")
    (root / "annotations" / "instances_bad.json").write_text("{not json")
    (root / "bad").mkdir()
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_coco(root, "bad")
