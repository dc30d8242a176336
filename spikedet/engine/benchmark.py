"""The accuracy benchmark of the spiking YOLO: SiLU ANN, QCFS ANN and its SNN on one dataset split."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..data import default_splits, export_ultralytics, load_dataset
from ..models.yolo_validate import validate_ultralytics
from ..recipes import get_recipe
from ..eval.plots import plot_methods
from .evaluate import eval_dataset, evaluate_ann, load_ann
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
    qcfs, config = load_ann(qcfs_weights)
    dataset, data = eval_dataset(config, data)
    imgsz = imgsz or config.get("imgsz", 320)
    # the validator reads an ultralytics dataset; only its val split is used here
    train = load_dataset(data, default_splits(data)[0], class_names=config["class_names"])
    data_yaml = export_ultralytics(train, dataset)
    rows: dict[str, Any] = {"dataset": f"{data}:{dataset.split}", "imgsz": imgsz, "method": method, "models": {}}

    models = [("QCFS ANN", qcfs_weights)] + ([("SiLU ANN", silu_weights)] if silu_weights else [])
    for name, weights in models:
        model, _ = load_ann(weights)
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
) -> dict[str, Any]:
    """Every recipe on one ANN: per recipe and T the metrics, steps_total, firing rate, SOPs, energy and time."""
    ann, config = load_ann(weights)
    dataset, data = eval_dataset(config, data, max_images=max_images)
    imgsz = imgsz or config.get("imgsz", 320)
    ann_metrics, _ = evaluate_ann(ann, dataset, imgsz, batch)
    ann_metrics.pop("coco_lines")
    rows: dict[str, Any] = {"dataset": f"{data}:{dataset.split}", "weights": str(weights), "imgsz": imgsz, "ann": ann_metrics, "methods": {}}
    for method in methods:
        start = time.perf_counter()
        metrics, _, _, _, _ = run_recipe(
            ann, get_recipe(method), dataset, list(timesteps), imgsz, batch, data, config["class_names"], calib_images
        )
        seconds = time.perf_counter() - start
        rows["ann"].setdefault("energy_mj", metrics[min(metrics)]["ann_energy_mj"])
        rows["methods"][method] = {
            "seconds": seconds,
            "snn": {str(t): {k: v for k, v in m.items() if k not in ("coco_lines", "ann_energy_mj")} for t, m in metrics.items()},
        }
    return rows


def format_methods(rows: dict[str, Any]) -> str:
    """Markdown table: one row per recipe and T, with the ANN's mAP on each row."""
    ann = rows["ann"]
    lines = [
        f"Dataset `{rows['dataset']}`, {rows['imgsz']} px; mAP in points (pycocotools). "
        f"ANN: mAP50-95 {100 * ann['map50_95']:.2f}, mAP50 {100 * ann['map50']:.2f}, {ann['energy_mj']:.3f} mJ.",
        "",
        "| method | T | steps_total | mAP50-95 | mAP50 | ANN mAP50-95 | firing rate | SOPs (M) | energy (mJ) | calib. (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, entry in rows["methods"].items():
        for t, m in entry["snn"].items():
            calib = f"{m['calibration_seconds']:.1f}" if "calibration_seconds" in m else "-"
            lines.append(
                f"| {method} | {t} | {m['steps_total']} | {100 * m['map50_95']:.2f} | {100 * m['map50']:.2f} | "
                f"{100 * ann['map50_95']:.2f} | {m['firing_rate']:.4f} | {m['sops'] / 1e6:.1f} | {m['energy_mj']:.3f} | {calib} |"
            )
    return "\n".join(lines)


def plot_methods_png(rows: dict[str, Any], path: str | Path) -> Path:
    """All recipes' mAP50-95 vs T in one PNG (each with the ANN as a dashed line)."""
    by_method = {
        method: {"dataset": rows["dataset"], "method": method, "ann": rows["ann"], "snn": entry["snn"]}
        for method, entry in rows["methods"].items()
    }
    return plot_methods(by_method, path)
