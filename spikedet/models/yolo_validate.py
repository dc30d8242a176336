"""Run spiking YOLO detectors through ultralytics' own DetectionValidator."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..env import import_ultralytics, torch_threads_kept
from ..spiking.runtime import SpikingNetwork, check_timesteps

__all__ = ["UltralyticsSpikingModel", "validate_ultralytics"]


class UltralyticsSpikingModel(nn.Module):
    """A spiking network posing as an ultralytics model: ``forward(images)`` is the T-step read-out.

    ultralytics' backends accept any ``nn.Module`` with ``stride`` and ``names``; the Detect head decodes the
    read-out averaged over T, so the validator's NMS and metrics apply unchanged.
    """

    def __init__(self, network: SpikingNetwork, timesteps: int, stride: torch.Tensor, names: dict[int, str]) -> None:
        super().__init__()
        self.network = network
        self.timesteps = check_timesteps(timesteps)[0]
        self.stride = stride
        self.names = names

    def forward(self, images: torch.Tensor, **_: Any) -> Any:
        return self.network(images, self.timesteps)


def validate_ultralytics(
    model: nn.Module, data_yaml: str | Path, imgsz: int, batch: int = 8, device: str = "cpu"
) -> dict[str, float]:
    """mAP50-95 and mAP50 from ultralytics' validator (ANN ``DetectionModel`` or UltralyticsSpikingModel)."""
    import_ultralytics()
    from ultralytics.models.yolo.detect import DetectionValidator

    args = {
        "data": str(data_yaml), "imgsz": imgsz, "batch": batch, "device": device, "plots": False,
        "conf": 0.001, "iou": 0.7, "half": False, "verbose": False, "save_json": False,
    }
    with torch_threads_kept():
        validator = DetectionValidator(args=args)
        stats = validator(model=copy.deepcopy(model))  # the validator fuses BN in place
    return {"map50_95": float(stats["metrics/mAP50-95(B)"]), "map50": float(stats["metrics/mAP50(B)"])}
