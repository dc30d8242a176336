"""One entry point for every dataset spec: ``"synthetic"``, a VOC / COCO / YOLO folder, or a YOLO yaml."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from ..env import cache_dir
from .coco import read_coco
from .records import DatasetError, DetectionDataset
from .synthetic import ensure_synthetic
from .voc import read_voc
from .yolo import find_dataset_yaml, read_yolo

__all__ = ["load_dataset", "default_splits", "detect_layout", "synthetic_root", "SUPPORTED_LAYOUTS"]

SUPPORTED_LAYOUTS = (
    '"synthetic" (generated on first use)',
    "VOC folder (Annotations/ + ImageSets/Main/)",
    "COCO folder (annotations/instances_<split>.json)",
    "YOLO folder (data.yaml, or images/ + labels/) or an ultralytics dataset yaml",
)
# Where each layout keeps a split's file, and the (train, eval) pairs to look for, preferred first.
_SPLIT_FILES = {
    "voc": ("ImageSets/Main/{}.txt", [("trainval", "test"), ("train", "val")]),
    "coco": ("annotations/instances_{}.json", [("train2017", "val2017"), ("train", "val")]),
}
log = logging.getLogger(__name__)


def synthetic_root() -> Path:
    """Where the embedded default synthetic set lives (generated there with the default parameters)."""
    return cache_dir() / "synthetic" / "default"


def detect_layout(spec: str | Path) -> str:
    """``"synthetic"``, ``"voc"``, ``"coco"`` or ``"yolo"`` for a spec; ``DatasetError`` if it is none of them."""
    if str(spec) == "synthetic":
        return "synthetic"
    path = Path(spec).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: dataset not found")
    if path.is_file():
        if path.suffix in (".yaml", ".yml"):
            return "yolo"
    elif (path / "Annotations").is_dir() and (path / "ImageSets").is_dir():
        return "voc"
    elif any((path / "annotations").glob("instances_*.json")):
        return "coco"
    elif find_dataset_yaml(path) or ((path / "images").is_dir() and (path / "labels").is_dir()):
        return "yolo"
    raise DatasetError(f"{path}: unknown dataset layout; supported: " + "; ".join(SUPPORTED_LAYOUTS))


def load_dataset(spec: str | Path, split: str, class_names: Sequence[str] | None = None) -> DetectionDataset:
    """Read ``split`` of the dataset ``spec`` (see ``SUPPORTED_LAYOUTS``), logging its warnings if any."""
    layout = detect_layout(spec)
    if layout == "synthetic":
        dataset = read_coco(ensure_synthetic(synthetic_root()), split, class_names)
        dataset.name = "synthetic"  # not the cache folder's name
    else:
        reader = {"voc": read_voc, "coco": read_coco, "yolo": read_yolo}[layout]
        dataset = reader(Path(spec).expanduser(), split, class_names)
    if not dataset.records:  # every image skipped: say why, rather than fail later inside an evaluator
        problems = ", ".join(f"{k} x{v}" for k, v in sorted(dataset.warnings.items())) or "none listed"
        raise DatasetError(f"{spec}: split {split!r} has no usable images (problems: {problems})")
    if dataset.warnings:
        log.warning(dataset.summary())
    return dataset


def default_splits(spec: str | Path) -> tuple[str, str]:
    """``(train_split, eval_split)`` for a spec: the conventional pair its files provide."""
    layout = detect_layout(spec)
    if layout in ("synthetic", "yolo"):
        return "train", "val"
    pattern, candidates = _SPLIT_FILES[layout]
    path = Path(spec).expanduser()
    for pair in candidates:
        if all((path / pattern.format(s)).is_file() for s in pair):
            return pair
    raise DatasetError(f"{path}: none of the split pairs {candidates} is present")
