"""What the demo's compiled backends share below the detectors: the runner interface and the compiler check."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from .onnx_export import GraphWriter

__all__ = ["GraphRunner", "cxx_compiler"]


def cxx_compiler() -> str | None:
    """The path of the C++ compiler AOTInductor would use (its ``cpp.cxx`` setting: ``$CXX`` when torch was
    imported, else ``g++``), or None when there is none."""
    from torch._inductor import config

    names = config.cpp.cxx if isinstance(config.cpp.cxx, (list, tuple)) else (config.cpp.cxx,)
    return next((found for found in map(shutil.which, filter(None, names)) if found), None)


class GraphRunner:
    """A compiled graph: ``runner(*inputs)`` → its outputs, all tensors; ``metadata`` is the ``spikedet``
    metadata written with it (graph kind, neurons per layer, state names, ...)."""

    backend = "graph"
    suffix = ""
    # the cache key's extra settings: what else the compiled file depends on
    settings: dict[str, Any] = {}
    write: GraphWriter

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.metadata: dict[str, Any] = {}

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError
