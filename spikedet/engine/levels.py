"""PASCAL's adaptive layer-wise levels for a trained QCFS detector: measure, choose, report, plot.

Step 2 of the AL procedure (methods.md §4(b)): score each activation of a uniform-L model on training images
and pick per-layer L; step 3 (resume training with those levels) is ``train_det.py --init W --levels al``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..spiking.adaptive_levels import LayerLevels, choose_levels, measure_layers
from .loading import load_model
from .recipe_run import calibration_images

__all__ = ["DEFAULT_CHOICES", "adaptive_levels", "al_choices", "format_levels", "parse_levels", "plot_levels"]

DEFAULT_CHOICES = (2, 4, 8)


def parse_levels(text: str) -> int | list[int] | str:
    """``--levels`` syntax: ``4`` (uniform), ``2,4,8,...`` (one per activation) or ``al`` / ``al:2,4,8``."""
    text = text.strip()
    if text == "al" or text.startswith("al:"):
        return text
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--levels must be an integer, a comma-separated list or 'al[:L1,L2,...]', got '{text}'") from None
    if any(v < 1 for v in values):
        raise ValueError(f"levels must be >= 1, got '{text}'")
    return values[0] if len(values) == 1 else values


def al_choices(spec: str) -> tuple[int, ...]:
    """The candidate levels of an ``al[:L1,L2,...]`` spec."""
    if spec == "al":
        return DEFAULT_CHOICES
    values = parse_levels(spec.split(":", 1)[1])
    return tuple(values) if isinstance(values, list) else (values,)


def adaptive_levels(
    weights: str | Path,
    data: str | Path | None = None,
    choices: Sequence[int] = DEFAULT_CHOICES,
    images: int = 64,
    imgsz: int | None = None,
) -> tuple[list[int], list[LayerLevels]]:
    """Per-layer L for the QCFS detector in ``weights``, from its activations on ``images`` training images of
    ``data`` (default: the dataset it was trained on). Returns the levels and the per-layer measurements."""
    loaded = load_model(weights, expect="ann")
    model, config = loaded.model, loaded.config
    if config.get("activation") != "qcfs":
        raise ValueError(f"{weights}: adaptive levels need a QCFS model, this one uses {config.get('activation')}")
    data = data or config.get("dataset") or "synthetic"
    batch = calibration_images(data, images, imgsz or config.get("imgsz", 320), config["class_names"])
    layers = measure_layers(model, batch.split(8))
    return choose_levels([layer.metric for layer in layers], choices), layers


def format_levels(layers: list[LayerLevels], chosen: list[int]) -> str:
    """A table: layer, clip λ, L now, occupancy of the 5 bins, AL metric, chosen L."""
    lines = ["layer                          clip  L  occupancy (5 bins over [0, λ])   metric  new L"]
    for layer, lv in zip(layers, chosen):
        occupancy = " ".join(f"{p:.2f}" for p in layer.occupancy)
        lines.append(f"{layer.name:<28} {layer.clip:6.3f} {layer.levels:2d}  {occupancy:<32} {layer.metric:7.2f}  {lv:5d}")
    mean_before = sum(layer.levels for layer in layers) / len(layers)
    lines.append(f"mean L: {mean_before:.2f} -> {sum(chosen) / len(chosen):.2f} over {len(layers)} activations")
    return "\n".join(lines)


def plot_levels(layers: list[LayerLevels], chosen: list[int], path: str | Path) -> Path:
    """Bar chart of the AL metric per layer, coloured by the chosen L."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    palette = ["tab:green", "tab:blue", "tab:orange", "tab:red", "tab:purple"]
    distinct = sorted(set(chosen))
    colours = [palette[distinct.index(lv) % len(palette)] for lv in chosen]
    ax.bar(range(len(layers)), [layer.metric for layer in layers], color=colours)
    for lv in distinct:
        ax.bar([], [], color=palette[distinct.index(lv) % len(palette)], label=f"L = {lv}")
    ax.set_xlabel("quantized activation (network order)")
    ax.set_ylabel("AL metric (higher: outputs crowd into fewer levels)")
    ax.set_title("PASCAL adaptive layer-wise levels")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
