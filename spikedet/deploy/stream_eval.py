"""Accuracy of stream-state inference against per-frame simulation, on a video of steady scenes.

The video shows each image of a split for ``hold`` frames. Every mode runs over the decoded video (the same
compressed frames for all) and is scored by COCO mAP on the last frame of each hold: per-frame runs from a
reset state at T and at the stream's steps per frame (the same compute per frame as the stream), and the
stream in each configuration asked for (read-out window, forgetting; see
:class:`~spikedet.deploy.detector.StreamingDetector`).
"""
from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data.records import DetectionDataset, ImageRecord
from ..engine.inference import letterbox, to_tensor
from ..models.postprocess import scaled_nms
from ..eval.coco import evaluate_coco
from ..eval.detections import ImageDetections
from ..spiking import SpikingNetwork, check_timesteps
from ..validate import check_imgsz
from .detector import StreamingDetector
from .video import SourceError, VideoSource, fit_transform, make_video

__all__ = ["DEFAULT_STREAMS", "stream_accuracy", "format_stream_accuracy"]

# The demo's stream mode, the pure carry-over (no forgetting) and the read-out's running mean since the start.
DEFAULT_STREAMS = ({}, {"leak": 1.0, "pool_decay": 1.0}, {"window": 0})
_KNOBS = ("window", "leak", "pool_decay")


def _frame_dataset(dataset: DetectionDataset, width: int, height: int) -> DetectionDataset:
    """The ground truth in video-frame pixels (images of another size were fitted into the frame)."""
    records = []
    for rec in dataset.records:
        scale, (left, top) = fit_transform(rec.width, rec.height, width, height)
        boxes = rec.boxes * scale + np.array([left, top, left, top], dtype=np.float32)
        records.append(
            ImageRecord(rec.path, width, height, boxes, rec.labels, rec.difficult, rec.iscrowd, rec.image_id)
        )
    frames = copy.copy(dataset)
    frames.records = records
    return frames


def _held_frames(video: Path, records: list[ImageRecord], hold: int) -> Iterator[tuple[int, bool, np.ndarray]]:
    """``(image index, last frame of its hold, frame)`` for every frame of the video."""
    count = 0
    with VideoSource(str(video)) as source:
        for frame in source:
            yield count // hold, count % hold == hold - 1, frame
            count += 1
    if count != len(records) * hold:
        raise SourceError(f"{video}: decoded {count} frames, expected {len(records) * hold}")


def _score(dataset: DetectionDataset, dets: list[ImageDetections]) -> dict[str, float]:
    coco = evaluate_coco(dataset, dets)
    return {"map50_95": coco.map50_95, "map50": coco.map50}


def _detections(output: Any, imgsz: int, frame: np.ndarray, record: ImageRecord) -> ImageDetections:
    det = scaled_nms(output, imgsz, [frame.shape[:2]])[0]
    return ImageDetections(record.image_id, det[:, :4].numpy(), det[:, 4].numpy(), det[:, 5].numpy().astype(np.int64))


def stream_accuracy(
    network: SpikingNetwork,
    dataset: DetectionDataset,
    imgsz: int,
    timesteps: int = 4,
    hold: int = 4,
    steps_per_frame: int = 1,
    streams: Sequence[dict[str, Any]] = DEFAULT_STREAMS,
    fps: float = 25.0,
    video: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """mAP of stream-state inference vs per-frame T-step inference on a steady-scene video of ``dataset``.

    ``streams``: one stream run per entry, keyword arguments of :class:`StreamingDetector` (``window``, ``leak``,
    ``pool_decay``; the window defaults to ``timesteps``, 0 is the running mean since the start). ``video``:
    where to write the test video (default: a temporary file). ``progress``: a tqdm bar per pass.
    Returns ``{"images", "hold", "frames", "imgsz", "rows": [...]}`` with one row per run: ``mode``
    ("per-frame" | "stream"), ``steps_per_frame``, ``window``, ``leak``, ``pool_decay`` (None for per-frame),
    ``map50_95``, ``map50``.
    """
    check_imgsz(imgsz)
    timesteps, steps_per_frame = check_timesteps([timesteps, steps_per_frame])
    if hold < 1:
        raise ValueError(f"hold must be >= 1, got {hold}")
    records = dataset.records
    if not records:
        raise ValueError(f"{dataset.name}/{dataset.split} has no images")
    width, height = records[0].width, records[0].height
    truth = _frame_dataset(dataset, width, height)

    def wrap(frames: Iterator, desc: str) -> Iterator:
        return tqdm(frames, total=len(records) * hold, desc=desc, unit="frame", leave=False, disable=not progress)

    with tempfile.TemporaryDirectory() as tmp:
        path = make_video(records, video or Path(tmp) / "steady.mp4", fps, hold, (width, height))

        per_frame_t = sorted({timesteps, steps_per_frame})
        per_frame: dict[int, list[ImageDetections]] = {t: [] for t in per_frame_t}
        for index, last, frame in wrap(_held_frames(path, records, hold), "per-frame"):
            if last:  # a reset run sees the same frame throughout a hold: score its last one only
                outputs = network.anytime(to_tensor([letterbox(frame, imgsz)]), per_frame_t)
                for t in per_frame_t:
                    per_frame[t].append(_detections(outputs[t], imgsz, frame, records[index]))
        rows = [
            {"mode": "per-frame", "steps_per_frame": t, **dict.fromkeys(_KNOBS), **_score(truth, per_frame[t])}
            for t in per_frame_t
        ]

        for config in streams:
            detector = StreamingDetector(network, steps_per_frame, **{"window": timesteps, **config})
            dets = []
            for index, last, frame in wrap(_held_frames(path, records, hold), detector.label):
                output = detector(to_tensor([letterbox(frame, imgsz)]))
                if last:
                    dets.append(_detections(output, imgsz, frame, records[index]))
            knobs = {k: getattr(detector, k) for k in _KNOBS}
            rows.append({"mode": "stream", "steps_per_frame": steps_per_frame, **knobs, **_score(truth, dets)})
    return {"images": len(records), "hold": hold, "frames": len(records) * hold, "imgsz": imgsz, "rows": rows}


def format_stream_accuracy(result: dict[str, Any]) -> str:
    """The rows as a text table."""
    lines = [
        f"stream-state vs per-frame: {result['images']} images x {result['hold']} frames each, {result['imgsz']} px",
        f"{'mode':<10} {'steps/frame':>11} {'read-out':>13} {'leak':>5} {'pool':>5} {'mAP50-95':>9} {'mAP50':>7}",
    ]
    for row in result["rows"]:
        if row["mode"] == "per-frame":
            readout, leak, pool = f"T={row['steps_per_frame']}", "-", "-"
        else:
            readout = f"last {row['window']} steps" if row["window"] else "all steps"
            leak, pool = f"{row['leak']:g}", f"{row['pool_decay']:g}"
        lines.append(
            f"{row['mode']:<10} {row['steps_per_frame']:>11} {readout:>13} {leak:>5} {pool:>5} "
            f"{row['map50_95']:>9.4f} {row['map50']:>7.4f}"
        )
    return "\n".join(lines)
