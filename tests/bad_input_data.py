"""Tiny datasets and images for the bad-input suite: a valid VOC, COCO and YOLO folder of two 64-px images
each, and the damaged files the cases put into them."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# Two valid images of every tiny dataset: name -> (width, height, [(class, x1, y1, x2, y2)]) in pixels, xyxy.
GOOD = {
    "a": (64, 48, [("cat", 4.0, 4.0, 30.0, 40.0)]),
    "b": (48, 64, [("dog", 10.0, 12.0, 40.0, 60.0), ("cat", 0.0, 0.0, 20.0, 20.0)]),
}
CLASSES = ["cat", "dog"]


def write_image(path: Path, width: int = 64, height: int = 48, seed: int = 0) -> Path:
    """A noisy colour image (JPEG or PNG by suffix), so that truncation cuts real data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if not cv2.imwrite(str(path), pixels):
        raise OSError(f"cannot write {path}")
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to its first ``keep`` fraction, as an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_exif_rotated(path: Path, width: int, height: int, orientation: int) -> Path:
    """A JPEG stored ``width × height`` whose EXIF says to rotate it for display (6 and 8: by 90 degrees)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8))
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif)
    return path


def write_png_bomb(path: Path, side: int = 30000) -> Path:
    """A few-hundred-byte PNG whose header declares ``side × side`` pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def voc_xml(stem: str, width: int | None, height: int | None, objects: list, filename: str | None = None) -> str:
    """A VOC annotation; ``objects`` are ``(name, x1, y1, x2, y2)`` in 0-based xyxy (written 1-based) or raw
    XML snippets."""
    size = "" if width is None else f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
    parts = []
    for obj in objects:
        if isinstance(obj, str):
            parts.append(obj)
            continue
        name, x1, y1, x2, y2 = obj
        parts.append(
            f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1 + 1:g}</xmin><ymin>{y1 + 1:g}</ymin>"
            f"<xmax>{x2:g}</xmax><ymax>{y2:g}</ymax></bndbox></object>"
        )
    return f"<annotation><filename>{filename or stem + '.jpg'}</filename>{size}{''.join(parts)}</annotation>"


def make_voc(root: Path) -> Path:
    """A VOC folder with the ``GOOD`` images listed in ``ImageSets/Main/val.txt``."""
    for stem, (w, h, objects) in GOOD.items():
        write_image(root / "JPEGImages" / f"{stem}.jpg", w, h, seed=len(stem) + w)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(stem, w, h, objects))
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main" / "val.txt").write_text("".join(f"{s}\n" for s in GOOD))
    return root


def add_voc_image(root: Path, stem: str, xml: str | None, image: str = "jpg", width: int = 64, height: int = 48) -> Path:
    """One more image ``stem`` listed in the split, with ``xml`` (None: no annotation file); returns the image."""
    path = write_image(root / "JPEGImages" / f"{stem}.{image}", width, height, seed=7)
    if xml is not None:
        (root / "Annotations" / f"{stem}.xml").write_text(xml)
    with (root / "ImageSets" / "Main" / "val.txt").open("a") as f:
        f.write(f"{stem}\n")
    return path


def coco_images() -> list[dict]:
    return [{"id": i + 1, "file_name": f"{stem}.jpg", "width": w, "height": h} for i, (stem, (w, h, _)) in enumerate(GOOD.items())]


def coco_annotations() -> list[dict]:
    anns = []
    for i, (_, (_, _, objects)) in enumerate(GOOD.items()):
        for name, x1, y1, x2, y2 in objects:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": CLASSES.index(name) + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    return anns


def make_coco(root: Path) -> dict:
    """A COCO folder (``annotations/instances_val.json`` + ``val/``); returns its json for cases to change."""
    for stem, (w, h, _) in GOOD.items():
        write_image(root / "val" / f"{stem}.jpg", w, h, seed=len(stem) + w)
    data = {"images": coco_images(), "annotations": coco_annotations(),
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]}
    write_coco_json(root, data)
    return data


def write_coco_json(root: Path, data: object) -> Path:
    path = root / "annotations" / "instances_val.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def yolo_line(name: str, x1: float, y1: float, x2: float, y2: float, w: int, h: int) -> str:
    return f"{CLASSES.index(name)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n"


def make_yolo(root: Path) -> Path:
    """An ultralytics folder: ``data.yaml`` + ``images/val`` + ``labels/val``."""
    for stem, (w, h, objects) in GOOD.items():
        write_image(root / "images" / "val" / f"{stem}.jpg", w, h, seed=len(stem) + w)
        (root / "labels" / "val").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "val" / f"{stem}.txt").write_text("".join(yolo_line(*o, w, h) for o in objects))
    (root / "data.yaml").write_text("path: .\ntrain: images/val\nval: images/val\nnames:\n  0: cat\n  1: dog\n")
    return root
