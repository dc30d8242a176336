"""The conversion job behind ``tools/convert_det.py``: ANN checkpoint → spiking detector, evaluated at every T."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..checkpoint import load_checkpoint, save_checkpoint
from ..eval.plots import plot_map_vs_timesteps
from ..recipes import get_recipe, override_recipe
from ..spiking.runtime import check_timesteps
from ..validate import check_count, check_imgsz, check_output_dir
from .evaluate import eval_dataset, evaluate_ann, evaluate_snn
from .loading import DEFAULT_SNN, DEFAULT_WEIGHTS, load_model
from .recipe_run import run_recipe

__all__ = ["convert_detector", "format_table"]


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "coco_lines"}


def convert_detector(
    weights: str | Path | None = None,
    *,
    data: str | Path | None = None,
    method: str | None = None,
    timesteps: list[int] = (1, 2, 4, 8),
    out: str | Path = "runs/convert",
    imgsz: int | None = None,
    batch: int = 8,
    split: str | None = None,
    max_images: int | None = None,
    calib_images: int | None = None,
    recipe_settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Convert, evaluate ANN and SNN (one simulation for all T), write checkpoint, results.json and plot.

    Defaults: with no ``weights`` and no ``method``, the shipped spiking YOLOv8n of the synthetic set (qcfs +
    spike-aware fine-tuning, the recommended online recipe) beside its ANN; with a ``method``, the shipped
    YOLOv8n-QCFS converted with it. Evaluated on the dataset the model was trained on (its eval split). ``calib_images`` overrides the number of training images a calibrating recipe
    (dual_phase) uses; ``recipe_settings`` changes recipe knobs (:func:`~spikedet.recipes.override_recipe`).
    Returns the results dict (schema in the README).
    """
    timesteps = sorted(set(check_timesteps(list(timesteps))))
    check_imgsz(imgsz)
    check_count(batch, name="--batch")
    check_count(max_images, name="--max-images", optional=True)
    check_count(calib_images, name="--calib-images", optional=True)
    check_output_dir(out)
    converting = method is not None or recipe_settings or calib_images is not None
    weights = Path(weights) if weights else (DEFAULT_WEIGHTS if converting else DEFAULT_SNN)
    if load_checkpoint(weights)[2] == "snn":
        if method is not None or recipe_settings or calib_images is not None:
            raise ValueError(f"{weights} is already spiking: --method, --set and --calib-images apply to ANN checkpoints")
        return _evaluate_spiking(weights, data=data, timesteps=timesteps, out=Path(out), imgsz=imgsz, batch=batch,
                                 split=split, max_images=max_images)
    method = method or "qcfs"
    recipe = override_recipe(get_recipe(method), recipe_settings or {})  # a bad --set fails before any work
    loaded = load_model(weights, expect="ann")
    ann, config = loaded.model, loaded.config
    dataset, data = eval_dataset(config, data, split, max_images)
    print(dataset.summary())
    imgsz = imgsz or config.get("imgsz", 320)

    ann_metrics, _ = evaluate_ann(ann, dataset, imgsz, batch)
    snn_metrics, _, network, monitor, calibration = run_recipe(
        ann, recipe, dataset, timesteps, imgsz, batch, data, config["class_names"], calib_images
    )
    ann_metrics["energy_mj"] = snn_metrics[timesteps[0]]["ann_energy_mj"]

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "dataset": f"{data}:{dataset.split}",
        "method": method,
        "weights": str(weights),
        "imgsz": imgsz,
        "images": len(dataset),
        "ann": _summary(ann_metrics),
        "snn": {str(t): _summary({k: v for k, v in m.items() if k != "ann_energy_mj"}) for t, m in snn_metrics.items()},
    }
    if calibration is not None:
        (out / "calibration.json").write_text(json.dumps(calibration, indent=2))
    (out / "energy.json").write_text(monitor.to_json(network.schedule.simulated_steps(timesteps[-1])))
    snn_config = dict(config, recipe=recipe.to_dict(), timesteps=timesteps, ann_weights=str(weights.resolve()))
    results["checkpoint"] = str(save_checkpoint(out / f"snn_{method}.pt", network.net, "snn", snn_config))
    plot_map_vs_timesteps(results, out / "map_vs_T.png")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _evaluate_spiking(
    weights: Path, *, data: str | Path | None, timesteps: list[int], out: Path, imgsz: int | None, batch: int,
    split: str | None, max_images: int | None,
) -> dict[str, Any]:
    """A spiking checkpoint (a fine-tuned network, say) evaluated as stored, beside the ANN it came from."""
    snn = load_model(weights, expect="snn")
    network, config, ann_path = snn.network, snn.config, snn.ann_path
    if ann_path is None:
        raise ValueError(
            f"{weights} does not name the ANN it was converted from (or that file is gone): evaluate it alone "
            "with tools/eval_coco.py"
        )
    ann = load_model(ann_path, expect="ann").model
    dataset, data = eval_dataset(config, data, split, max_images)
    print(dataset.summary())
    imgsz = imgsz or config.get("imgsz", 320)
    method = snn.recipe.name + ("+ft" if config.get("finetune") else "")
    ann_metrics, _ = evaluate_ann(ann, dataset, imgsz, batch)
    snn_metrics, _, monitor = evaluate_snn(network, dataset, timesteps, imgsz, batch)
    ann_metrics["energy_mj"] = snn_metrics[timesteps[0]]["ann_energy_mj"]
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "dataset": f"{data}:{dataset.split}", "method": method, "weights": str(weights), "ann_weights": str(ann_path),
        "imgsz": imgsz, "images": len(dataset), "ann": _summary(ann_metrics),
        "snn": {str(t): _summary({k: v for k, v in m.items() if k != "ann_energy_mj"}) for t, m in snn_metrics.items()},
        "checkpoint": str(weights),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "energy.json").write_text(monitor.to_json(network.schedule.simulated_steps(timesteps[-1])))
    plot_map_vs_timesteps(results, out / "map_vs_T.png")
    return results


def format_table(results: dict[str, Any]) -> str:
    """The results as a text table: the ANN row, then one row per T."""
    head = f"{'model':<14} {'T':>3} {'steps':>5} {'mAP50-95':>9} {'mAP50':>7} {'fire rate':>9} {'SOPs (M)':>9} {'energy mJ':>9}"
    ann = results["ann"]
    rows = [head, f"{'ANN':<14} {'-':>3} {'-':>5} {ann['map50_95']:>9.4f} {ann['map50']:>7.4f} {'-':>9} {'-':>9} {ann['energy_mj']:>9.4f}"]
    for t, m in results["snn"].items():
        rows.append(
            f"{'SNN ' + results['method']:<14} {t:>3} {m['steps_total']:>5} {m['map50_95']:>9.4f} {m['map50']:>7.4f} "
            f"{m['firing_rate']:>9.4f} {m['sops'] / 1e6:>9.1f} {m['energy_mj']:>9.4f}"
        )
    return "\n".join(rows)
