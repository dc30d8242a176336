"""Checking an exported graph against PyTorch.

Parity: onnxruntime and PyTorch run different float32 convolutions, so values differ in the last bits. The
difference is measured with box coordinates divided by the input size (scores are in [0, 1] already); an image
*matches* when it stays within :data:`TOLERANCE` = 1e-3 (0.3 px at 320 px, 0.001 in a score: invisible after
NMS). Matching images agree to about 4e-7. But a spike (or a QCFS level in the ANN) is a threshold decision:
when a potential lands within float32 rounding of its threshold, the two runtimes decide it differently, and
the changed spike changes the inputs of the next layers, which flips more decisions there. Such an image then
differs by 0.1-0.4. This is a property of the network, not of the export: on the trained YOLOv8n-QCFS at
320 px, T=4, PyTorch disagrees with itself in the same way on 7 of 16 images when only the memory layout
changes (channels_last), and onnxruntime on 5 of 16 (the ANN: 1 of 16). A wiring error (a state not fed back,
a step missing, state baked in as a constant) changes every image instead. So a graph passes when at least
:data:`MIN_MATCH` of the images (and at least one) match to rounding; the report gives the count, the median and
the worst difference.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .tracing import ExportError

__all__ = [
    "TOLERANCE", "MIN_MATCH", "Pairs", "parity_error", "firing_rates", "parity_report",
]

TOLERANCE = 1e-3
MIN_MATCH = 0.25


def parity_error(got: np.ndarray, ref: np.ndarray, imgsz: int) -> tuple[float, float]:
    """``(max abs difference, max difference with box coordinates in units of the input size)`` of two
    ``[B, 4 + nc, A]`` Detect outputs; :class:`ExportError` when their shapes differ."""
    if np.shape(got) != np.shape(ref):
        raise ExportError(f"the graph's output has shape {list(np.shape(got))}, PyTorch's {list(np.shape(ref))}")
    diff = np.abs(np.asarray(got, dtype=np.float64) - np.asarray(ref, dtype=np.float64))
    return float(diff.max()), float(max(diff[:, :4].max() / imgsz, diff[:, 4:].max(initial=0.0)))


# per image, per compared step: (onnxruntime output, PyTorch output, onnxruntime rates, PyTorch rates); the
# per-layer firing rates are None for the ANN
Pairs = list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]]


def firing_rates(spikes: np.ndarray, neurons: Sequence[int], steps: int) -> np.ndarray:
    """Per-layer firing rates (spikes per neuron and step) from a graph's ``spikes`` output."""
    return np.asarray(spikes, dtype=np.float64) / (np.asarray(neurons, dtype=np.float64) * steps)


def parity_report(graph: str, path: Path, images: list[Pairs], imgsz: int, tol: float, min_match: float) -> dict:
    """The report row of a graph: an image matches when all its outputs agree within ``tol`` (and so do its
    per-layer firing rates); the graph passes when at least ``min_match`` of the images (and at least one)
    match."""
    errors = [[parity_error(got, ref, imgsz) for got, ref, _, _ in pairs] for pairs in images]
    rate_errors = [
        max((float(np.abs(g - r).max()) for _, _, g, r in pairs if g is not None), default=0.0) for pairs in images
    ]
    per_image = [max(e[1] for e in image) for image in errors]
    matched = sum(e <= tol and r <= tol for e, r in zip(per_image, rate_errors))
    return {
        "graph": graph, "path": str(path), "checker": True, "images_matched": matched, "images": len(per_image),
        "median_diff": float(np.median(per_image)), "normalised_diff": max(per_image),
        "max_abs_diff": max(e[0] for image in errors for e in image), "rate_diff": max(rate_errors),
        "ok": matched >= max(1, math.ceil(min_match * len(per_image))),
    }
