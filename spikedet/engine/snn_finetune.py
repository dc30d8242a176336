"""Spike-aware fine-tuning: a converted online detector trained end to end as a spiking network.

The job behind ``tools/finetune_snn.py``. It starts from a spiking checkpoint (or converts an ANN checkpoint
with a recipe that needs no data), trains weights, biases and thresholds through the T-step simulation with a
surrogate gradient on the detection loss of every T in ``timesteps`` at once, and writes an ordinary spiking
checkpoint: the same recipe, so every tool takes it unchanged. YOLO trains through ultralytics' trainer
(:mod:`.yolo_finetune`), SSD through spikedet's SSD loop (:mod:`.ssd_finetune`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..checkpoint import load_checkpoint, save_checkpoint
from ..data import default_splits, export_ultralytics, load_dataset
from ..recipes import data_free_recipe
from ..spiking.runtime import check_timesteps
from ..spiking.surrogate import SURROGATES
from ..spiking.trainable import check_trainable
from ..validate import check_count, check_imgsz, check_output_dir
from .evaluate import check_classes
from .loading import load_model, source_ann
from .recipe_run import build_snn
from .train import dataset_spec

__all__ = ["FINETUNE_DEFAULTS", "finetune_snn", "prepare_snn"]

# The recommended settings (README, "Spike-aware fine-tuning"); each is a keyword of finetune_snn.
FINETUNE_DEFAULTS: dict[str, Any] = {
    "timesteps": (1, 2, 4), "epochs": 10, "batch": 8, "surrogate": "triangle", "distill": 0.0, "layer_distill": 0.0,
}


def prepare_snn(weights: str | Path, *, method: str, out: Path) -> Path:
    """The spiking checkpoint to fine-tune: ``weights`` itself when it is one, else the ANN converted with
    ``method`` (which must need no calibration data) and saved under ``out``."""
    _, _, kind = load_checkpoint(weights)
    if kind == "snn":
        return Path(weights)
    recipe = data_free_recipe(method)
    loaded = load_model(weights, expect="ann")
    network, config = build_snn(loaded.model, recipe), loaded.config
    check_trainable(network.net)
    path = out / f"snn_{method}.pt"
    save_checkpoint(path, network.net, "snn", dict(config, recipe=recipe.to_dict(), ann_weights=str(Path(weights).resolve())))
    return path


def _teacher(config: dict[str, Any], teacher: str | Path | None, snn: Path) -> Path:
    """The ANN checkpoint to distil from, checked: it must detect the spiking network's classes."""
    teacher = teacher or source_ann(config, snn)
    if not teacher:
        raise ValueError("distillation needs the ANN: the spiking checkpoint does not name it, pass --teacher ANN.pt")
    ann_config, _, _ = load_checkpoint(teacher, kind="ann")
    if ann_config.get("class_names") != config.get("class_names"):
        raise ValueError(f"--teacher {teacher} detects {ann_config.get('class_names')}, not {config.get('class_names')}")
    return Path(teacher)


def finetune_snn(
    weights: str | Path,
    *,
    data: str | Path | None = None,
    out: str | Path = "runs/finetune",
    method: str = "qcfs",
    timesteps: list[int] = FINETUNE_DEFAULTS["timesteps"],
    epochs: int = FINETUNE_DEFAULTS["epochs"],
    imgsz: int | None = None,
    batch: int = FINETUNE_DEFAULTS["batch"],
    device: str = "cpu",
    train_thresholds: bool = True,
    train_v0: bool = False,
    surrogate: str = FINETUNE_DEFAULTS["surrogate"],
    distill: float = FINETUNE_DEFAULTS["distill"],
    layer_distill: float = FINETUNE_DEFAULTS["layer_distill"],
    teacher: str | Path | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Fine-tune a spiking detector on ``data`` (default: the data it was trained on); return the checkpoint.

    ``weights``: a spiking checkpoint of an online IF recipe (qcfs, dual_phase), or an ANN checkpoint converted
    here with ``method``. ``timesteps``: the T whose read-outs the loss averages (one simulation to the largest).
    ``distill`` / ``layer_distill``: weights of the distillation terms towards the ANN's read-outs / each neuron
    layer's activation; ``teacher`` is that ANN's checkpoint
    (default: the one the spiking checkpoint was converted from). ``extra``: trainer settings (ultralytics train arguments for YOLO; lr0, weight_decay, workers for SSD).
    The checkpoint is ``out/<source name>_ft.pt``.
    """
    timesteps = sorted(set(check_timesteps(list(timesteps))))
    check_count(epochs, name="--epochs")
    check_count(batch, name="--batch")
    check_imgsz(imgsz)
    for value, name in ((distill, "--distill"), (layer_distill, "--layer-distill")):
        if not 0 <= value < float("inf"):  # NaN fails too
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    check_output_dir(out)
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate '{surrogate}'; choose from {', '.join(SURROGATES)}")
    out = Path(out)
    snn = prepare_snn(weights, method=method, out=out)
    config, _, _ = load_checkpoint(snn, kind="snn")
    teacher = _teacher(config, teacher, snn) if distill > 0 or layer_distill > 0 else None
    data = data or config.get("dataset") or "synthetic"
    imgsz = imgsz or config.get("imgsz", 320)
    train_split, val_split = default_splits(data)
    train = load_dataset(data, train_split, class_names=config.get("class_names"))
    val = load_dataset(data, val_split, class_names=config.get("class_names"))
    check_classes(train, config)
    out.mkdir(parents=True, exist_ok=True)  # only now: a refused checkpoint or dataset leaves no folder behind
    print(train.summary())
    print(val.summary())
    meta = {
        "source": str(Path(snn).resolve()), "dataset": dataset_spec(data), "train_split": train_split,
        "timesteps": timesteps, "epochs": epochs, "imgsz": imgsz, "batch": batch, "train_thresholds": train_thresholds,
        "train_v0": train_v0, "surrogate": surrogate, "distill": distill, "layer_distill": layer_distill,
        "teacher": str(teacher) if teacher else None, "extra": extra or {},
    }
    path = out / f"{Path(snn).stem}_ft.pt"
    start = time.perf_counter()
    family = config.get("family", "yolo")
    if family == "yolo":
        from ..models.yolo_train import report_ultralytics_skips
        from .yolo_finetune import export_finetuned, finetune_yolo_snn  # pulls in ultralytics' trainer

        data_yaml = export_ultralytics(train, val)
        _, trainer = finetune_yolo_snn(
            snn, data_yaml, out, timesteps=timesteps, epochs=epochs, imgsz=imgsz, batch=batch,
            device=device, train_thresholds=train_thresholds, train_v0=train_v0, surrogate=surrogate,
            distill=distill, layer_distill=layer_distill, teacher=teacher, extra=extra,
        )
        report_ultralytics_skips(trainer, data_yaml)
        meta["seconds"] = round(time.perf_counter() - start, 1)
        return export_finetuned(trainer, path, source=snn, meta=meta)
    if family == "ssd":
        from .ssd_finetune import finetune_ssd_snn

        return finetune_ssd_snn(
            snn, train, val, path, timesteps=timesteps, epochs=epochs, imgsz=imgsz, batch=batch, device=device,
            train_thresholds=train_thresholds, train_v0=train_v0, surrogate=surrogate, distill=distill,
            layer_distill=layer_distill, teacher=teacher, extra=extra, meta=meta,
        )
    raise ValueError(f"spike-aware fine-tuning supports the yolo and ssd families, not '{family}'")
