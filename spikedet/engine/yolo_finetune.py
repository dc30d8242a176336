"""Spike-aware fine-tuning of a converted YOLOv8 through ultralytics' own trainer (a subclass, not a fork).

The converted network stays an ultralytics ``DetectionModel`` (neurons in place of the activations, BatchNorm
folded, read-outs on the head's final convs); :class:`SpikingDetectionModel` only adds the time dimension:
every forward simulates ``max(T)`` online steps from a reset state. In training it hands the head's raw output
after each T of ``timesteps`` to :class:`AnytimeLoss`, which averages ultralytics' detection loss over them, so
one simulation trains the read-outs of every T; in evaluation it returns the decoded output after ``val_T``
steps, so ultralytics' validator, EMA, checkpoints and DDP work unchanged. Augmentation, AMP and the progress
bars are ultralytics'.

The spikedet settings (the spiking checkpoint to start from, the T to train) travel in the model yaml under a
``spikedet`` key, so they survive ultralytics' DDP re-launch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as nn_functional
import yaml

from ..checkpoint import load_checkpoint, save_checkpoint
from ..env import font_available, import_ultralytics, torch_threads_kept
from ..spiking.convert import spiking_modules
from ..spiking.distill import layer_distillation, matched_layers, record_outputs
from ..spiking.runtime import check_timesteps
from ..spiking.trainable import attach_context, make_trainable, separate_neuron_parameters, simulation, steps_of
from .loading import load_model

__all__ = ["AnytimeLoss", "SpikingDetectionModel", "SpikingDetectionTrainer", "export_finetuned", "finetune_yolo_snn"]

import_ultralytics()
from ultralytics.models.yolo.detect import DetectionTrainer  # noqa: E402  (after the offline set-up)
from ultralytics.nn.tasks import DetectionModel  # noqa: E402
from ultralytics.nn.tasks import load_checkpoint as load_ultralytics_checkpoint  # noqa: E402
from ultralytics.utils import DEFAULT_CFG_DICT  # noqa: E402


class AnytimeLoss:
    """ultralytics' detection criterion averaged over the read-outs after several T (one simulation), plus an
    already weighted distillation term (per image, so scaled with the batch as ultralytics' losses are)."""

    def __init__(self, criterion: Any) -> None:
        self.criterion = criterion

    def __call__(self, preds: Any, batch: dict[str, Any], distillation: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        if not isinstance(preds, list):  # the validator's decoded output: one read-out
            loss, items = self.criterion(preds, batch)
            return loss, {**items, "kd_loss": torch.zeros_like(next(iter(items.values())))}
        losses = [self.criterion(p, batch) for p in preds]
        items = {name: sum(d[name] for _, d in losses) / len(losses) for name in losses[0][1]}
        total = sum(part for part, _ in losses) / len(losses)
        if distillation is None:
            distillation = torch.zeros((), device=total.device)
        # ultralytics back-propagates loss.sum() of the (box, cls, dfl) vector: spread the term over its entries
        total = total + distillation * preds[0]["scores"].shape[0] / total.numel()
        return total, {**items, "kd_loss": distillation.detach()}


class SpikingDetectionModel(DetectionModel):
    """A converted YOLOv8 whose forward simulates ``max(timesteps)`` steps (see the module docstring).

    Build it with :meth:`from_converted`; ``timesteps`` are the T whose read-outs the training loss averages,
    ``val_T`` the T ultralytics' validator sees.
    """

    timesteps: list[int]
    val_T: int

    @classmethod
    def from_converted(cls, net: DetectionModel, *, timesteps: list[int], val_T: int | None = None) -> "SpikingDetectionModel":
        """Adopt a converted ``DetectionModel`` (in place; its modules and weights are kept as they are)."""
        net.__class__ = cls
        net.timesteps = sorted(set(check_timesteps(list(timesteps))))
        net.val_T = val_T or net.timesteps[-1]
        net.sim = attach_context(net)
        return net

    def predict(self, x: torch.Tensor, profile: bool = False, augment: bool = False, embed: Any = None) -> Any:
        steps = self.timesteps[-1] if self.training else self.val_T
        batch = x.shape[0]
        with simulation(spiking_modules(self), self.sim, batch=batch, steps=steps):
            out = self._predict_once(x, profile, embed)
        if self.training:
            return steps_of(out, steps=steps, batch=batch, timesteps=self.timesteps)
        return steps_of(out, steps=steps, batch=batch, timesteps=[steps])[0]

    def set_teacher(self, ann: torch.nn.Module | None, *, distill: float = 0.0, layer_distill: float = 0.0) -> None:
        """The ANN to distil from (kept out of parameters, EMA and checkpoints): ``distill`` weighs the read-out
        term, ``layer_distill`` the layer-wise one (:mod:`spikedet.spiking.distill`)."""
        if ann is not None:
            ann = ann.eval().requires_grad_(False)
            matched_layers(self, ann)  # fail now, not at the first batch
        object.__setattr__(self, "_teacher", ann)
        self.distill = distill if ann is not None else 0.0
        self.layer_distill = layer_distill if ann is not None else 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_teacher", None)
        return state

    def loss(self, batch: dict[str, Any], preds: Any = None) -> tuple[torch.Tensor, dict]:
        if getattr(self, "criterion", None) is None:
            self.criterion = self.init_criterion()
        teacher = getattr(self, "_teacher", None)
        if teacher is None or preds is not None or not self.training:
            return self.criterion(preds if preds is not None else self.forward(batch["img"]), batch)
        images = batch["img"]
        pairs = matched_layers(self, teacher)
        with record_outputs({n: neuron for n, (neuron, _) in pairs.items()}) as spikes:
            preds = self.forward(images)
        with torch.no_grad(), record_outputs({n: act for n, (_, act) in pairs.items()}) as acts:
            target = teacher.to(images.device)(images)[1]
        distillation = torch.zeros((), device=images.device)
        if self.distill > 0:
            readout = sum(nn_functional.mse_loss(p[k], target[k]) for p in preds for k in ("boxes", "scores"))
            distillation = distillation + self.distill * readout / len(preds)
        if self.layer_distill > 0:
            thresholds = {n: neuron.threshold for n, (neuron, _) in pairs.items()}
            layer = layer_distillation(spikes, acts, thresholds, steps=self.timesteps[-1], timesteps=self.timesteps)
            distillation = distillation + self.layer_distill * layer
        return self.criterion(preds, batch, distillation)

    def init_criterion(self) -> AnytimeLoss:
        return AnytimeLoss(super().init_criterion())

    def fuse(self, verbose: bool = True, imgsz: int = 640) -> "SpikingDetectionModel":
        """BatchNorm was folded at conversion: nothing left to fuse."""
        return self


class SpikingDetectionTrainer(DetectionTrainer):
    """ultralytics' detection trainer fine-tuning a spikedet spiking checkpoint named in the run's model yaml."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with torch_threads_kept():  # ultralytics would leave a core idle on CPU
            super().__init__(*args, **kwargs)

    def get_model(self, cfg: str | dict | None = None, weights: Any = None, verbose: bool = True) -> SpikingDetectionModel:
        cfg = cfg if isinstance(cfg, dict) else yaml.safe_load(Path(cfg).read_text())
        options = dict(cfg["spikedet"])
        loaded = load_model(options["snn"], expect="snn")
        network, config = loaded.network, loaded.config
        if config["num_classes"] != self.data["nc"]:
            raise ValueError(
                f"{options['snn']} detects {config['num_classes']} classes, the data has {self.data['nc']}: "
                "fine-tune on the data the network was converted for"
            )
        net = make_trainable(
            network.net, thresholds=options.get("train_thresholds", True), v0=options.get("train_v0", False),
            surrogate=options.get("surrogate", "triangle"), detach_reset=options.get("detach_reset", True),
        )
        model = SpikingDetectionModel.from_converted(net, timesteps=options["timesteps"], val_T=options.get("val_T"))
        distill, layer_distill = float(options.get("distill", 0.0)), float(options.get("layer_distill", 0.0))
        teacher = load_model(options["teacher"], expect="ann").model if distill > 0 or layer_distill > 0 else None
        model.set_teacher(teacher, distill=distill, layer_distill=layer_distill)
        return self.set_model_names_for_load(model)

    def build_optimizer(self, model: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.optim.Optimizer:
        """ultralytics' optimizer, with the neurons' thresholds (and potentials) in a group of their own:
        no weight decay, and a learning rate scaled up to their size (see :data:`spikedet.spiking.trainable.NEURON_LR_SCALE`)."""
        optimizer = super().build_optimizer(model, *args, **kwargs)
        return separate_neuron_parameters(optimizer, model)


def finetune_yolo_snn(
    snn: str | Path,
    data_yaml: str | Path,
    out_dir: str | Path,
    *,
    timesteps: list[int] = (1, 2, 4),
    epochs: int = 10,
    imgsz: int = 320,
    batch: int = 16,
    device: str = "cpu",
    train_thresholds: bool = True,
    train_v0: bool = False,
    surrogate: str = "triangle",
    detach_reset: bool = True,
    distill: float = 0.0,
    layer_distill: float = 0.0,
    teacher: str | Path | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Any]:
    """Fine-tune the spiking YOLO in checkpoint ``snn`` on ``data_yaml``; return the run folder and trainer.

    ``distill`` / ``layer_distill`` > 0 add the read-out / layer-wise distillation terms towards the ANN
    checkpoint ``teacher``. ``extra`` passes
    further ultralytics train arguments (``lr0``, ``optimizer``, ``mosaic``, ...).
    """
    unknown = sorted(set(extra or {}) - set(DEFAULT_CFG_DICT))
    if unknown:
        raise ValueError(f"unknown ultralytics train settings {unknown} (the keys of ultralytics' default.yaml)")
    timesteps = sorted(set(check_timesteps(list(timesteps))))
    config, _, _ = load_checkpoint(snn, kind="snn")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = dict(config["yaml"])
    cfg["spikedet"] = {
        "snn": str(Path(snn).resolve()), "timesteps": timesteps, "train_thresholds": train_thresholds,
        "train_v0": train_v0, "surrogate": surrogate, "detach_reset": detach_reset, "distill": distill,
        "layer_distill": layer_distill,
        "teacher": str(Path(teacher).resolve()) if teacher else None,
    }
    yaml_path = out_dir / "model.yaml"
    yaml_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    overrides = {
        "model": str(yaml_path), "data": str(data_yaml), "epochs": epochs, "imgsz": imgsz, "batch": batch,
        "device": device, "project": str(out_dir), "name": "train", "exist_ok": True,
        "amp": False,  # ultralytics' AMP check downloads weights; mixed precision is opt-in via extra
        "plots": font_available(), "workers": 0 if str(device).lower() == "cpu" else 8, "pretrained": False,
        # a fine-tune: a small learning rate, and no bias warm-up from ultralytics' 0.1 (it would undo the
        # converted network's biases); mosaic is turned off for the last epochs as in ultralytics' schedule
        "optimizer": "AdamW", "lr0": 1e-4, "lrf": 0.1, "warmup_epochs": 0.5, "warmup_bias_lr": 0.0,
        # one optimizer step per batch: ultralytics' nominal batch of 64 would accumulate 4 batches of 16, leaving
        # a small dataset ~5 steps per epoch (measured: BCCD's T = 4 mAP stalled at 0.25 after 4 epochs)
        "nbs": batch,
    }
    overrides.update(extra or {})
    trainer = SpikingDetectionTrainer(overrides=overrides)
    trainer.train()
    return out_dir / "train", trainer


def export_finetuned(trainer: Any, path: str | Path, *, source: str | Path, meta: dict[str, Any]) -> Path:
    """Save the last epoch of a fine-tuning run as an ordinary spikedet SNN checkpoint: the source checkpoint's
    config (recipe included) plus ``finetune`` = ``meta``. The state-dict keys are the converted network's."""
    config, _, _ = load_checkpoint(source, kind="snn")
    model, _ = load_ultralytics_checkpoint(Path(trainer.last))
    return save_checkpoint(path, model.float().eval(), "snn", dict(config, finetune=meta))
