"""Evaluate detectors: an ANN, and a spiking network at several T (one simulation for all of them where its
neurons allow)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from ..data import default_splits, load_dataset
from ..data.records import DatasetError, DetectionDataset
from ..eval.coco import evaluate_coco
from ..eval.detections import ImageDetections
from ..eval.voc import evaluate_voc
from ..models.family import family_of
from ..spiking.accounting import SpikeMonitor
from ..spiking.precision import to_precision
from ..spiking.runtime import SpikingNetwork, check_timesteps
from .inference import predict_dataset

__all__ = ["check_classes", "eval_dataset", "evaluate_ann", "evaluate_snn"]


def check_classes(dataset: DetectionDataset, config: dict) -> None:
    """The dataset's classes must be the model's, in the same order."""
    names = config.get("class_names")
    if names is not None and list(names) != list(dataset.class_names):
        raise DatasetError(
            f"dataset classes {dataset.class_names} differ from the model's {names}; "
            "evaluate on the data the model was trained for, or retrain"
        )


def eval_dataset(
    config: dict, data: str | Path | None = None, split: str | None = None, max_images: int | None = None
) -> tuple[DetectionDataset, str]:
    """The evaluation split of ``data`` (default: the dataset the model was trained on) checked against the
    model's classes, optionally cut to its first ``max_images`` images; returns it with the data spec used."""
    data = data or config.get("dataset") or "synthetic"
    dataset = load_dataset(data, split or default_splits(data)[1], class_names=config.get("class_names"))
    check_classes(dataset, config)
    if max_images:
        dataset.records = dataset.records[:max_images]
    return dataset, str(data)


def _metrics(dataset: DetectionDataset, dets: list[ImageDetections]) -> dict[str, Any]:
    coco = evaluate_coco(dataset, dets)
    out = {"map50_95": coco.map50_95, "map50": coco.map50, "coco_lines": coco.lines}
    if dataset.layout == "voc":
        out["voc_map50"] = evaluate_voc(dataset, dets).map50
    return out


def evaluate_ann(
    model: nn.Module, dataset: DetectionDataset, imgsz: int, batch: int = 8, *, precision: str = "fp32",
    device: str = "cpu",
) -> tuple[dict, list[ImageDetections]]:
    """pycocotools (and VOC) metrics of an ANN, with its MACs and energy per image. ``precision``: see
    :func:`~spikedet.spiking.precision.to_precision` (``auto`` resolved by the caller). ``device``: where it runs
    (the model is moved there)."""
    family = family_of(model)
    model, _ = to_precision(model.to(device), precision, readouts=family.readouts(model))  # fp32: the model itself
    start = time.perf_counter()
    postprocess = family.postprocess
    dets = predict_dataset(lambda x: {"ann": model(x)}, dataset, imgsz, batch, desc="ANN", postprocess=postprocess,
                           device=device)["ann"]
    metrics = _metrics(dataset, dets)
    metrics["seconds"] = time.perf_counter() - start
    return metrics, dets


def evaluate_snn(
    network: SpikingNetwork,
    dataset: DetectionDataset,
    timesteps: list[int],
    imgsz: int,
    batch: int = 8,
    *,
    precision: str = "fp32",
    device: str = "cpu",
) -> tuple[dict[int, dict], dict[int, list[ImageDetections]], SpikeMonitor]:
    """Metrics at every T, with firing rate, SOPs and energy per image.

    The network decides how it is simulated: one simulation to max(T) serves every T, unless it holds neurons
    that restart from each run's whole input (:meth:`SpikingNetwork.restarting_neurons`: PASCAL, COS), whose
    read-out after t steps of a longer run is not their output at T = t; then each T is simulated on its own.
    ``precision``: see :func:`~spikedet.spiking.precision.to_precision` (``auto`` resolved by the caller).
    ``device``: where it runs (the network is moved there); statistics stay on it until the report.
    Returns the metrics, the detections per T and the monitor of the last simulation.
    """
    timesteps = sorted(set(check_timesteps(timesteps)))
    network, _ = to_precision(network.to(device), precision)
    groups = [[t] for t in timesteps] if network.restarting_neurons() else [timesteps]
    results: dict[int, dict] = {}
    dets: dict[int, list[ImageDetections]] = {}
    for group in groups:
        monitor = SpikeMonitor(network)
        start = time.perf_counter()
        try:
            dets.update(predict_dataset(
                lambda x: network.anytime(x, group, record=True), dataset, imgsz, batch, desc=f"SNN T={group}",
                postprocess=family_of(network).postprocess, device=device,
            ))
        finally:
            monitor.close()
        seconds = time.perf_counter() - start
        for t in group:
            report = monitor.report(network.schedule.simulated_steps(t))
            results[t] = {
                **_metrics(dataset, dets[t]),
                "steps_total": network.steps_total(t),
                "firing_rate": report["firing_rate"],
                "sops": report["sops"],
                "energy_mj": report["energy_mj"],
                "ann_energy_mj": report["ann_energy_mj"],
            }
        results[group[-1]]["seconds"] = seconds
    return results, dets, monitor
