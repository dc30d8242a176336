"""Spike-aware fine-tuning of a converted SSD with spikedet's SSD loop pieces (augmentation, SSD loss, AdamW
with warm-up and cosine decay): the T-step simulation forward, the surrogate gradient backward, the SSD loss
averaged over the read-outs after every T of ``timesteps`` (optionally plus distillation towards the ANN's
head output). A progress bar per epoch, one JSON line per epoch, pycocotools mAP at max(T) every ``val_every``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..checkpoint import save_checkpoint
from ..data.records import DetectionDataset
from ..env import quiet
from ..models.ssd_loss import SSDLoss
from ..spiking.convert import spiking_modules
from ..spiking.distill import layer_distillation, matched_layers, record_outputs
from ..spiking.trainable import make_trainable, separate_neuron_parameters, simulation, steps_of
from .evaluate import evaluate_snn
from .loading import load_model
from .ssd_train import AugmentedDetections, collate, lr_factor, resolve_device

__all__ = ["SSD_FINETUNE_DEFAULTS", "finetune_ssd_snn"]

# Settings ``extra`` may override: a fine-tune's small learning rate, and no weight decay on a trained network.
SSD_FINETUNE_DEFAULTS: dict[str, Any] = {"lr0": 1e-4, "weight_decay": 0.0, "warmup_epochs": 0.2, "workers": 2, "val_every": 1}


def _head_output(net: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The SSD head's raw output (box regression and class logits) whatever the module's mode."""
    return net.head(net.backbone(images))


def finetune_ssd_snn(
    snn: str | Path,
    train: DetectionDataset,
    val: DetectionDataset,
    path: str | Path,
    *,
    timesteps: list[int],
    epochs: int,
    imgsz: int,
    batch: int,
    device: str = "cpu",
    train_thresholds: bool = True,
    train_v0: bool = False,
    surrogate: str = "triangle",
    distill: float = 0.0,
    layer_distill: float = 0.0,
    teacher: str | Path | None = None,
    extra: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Fine-tune the spiking SSD in checkpoint ``snn``; write the fine-tuned spiking checkpoint to ``path``."""
    unknown = set(extra or {}) - set(SSD_FINETUNE_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown SSD fine-tuning settings {sorted(unknown)}; known: {', '.join(SSD_FINETUNE_DEFAULTS)}")
    settings = {**SSD_FINETUNE_DEFAULTS, **(extra or {})}
    dev = resolve_device(device)
    loaded = load_model(snn, expect="snn")
    config, network = loaded.config, loaded.network
    net = make_trainable(network.net, thresholds=train_thresholds, v0=train_v0, surrogate=surrogate).to(dev)
    distilling = distill > 0 or layer_distill > 0
    ann = load_model(teacher, expect="ann").model.to(dev).eval().requires_grad_(False) if distilling else None
    pairs = matched_layers(net, ann) if ann is not None else {}
    stateful, steps = spiking_modules(net), timesteps[-1]
    criterion = SSDLoss(net.decode.box_coder)

    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = separate_neuron_parameters(torch.optim.AdamW([
        {"params": [p for p in trainable if p.dim() > 1], "weight_decay": settings["weight_decay"]},
        {"params": [p for p in trainable if p.dim() <= 1], "weight_decay": 0.0},
    ], lr=settings["lr0"]), net)
    loader = DataLoader(
        AugmentedDetections(train, imgsz), batch_size=batch, shuffle=True, collate_fn=collate,
        drop_last=len(train) > batch, num_workers=int(settings["workers"]), persistent_workers=int(settings["workers"]) > 0,
    )
    total, warmup = epochs * len(loader), max(1, round(settings["warmup_epochs"] * len(loader)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup))
    history: list[dict[str, Any]] = []
    for epoch in range(epochs):
        net.train()
        started, sums, seen = time.perf_counter(), {"loss": 0.0, "box": 0.0, "cls": 0.0, "kd": 0.0}, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=quiet())
        for images, targets in bar:
            images = images.to(dev)
            targets = [{k: v.to(dev) for k, v in t.items()} for t in targets]
            with simulation(stateful, network.ctx, batch=images.shape[0], steps=steps):
                with record_outputs({n: neuron for n, (neuron, _) in pairs.items()}) as spikes:
                    output = net(images)
            reads = steps_of(output, steps=steps, batch=images.shape[0], timesteps=timesteps)
            parts = [criterion(r, targets) for r in reads]
            loss = sum(part for part, _ in parts) / len(parts)
            kd = torch.zeros((), device=dev)
            if ann is not None:
                with torch.no_grad(), record_outputs({n: act for n, (_, act) in pairs.items()}) as acts:
                    target = _head_output(ann, images)
                if distill > 0:
                    kd = kd + distill * sum(nn.functional.mse_loss(r[k], target[k]) for r in reads for k in target) / len(reads)
                if layer_distill > 0:
                    thresholds = {n: neuron.threshold for n, (neuron, _) in pairs.items()}
                    kd = kd + layer_distill * layer_distillation(spikes, acts, thresholds, steps=steps, timesteps=timesteps)
                loss = loss + kd
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch + 1}: the loss is {float(loss)}; lower lr0 (now {settings['lr0']})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            optimizer.step()
            scheduler.step()
            seen += 1
            for key, value in (("loss", float(loss.detach())), ("kd", float(kd.detach())), *((k, sum(p[k] for _, p in parts) / len(parts)) for k in ("box", "cls"))):
                sums[key] += value
            bar.set_postfix({k: f"{v / seen:.3f}" for k, v in sums.items()})
        row = {"epoch": epoch + 1, **{k: v / max(1, seen) for k, v in sums.items()}, "seconds": time.perf_counter() - started}
        if (epoch + 1) % int(settings["val_every"]) == 0 or epoch + 1 == epochs:
            net.eval()
            metrics, _, _ = evaluate_snn(network, val, [steps], imgsz, batch=16)
            row.update(val_map50_95=metrics[steps]["map50_95"], val_map50=metrics[steps]["map50"], val_T=steps)
        history.append(row)
        if not quiet():
            print(json.dumps(row))
        # every epoch: an interrupted run keeps what it has learnt (the device copy keeps training)
        save_checkpoint(path, net, "snn", dict(config, finetune=dict(meta or {}, history=history, epochs_done=epoch + 1)))
    return Path(path)
