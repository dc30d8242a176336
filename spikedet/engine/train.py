"""Train a detector on any dataset the data layer reads and export it as a spikedet checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import default_splits, export_ultralytics, load_dataset
from ..models.family import family_for_model
from ..models.yolo_train import check_train_settings, export_trained, read_init, train_yolo
from ..spiking.quant import TRAINING_ACTIVATIONS
from ..validate import check_count, check_fraction, check_imgsz, check_output_dir, check_positive
from .levels import adaptive_levels, al_choices, format_levels, plot_levels

__all__ = ["ACTIVATIONS", "train_detector", "dataset_spec"]

# Training activations by name: the QCFS presets, and "silu", the full-precision reference (YOLO only).
ACTIVATIONS: dict[str, dict[str, Any] | None] = {**TRAINING_ACTIVATIONS, "silu": None}


def dataset_spec(data: str | Path) -> str:
    """How a dataset is recorded in a checkpoint: ``synthetic`` or an absolute path."""
    return "synthetic" if str(data) == "synthetic" else str(Path(data).resolve())


def _adaptive_levels(spec: str, init: str | Path | None, data: str | Path, out: str | Path) -> list[int]:
    """Per-layer L from the AL metric of the ``init`` model on training images; prints the table, saves a plot."""
    if init is None:
        raise ValueError("--levels al needs --init: the uniform-L QCFS model whose activations choose the levels")
    levels, layers = adaptive_levels(init, data, al_choices(spec))
    print(format_levels(layers, levels))
    print(f"adaptive levels plot: {plot_levels(layers, levels, Path(out) / 'adaptive_levels.png')}")
    return levels


def train_detector(
    data: str | Path,
    *,
    out: str | Path,
    model: str = "yolov8n",
    activation: str = "qcfs",
    levels: int | list[int] | str = 4,
    noise_p: float = 0.0,
    epochs: int = 30,
    imgsz: int = 320,
    batch: int = 16,
    device: str = "cpu",
    init: str | Path | None = None,
    width: float | None = None,
    depth: float | None = None,
    extra: dict[str, Any] | None = None,
    resume: bool = False,
    select: str = "last",
) -> Path:
    """Train on ``data``'s train split (validated on its eval split); return the spikedet checkpoint path.

    ``activation``: a name from :data:`ACTIVATIONS`. ``levels``: one L, one per activation, or ``"al"`` /
    ``"al:2,4,8"`` for PASCAL's adaptive layer-wise levels measured on the ``init`` model (see
    :mod:`spikedet.engine.levels`). ``noise_p`` > 0 trains with Dual-Phase's noisy quantization (Phase I). The
    checkpoint lands at ``out/<model>_<activation>[_l<L>].pt`` beside ultralytics' run folder ``out/train``.
    ``model`` picks the detector family: ``ssd`` / ``ssd_<backbone>`` trains with
    :func:`spikedet.engine.ssd_train.train_ssd`, which also takes ``resume``. ``select``: which YOLO epoch is
    exported, ``"last"`` or ``"best"`` (ultralytics' fitness on the eval split: a choice made on the data the
    model is then evaluated on, so only for a split that is a true validation set).
    """
    check_imgsz(imgsz)
    check_count(epochs, name="--epochs")
    check_count(batch, name="--batch")
    check_fraction(noise_p, name="--noise-p")
    check_positive(width, name="--width", optional=True)
    check_positive(depth, name="--depth", optional=True)
    check_output_dir(out)
    if select not in ("last", "best"):
        raise ValueError(f"select must be 'last' or 'best', got '{select}'")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{activation}'; choose from {', '.join(ACTIVATIONS)}")
    level_tag = levels if isinstance(levels, int) else "al" if isinstance(levels, str) else "mixed"
    if isinstance(levels, str):
        levels = _adaptive_levels(levels, init, data, out)
    family = family_for_model(model)
    if family.name != "yolo":
        return family.train(
            data, out, model=model, activation=activation, levels=levels, noise_p=noise_p, epochs=epochs, imgsz=imgsz,
            batch=batch, device=device, init=init, width=width, depth=depth, extra=extra, resume=resume,
        )
    if resume:
        raise ValueError("--resume is for SSD training; ultralytics runs restart from --init")
    check_train_settings(extra)
    if init:
        read_init(init)  # a wrong --init fails before the dataset is read and exported
    train_split, val_split = default_splits(data)
    train = load_dataset(data, train_split)
    val = load_dataset(data, val_split, class_names=train.class_names)
    print(train.summary())
    print(val.summary())
    data_yaml = export_ultralytics(train, val)
    quant = ACTIVATIONS[activation]
    if quant is not None:
        quant = dict(quant, **({"noise_p": noise_p} if noise_p else {}))
    clip = quant.pop("clip", 4.0) if quant is not None else 4.0
    _, trainer = train_yolo(
        data_yaml, out, model=model, activation="silu" if quant is None else "qcfs",
        levels=levels, clip=clip, quant=quant, epochs=epochs, imgsz=imgsz,
        batch=batch, device=device, init=init, width=width, depth=depth, extra=extra,
    )
    tag = f"{model}_{activation}" + (f"_l{level_tag}" if activation != "silu" else "") + ("_noisy" if noise_p else "")
    meta = {
        "dataset": dataset_spec(data), "train_split": train_split, "eval_split": val_split, "imgsz": imgsz,
        "epochs": epochs, "model_name": model, "init": str(init) if init else None, "train_activation": activation,
        "noise_p": noise_p, "selected_epoch": select,
    }
    return export_trained(trainer, Path(out) / f"{tag}.pt", train.class_names, meta, select)
