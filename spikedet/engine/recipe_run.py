"""Apply a recipe to an ANN (:func:`build_snn`, the one conversion) and evaluate the spiking detector, calibrating
first where the recipe asks."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import default_splits, load_dataset
from ..data.records import DetectionDataset
from ..models.family import family_of
from ..recipes import Recipe
from ..spiking.accounting import SpikeMonitor
from ..spiking.calibrate import calibrate_with_recipe, calibration_settings
from ..spiking.latency import is_layer_sequential, pipeline_steps
from ..spiking.runtime import SpikingNetwork
from .evaluate import evaluate_snn
from .inference import image_batches

log = logging.getLogger(__name__)

__all__ = ["build_snn", "calibration_images", "run_recipe"]


def build_snn(ann: nn.Module, recipe: Recipe) -> SpikingNetwork:
    """Convert a quantized ANN of any detector family with ``recipe``."""
    family = family_of(ann)
    return recipe.build(ann, family.readouts(ann), family.analog(ann))


def calibration_images(data: str | Path, count: int, imgsz: int, class_names: list[str]) -> torch.Tensor:
    """``count`` letterboxed images spread evenly over the dataset's TRAINING split (never the eval split)."""
    train_split, _ = default_splits(data)
    dataset = load_dataset(data, train_split, class_names=class_names)
    step = max(1, len(dataset.records) // count)
    records = dataset.records[::step][:count]
    if len(records) < count:
        log.warning("calibration: %d images asked for, the %s split has %d; using those", count, train_split, len(records))
    return torch.cat([images for images, _ in image_batches(records, imgsz, batch_size=16)])


def _add_pipeline_latency(network: SpikingNetwork, metrics: dict[int, dict], dataset: DetectionDataset, imgsz: int) -> None:
    """Layer-sequential recipes (PASCAL) also report the steps to their first complete output."""
    if not is_layer_sequential(network):
        return
    image, _ = next(image_batches(dataset.records[:1], imgsz, batch_size=1))
    for t, m in metrics.items():
        m["pipeline_steps"] = pipeline_steps(network, image, t)


def run_recipe(
    ann: nn.Module,
    recipe: Recipe,
    dataset: DetectionDataset,
    timesteps: list[int],
    imgsz: int,
    batch: int,
    data: str | Path,
    class_names: list[str],
    calib_images: int | None = None,
) -> tuple[dict[int, dict], dict[int, Any], SpikingNetwork, SpikeMonitor, dict[str, Any] | None]:
    """Metrics per T, detections per T, the network to save (calibrated for max T), its monitor, and a
    calibration summary (None without calibration). A calibrating recipe is calibrated for each T separately."""
    if not recipe.calibration:
        network = build_snn(ann, recipe)
        metrics, dets, monitor = evaluate_snn(network, dataset, timesteps, imgsz, batch)
        summary = None
    else:
        metrics, dets, network, monitor, summary = _calibrate_and_evaluate(
            ann, recipe, dataset, timesteps, imgsz, batch, data, class_names, calib_images
        )
    _add_pipeline_latency(network, metrics, dataset, imgsz)
    return metrics, dets, network, monitor, summary


def _calibrate_and_evaluate(
    ann: nn.Module,
    recipe: Recipe,
    dataset: DetectionDataset,
    timesteps: list[int],
    imgsz: int,
    batch: int,
    data: str | Path,
    class_names: list[str],
    calib_images: int | None,
) -> tuple[dict[int, dict], dict[int, Any], SpikingNetwork, SpikeMonitor, dict[str, Any]]:
    """A calibrating recipe: calibrate a fresh network for each T on training images, then evaluate it."""
    count = calib_images or int(calibration_settings(recipe.calibration).get("images", 32))
    images = calibration_images(data, count, imgsz, class_names)
    metrics, dets, summary = {}, {}, {"images": len(images), "per_T": {}}
    for t in sorted(timesteps):
        network = build_snn(ann, recipe)
        report = calibrate_with_recipe(network, ann, images, t, calibration=recipe.calibration)
        print(f"T={t}: {report.summary()}")
        m, d, monitor = evaluate_snn(network, dataset, [t], imgsz, batch)
        m[t]["calibration_seconds"] = report.seconds
        metrics.update(m)
        dets.update(d)
        summary["per_T"][str(t)] = {"seconds": report.seconds, "layers": report.layers}
    return metrics, dets, network, monitor, summary
