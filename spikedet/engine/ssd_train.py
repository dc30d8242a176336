"""Training SSD-QCFS: box-safe albumentations augmentation, AdamW with warm-up and cosine decay, AMP on CUDA,
a progress bar, a checkpoint every epoch and resume.

Each epoch writes ``out/last.pt`` (spikedet ANN checkpoint) and ``out/train_state.pt`` (model, optimizer and
scaler state, history), both loadable with ``torch.load(weights_only=True)``; ``resume=True`` continues from
the latter. The final model (the last epoch: no selection on the evaluation split) is ``out/ssd_<backbone>_
<activation>[_l<L>].pt``.
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..data import default_splits, load_dataset
from ..data.augment import apply_transform, train_transform
from ..data.records import DatasetError, DetectionDataset
from ..env import quiet
from ..models.ssd import SSDQCFS, build_ssd, ssd_backbone_name, ssd_config
from ..models.ssd_loss import SSDLoss
from ..spiking.quant import TRAINING_ACTIVATIONS
from .evaluate import evaluate_ann

__all__ = ["AugmentedDetections", "collate", "lr_factor", "resolve_device", "train_ssd"]

# Optimiser settings that ``extra`` may override.
DEFAULTS: dict[str, Any] = {"lr0": 1e-3, "weight_decay": 0.05, "warmup_epochs": 1.0, "workers": 2, "val_every": None}


class AugmentedDetections(Dataset):
    """A dataset split as ``(RGB float image [3, S, S] in [0, 1], {"boxes", "labels"})`` training samples."""

    def __init__(self, dataset: DetectionDataset, size: int) -> None:
        self.records = dataset.records
        self.size = size
        self.transform = train_transform(size)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rec = self.records[index]
        image = cv2.imread(rec.path, cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"cannot read image {rec.path}")
        image, boxes, labels = apply_transform(self.transform, image[..., ::-1], rec.boxes, rec.labels)
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)
        return tensor, {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)}


def collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``0`` / ``cuda`` / ``cuda:0``; a CUDA device that is not there is an error."""
    text = str(device).lower()
    if text == "cpu":
        return torch.device("cpu")
    if text.isdigit():
        text = f"cuda:{text}"
    if not text.startswith("cuda"):
        raise ValueError(f"SSD training runs on one device: 'cpu' or a CUDA index such as '0', got '{device}'")
    if not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available; use --device cpu")
    return torch.device(text)


def _optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; weight decay on conv weights only (not on BN, biases or the QCFS clip λ, which decay would shrink)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the initial rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def _init_weights(model: SSDQCFS, init: str | Path) -> None:
    """Start from a spikedet SSD checkpoint; with other classes only the backbone is kept."""
    config, state, _ = load_checkpoint(init, kind="ann")
    if config.get("family") != "ssd":
        raise CheckpointError(f"--init {init}: holds a {config.get('family', 'yolo')} model, not an SSD")
    if config.get("num_classes") != model.num_classes:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("head.") for k in missing):
        raise CheckpointError(f"--init {init}: its backbone does not fit this model ({(unexpected or missing)[:3]})")


def _evaluate(model: nn.Module, dataset: DetectionDataset, imgsz: int, device: torch.device) -> dict[str, float]:
    model.eval()
    metrics, _ = evaluate_ann(model if device.type == "cpu" else _cpu_copy(model), dataset, imgsz, batch=16)
    return {"map50_95": metrics["map50_95"], "map50": metrics["map50"]}


def _cpu_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).cpu().float().eval()


def train_ssd(
    data: str | Path,
    out: str | Path,
    model: str = "ssd",
    activation: str = "qcfs",
    levels: int | list[int] = 4,
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
) -> Path:
    """Train an SSD on ``data``'s train split (mAP logged on its eval split); return the checkpoint path.

    Arguments mirror ``spikedet.engine.train.train_detector``. ``extra`` overrides :data:`DEFAULTS` (``lr0``,
    ``weight_decay``, ``warmup_epochs``, ``workers``, ``val_every``: evaluate every N epochs, default about
    ten times per run).
    """
    if activation not in TRAINING_ACTIVATIONS:
        choices = " or ".join(TRAINING_ACTIVATIONS)
        raise ValueError(f"SSD trains clip-quantized activations: --activation {choices}, got '{activation}'")
    if depth is not None:
        raise ValueError("--depth applies to YOLO only; SSD's size is set with --width")
    unknown = set(extra or {}) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown SSD training settings {sorted(unknown)}; known: {', '.join(DEFAULTS)}")
    if epochs < 1 or batch < 1 or imgsz < 32:
        raise ValueError(f"epochs and batch must be >= 1 and imgsz >= 32 (got {epochs}, {batch}, {imgsz})")
    settings = {**DEFAULTS, **{k: v for k, v in (extra or {}).items() if v is not None}}
    backbone = ssd_backbone_name(model)
    dev = resolve_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    train_split, val_split = default_splits(data)
    train = load_dataset(data, train_split)
    val = load_dataset(data, val_split, class_names=train.class_names)
    print(train.summary())
    print(val.summary())

    quant = dict(TRAINING_ACTIVATIONS[activation], **({"noise_p": noise_p} if noise_p else {}))
    net = build_ssd(model, num_classes=train.num_classes, levels=levels, width=width, **quant)
    if init:
        _init_weights(net, init)
    net.to(dev)
    criterion = SSDLoss(net.decode.box_coder)
    optimizer = _optimizer(net, settings["lr0"], settings["weight_decay"])
    amp = dev.type == "cuda"  # mixed precision on CUDA only (CPU autocast is bfloat16 and slower here)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loader = DataLoader(
        AugmentedDetections(train, imgsz), batch_size=batch, shuffle=True, collate_fn=collate,
        drop_last=len(train) > batch,
        num_workers=int(settings["workers"]), persistent_workers=int(settings["workers"]) > 0,
    )
    total, warmup = epochs * len(loader), max(1, round(settings["warmup_epochs"] * len(loader)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup))
    val_every = int(settings["val_every"] or max(1, epochs // 10))

    config = ssd_config(net)
    config.update(
        class_names=list(train.class_names),
        dataset="synthetic" if str(data) == "synthetic" else str(Path(data).resolve()),
        train_split=train_split, eval_split=val_split, imgsz=imgsz, epochs=epochs, model_name=str(model),
        init=str(init) if init else None, train_activation=activation, noise_p=noise_p,
    )
    state_path, start, history = out / "train_state.pt", 0, []
    if resume:
        start, history = _resume(state_path, net, optimizer, scheduler, scaler, config)
        print(f"resuming from epoch {start + 1}/{epochs}")

    for epoch in range(start, epochs):
        net.train()
        started, sums, seen = time.perf_counter(), {"loss": 0.0, "box": 0.0, "cls": 0.0}, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=quiet())
        for images, targets in bar:
            images = images.to(dev, non_blocking=True)
            targets = [{k: v.to(dev) for k, v in t.items()} for t in targets]
            with torch.autocast("cuda", enabled=amp):
                output = net(images)
            loss, parts = criterion(output, targets)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"epoch {epoch + 1}: the loss is {float(loss)}; lower lr0 (now {settings['lr0']})"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            seen += 1
            for key, value in (("loss", float(loss.detach())), *parts.items()):
                sums[key] += value
            bar.set_postfix({k: f"{v / seen:.3f}" for k, v in sums.items()})
        row = {"epoch": epoch + 1, **{k: v / max(1, seen) for k, v in sums.items()},
               "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}
        if (epoch + 1) % val_every == 0 or epoch + 1 == epochs:
            row.update({f"val_{k}": v for k, v in _evaluate(net, val, imgsz, dev).items()})
        history.append(row)
        if not quiet():
            print(json.dumps(row))
        _save(out, net, optimizer, scheduler, scaler, dict(config, epochs_done=epoch + 1), history)

    level_tag = levels if isinstance(levels, int) else "mixed"
    tag = f"ssd_{backbone}_{activation}_l{level_tag}" + ("_noisy" if noise_p else "")
    final = dict(config, epochs_done=epochs, history=history)
    return save_checkpoint(out / f"{tag}.pt", _cpu_copy(net), "ann", final)


def _save(out: Path, net: nn.Module, optimizer, scheduler, scaler, config: dict, history: list[dict]) -> None:
    """The epoch's ANN checkpoint and the full training state (written to a temporary file, then renamed)."""
    save_checkpoint(out / "last.pt", _cpu_copy(net), "ann", config)
    state = {
        "config": json.dumps(config), "history": json.dumps(history), "model": net.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
    }
    tmp = out / "train_state.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(out / "train_state.pt")


def _resume(path: Path, net: nn.Module, optimizer, scheduler, scaler, config: dict) -> tuple[int, list[dict]]:
    """Restore a training state; returns the number of finished epochs and the history."""
    if not path.is_file():
        raise CheckpointError(f"cannot resume: no training state at {path} (train without --resume first)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = json.loads(state["config"])
    for key in ("model", "num_classes", "width", "class_names", "quant"):
        if saved.get(key) != config.get(key):
            raise CheckpointError(f"cannot resume from {path}: its {key} ({saved.get(key)}) differs from this run's")
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    return int(saved["epochs_done"]), json.loads(state["history"])
