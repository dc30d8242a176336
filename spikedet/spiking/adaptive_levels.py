"""PASCAL's Adaptive Layerwise (AL) activation: a per-layer metric and the rule that turns it into levels L_l.

methods.md §4(b): train with a uniform L, histogram each layer's QCFS outputs into n = 5 bins, score the bin
counts, give each layer its own L_l and resume training. The metric, as the reference implements it:

* ``A = 1 − (n_dense − 1)/(n − 1)``, ``n_dense`` = bins whose count is at least the mean count;
* ``B = (g² + 1)·(k + 3n²/((n − 2)(n − 3)))``, g the skewness and k the excess kurtosis of the bin counts
  (population moments);
* ``metric = A·B``.

With 5 bins over ``[0, λ]`` and L = 4, each bin holds exactly one quantization level, so the histogram is the
level occupancy. A high metric means the outputs crowd into few levels (peaked, skewed occupancy): the layer
leaves levels unused and can do with fewer. A low metric means the outputs spread over every level: more levels
pay off there. The released code does not encode the metric → L rule, so :func:`choose_levels` states ours:
rank the layers by metric and split the ranking into equal groups, one per candidate L, the most crowded layers
getting the fewest levels. With candidates (2, 4, 8) around a uniform L = 4 the mean L stays near 4.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .quant import QCFS, quantized_activations

__all__ = ["LayerLevels", "al_metric", "choose_levels", "measure_layers"]

BINS = 5


def al_metric(values: torch.Tensor, clip: float, bins: int = BINS) -> float:
    """PASCAL's AL metric of one layer's activation ``values`` (outputs of a QCFS with clip ``clip``)."""
    if values.numel() == 0:
        raise ValueError("no activation values to score")
    return _metric_of_counts(_histogram(values, clip, bins))


def _histogram(values: torch.Tensor, clip: float, bins: int) -> torch.Tensor:
    if bins < 4:
        raise ValueError(f"the AL metric needs at least 4 bins (its B term divides by (n-2)(n-3)), got {bins}")
    return torch.histc(values.detach().double().flatten(), bins=bins, min=0.0, max=float(clip))


def _metric_of_counts(counts: torch.Tensor) -> float:
    """``A·B`` of a bin-count vector (module docstring)."""
    bins = counts.numel()
    n_dense = int((counts >= counts.mean()).sum())
    a = 1.0 - (n_dense - 1) / (bins - 1)
    centred = counts - counts.mean()
    var = centred.pow(2).mean()
    if var == 0:  # every bin equally full: no skew, and a flat distribution's excess kurtosis is its own limit
        skew, kurt = 0.0, -1.3
    else:
        skew = float(centred.pow(3).mean() / var.pow(1.5))
        kurt = float(centred.pow(4).mean() / var.pow(2)) - 3.0
    b = (skew**2 + 1.0) * (kurt + 3.0 * bins**2 / ((bins - 2) * (bins - 3)))
    return a * b


@dataclass(frozen=True)
class LayerLevels:
    """One quantized activation: its name, clip λ, current L, AL metric and occupancy of its bins."""

    name: str
    clip: float
    levels: int
    metric: float
    occupancy: tuple[float, ...]


@torch.no_grad()
def measure_layers(
    model: nn.Module, batches: Iterable[torch.Tensor], max_values: int = 200_000, bins: int = BINS
) -> list[LayerLevels]:
    """Run ``model`` on ``batches`` and score every QCFS activation with :func:`al_metric`.

    At most ``max_values`` outputs per layer are kept (an even stride over each batch), so large feature maps
    cost bounded memory; the histogram of a strided sample estimates the full one.
    """
    layers = quantized_activations(model)
    if not layers:
        raise ValueError("the model has no QCFS activation to measure (a SiLU model? train a QCFS one first)")
    samples: dict[str, list[torch.Tensor]] = {name: [] for name, _ in layers}

    def keep(name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            flat = output.detach().flatten()
            stride = max(1, flat.numel() // max_values)
            samples[name].append(flat[::stride].float().cpu())

        return hook

    handles = [module.register_forward_hook(keep(name)) for name, module in layers]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    results = []
    for name, module in layers:
        if not samples[name]:
            raise ValueError("no batches given: the AL metric needs activations from at least one image")
        clip = float(module.threshold)
        counts = _histogram(torch.cat(samples[name]), clip, bins)
        occupancy = tuple(float(c) for c in counts / counts.sum().clamp_min(1))
        results.append(LayerLevels(name, clip, module.levels, _metric_of_counts(counts), occupancy))
    return results


def choose_levels(metrics: Sequence[float], choices: Sequence[int] = (2, 4, 8)) -> list[int]:
    """Per-layer L from AL metrics: rank layers by metric, most crowded first, and give the first
    ``len(metrics)/len(choices)`` layers the smallest L, the next group the next L, and so on.

    Ties keep layer order (a stable sort), so the result is deterministic.
    """
    if not metrics:
        raise ValueError("no layers to assign levels to")
    levels = sorted({int(c) for c in choices})
    if not levels or levels[0] < 1:
        raise ValueError(f"level choices must be integers >= 1, got {list(choices)}")
    order = sorted(range(len(metrics)), key=lambda i: -metrics[i])
    chosen = [0] * len(metrics)
    for rank, layer in enumerate(order):
        chosen[layer] = levels[rank * len(levels) // len(metrics)]
    return chosen


def set_levels(model: nn.Module, levels: Sequence[int]) -> None:
    """Give the model's QCFS activations (in module order) the levels ``levels``."""
    quants = [m for m in model.modules() if isinstance(m, QCFS)]
    if len(levels) != len(quants):
        raise ValueError(f"{len(levels)} levels given for {len(quants)} quantized activations")
    for module, lv in zip(quants, levels):
        if int(lv) < 1:
            raise ValueError(f"levels must be >= 1, got {lv}")
        module.levels = int(lv)
