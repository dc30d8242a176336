"""The job behind ``tools/eval_coco.py``: pycocotools evaluation of an ANN or spiking checkpoint."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..eval.coco import save_coco_results
from ..recipes import data_free_recipe
from ..spiking.hardware import resolve_precision
from ..spiking.precision import check_concrete_precision
from ..spiking.runtime import check_timesteps
from ..validate import check_count, check_device, check_imgsz, check_output_dir
from .evaluate import eval_dataset, evaluate_ann, evaluate_snn
from .loading import DEFAULT_WEIGHTS, LoadedAnn, load_model
from .recipe_run import build_snn

__all__ = ["evaluate_checkpoint"]


def evaluate_checkpoint(
    weights: str | Path | None = None,
    data: str | Path | None = None,
    timesteps: list[int] = (4,),
    out: str | Path = "runs/eval",
    method: str = "qcfs",
    split: str | None = None,
    imgsz: int | None = None,
    batch: int = 8,
    max_images: int | None = None,
    with_ann: bool = True,
    *,
    precision: str = "fp32",
    device: str = "cpu",
) -> dict[str, Any]:
    """Evaluate with pycocotools; write COCO-format detections per model and a summary JSON.

    An SNN checkpoint is simulated as stored; an ANN checkpoint is evaluated as is and, converted with
    ``method``, as an SNN at each T. Detections carry the dataset's real category ids. ``precision``
    (``fp32``, ``bf16``, ``fp16`` or ``int8``; resolve ``auto`` first) applies to the ANN and the SNN alike, both
    run on ``device`` (``cpu``, ``cuda``, ``cuda:N``).
    """
    device = check_device(device)
    # a precision the device cannot run (int8 on CUDA) is refused here, before the data is read
    resolve_precision(check_concrete_precision(precision, name="--precision"), device=device)
    timesteps = sorted(set(check_timesteps(list(timesteps))))
    check_imgsz(imgsz)
    check_count(batch, name="--batch")
    check_count(max_images, name="--max-images", optional=True)
    check_output_dir(out, name="--json's folder")
    weights = Path(weights) if weights else DEFAULT_WEIGHTS
    loaded = load_model(weights)
    config = loaded.config
    if isinstance(loaded, LoadedAnn):  # the recipe is checked before the dataset is read
        recipe = data_free_recipe(method)
    dataset, data = eval_dataset(config, data, split, max_images)
    imgsz = imgsz or config.get("imgsz", 320)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    summary: dict[str, Any] = {
        "dataset": f"{data}:{dataset.split}", "weights": str(weights), "imgsz": imgsz, "images": len(dataset),
        "precision": precision, "device": device,
    }
    lines: dict[str, list[str]] = {}
    if isinstance(loaded, LoadedAnn):
        model = loaded.model
        network = build_snn(model, recipe)
        summary["method"] = method
        if with_ann:
            metrics, dets = evaluate_ann(model, dataset, imgsz, batch, precision=precision, device=device)
            save_coco_results(dets, dataset.category_ids, out / "detections_ann.json")
            lines["ANN"] = metrics.pop("coco_lines")
            summary["ann"] = metrics
    else:
        network = loaded.network
        summary["method"] = loaded.recipe.name
    snn, dets_by_t, _ = evaluate_snn(network, dataset, timesteps, imgsz, batch, precision=precision, device=device)
    summary["snn"] = {}
    for t, metrics in snn.items():
        save_coco_results(dets_by_t[t], dataset.category_ids, out / f"detections_snn_T{t}.json")
        lines[f"SNN T={t}"] = metrics.pop("coco_lines")
        ann_energy = metrics.pop("ann_energy_mj")
        if "ann" in summary:
            summary["ann"]["energy_mj"] = ann_energy
        summary["snn"][str(t)] = metrics
    summary["coco_lines"] = lines
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
