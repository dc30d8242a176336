"""The accuracy benchmark of the spiking YOLO: SiLU ANN, QCFS ANN and its SNN on one dataset split."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..data import default_splits, export_ultralytics, load_dataset
from ..models.yolo_validate import validate_ultralytics
from ..recipes import get_recipe, override_recipe
from ..eval.plots import plot_methods
from .evaluate import check_classes, eval_dataset, evaluate_ann, evaluate_snn
from .loading import load_model
from .recipe_run import run_recipe

__all__ = [
    "benchmark_methods", "benchmark_yolo", "format_benchmark", "format_methods", "plot_methods_png", "write_json",
]


def benchmark_yolo(
    qcfs_weights: str | Path,
    data: str | Path | None = None,
    silu_weights: str | Path | None = None,
    method: str = "qcfs",
    timesteps: list[int] = (1, 2, 4, 8),
    imgsz: int | None = None,
    batch: int = 8,
) -> dict[str, Any]:
    """pycocotools mAP of each model, the ultralytics-validator mAP of the ANNs, SNN energy and timing."""
    loaded = load_model(qcfs_weights, expect="ann")
    qcfs, config = loaded.model, loaded.config
    dataset, data = eval_dataset(config, data)
    imgsz = imgsz or config.get("imgsz", 320)
    # the validator reads an ultralytics dataset; only its val split is used here
    train = load_dataset(data, default_splits(data)[0], class_names=config["class_names"])
    data_yaml = export_ultralytics(train, dataset)
    rows: dict[str, Any] = {"dataset": f"{data}:{dataset.split}", "imgsz": imgsz, "method": method, "models": {}}

    models = [("QCFS ANN", qcfs_weights)] + ([("SiLU ANN", silu_weights)] if silu_weights else [])
    for name, weights in models:
        model = load_model(weights, expect="ann").model
        metrics, _ = evaluate_ann(model, dataset, imgsz, batch)
        metrics.pop("coco_lines")
        metrics["ultralytics"] = validate_ultralytics(model, data_yaml, imgsz, batch)
        rows["models"][name] = metrics

    start = time.perf_counter()
    snn, _, _, _, _ = run_recipe(qcfs, get_recipe(method), dataset, list(timesteps), imgsz, batch, data, config["class_names"])
    rows["snn_seconds"] = time.perf_counter() - start
    rows["models"]["QCFS ANN"]["energy_mj"] = snn[min(snn)]["ann_energy_mj"]
    rows["snn"] = {str(t): {k: v for k, v in m.items() if k not in ("coco_lines", "ann_energy_mj")} for t, m in snn.items()}
    return rows


def format_benchmark(rows: dict[str, Any]) -> str:
    """Markdown table: one row per ANN and per SNN time step."""
    lines = [
        f"Dataset `{rows['dataset']}`, {rows['imgsz']} px, method `{rows['method']}`; mAP in points (pycocotools).",
        "",
        "| model | T | steps | mAP50-95 | mAP50 | ultralytics mAP50-95 / mAP50 | firing rate | SOPs (M) | energy (mJ) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in rows["models"].items():
        ul = m["ultralytics"]
        energy = f"{m['energy_mj']:.3f}" if "energy_mj" in m else "-"
        lines.append(
            f"| {name} | - | - | {100 * m['map50_95']:.2f} | {100 * m['map50']:.2f} | "
            f"{100 * ul['map50_95']:.2f} / {100 * ul['map50']:.2f} | - | - | {energy} |"
        )
    for t, m in rows["snn"].items():
        lines.append(
            f"| SNN ({rows['method']}) | {t} | {m['steps_total']} | {100 * m['map50_95']:.2f} | {100 * m['map50']:.2f} | - | "
            f"{m['firing_rate']:.4f} | {m['sops'] / 1e6:.1f} | {m['energy_mj']:.3f} |"
        )
    return "\n".join(lines)


def write_json(rows: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2))
    return path


def benchmark_methods(
    weights: str | Path,
    methods: list[str],
    data: str | Path | None = None,
    timesteps: list[int] = (1, 2, 4, 8),
    imgsz: int | None = None,
    batch: int = 8,
    calib_images: int | None = None,
    max_images: int | None = None,
    method_weights: dict[str, str | Path] | None = None,
    method_timesteps: dict[str, list[int]] | None = None,
    method_settings: dict[str, dict[str, str]] | None = None,
    snn_weights: dict[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Recipes on their ANNs: per recipe and T the metrics, steps_total, firing rate, SOPs, energy and time.

    Every recipe converts ``weights`` unless ``method_weights`` names the ANN trained for it (CASC's ClipQuan,
    Dual-Phase's Phase I, Fast-SNN's 2^b − 1 levels, PASCAL's layer-wise levels); ``method_timesteps`` gives a
    recipe its own T list (Fast-SNN's T = 2^b − 1) and ``method_settings`` changes its YAML knobs. Each ANN is
    evaluated once and reported beside its SNNs. ``snn_weights`` adds rows for spiking checkpoints evaluated as
    stored (a fine-tuned network, ``{"qcfs+ft": "snn_qcfs_ft.pt"}``), beside the ANN they were converted from.
    """
    method_weights = {k: str(v) for k, v in (method_weights or {}).items()}
    recipes = {m: override_recipe(get_recipe(m), (method_settings or {}).get(m, {})) for m in methods}
    unknown = (set(method_weights) | set(method_timesteps or {}) | set(method_settings or {})) - set(methods)
    if unknown:
        raise ValueError(f"settings given for {sorted(unknown)}, which are not among the methods {methods}")
    loaded = load_model(weights, expect="ann")
    base, config = loaded.model, loaded.config
    dataset, data = eval_dataset(config, data, max_images=max_images)
    imgsz = imgsz or config.get("imgsz", 320)
    anns: dict[str, tuple[Any, dict, dict]] = {}

    def ann_for(path: str) -> tuple[Any, dict, dict]:
        if path not in anns:
            other = None if path == str(weights) else load_model(path, expect="ann")
            model, cfg = (base, config) if other is None else (other.model, other.config)
            check_classes(dataset, cfg)
            metrics, _ = evaluate_ann(model, dataset, imgsz, batch)
            metrics.pop("coco_lines")
            anns[path] = (model, cfg, metrics)
        return anns[path]

    rows: dict[str, Any] = {"dataset": f"{data}:{dataset.split}", "weights": str(weights), "imgsz": imgsz, "methods": {}}
    rows["ann"] = ann_for(str(weights))[2]
    for method in methods:
        path = method_weights.get(method, str(weights))
        ann, cfg, ann_metrics = ann_for(path)
        start = time.perf_counter()
        steps = list((method_timesteps or {}).get(method, timesteps))
        metrics, _, _, _, _ = run_recipe(ann, recipes[method], dataset, steps, imgsz, batch, data, cfg["class_names"], calib_images)
        seconds = time.perf_counter() - start
        ann_metrics.setdefault("energy_mj", metrics[min(metrics)]["ann_energy_mj"])
        rows["methods"][method] = {
            "weights": path,
            "recipe": recipes[method].to_dict(),
            "ann": ann_metrics,
            "seconds": seconds,
            "snn": {str(t): {k: v for k, v in m.items() if k not in ("coco_lines", "ann_energy_mj")} for t, m in metrics.items()},
        }
    for name, path in (snn_weights or {}).items():
        snn = load_model(path, expect="snn")
        check_classes(dataset, snn.config)
        source = snn.ann_path
        # the same ANN as --weights is named as --weights is, so the table lists it once
        ann_path = str(weights) if source is None or source.resolve() == Path(weights).resolve() else str(source)
        ann_metrics = ann_for(ann_path)[2]
        start = time.perf_counter()
        metrics, _, _ = evaluate_snn(snn.network, dataset, timesteps, imgsz, batch)
        rows["methods"][name] = {
            "weights": ann_path, "snn_weights": str(path), "recipe": snn.recipe.to_dict(),
            "ann": ann_metrics, "seconds": time.perf_counter() - start,
            "snn": {str(t): {k: v for k, v in m.items() if k not in ("coco_lines", "ann_energy_mj")} for t, m in metrics.items()},
        }
    return rows


def format_methods(rows: dict[str, Any]) -> str:
    """Markdown table: one row per recipe and T, with the mAP of the ANN it came from on each row.

    ``pipeline`` is the steps to the first complete output: ``steps_total`` for online recipes, the
    layer-sequential pipeline for PASCAL (:func:`spikedet.spiking.latency.pipeline_steps`)."""
    ann = rows["ann"]
    lines = [
        f"Dataset `{rows['dataset']}`, {rows['imgsz']} px; mAP in points (pycocotools). "
        f"ANN `{rows['weights']}`: mAP50-95 {100 * ann['map50_95']:.2f}, mAP50 {100 * ann['map50']:.2f}.",
    ]
    others = {entry["weights"] for entry in rows["methods"].values()} - {rows["weights"]}
    for path in sorted(others):
        users = [m for m, entry in rows["methods"].items() if entry["weights"] == path]
        other = rows["methods"][users[0]]["ann"]
        lines.append(
            f"ANN `{path}` (for {', '.join(users)}): mAP50-95 {100 * other['map50_95']:.2f}, mAP50 {100 * other['map50']:.2f}."
        )
    lines += [
        "",
        "| method | T | steps_total | pipeline | mAP50-95 | mAP50 | ANN mAP50-95 | firing rate | SOPs (M) | energy (mJ) | calib. (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, entry in rows["methods"].items():
        for t, m in entry["snn"].items():
            calib = f"{m['calibration_seconds']:.1f}" if "calibration_seconds" in m else "-"
            lines.append(
                f"| {method} | {t} | {m['steps_total']} | {m.get('pipeline_steps', m['steps_total'])} | "
                f"{100 * m['map50_95']:.2f} | {100 * m['map50']:.2f} | {100 * entry['ann']['map50_95']:.2f} | {m['firing_rate']:.4f} | {m['sops'] / 1e6:.1f} | {m['energy_mj']:.3f} | {calib} |"
            )
    return "\n".join(lines)


def plot_methods_png(rows: dict[str, Any], path: str | Path, *, x: str = "T") -> Path:
    """All recipes' mAP50-95 vs T (or vs ``steps_total``) in one PNG (each with the ANN as a dashed line)."""
    by_method = {
        method: {"dataset": rows["dataset"], "method": method, "ann": entry["ann"], "snn": entry["snn"]}
        for method, entry in rows["methods"].items()
    }
    return plot_methods(by_method, path, x=x)
