"""Files spikedet ships beside its code: the recipe YAMLs (``configs/convert``) and the default model
(``weights/``). A checkout or an editable install reads them from the source tree; a wheel carries its own copy
in ``spikedet/_shipped`` (setup.py puts it there), so an installed package converts with no source tree."""
from __future__ import annotations

from pathlib import Path

__all__ = ["SHIPPED_IN_WHEEL", "shipped"]

_TREE = Path(__file__).resolve().parents[1]
_PACKAGE_COPY = Path(__file__).resolve().parent / "_shipped"
# What setup.py copies into a wheel: every recipe, and the embedded default model with its card.
SHIPPED_IN_WHEEL = ("configs/convert/*.yaml", "weights/yolov8n_qcfs_l4_synthetic*")


def shipped(relative: str) -> Path:
    """The shipped file or folder ``relative`` (e.g. ``"configs/convert"``): the source tree's when it is
    there, else the wheel's copy; the tree path when neither exists, so "not found" messages name it."""
    for root in (_TREE, _PACKAGE_COPY):
        if (root / relative).exists():
            return root / relative
    return _TREE / relative
