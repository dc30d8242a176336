"""The live demo behind ``tools/demo.py``: capture → letterbox → detector → NMS → overlay → window / video file."""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..engine.inference import letterbox
from ..engine.loading import load_model, resolve_weights
from ..models.family import family_of
from ..models.postprocess import scaled_nms
from ..spiking.precision import check_concrete_precision, to_precision
from ..spiking.runtime import SpikingNetwork
from ..validate import check_count, check_fraction, check_imgsz, check_output_file
from .backends import check_backend, make_backend_detector
from .detector import FrameDetector, comparison_ann, spiking_network
from .overlay import draw_detections, draw_panel, draw_rate_bars
from .video import SourceError, VideoSource, open_writer

__all__ = ["DemoSummary", "annotate", "frame_input", "process_video", "run_demo"]

WINDOW = "spikedet"
STAGES = ("capture", "letterbox", "network", "nms", "overlay", "output")
# x / 255 in float32 for every uint8 value, the same bits as engine.inference.to_tensor computes
_UNIT = np.arange(256, dtype=np.float32) / np.float32(255.0)


@dataclass
class DemoSummary:
    """What a demo run did. ``stage_ms``: mean milliseconds per frame of each stage; ``error``: why a live
    source ended the run early (the frames before it are counted)."""

    source: str
    mode: str
    imgsz: int
    frames: int = 0
    seconds: float = 0.0
    detections: int = 0
    firing_rate: float | None = None
    stage_ms: dict[str, float] = field(default_factory=dict)
    saved: str | None = None
    error: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fps": self.fps}

    def format(self) -> str:
        rate = "-" if self.firing_rate is None else f"{self.firing_rate:.4f}"
        stages = ", ".join(f"{k} {v:.1f}" for k, v in self.stage_ms.items())
        text = (
            f"{self.mode} on {self.source} at {self.imgsz} px: {self.frames} frames, mean {self.fps:.1f} FPS, "
            f"mean firing rate {rate}, {self.detections} detections\nper frame (ms): {stages}"
        )
        return text + (f"\nsaved: {self.saved}" if self.saved else "")


def _check_display() -> None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ValueError("no display to show the video on; run with --no-show (add --save out.mp4 to keep it)")


class _Window:
    """The preview window; ``update`` returns False once the user quits (``q``/Esc, or closes it)."""

    def __init__(self) -> None:
        _check_display()
        self.opened = False

    def update(self, frame: np.ndarray) -> bool:
        try:
            cv2.imshow(WINDOW, frame)
        except cv2.error:
            raise ValueError("OpenCV cannot open a window here (headless build?); run with --no-show") from None
        self.opened = True
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        if self.opened:
            cv2.destroyWindow(WINDOW)


def frame_input(frame: np.ndarray, imgsz: int) -> torch.Tensor:
    """A BGR frame → the network input ``[1, 3, S, S]``: letterboxed, RGB, in [0, 1]; equal to
    ``to_tensor([letterbox(frame, imgsz)])`` bit for bit. A table look-up per pixel replaces the float
    conversion and the division: a fraction of their cost, and no torch threads woken for a small tensor."""
    chw = np.ascontiguousarray(letterbox(frame, imgsz)[..., ::-1].transpose(2, 0, 1))
    return torch.from_numpy(np.take(_UNIT, chw)[None])


def annotate(
    frame: np.ndarray, dets: np.ndarray, names: list[str], detector: FrameDetector, fps: float, imgsz: int
) -> None:
    """Boxes, the status panel (mode, FPS, size, detections, firing rate) and the per-layer rate bars."""
    draw_detections(frame, dets, names)
    lines = [detector.label, f"{fps:.1f} FPS  {imgsz} px  {len(dets)} det"]
    if detector.rate is not None:
        lines.append(f"firing rate {detector.rate:.3f}")
        draw_rate_bars(frame, detector.rates)
    draw_panel(frame, lines)


def process_video(
    source: str | int,
    detector: FrameDetector,
    *,
    imgsz: int,
    names: list[str],
    conf: float = 0.25,
    iou: float = 0.7,
    save: str | Path | None = None,
    show: bool = False,
    max_frames: int | None = None,
    progress: bool = True,
    video: VideoSource | None = None,
) -> DemoSummary:
    """Run ``detector`` on every frame of ``source`` with overlays; return the summary.

    A live source that stops for good ends the run with ``summary.error`` set (the video written so far is
    kept). ``video`` is an already opened source (``source`` is then only its name).
    """
    check_imgsz(imgsz)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {max_frames}")
    if not 0 < conf <= 1:
        raise ValueError(f"--conf must be in (0, 1], got {conf}")
    window = _Window() if show else None
    src = video or VideoSource(source)
    summary = DemoSummary(str(source), detector.label, imgsz)
    known = [n for n in (src.frame_count, max_frames) if n]
    total = min(known) if known else None
    bar = tqdm(total=total, unit="frame", desc=detector.label, leave=False, disable=not progress or total is None)
    totals = dict.fromkeys(STAGES, 0.0)
    rates: list[float] = []
    writer, ema = None, None
    detector.reset()
    start = time.perf_counter()
    try:
        while max_frames is None or summary.frames < max_frames:
            t0 = time.perf_counter()
            try:
                frame = src.read()
            except SourceError as err:
                summary.error = str(err)
                break
            if frame is None:
                break
            t1 = time.perf_counter()
            images = frame_input(frame, imgsz)
            t2 = time.perf_counter()
            output = detector(images)
            t3 = time.perf_counter()
            dets = scaled_nms(output, imgsz, [frame.shape[:2]], conf, iou)[0].numpy()
            t4 = time.perf_counter()
            annotate(frame, dets, names, detector, 1.0 / ema if ema else 0.0, imgsz)
            if detector.rate is not None:
                rates.append(detector.rate)
            t5 = time.perf_counter()
            if save is not None:
                if writer is None:
                    writer = open_writer(save, src.fps or 25.0, frame.shape[1], frame.shape[0])
                writer.write(frame)
            keep_going = window.update(frame) if window else True
            t6 = time.perf_counter()
            for stage, (a, b) in zip(STAGES, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)]):
                totals[stage] += b - a
            ema = t6 - t0 if ema is None else 0.9 * ema + 0.1 * (t6 - t0)  # smoothed for the on-screen FPS
            summary.frames += 1
            summary.detections += len(dets)
            bar.update()
            if not keep_going:
                break
    finally:
        summary.seconds = time.perf_counter() - start
        bar.close()
        if writer is not None:
            writer.release()
            summary.saved = str(save)
        if video is None:
            src.close()
        if window:
            window.close()
    summary.stage_ms = {k: 1e3 * v / max(summary.frames, 1) for k, v in totals.items()}
    summary.firing_rate = float(np.mean(rates)) if rates else None
    return summary


def _check_settings(
    *, timesteps: int, imgsz: int | None, save: str | Path | None, steps_per_frame: int, window: int | None,
    leak: float, pool_decay: float, conf: float, iou: float | None, max_frames: int | None,
) -> None:
    """Every number and the output path of a demo, before the source opens and the model loads."""
    check_count(timesteps, name="--T")
    check_imgsz(imgsz)  # None keeps the model's size
    check_count(steps_per_frame, name="--steps-per-frame")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 0):
        raise ValueError(f"--window must be an integer >= 0, got {window!r}")
    for value, name in ((leak, "--leak"), (pool_decay, "--pool-decay"), (conf, "--conf")):
        check_fraction(value, name=name)
    check_fraction(iou, name="--iou", optional=True)
    check_count(max_frames, name="--max-frames", optional=True)
    if save is not None:
        check_output_file(save, name="--save")


def _precision_backend(precision: str, backend: str, *, log: Callable[[str], Any] | None) -> str:
    """The backend that runs ``precision``: any for fp32; torch for the others (the compiled graphs are fp32),
    picked for ``auto`` and a ValueError for a compiled backend named explicitly."""
    check_concrete_precision(precision, name="--precision")
    if precision == "fp32" or backend == "torch":
        return backend
    if backend != "auto":
        raise ValueError(f"--precision {precision} runs on the torch backend only (the {backend} graphs are fp32); "
                         "use --backend torch or auto")
    if log:
        log(f"precision {precision}: torch backend (the compiled graphs are fp32)")
    return "torch"


def run_demo(
    source: str | int = "0",
    *,
    weights: str | Path | None = None,
    timesteps: int = 4,
    imgsz: int | None = None,
    save: str | Path | None = None,
    show: bool = True,
    stream_state: bool = False,
    steps_per_frame: int = 1,
    window: int | None = None,
    leak: float = 0.25,
    pool_decay: float = 0.5,
    ann: bool = False,
    conf: float = 0.25,
    iou: float | None = None,
    max_frames: int | None = None,
    progress: bool = True,
    backend: str = "auto",
    method: str | None = None,
    precision: str = "fp32",
) -> DemoSummary:
    """Open ``source``, load the detector (default: the shipped model converted with qcfs; ``method`` picks
    another recipe that needs no calibration data, e.g. pascal or casc) and run the demo.

    ``imgsz`` defaults to the model's training size; stream mode (``window`` default ``timesteps``, ``leak``,
    ``pool_decay``): see :class:`~spikedet.deploy.detector.StreamingDetector`. ``backend``: ``"inductor"``
    or ``"onnxruntime"`` run the compiled graph (compiled and checked against PyTorch on first use, then
    cached; see :mod:`~spikedet.deploy.backends`), ``"auto"`` the first of them that works here, ``"torch"``
    the PyTorch model. ``iou`` defaults to the detector
    family's NMS IoU (0.7 for YOLO, 0.5 for SSD), the one its evaluation uses. ``precision`` (``fp32``,
    ``bf16``, ``fp16`` or ``int8``; resolve ``auto`` first): see :mod:`~spikedet.spiking.precision`; the
    compiled graphs are fp32, so another precision runs on the torch backend (``auto`` picks it).
    """
    check_backend(backend)
    backend = _precision_backend(precision, backend, log=print if progress else None)
    _check_settings(timesteps=timesteps, imgsz=imgsz, save=save, steps_per_frame=steps_per_frame, window=window,
                    leak=leak, pool_decay=pool_decay, conf=conf, iou=iou, max_frames=max_frames)
    if show:
        _check_display()
    with VideoSource(source) as video:  # first, so a bad source fails before the model loads
        path = resolve_weights(weights)
        if ann:
            loaded = comparison_ann(path)
            model = loaded.model
        else:
            loaded = load_model(path)
            model = spiking_network(loaded, method=method)
        config = loaded.config
        # the stream's max-pools scale their accumulators between frames: their outputs are no spikes then
        readouts = [] if isinstance(model, SpikingNetwork) else family_of(model).readouts(model)
        model, report = to_precision(
            model, precision, readouts=readouts, pools_exact=not (stream_state and pool_decay < 1)
        )
        if progress and precision != "fp32":
            print(report.summary())
        names = list(config.get("class_names") or [])
        iou = family_of(model).nms_iou if iou is None else iou
        size = check_imgsz(imgsz or int(config.get("imgsz", 320)))
        detector = make_backend_detector(
            model, size, timesteps, stream_state, steps_per_frame, window, leak, pool_decay, backend,
            log=print if progress else None,
        )
        return process_video(
            source, detector, imgsz=size, names=names, conf=conf, iou=iou, save=save, show=show,
            max_frames=max_frames, progress=progress, video=video,
        )
