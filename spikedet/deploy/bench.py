"""End-to-end demo benchmark: throughput of the whole loop per mode, ONNX latency, stream-state accuracy."""
from __future__ import annotations

import copy
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch
from torch import nn

from ..checkpoint import CheckpointError
from ..data import default_splits, load_dataset
from ..engine.evaluate import check_classes
from ..engine.inference import letterbox, to_tensor
from ..engine.loading import load_model, resolve_weights
from ..spiking.bench import time_ms
from .backends import GraphSpikingDetector, make_backend_detector
from ..validate import check_imgsz
from .demo import process_video
from .detector import FrameDetector, comparison_ann, spiking_network
from .graph_modules import UnrolledSNN
from .runner import GraphRunner
from .stream_eval import format_stream_accuracy, stream_accuracy
from .video import VideoSource, make_video

__all__ = ["TARGET_FPS", "BENCH_BACKENDS", "graph_latency", "bench_demo", "format_bench"]

# The targets on 2 CPU cores at 320 px.
TARGET_FPS = {"SNN T": 15.0, "SNN stream": 40.0}
BENCH_BACKENDS = ("torch", "onnxruntime", "inductor")


def _first_frame(video: Path, imgsz: int) -> torch.Tensor:
    with VideoSource(str(video)) as source:
        return to_tensor([letterbox(source.read(), imgsz)])


def _throughput(
    video: Path, detector: FrameDetector, backend: str, imgsz: int, names: list[str], warmup: int
) -> dict[str, Any]:
    """Frames per second of the headless demo loop (capture, letterbox, network, NMS, overlay) on ``video``."""
    images = _first_frame(video, imgsz)
    for _ in range(warmup):  # first calls allocate; the demo resets the detector before its first frame
        detector(images)
    summary = process_video(str(video), detector, imgsz=imgsz, names=names, progress=False)
    target = next((v for k, v in TARGET_FPS.items() if detector.label.startswith(k)), None)
    return {
        "mode": detector.label, "backend": backend, "frames": summary.frames, "fps": summary.fps,
        "ms_per_frame": 1e3 / summary.fps, "stage_ms": summary.stage_ms, "firing_rate": summary.firing_rate,
        "target_fps": target,
    }


def _detectors(path: Path, network: Any, backend: str, imgsz: int, timesteps: int) -> list[FrameDetector]:
    """The ANN (for an ANN checkpoint), the SNN at T per frame and the stream, on one backend (compiled graphs
    come from the cache, compiled and checked on first use)."""
    def build(model: Any, **settings: Any) -> FrameDetector:
        return make_backend_detector(model, imgsz, timesteps, backend=backend, **settings)

    detectors = [build(network), build(network, stream_state=True)]
    try:
        detectors.insert(0, build(comparison_ann(path).model))
    except CheckpointError:  # an SNN checkpoint: no ANN to compare with
        pass
    return detectors


def graph_latency(
    runners: dict[str, GraphRunner], module: nn.Module, image: torch.Tensor, warmup: int = 2, repeats: int = 10
) -> dict[str, float]:
    """Median milliseconds per image of an ``images → outputs`` graph on each compiled backend (``runners`` by
    name) and of ``module``, the same network in PyTorch (``pytorch_ms``), timed in turns so that load changes
    hit all alike."""
    runs = [lambda r=r: r(image) for r in runners.values()]
    with torch.no_grad():
        times = time_ms(*runs, lambda: module(image), warmup=warmup, repeats=repeats)
    return {f"{name}_ms": t["median"] for name, t in zip([*runners, "pytorch"], times)}


def bench_demo(
    weights: str | Path | None = None,
    imgsz: int = 320,
    timesteps: int = 4,
    frames: int = 200,
    hold: int = 4,
    images: int | None = None,
    threads: int = 2,
    data: str | None = None,
    warmup: int = 3,
    backends: Sequence[str] = BENCH_BACKENDS,
) -> dict[str, Any]:
    """Demo throughput of the ANN, the SNN at T per frame and the SNN streaming at 1 step per frame (read-out
    window T), each on every backend in ``backends``, on a ``frames``-frame video of the evaluation split;
    the compiled backends' latency of the unrolled T-step graph against PyTorch's; and stream-state vs per-frame accuracy
    on ``images`` images held ``hold`` frames each (default: the whole split). Uses ``threads`` CPU threads for
    torch and onnxruntime."""
    path = resolve_weights(weights)
    check_imgsz(imgsz)
    if frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    torch.set_num_threads(threads)
    loaded = load_model(path)
    network, config = spiking_network(loaded), loaded.config
    spec = data or config.get("dataset") or "synthetic"
    dataset = load_dataset(spec, default_splits(spec)[1], class_names=config.get("class_names"))
    check_classes(dataset, config)
    names = list(dataset.class_names)
    records = dataset.records
    result: dict[str, Any] = {
        "weights": str(path), "dataset": f"{dataset.name}/{dataset.split}", "imgsz": imgsz, "timesteps": timesteps,
        "threads": threads, "torch": torch.__version__, "onnxruntime": ort.__version__,
        "cpu": platform.processor() or platform.machine(), "throughput": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video([records[i % len(records)] for i in range(frames)], Path(tmp) / "throughput.mp4")
        unrolled = {}
        for backend in backends:
            for detector in _detectors(path, network, backend, imgsz, timesteps):
                result["throughput"].append(_throughput(video, detector, backend, imgsz, names, warmup))
                if isinstance(detector, GraphSpikingDetector):
                    unrolled[backend] = detector.runner
        result["latency"] = graph_latency(unrolled, UnrolledSNN(network, timesteps), _first_frame(video, imgsz))
        result["latency"]["graph"] = f"snn-unrolled T={timesteps}"
    subset = copy.copy(dataset)
    subset.records = records[:images] if images else records
    result["stream_accuracy"] = stream_accuracy(network, subset, imgsz, timesteps, hold, 1)
    return result


def format_bench(result: dict[str, Any]) -> str:
    """Throughput table, ONNX latency and the stream-accuracy table."""
    lines = [
        f"demo throughput, headless, {result['imgsz']} px, {result['threads']} threads ({result['cpu']}, "
        f"torch {result['torch']})",
        f"{'mode':<36} {'backend':<11} {'FPS':>6} {'ms/frame':>9} {'network ms':>10} {'fire rate':>9} {'target':>7}",
    ]
    for row in result["throughput"]:
        rate = "-" if row["firing_rate"] is None else f"{row['firing_rate']:.4f}"
        target = "-" if row["target_fps"] is None else f">={row['target_fps']:g}"
        lines.append(
            f"{row['mode']:<36} {row['backend']:<11} {row['fps']:>6.1f} {row['ms_per_frame']:>9.1f} "
            f"{row['stage_ms']['network']:>10.1f} {rate:>9} {target:>7}"
        )
    latency = result["latency"]
    times = ", ".join(f"{k[:-3]} {v:.1f}" for k, v in latency.items() if k.endswith("_ms"))
    lines += [
        "",
        f"{latency['graph']} latency, ms/img: {times}",
        "",
        format_stream_accuracy(result["stream_accuracy"]),
    ]
    return "\n".join(lines)
