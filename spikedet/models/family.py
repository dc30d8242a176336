"""Detector families: what the engine needs to know about a kind of detector, behind one small interface.

A family builds its model from a checkpoint config, names the read-out layers (the head's final convs) and the
analog layers after them (decoding), turns the model's output into detections, and trains it. The engine
(load, convert, evaluate, benchmark) only talks to this interface, so YOLO and SSD share one pipeline.

Every family's eval output is the same decoded layout, ``[B, 4 + nc, A]``: per anchor an ``xywh`` box in input
pixels and one score per class. One NMS serves all of them; a family only picks its NMS IoU.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from .postprocess import decoded_postprocess

__all__ = ["DetectorFamily", "FAMILIES", "register_family", "get_family", "family_of", "family_for_model"]


@dataclass(frozen=True)
class DetectorFamily:
    """One detector family.

    Args:
        name: the ``family`` key of its checkpoint configs.
        owns: whether a ``--model`` name (or yaml path) belongs to this family.
        owns_module: whether a built (or converted) module is one of this family's models.
        from_config: rebuild the untrained module from a checkpoint config.
        readouts: qualified names of the read-out layers of a built model.
        analog: qualified names of the post-read-out modules that stay in ANN arithmetic.
        trainer: ``"module:function"`` of its training entry point, imported on use (trainers pull in heavy
            dependencies such as ultralytics' trainer).
        nms_iou: the IoU threshold of its NMS at evaluation.
    """

    name: str
    owns: Callable[[str], bool]
    owns_module: Callable[[nn.Module], bool]
    from_config: Callable[[dict], nn.Module]
    readouts: Callable[[nn.Module], list[str]]
    analog: Callable[[nn.Module], list[str]]
    trainer: str
    nms_iou: float = 0.7

    def postprocess(self, output: Any, size: int, records: list, **nms: Any) -> list:
        """Decoded output of letterboxed ``size × size`` inputs → NMS → detections in image pixels."""
        return decoded_postprocess(output, size, records, **{"iou": self.nms_iou, **nms})

    def train(self, data: str | Path, out: str | Path, **kwargs: Any) -> Path:
        module, _, function = self.trainer.partition(":")
        return getattr(importlib.import_module(module), function)(data, out, **kwargs)


FAMILIES: dict[str, DetectorFamily] = {}


def register_family(family: DetectorFamily) -> DetectorFamily:
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> DetectorFamily:
    """The family named in a checkpoint config; an unknown name lists the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"unknown detector family '{name}'; known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def family_of(model: nn.Module) -> DetectorFamily:
    """The family of a built model, or of a converted one (``SpikingNetwork`` or its ``net``)."""
    module = getattr(model, "net", model)
    for family in FAMILIES.values():
        if family.owns_module(module):
            return family
    raise ValueError(f"{type(module).__name__} belongs to no detector family ({', '.join(sorted(FAMILIES))})")


def family_for_model(name: str) -> DetectorFamily:
    """The family a ``--model`` name belongs to; a name no family claims is an error listing the families."""
    for family in FAMILIES.values():
        if family.owns(str(name)):
            return family
    raise ValueError(f"--model {name}: no detector family takes it ({', '.join(sorted(FAMILIES))}; e.g. yolov8n, "
                     "a YOLO yaml, ssd)")
