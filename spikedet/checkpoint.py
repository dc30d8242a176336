"""spikedet's checkpoint format: tensors plus a JSON config, loadable with ``torch.load(weights_only=True)``.

A checkpoint is ``{"format": "spikedet/1", "kind": "ann" | "snn", "config": <json str>, "state_dict": {...}}``.
``config`` holds everything needed to rebuild the module (model yaml, activation settings, class names, and
for a spiking model the conversion recipe); nothing is pickled.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .validate import check_imgsz

__all__ = [
    "FORMAT", "CheckpointError", "CheckpointKindError", "PickledCheckpointError", "save_checkpoint", "load_checkpoint",
]

FORMAT = "spikedet/1"


class CheckpointError(ValueError):
    """A file is missing, not a spikedet checkpoint, or of the wrong kind."""


class CheckpointKindError(CheckpointError):
    """A spikedet checkpoint of the other kind (an SNN where an ANN is required, or the reverse)."""


class PickledCheckpointError(CheckpointError):
    """The file pickles objects (an ultralytics ``.pt``, or something hostile): not spikedet's format."""


def save_checkpoint(path: str | Path, model: nn.Module, kind: str, config: dict[str, Any]) -> Path:
    """Write ``model``'s float32 state dict and ``config`` (JSON-serialisable) to ``path``."""
    if kind not in ("ann", "snn"):
        raise ValueError(f"checkpoint kind must be 'ann' or 'snn', got '{kind}'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu() if v.is_floating_point() else v.cpu() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT, "kind": kind, "config": json.dumps(config), "state_dict": state}, path)
    return path


def load_checkpoint(path: str | Path, kind: str | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """Read a spikedet checkpoint safely; returns ``(config, state_dict, kind)``.

    ``kind`` ("ann"/"snn") checks what the caller expects. Anything else (a missing file, an ultralytics
    ``.pt`` with pickled modules, a checkpoint of the other kind) raises :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # pickled modules (e.g. an ultralytics .pt), truncated or non-torch files
        raise PickledCheckpointError(
            f"{path} is not a spikedet checkpoint: it does not load with weights_only=True (a pickled model such "
            "as an ultralytics .pt, or a damaged file); spikedet reads its own format here, written by "
            "tools/train_det.py and tools/convert_det.py (ultralytics checkpoints are taken by train_det.py --init)"
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a spikedet checkpoint (format tag '{FORMAT}' missing)")
    config, state = _checked_entries(path, blob)
    if kind is not None and blob["kind"] != kind:
        raise CheckpointKindError(f"{path} holds a {blob['kind'].upper()} model, but a {kind.upper()} model is required here")
    return config, state, blob["kind"]


def _checked_entries(path: Path, blob: dict) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The config and state dict of a loaded checkpoint, refused with one line naming the broken entry."""
    if blob.get("kind") not in ("ann", "snn"):
        raise CheckpointError(f"{path}: entry 'kind' must be 'ann' or 'snn', got {blob.get('kind')!r}")
    if not isinstance(blob.get("config"), str):
        raise CheckpointError(f"{path}: entry 'config' (a JSON text) is missing")
    try:
        config = json.loads(blob["config"])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: entry 'config' is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: entry 'config' must be a JSON object, got {type(config).__name__}")
    state = blob.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: entry 'state_dict' must map parameter names to tensors")
    num_classes, names = config.get("num_classes"), config.get("class_names")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise CheckpointError(f"{path}: config 'num_classes' must be an integer >= 1, got {num_classes!r}")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CheckpointError(f"{path}: config 'class_names' must be a list of names, got {names!r}")
        if len(names) != num_classes:
            raise CheckpointError(
                f"{path}: config lists {len(names)} class names for a head of {num_classes} classes"
            )
    try:
        check_imgsz(config.get("imgsz"), name="config 'imgsz'")
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    if blob["kind"] == "snn" and not isinstance(config.get("recipe"), dict):
        raise CheckpointError(f"{path}: a spiking checkpoint needs its conversion 'recipe' in the config (missing)")
    return config, state
