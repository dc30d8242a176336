"""Train a detector on any dataset the data layer reads and export it as a spikedet checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import default_splits, export_ultralytics, load_dataset
from ..models.yolo_train import export_trained, train_yolo

__all__ = ["train_detector", "dataset_spec"]


def dataset_spec(data: str | Path) -> str:
    """How a dataset is recorded in a checkpoint: ``synthetic`` or an absolute path."""
    return "synthetic" if str(data) == "synthetic" else str(Path(data).resolve())


def train_detector(
    data: str | Path,
    out: str | Path,
    model: str = "yolov8n",
    activation: str = "qcfs",
    levels: int = 4,
    epochs: int = 30,
    imgsz: int = 320,
    batch: int = 16,
    device: str = "cpu",
    init: str | Path | None = None,
    width: float | None = None,
    depth: float | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Train on ``data``'s train split (validated on its eval split); return the spikedet checkpoint path.

    The checkpoint lands at ``out/<model>_<activation>.pt`` beside ultralytics' run folder ``out/train``.
    """
    train_split, val_split = default_splits(data)
    train = load_dataset(data, train_split)
    val = load_dataset(data, val_split, class_names=train.class_names)
    print(train.summary())
    print(val.summary())
    data_yaml = export_ultralytics(train, val)
    _, trainer = train_yolo(
        data_yaml, out, model=model, activation=activation, levels=levels, epochs=epochs, imgsz=imgsz,
        batch=batch, device=device, init=init, width=width, depth=depth, extra=extra,
    )
    tag = f"{model}_{activation}" + (f"_l{levels}" if activation == "qcfs" else "")
    meta = {
        "dataset": dataset_spec(data), "train_split": train_split, "eval_split": val_split, "imgsz": imgsz,
        "epochs": epochs, "model_name": model, "init": str(init) if init else None,
    }
    return export_trained(trainer, Path(out) / f"{tag}.pt", train.class_names, meta)
