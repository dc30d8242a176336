"""Load detectors from checkpoints and evaluate them (ANN, and SNN at several T from one simulation)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import CheckpointError, load_checkpoint
from ..data import default_splits, load_dataset
from ..data.records import DatasetError, DetectionDataset
from ..eval.coco import evaluate_coco
from ..eval.detections import ImageDetections
from ..eval.voc import evaluate_voc
from ..models.family import family_of, get_family
from ..recipes import Recipe
from ..resources import shipped
from ..spiking.accounting import SpikeMonitor
from ..spiking.neuron import SpikingNeuron
from ..spiking.precision import to_precision
from ..spiking.runtime import SpikingNetwork, check_timesteps
from .inference import predict_dataset

__all__ = [
    "DEFAULT_WEIGHTS", "DEFAULT_SNN", "load_ann", "load_snn", "load_detector", "source_ann", "check_classes", "eval_dataset", "evaluate_ann",
    "evaluate_snn",
]

DEFAULT_WEIGHTS = shipped("weights/yolov8n_qcfs_l4_synthetic.pt")
# What `make run` shows: the recommended online recipe, qcfs + spike-aware fine-tuning, of the default model.
DEFAULT_SNN = shipped("weights/yolov8n_qcfs_l4_synthetic_ft.pt")


def _rebuild(weights: str | Path, config: dict) -> nn.Module:
    """The untrained module a checkpoint config describes; a config that builds nothing is a CheckpointError."""
    try:
        return get_family(config.get("family", "yolo")).from_config(config)
    except Exception as err:  # noqa: BLE001  (model builders fail in many ways on a damaged config)
        raise CheckpointError(f"{weights}: its config does not describe a buildable model ({_reason(err)})") from None


def _load_weights(weights: str | Path, module: nn.Module, state: dict) -> None:
    """``module.load_state_dict(state)``; missing, extra or mis-shaped tensors are one CheckpointError line."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise CheckpointError(f"{weights}: weights do not fit the model its config describes ({first})") from None


def _reason(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no detail'}"


def load_ann(weights: str | Path) -> tuple[nn.Module, dict]:
    """A quantized (or SiLU) ANN and its config from a spikedet ANN checkpoint."""
    config, state, _ = load_checkpoint(weights, kind="ann")
    model = _rebuild(weights, config)
    _load_weights(weights, model, state)
    return model.eval(), config


def build_snn(ann: nn.Module, recipe: Recipe) -> SpikingNetwork:
    """Convert a quantized ANN of any detector family with ``recipe``."""
    family = family_of(ann)
    return recipe.build(ann, family.readouts(ann), family.analog(ann))


def load_snn(weights: str | Path) -> tuple[SpikingNetwork, dict]:
    """A spiking network and its config from a spikedet SNN checkpoint."""
    config, state, _ = load_checkpoint(weights, kind="snn")
    ann = _rebuild(weights, config).eval()
    try:
        network = build_snn(ann, Recipe.from_dict(config["recipe"]))
    except Exception as err:  # noqa: BLE001  (a damaged recipe fails inside the converter in many ways)
        raise CheckpointError(f"{weights}: its conversion recipe cannot be applied ({_reason(err)})") from None
    for name, module in network.net.named_modules():
        stored = state.get(f"{name}.v0")
        if isinstance(module, SpikingNeuron) and stored is not None:
            module.v0 = stored.clone()  # calibrated potentials may be per channel
    _load_weights(weights, network.net, state)
    return network, config


def source_ann(config: dict, snn_path: str | Path) -> Path | None:
    """The ANN checkpoint a spiking checkpoint was converted from (``ann_weights`` in its config), or None.

    The stored path is absolute on the machine that converted it; a copy of the ANN beside the spiking
    checkpoint (shipped weights move together) is found by its file name."""
    stored = config.get("ann_weights")
    if not stored:
        return None
    # the copy beside the spiking checkpoint first: shipped weights move together, and the stored absolute path
    # may name another checkout's file
    for candidate in (Path(snn_path).parent / Path(stored).name, Path(stored)):
        if candidate.is_file():
            return candidate
    return None


def load_detector(weights: str | Path) -> tuple[str, Any, dict]:
    """``("ann", model, config)`` or ``("snn", network, config)``, whichever the checkpoint holds."""
    _, _, kind = load_checkpoint(weights)
    return (kind, *(load_ann(weights) if kind == "ann" else load_snn(weights)))


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
    model: nn.Module, dataset: DetectionDataset, imgsz: int, batch: int = 8, *, precision: str = "fp32"
) -> tuple[dict, list[ImageDetections]]:
    """pycocotools (and VOC) metrics of an ANN, with its MACs and energy per image. ``precision``: see
    :func:`~spikedet.spiking.precision.to_precision` (``auto`` resolved by the caller)."""
    family = family_of(model)
    if precision != "fp32":  # fp32 leaves the model as it is
        model, _ = to_precision(model, precision, readouts=family.readouts(model))
    start = time.perf_counter()
    postprocess = family.postprocess
    dets = predict_dataset(lambda x: {"ann": model(x)}, dataset, imgsz, batch, desc="ANN", postprocess=postprocess)["ann"]
    metrics = _metrics(dataset, dets)
    metrics["seconds"] = time.perf_counter() - start
    return metrics, dets


def evaluate_snn(
    network: SpikingNetwork,
    dataset: DetectionDataset,
    timesteps: list[int],
    imgsz: int,
    batch: int = 8,
    anytime: bool | None = None,
    *,
    precision: str = "fp32",
) -> tuple[dict[int, dict], dict[int, list[ImageDetections]], SpikeMonitor]:
    """Metrics at every T, with firing rate, SOPs and energy per image.

    ``anytime``: one simulation to max(T) serves every T; otherwise each T is simulated on its own. Default:
    anytime unless the network holds neurons that restart from each run's whole input (PASCAL, COS), whose
    read-out after t steps of a longer run is not their output at T = t.
    ``precision``: see :func:`~spikedet.spiking.precision.to_precision` (``auto`` resolved by the caller).
    Returns the metrics, the detections per T and the monitor of the last simulation.
    """
    timesteps = sorted(set(check_timesteps(timesteps)))
    network, _ = to_precision(network, precision)
    if anytime is None:
        anytime = not network.restarting_neurons()
    groups = [timesteps] if anytime else [[t] for t in timesteps]
    results: dict[int, dict] = {}
    dets: dict[int, list[ImageDetections]] = {}
    for group in groups:
        monitor = SpikeMonitor(network)
        start = time.perf_counter()
        try:
            dets.update(predict_dataset(
                lambda x: network.anytime(x, group, record=True), dataset, imgsz, batch, desc=f"SNN T={group}",
                postprocess=family_of(network).postprocess,
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
