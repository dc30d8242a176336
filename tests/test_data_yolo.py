"""YOLO / ultralytics layout: reader fixtures and export_ultralytics on real data."""
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from spikedet.data import DatasetError, export_ultralytics, read_coco, read_voc, read_yolo
from spikedet.env import cache_dir


def make_yolo(root: Path, labels: dict[str, str | None], split: str = "train", cfg: dict | None = None) -> Path:
    """``images/{split}`` (100x50 images) and ``labels/{split}``; a ``None`` label means no label file."""
    (root / "images" / split).mkdir(parents=True)
    (root / "labels" / split).mkdir(parents=True)
    for stem, text in labels.items():
        Image.new("RGB", (100, 50)).save(root / "images" / split / f"{stem}.png")
        if text is not None:
            (root / "labels" / split / f"{stem}.txt").write_text(text)
    if cfg is not None:
        (root / "data.yaml").write_text(yaml.safe_dump(cfg))
    return root


def test_labels_are_read_and_bad_lines_counted(tmp_path: Path) -> None:
    labels = {
        "a": "0 0.5 0.5 0.2 0.4\n1 0.95 0.5 0.2 0.2\n",  # the second box crosses the right border
        "b": "0 0.5 0.5 0.2\nx 0.5 0.5 0.2 0.2\n1.5 0.5 0.5 0.2 0.2\n\n1 0.5 0.5 0.2 0.2\n",  # 3 malformed lines
        "c": "7 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.0 0.2\n",  # class out of range, degenerate box
        "d": None,
    }
    root = make_yolo(tmp_path, labels, cfg={"path": ".", "train": "images/train", "names": {0: "cat", 1: "dog"}})
    (root / "images" / "train" / "e.png").write_bytes(b"not an image")
    dataset = read_yolo(root, "train")
    assert dataset.warnings == Counter(
        {
            "box clipped to image": 1,
            "malformed label line dropped": 3,
            "label class out of range dropped": 1,
            "degenerate box dropped": 1,
            "label file missing (image kept, no boxes)": 1,
            "image unreadable (skipped)": 1,
        }
    )
    assert dataset.class_names == ["cat", "dog"] and dataset.layout == "yolo"
    a, b, c, d = dataset.records
    np.testing.assert_allclose(a.boxes, [[40, 15, 60, 35], [85, 20, 100, 30]], atol=1e-4)
    assert a.labels.tolist() == [0, 1] and b.labels.tolist() == [1]
    assert len(c.labels) == len(d.labels) == 0 and (a.width, a.height) == (100, 50)


def test_yaml_path_resolution_and_name_remapping(tmp_path: Path) -> None:
    make_yolo(tmp_path / "data", {"a": "1 0.5 0.5 0.2 0.4\n"}, split="val")
    cfg = {"path": "data", "train": "images/val", "val": "images/val", "names": ["cat", "dog"]}
    (tmp_path / "shapes.yaml").write_text(yaml.safe_dump(cfg))
    dataset = read_yolo(tmp_path / "shapes.yaml", "val")
    assert (dataset.name, Path(dataset.records[0].path).parent) == ("shapes", tmp_path / "data" / "images" / "val")
    remapped = read_yolo(tmp_path / "shapes.yaml", "val", class_names=["bird", "dog", "cat"])
    assert remapped.records[0].labels.tolist() == [1]
    with pytest.raises(DatasetError, match=r"'dog' is not in class_names"):
        read_yolo(tmp_path / "shapes.yaml", "val", class_names=["cat"])
    with pytest.raises(DatasetError, match=r"no split 'test'"):
        read_yolo(tmp_path / "shapes.yaml", "test")


def test_folder_without_yaml_needs_class_names(tmp_path: Path) -> None:
    make_yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.4\n"})
    with pytest.raises(DatasetError, match="pass class_names"):
        read_yolo(tmp_path, "train")
    assert len(read_yolo(tmp_path, "train", class_names=["cat"]).records[0].labels) == 1


def test_download_key_without_images_is_a_clear_error(tmp_path: Path) -> None:
    cfg = {"path": "../datasets/coco8", "train": "images/train", "val": "images/val", "names": {0: "person"}}
    cfg["download"] = "https://example.com/coco8.zip"
    (tmp_path / "coco8.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(DatasetError, match="not present locally.*downloaded first"):
        read_yolo(tmp_path / "coco8.yaml", "train")


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_export_bccd_round_trips_and_leaves_the_source_alone(shared_datasets: Path) -> None:
    root = shared_datasets / "bccd"
    before = _tree(root)
    train, val = read_voc(root, "train"), read_voc(root, "val")
    yaml_path = export_ultralytics(train, val)

    assert yaml_path.is_absolute() and yaml_path.is_relative_to(cache_dir() / "ultralytics_datasets")
    cfg = yaml.safe_load(yaml_path.read_text())
    names = {0: "Platelets", 1: "RBC", 2: "WBC"}
    assert cfg == {"path": str(yaml_path.parent), "train": "images/train", "val": "images/val", "names": names}
    for split, dataset in (("train", train), ("val", val)):
        label_files = sorted((yaml_path.parent / "labels" / split).glob("*.txt"))
        assert len(label_files) == len(dataset) == len(list((yaml_path.parent / "images" / split).iterdir()))
        assert sum(len(f.read_text().splitlines()) for f in label_files) == sum(len(r.labels) for r in dataset.records)
        back = read_yolo(yaml_path, split)
        assert dict(back.warnings) == {}
        for a, b in zip(dataset.records, back.records):
            np.testing.assert_array_equal(a.labels, b.labels)
            np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)

    stamp = (yaml_path.parent / "export.json").stat().st_mtime_ns
    assert export_ultralytics(train, val) == yaml_path  # reused, not rewritten
    assert (yaml_path.parent / "export.json").stat().st_mtime_ns == stamp
    val.records = val.records[:-1]  # changed content: a new export
    assert export_ultralytics(train, val) != yaml_path
    assert _tree(root) == before


def test_export_skips_crowd_boxes_and_counts_them(shared_datasets: Path, tmp_path: Path) -> None:
    train, val = (read_coco(shared_datasets / "coco-tiny", s) for s in ("train2017", "val2017"))
    yaml_path = export_ultralytics(train, val, out_dir=tmp_path / "export")
    report = json.loads((yaml_path.parent / "export.json").read_text())["splits"]
    assert (report["train"]["crowd boxes skipped"], report["val"]["crowd boxes skipped"]) == (6, 11)
    assert (report["train"]["boxes"], report["val"]["boxes"]) == (705 - 6, 815 - 11)
    assert os.path.islink(next((yaml_path.parent / "images" / "val").iterdir()))


def test_export_refuses_a_foreign_folder(tmp_path: Path) -> None:
    make_yolo(tmp_path / "src", {"a": "0 0.5 0.5 0.2 0.4\n"})
    dataset = read_yolo(tmp_path / "src", "train", class_names=["cat"])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not a spikedet export"):
        export_ultralytics(dataset, dataset, out_dir=tmp_path / "mine")


def test_split_given_as_an_image_list(tmp_path: Path) -> None:
    make_yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.4\n"})
    (tmp_path / "train.txt").write_text("./images/train/a.png\nimages/train/gone.png\n")
    (tmp_path / "list.yaml").write_text(yaml.safe_dump({"train": "train.txt", "names": ["cat"]}))
    dataset = read_yolo(tmp_path / "list.yaml", "train")
    assert len(dataset) == 1 and dataset.warnings == Counter({"image missing (skipped)": 1})
