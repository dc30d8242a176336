"""Training clip-quantized YOLOv8 through ultralytics' own trainer (a subclass, not a fork).

The spikedet settings (activation, levels, clip init, initial weights) travel inside the model yaml under a
``spikedet`` key, so they survive ultralytics' DDP re-launch, which rebuilds the trainer from its overrides.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
import yaml

from ..checkpoint import PickledCheckpointError, load_checkpoint, save_checkpoint
from ..env import font_available, import_ultralytics, torch_threads_kept
from ..spiking.quant import QCFS
from .ultralytics_checkpoint import load_ultralytics_model
from .yolo import build_yolo, model_yaml, yolo_config

__all__ = ["check_train_settings", "match_rounding", "read_init", "report_ultralytics_skips", "train_yolo"]

import_ultralytics()
from ultralytics.models.yolo.detect import DetectionTrainer  # noqa: E402  (after the offline set-up)
from ultralytics.nn.tasks import load_checkpoint as load_ultralytics_checkpoint  # noqa: E402
from ultralytics.utils import DEFAULT_CFG_DICT  # noqa: E402

log = logging.getLogger(__name__)


class QCFSDetectionTrainer(DetectionTrainer):
    """ultralytics' detection trainer building a spikedet YOLO (QCFS or SiLU) from the run's model yaml."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with torch_threads_kept():  # ultralytics would leave a core idle on CPU
            super().__init__(*args, **kwargs)

    def get_model(self, cfg: str | dict | None = None, weights: Any = None, verbose: bool = True):
        cfg = cfg if isinstance(cfg, dict) else yaml.safe_load(Path(cfg).read_text())
        options = dict(cfg.get("spikedet", {}))
        init = options.pop("init", None)
        model = build_yolo(
            {k: v for k, v in cfg.items() if k != "spikedet"}, num_classes=self.data["nc"],
            activation=options.pop("activation", "qcfs"), verbose=verbose, **options,
        )
        model = self.set_model_names_for_load(model)
        if init:
            config, state, _ = read_init(init)
            if config.get("num_classes") != self.data["nc"]:
                # a different head: keep the backbone and neck, retrain the head from scratch
                state = {k: v for k, v in state.items() if ".dfl" in k or not k.startswith(f"model.{len(model.model) - 1}.")}
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected:
                raise ValueError(f"--init {init}: parameters that do not fit this model: {unexpected[:3]}")
            if config.get("quant"):
                match_rounding(model, float(config["quant"]["shift"]))
        return model


def read_init(init: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """Config, state dict and source (``"spikedet"`` or ``"ultralytics"``) of a training start: a spikedet ANN
    checkpoint, or an ultralytics ``.pt`` (official weights, a run's best/last), read without running pickle
    code (:mod:`.ultralytics_checkpoint`)."""
    try:
        config, state, _ = load_checkpoint(init, kind="ann")
        return config, state, "spikedet"
    except PickledCheckpointError:
        model, config = load_ultralytics_model(init)
        return config, model.state_dict(), "ultralytics"


def match_rounding(model: torch.nn.Module, source_shift: float) -> None:
    """Start a model whose QCFS rounds differently (CASC's floor, φ = 0) exactly where a QCFS init (φ = ½) was.

    ``floor(z·L/λ + φ_src) = floor((z + (φ_src − φ)·λ/L)·L/λ + φ)``, and the clamp thresholds move with it, so
    adding ``(φ_src − φ)·λ/L`` to the bias of the BatchNorm before each activation makes the fine-tuning start
    from the very function it was initialised with instead of one that lost half a level everywhere.
    """
    for module in model.modules():
        act, bn = getattr(module, "act", None), getattr(module, "bn", None)
        if isinstance(act, QCFS) and isinstance(bn, torch.nn.BatchNorm2d) and act.shift != source_shift:
            with torch.no_grad():
                bn.bias += (source_shift - act.shift) * act.threshold / act.levels


def check_train_settings(extra: dict[str, Any] | None) -> None:
    """Every key of ``extra`` must be an ultralytics train argument (a typo would otherwise be ignored)."""
    unknown = sorted(set(extra or {}) - set(DEFAULT_CFG_DICT))
    if unknown:
        raise ValueError(f"unknown ultralytics train settings {unknown} (the keys of ultralytics' default.yaml)")


def train_yolo(
    data_yaml: str | Path,
    out_dir: str | Path,
    model: str | dict = "yolov8n",
    activation: str = "qcfs",
    levels: int = 4,
    clip: float = 4.0,
    quant: dict[str, Any] | None = None,
    epochs: int = 30,
    imgsz: int = 320,
    batch: int = 16,
    device: str = "cpu",
    init: str | Path | None = None,
    width: float | None = None,
    depth: float | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Any]:
    """Train with ultralytics' trainer; return the run directory and the final trainer.

    ``data_yaml`` is an ultralytics dataset yaml with absolute paths (see ``spikedet.data.export_ultralytics``).
    ``quant`` passes further :class:`~spikedet.spiking.quant.QCFS` settings (shift, learn_clip, noise_p,
    clamp_grad); ``extra`` passes further ultralytics train arguments (e.g. ``{"lr0": 1e-4}``). With ``init``
    the biases warm up from ``lr0`` rather than ultralytics' 0.1, unless ``extra`` sets ``warmup_bias_lr``.
    """
    check_train_settings(extra)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    init_config, _, source = read_init(init) if init else (None, None, None)  # fail early on a wrong file
    if source == "ultralytics" and (width, depth) == (None, None):
        # train the checkpoint's own architecture (yolov8s.pt → YOLOv8s), whatever --model says
        cfg = model_yaml({k: v for k, v in init_config["yaml"].items() if k != "spikedet"}, None, None)
        print(f"architecture from --init {init}: {cfg.get('yaml_file') or cfg.get('scale') or 'its own yaml'}")
    else:
        cfg = model_yaml(model, width, depth)
    cfg["spikedet"] = {"activation": activation}
    if activation == "qcfs":
        cfg["spikedet"].update(levels=levels, clip=clip, **(quant or {}))
    if init:
        cfg["spikedet"]["init"] = str(Path(init).resolve())
    yaml_path = out_dir / "model.yaml"
    yaml_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    on_cpu = str(device).lower() == "cpu"
    overrides = {
        "model": str(yaml_path), "data": str(data_yaml), "epochs": epochs, "imgsz": imgsz, "batch": batch,
        "device": device, "project": str(out_dir), "name": "train", "exist_ok": True,
        "amp": False,  # ultralytics' AMP check downloads weights; mixed precision is opt-in via extra
        "plots": font_available(), "workers": 0 if on_cpu else 8, "pretrained": False, "verbose": False,
    }
    overrides.update(extra or {})
    if init and "warmup_bias_lr" not in overrides:
        # a fine-tune starts from trained biases; ultralytics' bias warm-up from 0.1 (meant for training from
        # scratch at lr0 = 0.01) would throw them away in the first hundred iterations
        overrides["warmup_bias_lr"] = overrides.get("lr0", DEFAULT_CFG_DICT["lr0"])
    trainer = QCFSDetectionTrainer(overrides=overrides)
    trainer.train()
    report_ultralytics_skips(trainer, data_yaml)
    return out_dir / "train", trainer


def report_ultralytics_skips(trainer: Any, data_yaml: str | Path) -> dict[str, int]:
    """Images of a spikedet export that ultralytics' trainer still skipped (it only prints a line per file in
    its own log): counted per split, logged as one warning, and returned."""
    try:
        exported = json.loads((Path(data_yaml).parent / "export.json").read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError):
        return {}  # not a spikedet export: no count to compare with
    if getattr(getattr(trainer, "args", None), "fraction", 1.0) != 1.0:
        return {}  # trained on part of the data by request: fewer images is no sign of skipped ones
    skipped = {}
    for split, loader in (("train", getattr(trainer, "train_loader", None)), ("val", getattr(trainer, "test_loader", None))):
        labels = getattr(getattr(loader, "dataset", None), "labels", None)
        if labels is not None and len(labels) < exported[split]["images"]:  # None: DDP workers held the loaders
            skipped[split] = exported[split]["images"] - len(labels)
    if skipped:
        log.warning("ultralytics skipped images it could not use (its log names them): " + ", ".join(
            f"{split} {n} of {exported[split]['images']}" for split, n in skipped.items()))
    return skipped


def export_trained(
    trainer: Any, path: str | Path, class_names: list[str], meta: dict[str, Any], select: str = "last"
) -> Path:
    """Save the ``"last"`` or ``"best"`` weights of an ultralytics run in spikedet's safe checkpoint format."""
    chosen = Path(trainer.best if select == "best" and Path(trainer.best).exists() else trainer.last)
    model, _ = load_ultralytics_checkpoint(chosen)
    model = model.float().eval()
    config = yolo_config(model)
    config.update(class_names=list(class_names), **meta)
    return save_checkpoint(path, model, "ann", config)
