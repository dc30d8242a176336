"""load_dataset / default_splits / detect_layout dispatch."""
import functools
from pathlib import Path

import pytest
import yaml

from spikedet.data import DatasetError, default_splits, detect_layout, load_dataset
from spikedet.data import loader
from spikedet.data.synthetic import ensure_synthetic


def test_real_datasets_are_detected(shared_datasets: Path) -> None:
    assert detect_layout(shared_datasets / "bccd") == "voc"
    assert detect_layout(str(shared_datasets / "coco-tiny")) == "coco"
    assert default_splits(shared_datasets / "bccd") == ("trainval", "test")
    assert default_splits(shared_datasets / "raccoon") == ("trainval", "test")
    assert default_splits(shared_datasets / "coco-tiny") == ("train2017", "val2017")
    assert len(load_dataset(str(shared_datasets / "raccoon"), "test")) == 40
    assert load_dataset(shared_datasets / "coco-tiny", "val2017").category_ids[-1] == 90


def test_yolo_specs(tmp_path: Path) -> None:
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    assert detect_layout(tmp_path) == "yolo"
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "val": "images/val", "names": ["a"]}))
    assert detect_layout(tmp_path / "data.yaml") == "yolo"
    assert default_splits(tmp_path) == ("train", "val")


def test_synthetic_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    # the real default (800 images at 320 px) takes ~15 s on 2 cores: exercise the same path on a tiny set
    monkeypatch.setattr(loader, "ensure_synthetic", functools.partial(ensure_synthetic, num_images=10, image_size=64))
    dataset = load_dataset("synthetic", "val")
    assert (dataset.name, len(dataset), dataset.num_classes) == ("synthetic", 2, 6)
    assert Path(dataset.root) == loader.synthetic_root()
    assert default_splits("synthetic") == ("train", "val")


def test_unknown_and_missing_specs(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset not found"):
        load_dataset(tmp_path / "nope", "train")
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(DatasetError, match="unknown dataset layout; supported: .*VOC.*COCO.*YOLO"):
        load_dataset(tmp_path, "train")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    with pytest.raises(DatasetError, match="none of the split pairs"):
        default_splits(tmp_path)
