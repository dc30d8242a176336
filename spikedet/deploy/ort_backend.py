"""The onnxruntime backend of the demo: graphs exported to ONNX (:mod:`~spikedet.deploy.onnx_writer`) and run
by an onnxruntime session. Caching, parity checks and the detectors: :mod:`~spikedet.deploy.backends`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .runner import GraphRunner
from .graph_format import STATE_IN, STATE_OUT
from .onnx_writer import export_graph, graph_metadata, ort_session
from .tracing import ExportError

__all__ = ["OrtRunner"]


class OrtRunner(GraphRunner):
    """An ONNX graph in an onnxruntime session (``threads`` intra-op threads, default torch's)."""

    backend = "onnxruntime"
    suffix = ".onnx"
    write = staticmethod(export_graph)

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        self.session = ort_session(path, threads)
        self.metadata = graph_metadata(self.session)
        self._inputs = [i.name for i in self.session.get_inputs()]
        state = [name[len(STATE_IN):] for name in self._inputs if name.startswith(STATE_IN)]
        outputs = [o.name for o in self.session.get_outputs()]
        if state and outputs[-len(state):] != [STATE_OUT + name for name in state]:
            raise ExportError(f"{path}: the state outputs do not mirror the state inputs")

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        feed = {name: np.ascontiguousarray(x.numpy()) for name, x in zip(self._inputs, inputs)}
        return [torch.from_numpy(y) for y in self.session.run(None, feed)]
