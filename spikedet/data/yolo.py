"""YOLO / ultralytics layout: reader (``images/{split}`` + ``labels/{split}/*.txt`` + dataset yaml) and exporter.

Label lines are ``cls cx cy w h`` with coordinates normalised to the image size. A label file sits where
the image is, with the last ``images`` folder of its path replaced by ``labels`` (the ultralytics rule).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from ..env import cache_dir
from .image_check import MIN_TRAIN_SIDE
from .records import DatasetError, DetectionDataset, ImageRecord, probe_image, sanitize_boxes

__all__ = ["read_yolo", "export_ultralytics", "find_dataset_yaml", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_YAML_NAMES = ("data.yaml", "dataset.yaml")
_EXPORT_VERSION = 2  # bump when the exported files change, so old cache entries are not reused
log = logging.getLogger(__name__)


def find_dataset_yaml(folder: str | Path) -> Path | None:
    """``data.yaml`` / ``dataset.yaml`` in ``folder``, else its only ``*.yaml``; ``None`` if there is none."""
    folder = Path(folder)
    for name in _YAML_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    return found[0] if len(found) == 1 else None


def _load_yaml(path: Path) -> dict:
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DatasetError(f"{path}: cannot read dataset yaml ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise DatasetError(f"{path}: dataset yaml must be a mapping with path/train/val/names")
    return cfg


def _yaml_names(cfg: dict, path: Path) -> list[str]:
    names = cfg.get("names")
    if isinstance(names, dict):
        if set(names) != set(range(len(names))):
            raise DatasetError(f"{path}: 'names' keys must be 0..{len(names) - 1}, got {list(names)}")
        return [str(names[i]) for i in range(len(names))]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise DatasetError(f"{path}: 'names' (a list or a {{index: name}} mapping) is required")


def _label_path(image: Path) -> Path:
    """The ultralytics rule: swap the last ``images`` folder for ``labels`` and the suffix for ``.txt``."""
    parts = image.parts
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        image = Path(*parts[:i], "labels", *parts[i + 1 :])
    return image.with_suffix(".txt")


def _list_images(entry: Path) -> list[Path]:
    """Images of a split entry: a folder (searched recursively) or a ``.txt`` list of image paths."""
    if entry.is_dir():
        return sorted(p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if entry.suffix != ".txt":
        raise DatasetError(f"{entry}: a split entry must be an image folder or a .txt list of images")
    try:
        text = entry.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{entry}: image list is not UTF-8 text ({err.reason} at byte {err.start})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [entry.parent / line for line in lines]  # relative lines are relative to the list file


def _split_images(cfg: dict, base: Path, split: str, path: Path, warnings: Counter) -> list[Path]:
    entries = cfg.get(split)
    if entries is None:
        if not (base / "images" / split).is_dir():
            splits = [k for k in ("train", "val", "test") if cfg.get(k)]
            raise DatasetError(f"{path}: no split {split!r} (splits: {splits or 'none'})")
        entries = f"images/{split}"
    images = []
    for entry in entries if isinstance(entries, list) else [entries]:
        entry = base / Path(str(entry)).expanduser()
        if not entry.exists():
            if "download" in cfg:
                raise DatasetError(
                    f"{path}: dataset is not present locally ({entry} missing); it must be downloaded first "
                    "(its yaml has a download: key, and spikedet never downloads)"
                )
            raise DatasetError(f"{path}: split {split!r} points to {entry}, which does not exist")
        images += _list_images(entry)
    if not images:
        raise DatasetError(f"{path}: split {split!r} has no images")
    unique: dict[str, Path] = {}
    for image in images:  # the first listing of a file wins
        unique.setdefault(os.path.abspath(image), image)
    if len(unique) < len(images):
        warnings["image listed again (kept once)"] += len(images) - len(unique)
    return list(unique.values())


def _read_labels(file: Path, num_names: int, warnings: Counter) -> tuple[list[int], list[list[float]]]:
    """Class indices and normalised ``cx cy w h`` rows; bad lines are counted and dropped."""
    classes, rows = [], []
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        warnings["label file not UTF-8 text (image kept, no boxes)"] += 1
        return [], []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            values = []
        if len(values) != 5 or not values[0].is_integer():
            warnings["malformed label line dropped"] += 1
        elif not 0 <= values[0] < num_names:
            warnings["label class out of range dropped"] += 1
        else:
            classes.append(int(values[0]))
            rows.append(values[1:])
    return classes, rows


def read_yolo(data: str | Path, split: str, class_names: Sequence[str] | None = None) -> DetectionDataset:
    """Read one split of an ultralytics dataset, given its yaml or the folder holding it.

    Relative ``train``/``val``/``test`` entries resolve against ``path``; a relative ``path`` (or none)
    resolves against the yaml's folder. A folder without a yaml needs ``class_names`` and ``images/{split}``.
    With ``class_names``, labels are remapped by name and a class outside it is an error.
    """
    data = Path(data).expanduser()
    if data.is_dir():
        yaml_path = find_dataset_yaml(data)
        if yaml_path is None and class_names is None:
            raise DatasetError(f"{data}: no data.yaml/dataset.yaml; pass class_names to read its images/labels")
        cfg = {"names": list(class_names)} if yaml_path is None else _load_yaml(yaml_path)
        yaml_path = yaml_path or data / "data.yaml"  # only named in messages when there is no yaml
    elif data.is_file():
        yaml_path, cfg = data, _load_yaml(data)
    else:
        raise DatasetError(f"{data}: no such dataset yaml or folder")
    names = _yaml_names(cfg, yaml_path)
    base = yaml_path.parent / Path(str(cfg.get("path") or ".")).expanduser()
    warnings: Counter = Counter()
    images = _split_images(cfg, base, split, yaml_path, warnings)

    if class_names is None:
        class_names, remap = names, np.arange(len(names))
    else:
        index = {n: i for i, n in enumerate(class_names)}
        remap = np.array([index.get(n, -1) for n in names], dtype=np.int64)
    records = []
    for i, image in enumerate(images):
        size = probe_image(image, warnings)
        if size is None:
            continue
        label_file = _label_path(image)
        if label_file.is_file():
            classes, rows = _read_labels(label_file, len(names), warnings)
        else:
            warnings["label file missing (image kept, no boxes)"] += 1
            classes, rows = [], []
        labels = remap[np.array(classes, dtype=np.int64)]
        if (labels < 0).any():
            bad = names[classes[int(np.argmax(labels < 0))]]
            raise DatasetError(f"{label_file}: class {bad!r} is not in class_names {list(class_names)}")
        cxcywh = np.array(rows, dtype=np.float64).reshape(-1, 4) * np.array(size * 2)
        xyxy = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)
        boxes, keep = sanitize_boxes(xyxy, size[0], size[1], warnings)
        records.append(
            ImageRecord(
                path=str(image),
                width=size[0],
                height=size[1],
                boxes=boxes[keep],
                labels=labels[keep],
                difficult=np.zeros(int(keep.sum()), dtype=bool),
                iscrowd=np.zeros(int(keep.sum()), dtype=bool),
                image_id=i + 1,
            )
        )
    name = base.resolve().name if yaml_path.name in _YAML_NAMES else yaml_path.stem
    return DetectionDataset(name, str(base), split, "yolo", list(class_names), records, warnings=warnings)


def _content_hash(train: DetectionDataset, val: DetectionDataset) -> str:
    """Hash of everything the export depends on, so a changed dataset never reuses a stale export."""
    h = hashlib.sha256(json.dumps([_EXPORT_VERSION, train.class_names]).encode())
    for dataset in (train, val):
        h.update(b"\0split")
        for r in dataset.records:
            stat = os.stat(r.path)  # size and mtime stand in for the pixels of copied (not linked) images
            h.update(f"{os.path.abspath(r.path)}|{stat.st_size}|{stat.st_mtime_ns}|{r.width}|{r.height}".encode())
            for array in (r.boxes, r.labels, r.iscrowd):
                h.update(array.tobytes())
    return h.hexdigest()[:16]


def _unusable_for_ultralytics(record: ImageRecord) -> str | None:
    """Why ultralytics' trainer would skip this image (see its ``verify_image_label``), or None."""
    if Path(record.path).suffix.lower() not in IMAGE_SUFFIXES:
        return f"format {Path(record.path).suffix or '(none)'} ultralytics does not train on"
    if min(record.width, record.height) < MIN_TRAIN_SIDE:
        return f"side under {MIN_TRAIN_SIDE} px (ultralytics skips it)"
    return None


def _write_split(dataset: DetectionDataset, out: Path, split: str) -> dict:
    """Link images and write label files for one split; returns its counts for ``export.json``."""
    image_dir, label_dir = out / "images" / split, out / "labels" / split
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    stems: set[str] = set()
    counts = Counter(images=0)
    for r in dataset.records:
        src = Path(r.path)
        unusable = _unusable_for_ultralytics(r)
        if unusable:  # ultralytics would skip it with a line in its own log: leave it out here, counted
            counts[f"images left out: {unusable}"] += 1
            continue
        counts["images"] += 1
        stem, k = src.stem, 1
        while stem in stems:  # same file name from different folders: keep both
            stem, k = f"{src.stem}_{k}", k + 1
        stems.add(stem)
        dst = image_dir / f"{stem}{src.suffix}"
        try:
            os.symlink(os.path.abspath(src), dst)
        except OSError:  # no symlinks on this filesystem
            shutil.copy2(src, dst)
        lines = []
        for box, label, crowd in zip(r.boxes, r.labels, r.iscrowd):
            if crowd:  # a crowd box is a region, not one object: not a training target
                counts["crowd boxes skipped"] += 1
                continue
            cx, cy = (box[0] + box[2]) / 2 / r.width, (box[1] + box[3]) / 2 / r.height
            w, h = (box[2] - box[0]) / r.width, (box[3] - box[1]) / r.height
            lines.append(f"{label} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        unique = list(dict.fromkeys(lines))
        if len(unique) < len(lines):  # ultralytics removes repeated label rows; say so here
            counts["repeated boxes written once"] += len(lines) - len(unique)
        lines = unique
        counts["boxes"] += len(lines)
        (label_dir / f"{stem}.txt").write_text("".join(lines), encoding="utf-8")
    if not counts["images"]:
        raise DatasetError(f"{dataset.root}: split {dataset.split!r} has no image ultralytics can train on ({dict(counts)})")
    return {"source": f"{dataset.root} ({dataset.layout}, split {dataset.split})", **counts}


def _is_export(out: Path, digest: str | None = None) -> bool:
    try:
        manifest = json.loads((out / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return digest is None or manifest.get("hash") == digest


def export_ultralytics(train: DetectionDataset, val: DetectionDataset, out_dir: str | Path | None = None) -> Path:
    """Write ``train``/``val`` as an ultralytics dataset and return its yaml path.

    Default location: ``cache_dir()/ultralytics_datasets/<name>-<content hash>``, never the source folder.
    Images are symlinked (copied where links fail); labels go to ``labels/{train,val}``; the yaml has an
    absolute ``path`` and no ``download`` key. A second call with the same content reuses the export.
    VOC ``difficult`` boxes are kept as training targets (they are real objects; evaluation ignores them),
    crowd boxes are left out and counted in ``export.json``.
    """
    if train.class_names != val.class_names:
        raise DatasetError(f"train and val class names differ: {train.class_names} vs {val.class_names}")
    digest = _content_hash(train, val)
    out = Path(out_dir) if out_dir is not None else cache_dir() / "ultralytics_datasets" / f"{train.name}-{digest}"
    out = out.expanduser().absolute()
    yaml_path = out / "data.yaml"
    if _is_export(out, digest):
        return yaml_path
    if out.exists() and any(out.iterdir()) and not _is_export(out):
        raise DatasetError(f"{out}: folder exists and is not a spikedet export; refusing to overwrite it")

    # Build beside the target and move it in at the end: an interrupted export never looks complete.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the final folder should read like the rest of the cache
    try:
        splits = {"train": _write_split(train, tmp, "train"), "val": _write_split(val, tmp, "val")}
        cfg = {"path": str(out), "train": "images/train", "val": "images/val", "names": dict(enumerate(train.class_names))}
        (tmp / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        (tmp / "export.json").write_text(json.dumps({"hash": digest, "splits": splits}, indent=1), encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        if out.exists() and not _is_export(out, digest):
            shutil.rmtree(out)  # empty, or a stale export of ours (checked above)
        os.replace(tmp, out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not _is_export(out, digest):
            raise
        # else a concurrent call finished the same export first: use it
    for split, counts in splits.items():
        dropped = {k: v for k, v in counts.items() if k not in ("images", "boxes", "source")}
        if dropped:
            log.warning("%s: %s split: %s", out, split, ", ".join(f"{k} x{v}" for k, v in sorted(dropped.items())))
    return yaml_path
