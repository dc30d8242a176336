"""PASCAL VOC reader: real BCCD / raccoon data and small malformed fixtures."""
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spikedet.data import DatasetError, read_voc
from spikedet.data.voc import read_split_ids


def _xml(name: str, objects: list[tuple], size: tuple[int, int] | None = (64, 48)) -> str:
    """VOC annotation text; objects are (class, xmin, ymin, xmax, ymax[, difficult])."""
    size_tag = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    body = "".join(
        f"<object><name>{o[0]}</name><difficult>{o[5] if len(o) > 5 else 0}</difficult>"
        f"<bndbox><xmin>{o[1]}</xmin><ymin>{o[2]}</ymin><xmax>{o[3]}</xmax><ymax>{o[4]}</ymax></bndbox></object>"
        for o in objects
    )
    return f"<annotation><filename>{name}.jpg</filename>{size_tag}{body}</annotation>"


def make_voc(root: Path, items: dict[str, dict], split: str = "train") -> Path:
    """A VOC folder. Each item: objects, and optionally size (None: no <size>), image ("ok", "missing", "corrupt")."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, item in items.items():
        (root / "Annotations" / f"{name}.xml").write_text(_xml(name, item["objects"], item.get("size", (64, 48))))
        image = root / "JPEGImages" / f"{name}.jpg"
        if item.get("image", "ok") == "ok":
            Image.new("RGB", (64, 48), (90, 140, 200)).save(image)
        elif item["image"] == "corrupt":
            image.write_bytes(b"this is not a jpeg" * 10)
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{n}\n" for n in items))
    return root


# --- real data --------------------------------------------------------------------------------------------

# BCCD has two point annotations (xmin == xmax, ymin == ymax): BloodImage_00343 (train) and
# BloodImage_00338 (val). Its border boxes (xmin = 1, xmax = 640) are valid VOC and need no clipping.
BCCD_DEGENERATE = {"train": 1, "val": 1, "trainval": 2, "test": 0}


@pytest.mark.parametrize("split", sorted(BCCD_DEGENERATE))
def test_bccd_reports_its_imperfect_boxes(shared_datasets: Path, split: str) -> None:
    root = shared_datasets / "bccd"
    dataset = read_voc(root, split)
    ids = read_split_ids(root, split)
    objects = sum(len(re.findall(r"<object>", (root / "Annotations" / f"{i}.xml").read_text())) for i in ids)

    assert dataset.class_names == ["Platelets", "RBC", "WBC"]
    assert len(dataset) + sum(v for k, v in dataset.warnings.items() if "skipped" in k) == len(ids)
    assert len(dataset) == len(ids)  # no image lost
    expected = Counter({"degenerate box dropped": BCCD_DEGENERATE[split]}) if BCCD_DEGENERATE[split] else Counter()
    assert dataset.warnings == expected
    assert sum(len(r.labels) for r in dataset.records) == objects - BCCD_DEGENERATE[split]
    for r in dataset.records:
        assert (r.boxes[:, :2] >= 0).all() and (r.boxes[:, 2] <= r.width).all() and (r.boxes[:, 3] <= r.height).all()
        assert ((r.boxes[:, 2:] - r.boxes[:, :2]) > 1).all()


def test_bccd_point_annotations_are_the_dropped_boxes(shared_datasets: Path) -> None:
    root = shared_datasets / "bccd"
    by_stem = {Path(r.path).stem: r for r in read_voc(root, "trainval").records}
    for stem in ("BloodImage_00338", "BloodImage_00343"):
        objects = len(re.findall(r"<object>", (root / "Annotations" / f"{stem}.xml").read_text()))
        assert len(by_stem[stem].labels) == objects - 1


def test_raccoon(shared_datasets: Path) -> None:
    for split, n in (("trainval", 160), ("test", 40)):
        dataset = read_voc(shared_datasets / "raccoon", split)
        assert (len(dataset), dataset.class_names, dict(dataset.warnings)) == (n, ["raccoon"], {})
        assert all(len(r.labels) >= 1 for r in dataset.records)


# --- fixtures ---------------------------------------------------------------------------------------------


def test_coordinates_become_zero_based_xyxy(tmp_path: Path) -> None:
    root = make_voc(tmp_path, {"a": {"objects": [("cat", 1, 1, 64, 48), ("dog", 11, 21, 30, 40, 1)]}})
    (record,) = read_voc(root, "train").records
    np.testing.assert_array_equal(record.boxes, [[0, 0, 64, 48], [10, 20, 30, 40]])
    assert record.labels.tolist() == [0, 1] and record.difficult.tolist() == [False, True]
    assert (record.width, record.height, record.image_id) == (64, 48, 1)


def test_malformed_fixture_counts_every_problem(tmp_path: Path) -> None:
    items = {
        "good": {"objects": [("cat", 5, 5, 20, 20)]},
        "missing": {"objects": [("cat", 5, 5, 20, 20)], "image": "missing"},
        "corrupt": {"objects": [("cat", 5, 5, 20, 20)], "image": "corrupt"},
        "nosize": {"objects": [("dog", 5, 5, 20, 20)], "size": None},
        "wrongsize": {"objects": [("dog", 5, 5, 20, 20)], "size": (640, 480)},
        "outside": {"objects": [("cat", -9, 5, 80, 20), ("dog", 5, 5, 20, 20)]},
        "degenerate": {"objects": [("cat", 30, 30, 30, 40), ("cat", 100, 5, 120, 20), ("dog", 5, 5, 20, 20)]},
    }
    dataset = read_voc(make_voc(tmp_path, items), "train")

    assert dataset.warnings == Counter(
        {
            "image missing (skipped)": 1,
            "image unreadable (skipped)": 1,
            "size missing in XML (read from image)": 1,
            "XML size differs from image (image used)": 1,
            "box clipped to image": 1,
            "degenerate box dropped": 2,  # a point-like click, and a box entirely right of the image
        }
    )
    assert [Path(r.path).stem for r in dataset.records] == ["good", "nosize", "wrongsize", "outside", "degenerate"]
    assert [r.image_id for r in dataset.records] == [1, 4, 5, 6, 7]  # split-file line numbers
    by_stem = {Path(r.path).stem: r for r in dataset.records}
    assert (by_stem["nosize"].width, by_stem["nosize"].height) == (64, 48)
    np.testing.assert_array_equal(by_stem["outside"].boxes[0], [0, 4, 64, 20])
    assert by_stem["degenerate"].labels.tolist() == [1]
    assert "warnings: " in dataset.summary()


def test_classes_derived_sorted_or_given(tmp_path: Path) -> None:
    root = make_voc(tmp_path, {"a": {"objects": [("zebra", 5, 5, 20, 20)]}, "b": {"objects": [("ant", 5, 5, 20, 20)]}})
    assert read_voc(root, "train").class_names == ["ant", "zebra"]
    given = read_voc(root, "train", class_names=["zebra", "bee", "ant"])
    assert given.class_names == ["zebra", "bee", "ant"]
    assert [r.labels.tolist() for r in given.records] == [[0], [2]]


def test_unknown_class_is_an_error_naming_file_and_class(tmp_path: Path) -> None:
    root = make_voc(tmp_path, {"a": {"objects": [("cat", 5, 5, 20, 20)]}, "b": {"objects": [("unicorn", 5, 5, 20, 20)]}})
    with pytest.raises(DatasetError, match=r"b\.xml.*'unicorn'"):
        read_voc(root, "train", class_names=["cat"])


def test_split_file_errors(tmp_path: Path) -> None:
    root = make_voc(tmp_path, {"a": {"objects": []}})
    (root / "ImageSets" / "Main" / "empty.txt").write_text("\n  \n")
    with pytest.raises(DatasetError, match="empty"):
        read_voc(root, "empty")
    with pytest.raises(DatasetError, match=r"not found \(splits here: \['empty', 'train'\]\)"):
        read_voc(root, "test")
