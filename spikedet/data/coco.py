"""MS-COCO reader and ground-truth writer: ``annotations/instances_{split}.json`` + ``{split}/`` images.

Labels are contiguous class indices; ``DetectionDataset.category_ids`` maps them back to the real,
possibly non-contiguous COCO category ids (sorted by id), which is what results json must use.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from .records import DatasetError, DetectionDataset, ImageRecord, probe_image, sanitize_boxes

__all__ = ["read_coco", "write_coco_json", "find_coco_image_dir"]


def find_coco_image_dir(root: str | Path, split: str) -> Path:
    """``{root}/{split}`` or ``{root}/images/{split}``, whichever exists."""
    root = Path(root)
    for folder in (root / split, root / "images" / split):
        if folder.is_dir():
            return folder
    raise DatasetError(f"{root}: no image folder for split {split!r} (looked for {split}/ and images/{split}/)")


def _load_json(path: Path) -> dict:
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("instances_*.json")) if path.parent.is_dir() else []
        raise DatasetError(f"{path}: annotation file not found (found: {found or 'none'})")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark is not an error
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= data.keys():
        raise DatasetError(f"{path}: not a COCO detection file (needs images, annotations, categories)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise DatasetError(f"{path}: {key!r} must be a list, got {type(data[key]).__name__}")
    for key, fields in (("images", {"id", "file_name"}), ("categories", {"id", "name"})):
        if any(not isinstance(item, dict) or not fields <= item.keys() for item in data[key]):
            raise DatasetError(f"{path}: every entry of {key!r} needs {sorted(fields)}")
        bad = next((item for item in data[key] if not _is_int(item["id"])), None)
        if bad is not None:
            raise DatasetError(f"{path}: {key!r} entry with id {bad['id']!r}: ids must be integers")
    ids = [c["id"] for c in data["categories"]]
    if len(set(ids)) < len(ids):
        raise DatasetError(f"{path}: category ids repeat ({sorted(i for i in set(ids) if ids.count(i) > 1)})")
    bad = next((item for item in data["images"] if not isinstance(item["file_name"], str) or not item["file_name"]), None)
    if bad is not None:
        raise DatasetError(f"{path}: image {bad['id']} has file_name {bad['file_name']!r}, not a file name")
    return data


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _xyxy(bbox: object) -> list[float] | None:
    """COCO ``[x, y, w, h]`` as ``[x1, y1, x2, y2]``; ``None`` when it is not four numbers."""
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
        return None
    x, y, w, h = (float(v) for v in bbox)
    return [x, y, x + w, y + h]


def _class_map(path: Path, categories: list[dict], class_names: Sequence[str] | None) -> tuple[list[str], list[int]]:
    """Class names and their COCO ids, in label order."""
    categories = sorted(categories, key=lambda c: c["id"])
    if class_names is None:
        return [c["name"] for c in categories], [c["id"] for c in categories]
    by_name = {c["name"]: c["id"] for c in categories}
    missing = [n for n in class_names if n not in by_name]
    if missing:
        raise DatasetError(f"{path}: class {missing[0]!r} from class_names is not a category of this file")
    return list(class_names), [by_name[n] for n in class_names]


def read_coco(root: str | Path, split: str, class_names: Sequence[str] | None = None) -> DetectionDataset:
    """Read one split of a COCO folder; ``image_id`` is the real COCO image id.

    ``class_names=None`` keeps every category of the file; with a list, labels follow that order and an
    annotation of another category is an error. Images without annotations are kept with empty arrays.
    """
    root = Path(root)
    path = root / "annotations" / f"instances_{split}.json"
    data = _load_json(path)
    image_dir = find_coco_image_dir(root, split)
    class_names, category_ids = _class_map(path, data["categories"], class_names)
    label_of = {cid: i for i, cid in enumerate(category_ids)}
    known = {c["id"] for c in data["categories"]}
    warnings: Counter = Counter()

    by_image: dict[int, list[dict]] = defaultdict(list)
    for ann in data["annotations"]:
        if isinstance(ann, dict) and _is_int(ann.get("image_id")):
            by_image[ann["image_id"]].append(ann)
        else:
            warnings["malformed annotation dropped"] += 1
    image_ids = {img["id"] for img in data["images"]}
    orphans = sum(len(v) for k, v in by_image.items() if k not in image_ids)
    if orphans:
        warnings["annotation of unknown image dropped"] += orphans

    records, seen = [], set()
    for img in sorted(data["images"], key=lambda im: im["id"]):
        if img["id"] in seen:  # its annotations are read once, with the first entry
            warnings["image id listed again (kept once)"] += 1
            continue
        seen.add(img["id"])
        file = image_dir / img["file_name"]
        size = probe_image(file, warnings)
        if size is None:
            continue
        if size != (img.get("width"), img.get("height")):
            warnings["json size differs from image (image used)"] += 1

        boxes, labels, crowd, difficult = [], [], [], []
        for ann in by_image.get(img["id"], []):
            cid, box = ann.get("category_id"), _xyxy(ann.get("bbox"))
            if not _is_int(cid) or cid not in known or box is None:
                warnings["malformed annotation dropped"] += 1
                continue
            if cid not in label_of:
                raise DatasetError(f"{path}: annotation {ann.get('id')} has category {cid}, not in class_names")
            boxes.append(box)
            labels.append(label_of[cid])
            # write_coco_json stores VOC "difficult" as a crowd box tagged difficult: undo that here.
            difficult.append(bool(ann.get("difficult", 0)))
            crowd.append(bool(ann.get("iscrowd", 0)) and not difficult[-1])
        clipped, keep = sanitize_boxes(np.array(boxes), size[0], size[1], warnings)
        records.append(
            ImageRecord(
                path=str(file),
                width=size[0],
                height=size[1],
                boxes=clipped[keep],
                labels=np.array(labels, dtype=np.int64)[keep],
                difficult=np.array(difficult, dtype=bool)[keep],
                iscrowd=np.array(crowd, dtype=bool)[keep],
                image_id=int(img["id"]),
            )
        )
    return DetectionDataset(root.name, str(root), split, "coco", class_names, records, category_ids, warnings)


def write_coco_json(dataset: DetectionDataset, path: str | Path) -> Path:
    """Write ``dataset`` as COCO ground truth (deterministic bytes: sorted keys, sequential annotation ids).

    ``file_name`` is the image's base name. ``area`` is the box area ``w * h`` (we have no masks).
    VOC ``difficult`` objects are written as ``iscrowd: 1`` plus ``difficult: 1``: COCOeval then neither
    rewards nor penalises detections on them, the role "difficult" has in VOC evaluation (crowd matching uses
    intersection over the detection's area instead of IoU, a slightly more lenient rule). ``read_coco`` reads
    them back as difficult, not crowd.
    """
    ids = [r.image_id for r in dataset.records]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{dataset.name}/{dataset.split}: duplicate image ids, cannot write COCO json")
    images, annotations = [], []
    for r in dataset.records:
        images.append({"id": r.image_id, "file_name": Path(r.path).name, "width": r.width, "height": r.height})
        for box, label, difficult, crowd in zip(r.boxes.tolist(), r.labels.tolist(), r.difficult, r.iscrowd):
            # 4 decimals: far below a pixel, and float32 boxes read back bit-identical.
            x, y, w, h = (round(v, 4) for v in (box[0], box[1], box[2] - box[0], box[3] - box[1]))
            ann = {
                "id": len(annotations) + 1,
                "image_id": r.image_id,
                "category_id": dataset.category_ids[label],
                "bbox": [x, y, w, h],
                "area": round(w * h, 4),
                "iscrowd": int(crowd or difficult),
            }
            if difficult:
                ann["difficult"] = 1
            annotations.append(ann)
    categories = [{"id": cid, "name": name} for cid, name in zip(dataset.category_ids, dataset.class_names)]
    data = {
        "info": {"description": f"{dataset.name}/{dataset.split} written by spikedet"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    return path
