"""SSD with clip-quantized activations, built from torchvision's detection components.

The detector is torchvision's ``SSDHead`` (per-feature-map 3×3 classification and box convs), its
``DefaultBoxGenerator`` (anchors) and ``BoxCoder`` (box encoding) on a plain conv + BN + QCFS backbone
(:mod:`.ssd_backbone`), so backbone and head convert to IF neurons completely; the only analog synapse of the
spiking detector is the first conv, which sees the image. Nothing is downloaded.

Input is the letterboxed RGB image in [0, 1] (the same letterbox as the YOLO path, so evaluation, demo and
ONNX export share their code). In eval mode the output is the decoded layout every family shares,
``[B, 4 + nc, A]``: ``xywh`` boxes in input pixels and the softmax class scores without background.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSDHead

from ..spiking.quant import QCFS
from .family import DetectorFamily, register_family
from .ssd_backbone import BACKBONES, build_backbone

__all__ = [
    "ASPECT_RATIOS", "SCALES", "ExportableSSDHead", "SSDDecoder", "SSDQCFS", "build_ssd", "ssd_analog",
    "ssd_backbone_name", "ssd_config", "ssd_from_config", "ssd_readouts",
]

# Anchors per feature map (strides 8 … 128): 4 boxes where only ratio 2 is used, 6 with ratios 2 and 3.
ASPECT_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2]]
# Anchor sizes as fractions of the input side, one per map plus one for the last map's extra box. Smaller than
# SSD300's (0.1 …) at the fine end: at 320 px the stride-8 map carries 22-33 px objects (cells, far objects).
SCALES = [0.07, 0.15, 0.33, 0.51, 0.75, 1.0]
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # SSD's variances 0.1 / 0.2, as torchvision's SSD


class ExportableSSDHead(SSDHead):
    """torchvision's ``SSDHead`` (its convs and initialisation) with a forward that traces to plain ONNX ops.

    torchvision flattens each map with ``reshape`` of a permuted tensor, which functional tracing turns into
    ``aten::_unsafe_view``, an op the ONNX exporter lacks; ``contiguous().view`` computes the same.
    """

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        def flatten(branch: nn.Module, width: int) -> torch.Tensor:
            maps = [conv(f) for conv, f in zip(branch.module_list, features)]
            return torch.cat([m.permute(0, 2, 3, 1).contiguous().view(m.shape[0], -1, width) for m in maps], 1)

        return {
            "bbox_regression": flatten(self.regression_head, 4),
            "cls_logits": flatten(self.classification_head, self.classification_head.num_columns),
        }


class SSDDecoder(nn.Module):
    """Anchors and box decoding: head output → ``[N, 4 + nc, A]``. Post-read-out, so it stays analog."""

    def __init__(self, aspect_ratios: list[list[int]], scales: list[float]) -> None:
        super().__init__()
        self.anchor_generator = DefaultBoxGenerator(aspect_ratios, scales=scales)
        self.box_coder = BoxCoder(weights=BOX_WEIGHTS)
        self._anchors: tuple[tuple, torch.Tensor] | None = None

    def anchors(self, images: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """``[A, 4]`` anchors (``xyxy``, input pixels). They depend only on the input and feature-map sizes, so
        they are cached: a traced graph (ONNX export) then holds them as a constant, as YOLO's Detect anchors."""
        sizes = tuple(tuple(f.shape[-2:]) for f in features)
        key = (tuple(images.shape[-2:]), sizes, features[0].dtype, features[0].device)
        if self._anchors is None or self._anchors[0] != key:
            image_list = ImageList(images[:1], [tuple(images.shape[-2:])])
            self._anchors = (key, self.anchor_generator(image_list, [f[:1] for f in features])[0])
        return self._anchors[1]

    def forward(
        self, images: torch.Tensor, features: list[torch.Tensor], head: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        # the batch comes from the head: a spiking head's output is time-folded ([steps·B, ...]), the image is not
        regression, logits = head["bbox_regression"], head["cls_logits"]
        n, a = regression.shape[:2]
        anchors = self.anchors(images, features).to(regression.dtype).repeat(n, 1)
        boxes = self.box_coder.decode_single(regression.reshape(-1, 4), anchors).view(n, a, 4)
        xywh = torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], -1)
        scores = logits.softmax(-1)[..., 1:]  # class 0 is background
        return torch.cat([xywh, scores], -1).transpose(1, 2)


class SSDQCFS(nn.Module):
    """SSD on a convertible backbone. Train mode returns the head output and anchors (for :mod:`.ssd_loss`);
    eval mode returns the decoded ``[B, 4 + nc, A]``."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        aspect_ratios: list[list[int]] = ASPECT_RATIOS,
        scales: list[float] = SCALES,
    ) -> None:
        super().__init__()
        maps = len(backbone.out_channels)
        if len(aspect_ratios) != maps or len(scales) != maps + 1:
            raise ValueError(
                f"SSD anchors: the backbone has {maps} feature maps, so {maps} aspect-ratio lists and {maps + 1} "
                f"scales are needed (got {len(aspect_ratios)} and {len(scales)})"
            )
        self.num_classes = int(num_classes)
        self.spec: dict[str, Any] = {}  # how build_ssd made it (model name, width), for ssd_config
        self.backbone = backbone
        self.decode = SSDDecoder(aspect_ratios, scales)
        anchors = self.decode.anchor_generator.num_anchors_per_location()
        self.head = ExportableSSDHead(list(backbone.out_channels), anchors, self.num_classes + 1)

    def forward(self, images: torch.Tensor) -> Any:
        features = self.backbone(images)
        head = self.head(features)
        if self.training:
            return {**head, "anchors": self.decode.anchors(images, features)}
        return self.decode(images, features, head)


def ssd_backbone_name(model: str) -> str:
    """``ssd`` → the default backbone; ``ssd_<backbone>`` → that backbone (checked)."""
    name = str(model)
    if name == "ssd":
        return "vgg_slim"
    if not name.startswith("ssd_"):
        raise ValueError(f"unknown SSD model '{model}': use ssd or ssd_<backbone> ({', '.join(sorted(BACKBONES))})")
    backbone = name[len("ssd_"):]
    if backbone not in BACKBONES:
        raise ValueError(f"unknown SSD backbone '{backbone}' in '{model}'; available: {', '.join(sorted(BACKBONES))}")
    return backbone


def _quantize(model: nn.Module, levels: int | list[int], clip: float, quant: dict[str, Any]) -> None:
    """Replace every ReLU with its own QCFS; ``levels`` is one L or one per activation."""
    relus = [name for name, m in model.named_modules() if isinstance(m, nn.ReLU)]
    per_layer = list(levels) if isinstance(levels, (list, tuple)) else [levels] * len(relus)
    if len(per_layer) != len(relus):
        raise ValueError(f"{len(per_layer)} levels given for the {len(relus)} activations of this SSD")
    for name, lv in zip(relus, per_layer):
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, QCFS(levels=lv, clip=clip, **quant))


def build_ssd(
    model: str = "ssd",
    num_classes: int = 80,
    activation: str = "qcfs",
    levels: int | list[int] = 4,
    clip: float = 4.0,
    width: float | None = None,
    aspect_ratios: list[list[int]] = ASPECT_RATIOS,
    scales: list[float] = SCALES,
    **quant: Any,
) -> SSDQCFS:
    """Build an SSD (random init, never downloads) with QCFS activations, or ReLU (full-precision reference).

    ``width`` scales the backbone's channels (tiny models for tests); ``clip`` is the initial λ, 4.0 as for
    YOLO (BN-normalised pre-activations rarely exceed it).
    """
    if activation not in ("qcfs", "relu"):
        raise ValueError(f"SSD activation must be 'qcfs' or 'relu', got '{activation}'")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    backbone = build_backbone(ssd_backbone_name(model), 1.0 if width is None else width, act=nn.ReLU)
    net = SSDQCFS(backbone, num_classes, aspect_ratios, scales)
    net.spec = {"model": str(model), "width": 1.0 if width is None else float(width)}
    if activation == "qcfs":
        _quantize(net, levels, clip, quant)
    return net


def ssd_config(model: SSDQCFS) -> dict:
    """What rebuilds ``model`` exactly (weights are saved separately)."""
    gen = model.decode.anchor_generator
    cfg = {
        "family": "ssd", **model.spec, "num_classes": model.num_classes,
        "aspect_ratios": [list(r) for r in gen.aspect_ratios], "scales": list(gen.scales),
    }
    quants = [m for m in model.modules() if isinstance(m, QCFS)]
    if quants:
        q = quants[0]
        cfg["activation"] = "qcfs"
        cfg["quant"] = {
            "levels": [m.levels for m in quants], "shift": q.shift, "learn_clip": bool(q.clip.requires_grad),
            "noise_p": q.noise_p, "clamp_grad": q.clamp_grad,
        }
    else:
        cfg["activation"] = "relu"
    return cfg


def ssd_from_config(cfg: dict) -> SSDQCFS:
    """Rebuild the (untrained) module described by :func:`ssd_config`."""
    quant = dict(cfg.get("quant") or {})
    return build_ssd(
        cfg.get("model", "ssd"), num_classes=cfg["num_classes"], activation=cfg.get("activation", "qcfs"),
        width=cfg.get("width"), aspect_ratios=cfg.get("aspect_ratios", ASPECT_RATIOS),
        scales=cfg.get("scales", SCALES), **quant,
    )


def ssd_readouts(model: SSDQCFS) -> list[str]:
    """The head's final convs (one classification and one box conv per feature map): the read-out layers."""
    return [
        f"head.{branch}.module_list.{i}"
        for branch in ("classification_head", "regression_head")
        for i in range(len(model.head.classification_head.module_list))
    ]


def ssd_analog(model: SSDQCFS) -> list[str]:
    """Post-read-out modules in ANN arithmetic: anchors and box decoding."""
    return ["decode"]


register_family(DetectorFamily(
    name="ssd",
    owns=lambda name: name == "ssd" or name.startswith("ssd_"),
    owns_module=lambda module: isinstance(module, SSDQCFS),
    from_config=ssd_from_config,
    readouts=ssd_readouts,
    analog=ssd_analog,
    trainer="spikedet.engine.ssd_train:train_ssd",
    nms_iou=0.5,  # SSD's usual NMS IoU (0.45-0.5); its anchors overlap more densely than YOLO's grid
))
