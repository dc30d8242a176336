"""PASCAL VOC reader: ``Annotations/*.xml``, ``JPEGImages/*``, ``ImageSets/Main/{split}.txt``.

VOC boxes are 1-based, inclusive pixel indices: ``xmin = 1`` is the first column and ``xmax = W`` the last.
We convert them as the VOC evaluation tools do, to ``(xmin - 1, ymin - 1, xmax, ymax)``: 0-based ``xyxy`` in
continuous coordinates where pixel ``i`` spans ``[i, i + 1)``. A full-image box becomes ``(0, 0, W, H)`` and
boxes keep their VOC width ``xmax - xmin + 1``. A box whose two corners coincide on an axis (a click, not a
drag) is therefore one pixel wide and is dropped as degenerate (see ``records.MIN_BOX_SIDE``).

The image file is the truth for the image size: the XML ``<size>`` is only cross-checked.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .records import DatasetError, DetectionDataset, ImageRecord, probe_image, sanitize_boxes

__all__ = ["read_voc", "read_split_ids"]


@dataclass
class _Parsed:
    """One annotation file, before class names become labels."""

    xml: Path
    image: Path
    image_id: int
    width: int
    height: int
    names: list[str]
    boxes: np.ndarray
    difficult: np.ndarray


def read_split_ids(root: str | Path, split: str, *, warnings: Counter | None = None) -> list[str]:
    """Image ids listed in ``ImageSets/Main/{split}.txt`` (first token of each non-blank line), each once.

    A UTF-8 byte-order mark (Windows editors write one) is not part of the first id; an id listed again is
    kept once and counted in ``warnings`` (evaluating an image twice would weigh it double)."""
    path = Path(root) / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        found = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        raise DatasetError(f"{path}: split file not found (splits here: {found or 'none'})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: split file is not UTF-8 text ({err.reason} at byte {err.start})") from None
    listed = [line.split()[0] for line in text.splitlines() if line.strip()]
    if not listed:
        raise DatasetError(f"{path}: split file is empty")
    ids = list(dict.fromkeys(listed))
    if len(ids) < len(listed) and warnings is not None:
        warnings["id listed again in split file (kept once)"] += len(listed) - len(ids)
    return ids


def _find_image(root: Path, stem: str, filename: str | None) -> Path | None:
    for name in (f"{stem}.jpg", filename):
        if name and (root / "JPEGImages" / name).is_file():
            return root / "JPEGImages" / name
    return None


def _xml_size(tree: ET.Element) -> tuple[int, int] | None:
    try:
        size = int(float(tree.findtext("size/width"))), int(float(tree.findtext("size/height")))
    except (TypeError, ValueError):  # missing tag or text
        return None
    return size if min(size) > 0 else None


def _parse(root: Path, stem: str, image_id: int, warnings: Counter) -> _Parsed | None:
    """Parse one image's annotation; ``None`` (and a counted warning) when the image cannot be used."""
    xml = root / "Annotations" / f"{stem}.xml"
    if not xml.is_file():
        warnings["annotation missing (image skipped)"] += 1
        return None
    try:
        tree = ET.parse(xml).getroot()
    except (ET.ParseError, UnicodeDecodeError):
        warnings["annotation unreadable (image skipped)"] += 1
        return None
    image = _find_image(root, stem, tree.findtext("filename"))
    size = probe_image(image, warnings)
    if size is None:
        return None
    declared = _xml_size(tree)
    if declared is None:
        warnings["size missing in XML (read from image)"] += 1
    elif declared != size:
        warnings["XML size differs from image (image used)"] += 1

    names, boxes, difficult = [], [], []
    for obj in tree.iter("object"):
        name = (obj.findtext("name") or "").strip()
        try:
            box = [float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):  # missing bndbox or non-numeric text
            box = None
        if not name or box is None:
            warnings["malformed object dropped"] += 1
            continue
        names.append(name)
        boxes.append([box[0] - 1, box[1] - 1, box[2], box[3]])
        difficult.append((obj.findtext("difficult") or "0").strip() not in ("0", ""))
    return _Parsed(xml, image, image_id, size[0], size[1], names, np.array(boxes).reshape(-1, 4), np.array(difficult))


def read_voc(root: str | Path, split: str, class_names: Sequence[str] | None = None) -> DetectionDataset:
    """Read one split of a PASCAL VOC folder.

    ``class_names=None`` uses the sorted set of names found in the split; with a list, a name outside it is
    an error. ``image_id`` is the 1-based position of the id in the split file (each id once), so it does not depend on which
    images had to be skipped. Unusable images are skipped and counted in ``warnings``.
    """
    root = Path(root)
    warnings: Counter = Counter()
    ids = read_split_ids(root, split, warnings=warnings)
    parsed = [p for i, stem in enumerate(ids) if (p := _parse(root, stem, i + 1, warnings)) is not None]

    if class_names is None:
        class_names = sorted({name for p in parsed for name in p.names})
    index = {name: i for i, name in enumerate(class_names)}
    records = []
    for p in parsed:
        unknown = [n for n in p.names if n not in index]
        if unknown:
            raise DatasetError(f"{p.xml}: class {unknown[0]!r} is not in class_names {list(class_names)}")
        boxes, keep = sanitize_boxes(p.boxes, p.width, p.height, warnings)
        labels = np.array([index[n] for n in p.names], dtype=np.int64)
        records.append(
            ImageRecord(
                path=str(p.image),
                width=p.width,
                height=p.height,
                boxes=boxes[keep],
                labels=labels[keep],
                difficult=p.difficult[keep],
                iscrowd=np.zeros(int(keep.sum()), dtype=bool),
                image_id=p.image_id,
            )
        )
    return DetectionDataset(root.name, str(root), split, "voc", list(class_names), records, warnings=warnings)
