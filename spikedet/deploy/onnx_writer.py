"""Writing a traced graph as ONNX (checked with ``onnx.checker``) and running it in onnxruntime."""
from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from ..spiking import StatefulModule
from .graph_format import DEFAULT_OPSET, STATE_IN, STATE_OUT
from .tracing import ExportError, functional_graph

__all__ = ["export_graph", "ort_session", "run_stateful", "graph_metadata"]


def export_graph(
    module: nn.Module,
    inputs: Sequence[torch.Tensor],
    path: str | Path,
    input_names: list[str],
    output_names: list[str],
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Trace ``module`` (side-effect free, see :func:`functional_graph`), write it as ONNX, check it with
    ``onnx.checker`` and verify that every input is used (nothing baked in as a constant)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()  # the exporter restores the mode it finds; a wrapper left in training mode would leak it
    # a stateless module (the ANN) traces as it is; a spiking one is made side-effect free first
    stateful = any(isinstance(m, StatefulModule) for m in module.modules())
    graph = functional_graph(module, inputs) if stateful else module
    try:
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph, tuple(inputs), str(path), dynamo=False, opset_version=opset,
                input_names=input_names, output_names=output_names,
            )
    except torch.onnx.errors.OnnxExporterError as err:
        raise ExportError(f"ONNX export failed: {err}") from None
    model = onnx.load(str(path))
    missing = [n for n in input_names if n not in {i.name for i in model.graph.input}]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ExportError(f"the exported graph does not use its inputs {shown}: they were traced as constants")
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the exported graph fails onnx.checker: {err}") from None
    onnx.save(model, str(path))
    return path


def ort_session(path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    """A CPU onnxruntime session using ``threads`` intra-op threads (default: torch's).

    One node at a time: these graphs are a chain, where parallel execution only adds scheduling. All graph
    optimisations (the conv layout transform included): the fastest level measured here. Worker threads sleep
    between parallel sections instead of spinning: a spinning worker competes with the demo's own work
    (capture, NMS, drawing) and with any other process, which made the T = 4 graph 1.6x slower on a shared
    2-core machine.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_stateful(session: ort.InferenceSession, images: np.ndarray, steps: int) -> list[list[np.ndarray]]:
    """``[output, spikes]`` of a stateful graph after each of ``steps`` steps from a reset, feeding its state
    back."""
    state = {i.name: np.zeros(i.shape, dtype=np.float32) for i in session.get_inputs() if i.name.startswith(STATE_IN)}
    names = [o.name for o in session.get_outputs()]
    outputs = []
    for t in range(steps):
        result = dict(zip(names, session.run(None, {"images": images, "reset": np.array(t == 0), **state})))
        outputs.append([result["output"], result["spikes"]])
        state = {name: result[STATE_OUT + name[len(STATE_IN):]] for name in state}
    return outputs


def graph_metadata(session: ort.InferenceSession) -> dict[str, Any]:
    """The ``spikedet`` metadata an exported graph carries (graph kind, neurons per layer, state names, ...)."""
    return json.loads(session.get_modelmeta().custom_metadata_map.get("spikedet", "{}"))
