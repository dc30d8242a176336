"""Reading ultralytics ``.pt`` checkpoints (``yolov8n.pt``, a run's ``best.pt``/``last.pt``) without running
arbitrary pickle code.

An ultralytics checkpoint pickles whole modules. It is loaded with ``torch.load(weights_only=True)``, whose
unpickler builds only allow-listed globals; the allow-list is made per file from the globals the file names
(``torch.serialization.get_unsafe_globals_in_checkpoint``), each checked against a policy: ``nn.Module``
classes of ``torch.nn``, ``ultralytics.nn`` and ``spikedet`` (layers: their constructors are never called, the
unpickler restores their attributes), plus the few data types such files carry. Any other global (a function,
``os.system``, ``ultralytics.YOLO``...) refuses the whole file with one line naming it, before anything is built.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError
from .yolo import ATTENTION_BLOCKS, yolo_config

__all__ = ["load_ultralytics_model", "unsafe_global"]

# Packages whose nn.Module classes a checkpoint may name (layers only; never functions).
_LAYER_PACKAGES = ("torch.nn.modules.", "ultralytics.nn.", "spikedet.")
# Data types ultralytics stores beside the model (training arguments, numpy scalars in metrics, paths).
_DATA_TYPES = {
    "ultralytics.utils.IterableSimpleNamespace", "types.SimpleNamespace", "argparse.Namespace",
    "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.Path", "datetime.datetime", "datetime.date",
    "numpy.dtype", "numpy.ndarray", "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
}


def _resolve(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def unsafe_global(name: str) -> bool:
    """Whether the pickled global ``name`` (``module.attr``) is outside the policy of the module docstring."""
    if name in _DATA_TYPES or name.startswith("numpy.dtypes."):
        return False
    if not name.startswith(_LAYER_PACKAGES):
        return True
    try:
        obj = _resolve(name)
    except (ImportError, AttributeError):
        return True
    return not (isinstance(obj, type) and issubclass(obj, nn.Module))


def load_ultralytics_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The float32 eval-mode detection model of an ultralytics checkpoint (its EMA weights when present) and
    the spikedet config describing it (:func:`~spikedet.models.yolo.yolo_config`). Refuses, with one line,
    hostile or foreign pickles, damaged files, non-detection tasks and YOLOs that cannot be converted."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001  (not a torch zip archive)
        raise CheckpointError(f"{path} is neither a spikedet nor an ultralytics checkpoint (not a torch file, or damaged)") from None
    refused = sorted(n for n in names if unsafe_global(n))
    if refused:
        raise CheckpointError(
            f"{path}: refusing to unpickle '{refused[0]}'" + (f" (and {len(refused) - 1} more)" if len(refused) > 1 else "")
            + ": only torch/ultralytics layers and plain data are loaded from ultralytics checkpoints"
        )
    try:
        with torch.serialization.safe_globals([_resolve(n) for n in names]):
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot be read as an ultralytics checkpoint ({type(err).__name__})") from None
    model = blob.get("ema") or blob.get("model") if isinstance(blob, dict) else None
    if not isinstance(model, nn.Module) or not hasattr(model, "yaml"):
        raise CheckpointError(f"{path} holds no ultralytics model ('model' / 'ema' entry missing)")
    head = type(model.model[-1]).__name__
    if head != "Detect":
        raise CheckpointError(f"{path}: a {head} model; spikedet converts detection models (Detect head) only")
    blocks = sorted({type(m).__name__ for m in model.modules()} & set(ATTENTION_BLOCKS))
    if blocks:
        raise CheckpointError(
            f"{path}: contains {blocks[0]} (attention), which has no spiking equivalent; use a YOLOv8 checkpoint"
        )
    model = model.float().eval()
    return model, yolo_config(model)
