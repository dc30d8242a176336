"""YOLOv8 detectors with clip-quantized activations, built on ultralytics' own DetectionModel.

The model stays a plain ultralytics ``DetectionModel`` (so its trainer, validator and predictor work unchanged);
only each ``Conv.act`` is replaced by a per-layer :class:`~spikedet.spiking.quant.QCFS`. ultralytics shares one
activation instance across all layers (``Conv.default_act``), so the swap happens per module after building.
"""
from __future__ import annotations

import copy
import re
from typing import Any

from torch import nn

from ..env import import_ultralytics
from ..spiking.quant import QCFS
from .family import DetectorFamily, register_family

__all__ = [
    "ATTENTION_BLOCKS", "build_yolo", "check_convertible", "model_yaml", "quantize_yolo", "yolo_config", "yolo_from_config",
    "yolo_analog", "yolo_readouts",
]

# Blocks with attention or multiplicative gating: not expressible with IF neurons and linear synapses.
ATTENTION_BLOCKS = (
    "C2PSA", "PSA", "C2fPSA", "A2C2f", "Attention", "AAttn", "AIFI", "C2fAttn", "TransformerBlock",
    "ImagePoolingAttn", "MaxSigmoidAttnBlock",
)
_MODEL_NAME = re.compile(r"^yolov8([nsmlx])$")


def model_yaml(model: str | dict, width: float | None, depth: float | None) -> dict:
    """Resolve ``yolov8n``-style names (or a yaml path / dict) to an ultralytics model dict."""
    import_ultralytics()
    from ultralytics.nn.tasks import yaml_model_load

    if isinstance(model, dict):
        cfg = copy.deepcopy(model)
    else:
        name = str(model)
        if _MODEL_NAME.match(name):
            name += ".yaml"
        if re.match(r"^yolo(11|12|26|v10)", name):
            raise ValueError(f"{name}: only YOLOv8 is supported for conversion (later YOLOs contain attention)")
        if not name.endswith((".yaml", ".yml")):
            raise ValueError(f"unknown model '{model}': use yolov8n/s/m/l/x, a YOLOv8 model yaml, or ssd / ssd_<backbone>")
        cfg = yaml_model_load(name)
    if width is not None or depth is not None:
        scale = cfg.get("scale") or "n"
        d, w, max_c = cfg["scales"][scale]
        cfg["scales"] = {scale: [depth if depth is not None else d, width if width is not None else w, max_c]}
        cfg["scale"] = scale
    return cfg


def check_convertible(model: nn.Module) -> None:
    """Refuse models with attention blocks, naming the first offending layer."""
    for name, module in model.named_modules():
        if type(module).__name__ in ATTENTION_BLOCKS:
            raise ValueError(
                f"layer '{name}' is {type(module).__name__} (attention); spiking conversion supports "
                "convolutional detectors such as YOLOv8 only"
            )


def quantize_yolo(model: nn.Module, levels: int = 4, clip: float = 4.0, **quant_kwargs: Any) -> nn.Module:
    """Replace every ``Conv.act`` of an ultralytics model with its own :class:`QCFS` (in place).

    ``levels`` may be an int or a list with one entry per activation (PASCAL's layer-wise levels).
    """
    convs = [m for m in model.modules() if hasattr(m, "act") and hasattr(m, "conv") and not isinstance(m.act, nn.Identity)]
    if not convs:
        raise ValueError("no ultralytics Conv activation found to quantize")
    per_layer = list(levels) if isinstance(levels, (list, tuple)) else [levels] * len(convs)
    if len(per_layer) != len(convs):
        raise ValueError(f"{len(per_layer)} levels given for {len(convs)} activations")
    for conv, lv in zip(convs, per_layer):
        conv.act = QCFS(levels=lv, clip=clip, **quant_kwargs)
    return model


def build_yolo(
    model: str | dict = "yolov8n",
    num_classes: int = 80,
    activation: str = "qcfs",
    levels: int | list[int] = 4,
    clip: float = 4.0,
    width: float | None = None,
    depth: float | None = None,
    verbose: bool = False,
    **quant_kwargs: Any,
) -> nn.Module:
    """Build a YOLOv8 ``DetectionModel`` from yaml (never downloads) with QCFS or SiLU activations.

    ``width``/``depth`` override the scale's multipliers (tiny models for tests). ``clip`` is the initial λ:
    4.0 rather than QCFS's 8.0 because YOLO's BN-normalised pre-activations rarely exceed 4.
    """
    if activation not in ("qcfs", "silu"):
        raise ValueError(f"activation must be 'qcfs' or 'silu', got '{activation}'")
    cfg = model_yaml(model, width, depth)
    from ultralytics.nn.tasks import DetectionModel

    net = DetectionModel(cfg, nc=num_classes, verbose=verbose)
    check_convertible(net)
    if activation == "qcfs":
        quantize_yolo(net, levels=levels, clip=clip, **quant_kwargs)
    return net


def yolo_config(model: nn.Module) -> dict:
    """What rebuilds ``model`` exactly: its yaml dict and the settings of its quantized activations."""
    quants = [m for m in model.modules() if isinstance(m, QCFS)]
    cfg = {"family": "yolo", "yaml": copy.deepcopy(model.yaml), "num_classes": int(model.yaml["nc"])}
    if quants:
        q = quants[0]
        cfg["activation"] = "qcfs"
        cfg["quant"] = {
            "levels": [m.levels for m in quants],
            "shift": q.shift,
            "learn_clip": bool(q.clip.requires_grad),
            "noise_p": q.noise_p,
            "clamp_grad": q.clamp_grad,
        }
    else:
        cfg["activation"] = "silu"
    return cfg


def yolo_from_config(cfg: dict) -> nn.Module:
    """Rebuild the (untrained) module described by :func:`yolo_config`; weights are loaded separately."""
    quant = cfg.get("quant")
    if quant is None:
        return build_yolo(cfg["yaml"], num_classes=cfg["num_classes"], activation="silu")
    return build_yolo(cfg["yaml"], num_classes=cfg["num_classes"], activation="qcfs", **quant)


def yolo_readouts(model: nn.Module) -> list[str]:
    """Names of the Detect head's final convs: the read-out layers of the spiking detector."""
    head = model.model[-1]
    prefix = next(name for name, m in model.named_modules() if m is head)
    names = []
    for branch in ("cv2", "cv3"):
        for i, seq in enumerate(getattr(head, branch)):
            names.append(f"{prefix}.{branch}.{i}.{len(seq) - 1}")
    return names


def yolo_analog(model: nn.Module) -> list[str]:
    """Sub-modules after the read-out that stay in ANN arithmetic: the Detect head's DFL decoder."""
    head = model.model[-1]
    prefix = next(name for name, m in model.named_modules() if m is head)
    return [f"{prefix}.dfl"]


def _is_yolo(module: nn.Module) -> bool:
    import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    return isinstance(module, DetectionModel)


register_family(DetectorFamily(
    name="yolo",
    owns=lambda name: name.startswith("yolo") or name.endswith((".yaml", ".yml")),
    owns_module=_is_yolo,
    from_config=yolo_from_config,
    readouts=yolo_readouts,
    analog=yolo_analog,
    trainer="spikedet.engine.train:train_detector",
    nms_iou=0.7,  # ultralytics' validation default
))
