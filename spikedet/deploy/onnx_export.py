"""The export job: a checkpoint's spiking detector (and its ANN) to ONNX, checked against PyTorch with
onnxruntime on images of the model's evaluation split (``tools/export_onnx.py``).

The pieces: :mod:`.graph_modules` (what is traced, and the graph kinds), :mod:`.tracing` (the side-effect-free
trace), :mod:`.onnx_writer` (ONNX and onnxruntime) and :mod:`.parity` (the comparison rule).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import default_splits, load_dataset
from ..engine.evaluate import check_classes
from ..engine.inference import image_batches
from ..engine.loading import LoadedAnn, load_model, resolve_weights
from ..engine.recipe_run import build_snn
from ..recipes import get_recipe
from ..spiking import check_timesteps
from ..validate import check_imgsz
from ..models.postprocess import decoded_output
from ..spiking import SpikeMonitor, SpikingNetwork
from .graph_format import DEFAULT_OPSET
from .graph_modules import export_ann, export_stateful, export_unrolled
from .onnx_writer import graph_metadata, ort_session, run_stateful
from .parity import MIN_MATCH, TOLERANCE, Pairs, firing_rates, parity_report

__all__ = ["export_detector", "format_export"]


def _eval_images(config: dict, data: str | None, imgsz: int, count: int) -> list[torch.Tensor]:
    """The first ``count`` images of the model's evaluation split, letterboxed, one tensor each."""
    spec = data or config.get("dataset") or "synthetic"
    dataset = load_dataset(spec, default_splits(spec)[1], class_names=config.get("class_names"))
    check_classes(dataset, config)
    return [images for images, _ in image_batches(dataset.records[:count], imgsz, 1)]


def check_unrolled(network: SpikingNetwork, samples: list[torch.Tensor], out: Path, timesteps: int, opset: int,
                    meta: dict) -> list[Pairs]:
    unrolled = export_unrolled(network, samples[0], out, timesteps, opset, meta)
    session = ort_session(out)
    neurons = graph_metadata(session)["neurons"]
    pairs = []
    for x in samples:
        got, got_spikes = session.run(None, {"images": x.numpy()})
        ref, ref_spikes = unrolled(x)
        rates = [firing_rates(s, neurons, timesteps) for s in (got_spikes, ref_spikes.numpy())]
        pairs.append([(got, ref.numpy(), *rates)])
    return pairs


def _monitored_steps(network: SpikingNetwork, x: torch.Tensor, timesteps: int) -> tuple[dict[int, Any], list]:
    """PyTorch's read-outs after each of T steps from a reset, and each step's per-layer spikes counted by a
    :class:`SpikeMonitor` (the neurons' own statistics, not the export's counting)."""
    monitor = SpikeMonitor(network)
    try:
        outputs = network.anytime(x, list(range(1, timesteps + 1)), record=True)
    finally:
        monitor.close()
    spikes = monitor.spikes
    return outputs, [[spikes[name][t] for name in monitor.neurons] for t in range(timesteps)]


def check_stateful(network: SpikingNetwork, samples: list[torch.Tensor], out: Path, timesteps: int, opset: int,
                    meta: dict) -> list[Pairs]:
    """Export one step; compare every step of a T-step onnxruntime run from reset with PyTorch's read-outs."""
    export_stateful(network, samples[0], out, opset=opset, meta=meta)
    session = ort_session(out)
    neurons = graph_metadata(session)["neurons"]
    images = []
    for x in samples:
        ref, ref_spikes = _monitored_steps(network, x, timesteps)
        steps = run_stateful(session, x.numpy(), timesteps)
        images.append([
            (got, decoded_output(ref[t + 1]).numpy(), firing_rates(spikes, neurons, 1),
             firing_rates(ref_spikes[t], neurons, 1))
            for t, (got, spikes) in enumerate(steps)
        ])
    return images


def check_ann(model: nn.Module, samples: list[torch.Tensor], out: Path, opset: int, meta: dict) -> list[Pairs]:
    ann = export_ann(model, samples[0], out, opset, meta)
    session = ort_session(out)
    with torch.no_grad():
        return [[(session.run(None, {"images": x.numpy()})[0], ann(x).numpy(), None, None)] for x in samples]


def export_detector(
    weights: str | Path | None = None,
    *,
    out: str | Path = "model.onnx",
    timesteps: int = 4,
    imgsz: int | None = None,
    stateful: bool = False,
    opset: int = DEFAULT_OPSET,
    data: str | None = None,
    images: int = 16,
    tolerance: float = TOLERANCE,
    min_match: float = MIN_MATCH,
    method: str = "qcfs",
    with_ann: bool = True,
) -> dict[str, Any]:
    """Export a checkpoint's spiking detector (unrolled over T, or ``stateful``) to ``out`` and, for an ANN
    checkpoint (unless ``with_ann`` is False), its ANN to ``<out>_ann.onnx``; run each graph in onnxruntime
    on ``images`` letterboxed images of the model's evaluation split and compare with PyTorch.

    Returns the report; a graph's ``ok`` is False when fewer than ``min_match`` of the images agree within
    ``tolerance`` (see the module docstring).
    """
    timesteps = check_timesteps(timesteps)[0]
    if images < 1:
        raise ValueError(f"--images must be >= 1, got {images}")
    path = resolve_weights(weights)
    loaded = load_model(path)
    config = loaded.config
    network = build_snn(loaded.model, get_recipe(method)) if isinstance(loaded, LoadedAnn) else loaded.network
    imgsz = check_imgsz(imgsz or int(config.get("imgsz", 320)))
    samples = _eval_images(config, data, imgsz, images)
    out = Path(out)
    meta = {"weights": str(path), "imgsz": imgsz, "class_names": config.get("class_names"), "opset": opset}
    exports = [
        ("snn-stateful", out, lambda: check_stateful(network, samples, out, timesteps, opset, meta)) if stateful
        else ("snn-unrolled", out, lambda: check_unrolled(network, samples, out, timesteps, opset, meta))
    ]
    if isinstance(loaded, LoadedAnn) and with_ann:
        ann_path = out.with_name(f"{out.stem}_ann.onnx")
        exports.append(("ann", ann_path, lambda: check_ann(loaded.model, samples, ann_path, opset, meta)))
    graphs = [parity_report(name, path, run(), imgsz, tolerance, min_match) for name, path, run in exports]
    return {
        "opset": opset, "imgsz": imgsz, "timesteps": timesteps, "images": len(samples), "tolerance": tolerance,
        "min_match": min_match, "graphs": graphs, "ok": all(g["ok"] for g in graphs),
    }


def format_export(report: dict[str, Any]) -> str:
    """The report as a text table."""
    lines = [
        f"ONNX opset {report['opset']}, {report['imgsz']} px, T={report['timesteps']}: onnxruntime vs PyTorch on "
        f"{report['images']} images of the evaluation split",
        f"difference normalised by the output scale (boxes / input size, scores), tolerance {report['tolerance']:g}; "
        f"a graph passes when at least {report['min_match']:.0%} of the images match (outputs and per-layer "
        "firing rates)",
        f"{'graph':<13} {'matched':>8} {'median':>9} {'worst':>9} {'max |diff|':>10} {'rate diff':>9} {'ok':>3}  path",
    ]
    for g in report["graphs"]:
        lines.append(
            f"{g['graph']:<13} {g['images_matched']:>4}/{g['images']:<3} {g['median_diff']:>9.2g} "
            f"{g['normalised_diff']:>9.2g} {g['max_abs_diff']:>10.3g} {g['rate_diff']:>9.2g} "
            f"{'yes' if g['ok'] else 'NO':>3}  {g['path']}"
        )
    return "\n".join(lines)
