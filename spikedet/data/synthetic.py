"""Seeded synthetic detection data: coloured shapes on cluttered backgrounds, written as COCO and/or VOC.

Six shape classes with solid, striped or checkered fills, at 4-45 % of the image side (log-uniform, so
small objects are common), stretched and rotated, partly outside the image or under other shapes, on
gradient + cloud-noise backgrounds with distractor lines, arcs and blobs, then sensor noise, blur and
colour jitter. Hard enough that a small detector stays well below mAP50-95 = 1.

Every box is the tight box of what is visible, computed from the shape's polygon clipped to the image.
Occlusion is allowed only while it leaves an earlier shape's extreme pixels (hence its box) visible and at
least half of it uncovered, so geometric and visible boxes agree.

Image ``i`` is drawn from its own generator seeded with ``(seed, i)``: the output is identical for any
number of worker processes, and the annotation json is byte-identical across runs.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .coco import write_coco_json
from .records import DatasetError, DetectionDataset, ImageRecord

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_NUM_IMAGES",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_SEED",
    "DEFAULT_VAL_FRACTION",
    "GENERATOR_VERSION",
    "render_image",
    "generate_synthetic",
    "ensure_synthetic",
]

CLASS_NAMES = ("circle", "square", "triangle", "star", "ring", "cross")
DEFAULT_NUM_IMAGES = 800
DEFAULT_IMAGE_SIZE = 320
DEFAULT_SEED = 0
DEFAULT_VAL_FRACTION = 0.2
GENERATOR_VERSION = 2  # bump on any change to the drawing: cached copies are then regenerated
LAYOUTS = ("coco", "voc", "both")

_SCALE_RANGE = (0.04, 0.45)  # object size as a fraction of the image side
_MIN_BOX_SIDE = 2.0  # px; keeps every box clear of the readers' degenerate-box rule
_MIN_VISIBLE = 0.5  # fraction of a shape that must stay visible (inside the image, not occluded)
_MIN_CONTRAST = 60.0  # colour distance from the local background, so every object is findable
_JPEG_QUALITY = 95
_SUPERSAMPLE = 4  # object masks are drawn at 4x and averaged down: exact-enough pixel coverage
_OUR_FOLDERS = ("annotations", "train", "val", "Annotations", "JPEGImages", "ImageSets")


# --- geometry ---------------------------------------------------------------------------------------------


def _unit_shape(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Outer polygon (and hole) of a shape inscribed in the unit circle."""
    if name in ("circle", "ring"):
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        outer = np.stack([np.cos(t), np.sin(t)], axis=1)
        return outer, outer * rng.uniform(0.45, 0.7) if name == "ring" else None
    if name == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) / np.sqrt(2), None
    if name == "triangle":
        t = np.deg2rad([-90, 30, 150])
        return np.stack([np.cos(t), np.sin(t)], axis=1), None
    if name == "star":
        t = np.deg2rad(np.arange(10) * 36 - 90)
        r = np.where(np.arange(10) % 2 == 0, 1.0, rng.uniform(0.38, 0.55))
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1), None
    a = rng.uniform(0.2, 0.35)  # cross: half the arm thickness
    corners = [[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1], [-a, a], [-1, a], [-1, -a], [-a, -a]]
    return np.array(corners), None


def _place(points: np.ndarray, center: np.ndarray, radius: float, aspect: float, angle: float) -> np.ndarray:
    """Stretch by ``aspect``, rotate by ``angle`` and move to ``center`` (image coordinates)."""
    c, s = np.cos(angle), np.sin(angle)
    stretched = points * radius * np.array([np.sqrt(aspect), 1 / np.sqrt(aspect)])
    return stretched @ np.array([[c, s], [-s, c]]) + center


def _clip_polygon(points: np.ndarray, size: int) -> np.ndarray:
    """The part of a polygon inside ``[0, size]^2`` (Sutherland-Hodgman; fine for our non-convex shapes)."""
    for axis, limit, sign in ((0, 0.0, 1), (0, size, -1), (1, 0.0, 1), (1, size, -1)):
        if len(points) == 0:
            break
        inside = sign * (points[:, axis] - limit) >= 0
        if inside.all():
            continue
        clipped = []
        for i in range(len(points)):
            p, q = points[i - 1], points[i]
            if inside[i - 1] != inside[i]:
                clipped.append(p + (limit - p[axis]) / (q[axis] - p[axis]) * (q - p))
            if inside[i]:
                clipped.append(q)
        points = np.array(clipped).reshape(-1, 2)
    return points


def _to_cv(points: np.ndarray) -> np.ndarray:
    """Continuous coordinates (pixel i spans [i, i+1)) to OpenCV's 4-bit fixed point on pixel centres."""
    return np.round((points - 0.5) * 16).astype(np.int32)


# --- drawing ----------------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Gradient + low-frequency noise + distractor lines, arcs and blobs that are not objects."""
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        t = (xx * np.float32(np.cos(angle)) + yy * np.float32(np.sin(angle)) + 1.5) / 3
    else:
        cx, cy = rng.uniform(0, 1, 2).astype(np.float32)
        t = np.minimum(np.hypot(xx - cx, yy - cy) / 1.2, 1)
    img = c0 + (c1 - c0) * t[..., None]
    cells = int(rng.integers(3, 9))
    clouds = cv2.resize(rng.normal(0, 1, (cells, cells, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img + clouds * np.float32(rng.uniform(5, 35)), 0, 255).astype(np.uint8)

    for _ in range(int(rng.integers(2, 12))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        kind = rng.integers(3)
        if kind == 0:
            p, q = rng.uniform(-0.2, 1.2, (2, 2)) * size
            cv2.line(img, tuple(_to_cv(p)), tuple(_to_cv(q)), colour, int(rng.integers(1, 4)), cv2.LINE_AA, shift=4)
        elif kind == 1:  # partial ellipse arcs: the hard negatives for rings and circles
            center = tuple(int(v) for v in rng.uniform(0, size, 2))
            axes = tuple(int(v) for v in rng.uniform(0.03, 0.3, 2) * size)
            start = float(rng.uniform(0, 360))
            end = start + rng.uniform(60, 220)
            cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), start, end, colour, int(rng.integers(1, 3)), cv2.LINE_AA)
        else:  # translucent blob with blurred edges: shape-like, but never a crisp-edged object
            t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
            wobble = sum(rng.uniform(0.1, 0.25) * np.sin(k * t + rng.uniform(0, 6)) for k in (2, 3, 5))
            r = rng.uniform(0.03, 0.15) * size * (1 + wobble)
            points = np.stack([r * np.cos(t), r * np.sin(t)], axis=1) + rng.uniform(0, size, 2)
            alpha = np.zeros((size, size), np.float32)
            cv2.fillPoly(alpha, [_to_cv(points)], rng.uniform(0.2, 0.5), cv2.LINE_AA, shift=4)
            alpha = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(1.5, 4.0))[..., None]
            img = (img * (1 - alpha) + np.array(colour, np.float32) * alpha).astype(np.uint8)
    return img


def _texture(rng: np.random.Generator, shape: tuple[int, int], colour: np.ndarray) -> np.ndarray:
    """Solid, striped or checkered fill of ``shape`` (h, w), colour first."""
    h, w = shape
    second = np.clip(colour + rng.choice([-1, 1], 3) * rng.uniform(40, 110, 3), 0, 255)
    kind = rng.integers(3)
    if kind == 0:
        return np.broadcast_to(colour, (h, w, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    u, v = xx * np.cos(angle) + yy * np.sin(angle), -xx * np.sin(angle) + yy * np.cos(angle)
    period = rng.uniform(3, max(4.0, min(h, w) / 2))
    if kind == 1:
        pattern = (u / period) % 1 < 0.5
    else:
        pattern = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    return np.where(pattern[..., None], colour, second).astype(np.float32)


def _pixel_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _sample_shape(rng: np.random.Generator, size: int):
    """One candidate object: (label, coverage mask, visible box), or ``None`` when mostly outside the image."""
    label = int(rng.integers(len(CLASS_NAMES)))
    outer, hole = _unit_shape(CLASS_NAMES[label], rng)
    radius = np.exp(rng.uniform(*np.log(_SCALE_RANGE))) * size / 2
    aspect = np.exp(rng.uniform(np.log(0.55), np.log(1 / 0.55)))
    pose = (rng.uniform(0, size, 2), radius, aspect, rng.uniform(0, 2 * np.pi))
    outer = _place(outer, *pose)
    inside = _clip_polygon(outer, size)
    area = cv2.contourArea(outer.astype(np.float32))
    if len(inside) < 3 or cv2.contourArea(inside.astype(np.float32)) < _MIN_VISIBLE * area:
        return None
    box = np.clip(np.concatenate([inside.min(axis=0), inside.max(axis=0)]), 0, size)  # clip float round-off
    if min(box[2:] - box[:2]) < _MIN_BOX_SIDE:
        return None
    holes = [] if hole is None else [_place(hole, *pose)]
    return label, _coverage_mask(outer, holes, box, size), box


def _coverage_mask(outer: np.ndarray, holes: list[np.ndarray], box: np.ndarray, size: int) -> np.ndarray:
    """Full-image uint8 mask: 255 x the fraction of each pixel the polygon covers.

    Drawn at 4x inside the box and area-averaged down. OpenCV's anti-aliased fill would be cheaper but
    grows shapes by up to a pixel, which would put drawn pixels outside the geometric box.
    """
    x0, y0 = np.floor(box[:2]).astype(int)
    x1, y1 = np.ceil(box[2:]).astype(int)
    fine = np.zeros(((y1 - y0) * _SUPERSAMPLE, (x1 - x0) * _SUPERSAMPLE), np.uint8)
    origin = np.array([x0, y0])
    cv2.fillPoly(fine, [_to_cv((outer - origin) * _SUPERSAMPLE)], 255, cv2.LINE_8, shift=4)
    for hole in holes:
        cv2.fillPoly(fine, [_to_cv((hole - origin) * _SUPERSAMPLE)], 0, cv2.LINE_8, shift=4)
    mask = np.zeros((size, size), np.uint8)
    mask[y0:y1, x0:x1] = cv2.resize(fine, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return mask


def render_image(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image ``index`` of the set with ``seed``: BGR uint8 ``[size, size, 3]``, ``xyxy`` boxes, labels."""
    rng = np.random.default_rng([seed, index])
    img = _background(rng, size).astype(np.float32)
    placed: list[dict] = []  # label, box, visible mask, its pixel box and the pixels it started with
    for _ in range(int(rng.integers(1, 9))):
        for _attempt in range(10):
            candidate = _sample_shape(rng, size)
            if candidate is None:
                continue
            label, mask, box = candidate
            solid = mask >= 128
            if solid.sum() < 4:
                continue
            # Occluding an earlier shape is fine while its box and half of it stay visible.
            uncovered = [o["visible"] & ~solid for o in placed]
            if all(
                u.sum() >= _MIN_VISIBLE * o["pixels"] and _pixel_box(u) == o["pixel_box"]
                for u, o in zip(uncovered, placed)
            ):
                break
        else:
            continue
        for o, u in zip(placed, uncovered):
            o["visible"] = u
        placed.append({"label": label, "box": box, "visible": solid, "pixel_box": _pixel_box(solid), "pixels": solid.sum()})

        x0, y0, x1, y1 = _pixel_box(mask > 0)
        local = img[y0:y1, x0:x1]
        for _try in range(5):  # a colour that stands out from what is under it
            colour = rng.uniform(0, 255, 3)
            if np.linalg.norm(colour - local.reshape(-1, 3).mean(axis=0)) >= _MIN_CONTRAST:
                break
        alpha = mask[y0:y1, x0:x1, None].astype(np.float32) / 255
        img[y0:y1, x0:x1] = local * (1 - alpha) + _texture(rng, (y1 - y0, x1 - x0), colour) * alpha

    gain = rng.uniform(0.75, 1.25) * rng.uniform(0.9, 1.1, 3)  # contrast and per-channel colour cast
    img = img * gain.astype(np.float32) + np.float32(rng.uniform(-25, 25))
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.4, 1.0))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(2, 12))
    image = np.clip(img + 0.5, 0, 255).astype(np.uint8)  # + 0.5: round, not truncate
    boxes = np.round(np.array([o["box"] for o in placed]).reshape(-1, 4), 2)
    return image, boxes, np.array([o["label"] for o in placed], dtype=np.int64)


# --- writing ----------------------------------------------------------------------------------------------


def _image_name(index: int) -> str:
    return f"{index + 1:06d}.jpg"


def _render_job(job: tuple[int, int, int, list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Worker: render image ``index`` and write its JPEG to every path given."""
    seed, index, size, paths = job
    image, boxes, labels = render_image(seed, index, size)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise DatasetError(f"could not encode synthetic image {index}")
    for path in paths:
        Path(path).write_bytes(data.tobytes())
    return boxes, labels


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only contend


def _write_voc(out: Path, split: str, records: list[ImageRecord]) -> None:
    """VOC XML with 1-based inclusive pixel boxes: the pixels each (continuous) box touches."""
    for r in records:
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "JPEGImages"
        ET.SubElement(root, "filename").text = Path(r.path).name
        size = ET.SubElement(root, "size")
        for tag, value in (("width", r.width), ("height", r.height), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        for box, label in zip(r.boxes, r.labels):
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = CLASS_NAMES[label]
            ET.SubElement(obj, "difficult").text = "0"
            bndbox = ET.SubElement(obj, "bndbox")
            corners = (np.floor(box[0]) + 1, np.floor(box[1]) + 1, np.ceil(box[2]), np.ceil(box[3]))
            for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), corners):
                ET.SubElement(bndbox, tag).text = str(int(value))
        tree = ET.ElementTree(root)
        ET.indent(tree)
        tree.write(out / "Annotations" / f"{Path(r.path).stem}.xml", encoding="utf-8")
    names = "".join(f"{Path(r.path).stem}\n" for r in records)
    with open(out / "ImageSets" / "Main" / f"{split}.txt", "w", encoding="utf-8") as f:
        f.write(names)
    with open(out / "ImageSets" / "Main" / "trainval.txt", "a", encoding="utf-8") as f:
        f.write(names)


def _prepare(out: Path) -> None:
    """Make ``out`` ready: refuse a non-empty folder we did not make, clear our earlier output."""
    if out.exists() and any(out.iterdir()):
        if not (out / "manifest.json").is_file():
            raise DatasetError(f"{out}: folder is not empty and was not made by generate_synthetic; refusing to write")
        (out / "manifest.json").unlink()  # first: an interrupted rewrite must not look complete
        for name in _OUR_FOLDERS:
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _manifest(num_images: int, image_size: int, seed: int, val_fraction: float, layout: str) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "num_images": num_images,
        "image_size": image_size,
        "seed": seed,
        "val_fraction": val_fraction,
        "layout": layout,
        "class_names": list(CLASS_NAMES),
    }


def generate_synthetic(
    out_dir: str | Path,
    num_images: int = DEFAULT_NUM_IMAGES,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = DEFAULT_SEED,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    layout: str = "coco",
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate the synthetic set into ``out_dir`` and return it (``workers=None``: all cores up to 8, one for tiny sets).

    The first ``num_images - round(num_images * val_fraction)`` images are ``train``, the rest ``val``.
    ``layout="coco"`` writes ``annotations/instances_{train,val}.json`` + ``{train,val}/*.jpg``; ``"voc"``
    writes ``Annotations``, ``JPEGImages`` and ``ImageSets/Main/{train,val,trainval}.txt``; ``"both"`` both.
    ``manifest.json`` (the parameters) is written last and marks a complete set.
    """
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown synthetic layout {layout!r} (use one of {', '.join(LAYOUTS)})")
    if num_images < 2 or image_size < 32 or not 0 < val_fraction < 1:
        raise DatasetError("synthetic set needs num_images >= 2, image_size >= 32 and 0 < val_fraction < 1")
    out = Path(out_dir)
    _prepare(out)
    num_val = min(max(round(num_images * val_fraction), 1), num_images - 1)
    split_of = ["train"] * (num_images - num_val) + ["val"] * num_val
    folders = {"coco": ["{split}"], "voc": ["JPEGImages"], "both": ["{split}", "JPEGImages"]}[layout]
    for folder in {f.format(split=s) for f in folders for s in ("train", "val")}:
        (out / folder).mkdir(parents=True, exist_ok=True)
    jobs = [
        (seed, i, image_size, [str(out / f.format(split=split_of[i]) / _image_name(i)) for f in folders])
        for i in range(num_images)
    ]

    if workers is None:  # starting processes costs more than it saves on a few images
        workers = 1 if num_images < 64 else min(os.cpu_count() or 1, 8)
    bar = dict(total=num_images, desc=f"synthetic {out.name}", unit="img", disable=not progress)
    if workers == 1:
        results = [_render_job(job) for job in tqdm(jobs, **bar)]
    else:
        # "spawn": a forked child would inherit the caller's threads (torch, OpenCV) in unknown lock states.
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            results = list(tqdm(pool.imap(_render_job, jobs, chunksize=8), **bar))

    for split in ("train", "val"):
        records = [
            ImageRecord(
                path=jobs[i][3][0],
                width=image_size,
                height=image_size,
                boxes=boxes,
                labels=labels,
                difficult=np.zeros(len(labels), bool),
                iscrowd=np.zeros(len(labels), bool),
                image_id=i + 1,
            )
            for i, (boxes, labels) in enumerate(results)
            if split_of[i] == split
        ]
        dataset = DetectionDataset("synthetic", str(out), split, "coco", list(CLASS_NAMES), records, warnings=Counter())
        if layout in ("coco", "both"):
            write_coco_json(dataset, out / "annotations" / f"instances_{split}.json")
        if layout in ("voc", "both"):
            (out / "Annotations").mkdir(exist_ok=True)
            (out / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
            _write_voc(out, split, records)
    manifest = _manifest(num_images, image_size, seed, val_fraction, layout)
    (out / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=1), encoding="utf-8")
    return out


def ensure_synthetic(
    out_dir: str | Path,
    num_images: int = DEFAULT_NUM_IMAGES,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = DEFAULT_SEED,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    layout: str = "coco",
) -> Path:
    """``out_dir`` if it holds a complete set with these parameters, else (re)generate it there.

    Generation happens in a sibling temp folder that is moved in at the end, so concurrent or interrupted
    runs never leave a half-written set behind a valid manifest.
    """
    out = Path(out_dir)
    wanted = _manifest(num_images, image_size, seed, val_fraction, layout)
    try:
        if json.loads((out / "manifest.json").read_text(encoding="utf-8")) == wanted:
            return out
    except (OSError, ValueError):
        pass  # missing or broken manifest: regenerate
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the final folder should read like the rest of the cache
    try:
        generate_synthetic(tmp, num_images, image_size, seed, val_fraction, layout)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
