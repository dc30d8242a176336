"""What the demo's compiled backends share below the detectors: the runner interface and the compiler check."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..spiking.surrogate_kernels import cxx_compiler
from .graph_format import GraphWriter

__all__ = ["GraphRunner", "cxx_compiler"]


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
