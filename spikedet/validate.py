"""Checks of user-given values at the edge, before long work starts: one ``ValueError`` line naming the
argument and what is wrong (the tools turn it into ``error: ...`` and exit status 2)."""
from __future__ import annotations

import math
from pathlib import Path

__all__ = ["MAX_IMGSZ", "check_count", "check_device", "check_fraction", "check_imgsz", "check_output_dir", "check_output_file", "check_positive"]


# Largest input side accepted: a batch of 8 such inputs already takes over 1.6 GB as float32, and anything
# larger is a typo (an extra digit) rather than a detector setting.
MAX_IMGSZ = 4096


def check_device(device: str, *, name: str = "--device") -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` naming a device this machine has."""
    import torch  # only when a device is checked: the tools parse their arguments before importing torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} must be cpu, cuda or cuda:N, got {device!r}") from None
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be cpu, cuda or cuda:N, got {device!r}")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {device}: no CUDA device is available here; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"{name} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return str(parsed)


def check_imgsz(imgsz: int | None, *, name: str = "--imgsz") -> int | None:
    """An input size: a multiple of 32 (every detector's largest stride) from 32 to ``MAX_IMGSZ``; None keeps
    the model's."""
    if imgsz is not None and (
        isinstance(imgsz, bool) or not isinstance(imgsz, int) or not 32 <= imgsz <= MAX_IMGSZ or imgsz % 32
    ):
        raise ValueError(
            f"{name} must be a positive multiple of 32 (the detectors' largest stride) up to {MAX_IMGSZ}, got {imgsz!r}"
        )
    return imgsz


def check_count(value: int | None, *, name: str, optional: bool = False, minimum: int = 1) -> int | None:
    """A count of images, epochs or a batch size: an integer >= ``minimum`` (None allowed when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_fraction(value: float | None, *, name: str, optional: bool = False) -> float | None:
    """A fraction (a score threshold, a decay): a number in [0, 1] (None allowed when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:  # NaN fails too
        raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
    return value


def check_positive(value: float | None, *, name: str, optional: bool = False) -> float | None:
    """A finite number > 0 (a learning rate, a tolerance, a width multiplier); None allowed when ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def check_output_dir(path: str | Path, *, name: str = "--out") -> Path:
    """An output folder that exists or can be made: not an existing file, not inside one."""
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{name} {path}: {parent} is a file, not a folder")
    return path


def check_output_file(path: str | Path, *, name: str) -> Path:
    """An output file that can be written: not an existing folder, its folder not a file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name} {path} is a folder; give a file name")
    check_output_dir(path.parent, name=name)
    return path
