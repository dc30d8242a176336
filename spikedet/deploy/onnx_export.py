"""ONNX export of spiking detectors, verified against PyTorch with onnxruntime.

Two graphs of a spiking network, both for batch 1 at a fixed input size:

- **unrolled** (:class:`UnrolledSNN`): ``images → (output, spikes)``; T steps from a reset state, the Detect
  head's decoded output ``[1, 4 + nc, A]`` before NMS, exactly what ``SpikingNetwork(x, T)`` returns.
- **stateful** (:class:`SteppedSNN`): ``(images, reset, state…) → (output, spikes, state…)``; one time step
  with the whole simulation state as explicit tensors — membrane potentials (and the counters of signed/CIF
  neurons), the max-pool accumulators (one set per call site: SPPF calls its pool three times), the read-outs'
  running sums and step counts. A streaming runtime starts with zero tensors and ``reset = true``, then feeds
  each ``state_out.*`` back as ``state_in.*``; the output after t steps is the t-step read-out. The demo's
  stream graph is a variant: several steps per call, the stream's forgetting built in, and no ``reset`` input
  (the caller feeds :meth:`SteppedSNN.initial_state` instead, which spares a select over every state tensor).

``spikes`` ``[L]`` holds the spikes each neuron layer emitted in the call (a sum per layer, in the order of
``network.modules()``), the quantity the neurons' own ``record`` counters add up; the metadata's ``neurons``
gives each layer's neurons per image and step, so firing rates need no second pass.

The spiking kernels update their state in place and write into preallocated buffers, which the TorchScript
tracer does not follow (it would bake the simulation into constants). So the forward is first made
side-effect free: :func:`functional_graph` traces it with ``make_fx`` under ``functionalize`` (every in-place
update becomes a pure op), then hands the resulting FX graph to ``torch.onnx.export(dynamo=False)``.

Parity: onnxruntime and PyTorch run different float32 convolutions, so values differ in the last bits. The
difference is measured with box coordinates divided by the input size (scores are in [0, 1] already); an image
*matches* when it stays within :data:`TOLERANCE` = 1e-3 (0.3 px at 320 px, 0.001 in a score: invisible after
NMS). Matching images agree to about 4e-7. But a spike (or a QCFS level in the ANN) is a threshold decision:
when a potential lands within float32 rounding of its threshold, the two runtimes decide it differently, and
the changed spike changes the inputs of the next layers, which flips more decisions there. Such an image then
differs by 0.1-0.4. This is a property of the network, not of the export: on the trained YOLOv8n-QCFS at
320 px, T=4, PyTorch disagrees with itself in the same way on 7 of 16 images when only the memory layout
changes (channels_last), and onnxruntime on 5 of 16 (the ANN: 1 of 16). A wiring error (a state not fed back,
a step missing, state baked in as a constant) changes every image instead. So a graph passes when at least
:data:`MIN_MATCH` of the images (and at least one) match to rounding; the report gives the count, the median and
the worst difference.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from torch.func import functional_call, functionalize
from torch.fx.experimental.proxy_tensor import make_fx

from ..data import default_splits, load_dataset
from ..engine.evaluate import build_snn, check_classes, load_detector
from ..engine.inference import image_batches
from ..recipes import get_recipe
from ..spiking import (
    OnlineSchedule, ReadOut, SpikeMonitor, SpikingNetwork, SpikingNeuron, StatefulModule, check_timesteps,
    fold_batchnorm,
)
from .detector import check_imgsz, detect_output, forgetting, forgetting_modules, resolve_weights

__all__ = [
    "DEFAULT_OPSET", "TOLERANCE", "MIN_MATCH", "ExportError", "GraphWriter", "UnrolledSNN", "SteppedSNN", "AnnGraph",
    "functional_graph", "export_graph", "export_unrolled", "export_stateful", "export_ann", "graph_metadata",
    "ort_session", "run_stateful", "parity_error", "firing_rates", "export_detector",
    "format_export",
]

DEFAULT_OPSET = 17
TOLERANCE = 1e-3
MIN_MATCH = 0.25
STATE_IN, STATE_OUT = "state_in.", "state_out."
# (module, example inputs, path, input names, output names, metadata=...) → the written graph's path
GraphWriter = Callable[..., Path]


class ExportError(ValueError):
    """The export failed, or onnxruntime does not reproduce PyTorch within the tolerance."""


class _SpikeCounts:
    """Spikes emitted by each neuron layer of ``net`` during a forward, as tensors a trace can output.

    ``with counts.counting(): ...`` hooks the neurons for the block; :meth:`stacked` gives the ``[L]`` counts in
    module order (``|out| / θ`` summed, as the neurons' ``record`` counters do) and :attr:`sizes` each layer's
    neurons per image and step.
    """

    def __init__(self, net: nn.Module) -> None:
        self.neurons = [m for m in net.modules() if isinstance(m, SpikingNeuron)]
        self.sizes = [0] * len(self.neurons)
        self._counts: dict[int, torch.Tensor] = {}

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        self._counts = {}

        def hook(index: int, module: SpikingNeuron, output: torch.Tensor) -> None:
            # unsigned spikes are never negative: |out| would be a pass over the layer for nothing
            count = (output.abs() if module.signed else output).sum() / module.threshold
            self._counts[index] = count + self._counts[index] if index in self._counts else count
            self.sizes[index] = output[0].numel()

        hooks = [
            m.register_forward_hook(lambda mod, args, out, i=i: hook(i, mod, out)) for i, m in enumerate(self.neurons)
        ]
        try:
            yield
        finally:
            for h in hooks:
                h.remove()

    def stacked(self) -> torch.Tensor:
        return torch.stack([self._counts[i] for i in range(len(self.neurons))])


class UnrolledSNN(nn.Module):
    """``forward(images) → (output, spikes)``: T steps from a reset state → the decoded Detect output (before
    NMS) and the spikes of each neuron layer (see the module docstring)."""

    def __init__(self, network: SpikingNetwork, timesteps: int = 4) -> None:
        super().__init__()
        self.network = network
        self.timesteps = check_timesteps(timesteps)[0]
        self.spikes = _SpikeCounts(network.net)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.spikes.counting():
            output = detect_output(self.network(images, self.timesteps))
        return output, self.spikes.stacked()


class AnnGraph(nn.Module):
    """The ANN with the same output as the spiking graphs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return detect_output(self.model(images))


class _CallSites(nn.Module):
    """The k-th call of a forward goes to the k-th copy of a module, so each call site has its own module
    (and state) instead of the state swapping a shared module does internally."""

    def __init__(self, module: StatefulModule, calls: int) -> None:
        super().__init__()
        self.sites = nn.ModuleList(copy.deepcopy(module) for _ in range(calls))
        self._run, self._next = -1, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        run = self.sites[0].ctx.run
        if run != self._run:
            self._run, self._next = run, 0
        self._next += 1
        return self.sites[self._next - 1](x)


class _TensorCountReadOut(ReadOut):
    """A read-out (all steps awake) that keeps its step count as a tensor: in a traced graph the count is then
    an input, where :class:`ReadOut` computes ``1/n`` in Python and the trace would bake it in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.enter_call_site()
        steps = self.ctx.steps
        acc = x.view(steps, x.shape[0] // steps, *x.shape[1:]).cumsum(0)
        if self.total is not None:
            acc = acc + self.total
        done = torch.zeros((), dtype=x.dtype) if self.effective_steps is None else self.effective_steps
        effective = done + torch.arange(1, steps + 1, dtype=x.dtype)
        self.total, self.effective_steps = acc[-1], effective[-1]
        return self.layer((acc * effective.reciprocal().view(-1, *([1] * (acc.dim() - 1)))).flatten(0, 1))


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


class SteppedSNN(nn.Module):
    """``forward(images, reset, *state) → (output, spikes, *next_state)``: ``steps`` time steps (default one)
    with explicit state.

    Built on a copy of ``network`` (which is left reset) in which every stateful module has one call site and
    the read-outs count steps in a tensor. ``state_names`` lists the state tensors (``<module>.<attribute>``) in
    order, :meth:`zero_state` gives tensors of their shapes. Where ``reset`` is true the state inputs are
    ignored and the reset state is used (potentials ``v0·θ``, everything else zero). With
    ``reset_input=False`` there is no ``reset`` input: feed :meth:`initial_state` to start a sequence.
    ``leak`` / ``pool_decay`` < 1 apply the demo stream's forgetting after the steps (see
    :class:`~spikedet.deploy.detector.StreamingDetector`).
    """

    def __init__(
        self, network: SpikingNetwork, example: torch.Tensor, steps: int = 1, leak: float = 1.0,
        pool_decay: float = 1.0, reset_input: bool = True,
    ) -> None:
        super().__init__()
        self.steps = check_timesteps(steps)[0]
        self.leak, self.pool_decay, self.reset_input = leak, pool_decay, reset_input
        calls: dict[str, int] = {}
        hooks = [
            m.register_forward_pre_hook(lambda mod, args, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
            for name, m in network.net.named_modules()
            if isinstance(m, StatefulModule)
        ]
        network.reset()
        network.stream(example, 1)  # counts the calls of every stateful module
        network.reset()
        for hook in hooks:
            hook.remove()
        net = copy.deepcopy(network.net)
        for name, n in calls.items():
            module = net.get_submodule(name)
            if isinstance(module, ReadOut):
                _set_module(net, name, _TensorCountReadOut(module.layer))
            if n > 1:
                _set_module(net, name, _CallSites(net.get_submodule(name), n))
        self.network = SpikingNetwork(net, OnlineSchedule())
        self.spikes = _SpikeCounts(net)
        self._forgetting = forgetting_modules(net, leak, pool_decay)
        self.network.reset()
        self.network.stream(example, 1)  # fills every state, giving names and shapes
        self._slots = [
            (name, module, attr)
            for name, module in net.named_modules()
            if isinstance(module, StatefulModule)
            for attr in module.state_attrs
        ]
        self.state_names = [f"{name}.{attr}" for name, _, attr in self._slots]
        self.state_shapes = [tuple(getattr(m, attr).shape) for _, m, attr in self._slots]
        # (total, effective_steps) state indices of each read-out, for read-out windows kept by the caller
        self.readout_slots = [
            (i, i + 1) for i, (_, module, attr) in enumerate(self._slots)
            if isinstance(module, ReadOut) and attr == "total"
        ]
        self.network.reset()

    def zero_state(self) -> list[torch.Tensor]:
        return [torch.zeros(shape) for shape in self.state_shapes]

    def initial_state(self) -> list[torch.Tensor]:
        """The reset state: potentials ``v0·θ``, everything else zero."""
        return [self._reset_value(module, attr, s) for (_, module, attr), s in zip(self._slots, self.zero_state())]

    def _reset_value(self, module: nn.Module, attr: str, state: torch.Tensor) -> torch.Tensor:
        if isinstance(module, SpikingNeuron) and attr == "v":
            return (module.v0 * module.threshold).to(state.dtype).expand(state.shape)
        return torch.zeros_like(state)

    def forward(self, images: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.reset_input:
            reset, *state = inputs
            state = [torch.where(reset, self._reset_value(m, a, s), s) for (_, m, a), s in zip(self._slots, state)]
        else:
            state = [s.clone() for s in inputs]  # the kernels update state in place; graph inputs stay untouched
        for (_, module, attr), value in zip(self._slots, state):
            setattr(module, attr, value)
        with self.spikes.counting(), forgetting(self._forgetting, self.leak, self.pool_decay):
            output = detect_output(self.network.stream(images, self.steps))
        return (output, self.spikes.stacked(), *(getattr(module, attr) for _, module, attr in self._slots))


# Writes into a slice of a buffer (``out[t] = ...`` in the spiking kernels) appear as select_scatter /
# slice_scatter, which the TorchScript exporter lacks. A buffer written step by step is rebuilt as a stack of its
# steps (:func:`_stack_step_buffers`); any other slice write becomes a concatenation.
def _scatter_into(x: torch.Tensor, src: torch.Tensor, dim: int, start: int, end: int) -> torch.Tensor:
    dim %= x.dim()
    parts = [x.narrow(dim, 0, start), src, x.narrow(dim, end, x.shape[dim] - end)]
    return torch.cat([p for p in parts if p.shape[dim] > 0], dim)


def _select_scatter(x: torch.Tensor, src: torch.Tensor, dim: int, index: int) -> torch.Tensor:
    index %= x.shape[dim]
    return _scatter_into(x, src.unsqueeze(dim), dim, index, index + 1)


def _slice_scatter(x: torch.Tensor, src: torch.Tensor, dim: int = 0, start: int | None = None,
                   end: int | None = None, step: int = 1) -> torch.Tensor:
    if step != 1:
        raise ExportError("strided slice writes are not supported by the ONNX export")
    size = x.shape[dim]
    start = 0 if start is None else start % size if start < 0 else min(start, size)
    end = size if end is None else end % size if end < 0 else min(end, size)
    return _scatter_into(x, src, dim, start, end)


_aten = torch.ops.aten
# aten ops that only appear below the torch API, mapped back to what the exporter knows
_ONNX_OPS = {
    _aten.select_scatter.default: _select_scatter,
    _aten.slice_scatter.default: _slice_scatter,
    _aten._to_copy.default: lambda x, dtype=None, **_: x.clone() if dtype is None else x.to(dtype),
    _aten.lift_fresh_copy.default: torch.clone,
    _aten.copy.default: lambda dst, src, non_blocking=False: src.to(dst.dtype).expand_as(dst).clone(),
    _aten._softmax.default: lambda x, dim, half_to_float: torch.softmax(x, dim),
    # opset 17 has no BitwiseAnd; on masks it is the logical And every opset has
    _aten.bitwise_and.Tensor: lambda a, b: (
        torch.logical_and(a, b) if a.dtype == b.dtype == torch.bool else torch.bitwise_and(a, b)
    ),
    _aten.upsample_nearest2d.default: lambda x, size, *_: nn.functional.interpolate(x, size=list(size), mode="nearest"),
}


def _stack_step_buffers(graph: torch.fx.Graph) -> None:
    """Rewrite ``buf = empty([T, ...]); buf[t] = x_t for every t; ... buf[t] ...`` as ``stack(x_0 … x_T-1)``.

    Reads ``select(buf, 0, t)`` after the write of step t become ``x_t``. Left as slice writes, each step would
    copy the whole buffer, and the exporter would store the unwritten rest of the empty buffer as constants.
    """
    def is_write(node: torch.fx.Node) -> bool:
        return node.op == "call_function" and node.target is _aten.select_scatter.default and node.args[2] == 0

    def step(node: torch.fx.Node, index: int) -> int:  # a non-negative index along dim 0 of a node's value
        return index % node.meta["val"].shape[0]

    for node in graph.nodes:  # reads of a step already written
        if node.op == "call_function" and node.target is _aten.select.int and node.args[1] == 0:
            base, index = node.args[0], step(node.args[0], node.args[2])
            while is_write(base) and step(base, base.args[3]) != index:
                base = base.args[0]
            if is_write(base):
                node.replace_all_uses_with(base.args[1])
    for node in list(graph.nodes):  # complete chains of writes into a fresh buffer
        if not is_write(node) or any(is_write(user) for user in node.users):
            continue
        steps, base = {}, node
        while is_write(base):
            steps.setdefault(step(base, base.args[3]), base.args[1])
            base = base.args[0]
        fresh = base.op == "call_function" and base.target is _aten.empty.memory_format
        if fresh and sorted(steps) == list(range(base.args[0][0])):
            with graph.inserting_after(node):
                stacked = graph.call_function(torch.stack, ([steps[t] for t in sorted(steps)], 0))
            node.replace_all_uses_with(stacked)
    graph.eliminate_dead_code()


def _spikes_as_select(graph: torch.fx.Graph) -> None:
    """Rewrite the spike of an IF step, ``float(v ≥ θ) · θ``, as ``where(v ≥ θ, θ, 0)``: one pass over the layer
    instead of two (a cast and a product), and the same bits (``1·θ = θ``, ``0·θ = 0`` for a finite θ)."""
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not _aten.mul.Tensor:
            continue
        cast, theta = node.args
        if not (isinstance(cast, torch.fx.Node) and cast.target is _aten._to_copy.default and len(cast.users) == 1):
            continue
        compare = cast.args[0]
        if compare.target is not _aten.ge.Tensor or compare.args[1] is not theta:
            continue
        with graph.inserting_before(node):
            spike = graph.call_function(torch.where, (compare, theta, 0.0))
        node.replace_all_uses_with(spike)
    graph.eliminate_dead_code()


def functional_graph(module: nn.Module, inputs: Sequence[torch.Tensor]) -> torch.fx.GraphModule:
    """A side-effect-free FX graph of ``module(*inputs)`` with the weights as constants, in ops the TorchScript
    ONNX exporter knows.

    The buffers of the stateful spiking modules (thresholds, initial potentials) enter the trace as inputs,
    since the state built from them is updated in place, which functionalization allows only for tensors it
    tracks; they become constants of the returned graph again.
    """
    lifted = {
        f"{name}.{b}" if name else b: t
        for name, m in module.named_modules()
        if isinstance(m, StatefulModule)
        for b, t in m.named_buffers(recurse=False)
    }
    names = list(lifted)

    def run(buffers: list[torch.Tensor], *args: torch.Tensor) -> Any:
        return functional_call(module, dict(zip(names, buffers)), args)

    # fake tensors: shapes only, no arithmetic while tracing (several times faster); the weights stay real
    # and are recorded as constants
    with torch.no_grad():
        traced = make_fx(functionalize(run, remove="mutations"), tracing_mode="fake", _allow_non_fake_inputs=True)(
            [t.detach() for t in lifted.values()], *inputs
        )
    _stack_step_buffers(traced.graph)
    _spikes_as_select(traced.graph)
    graph, env, index = torch.fx.Graph(), {}, 0
    for node in traced.graph.nodes:
        if node.op == "placeholder" and index < len(names):
            attr = f"lifted_{index}"
            traced.register_buffer(attr, lifted[names[index]].detach().clone())
            env[node] = graph.get_attr(attr)
            index += 1
            continue
        env[node] = graph.node_copy(node, lambda n: env[n])
        if node.op == "call_function" and node.target in _ONNX_OPS:
            env[node].target = _ONNX_OPS[node.target]
    return torch.fx.GraphModule(traced, graph)


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


def parity_error(got: np.ndarray, ref: np.ndarray, imgsz: int) -> tuple[float, float]:
    """``(max abs difference, max difference with box coordinates in units of the input size)`` of two
    ``[B, 4 + nc, A]`` Detect outputs; :class:`ExportError` when their shapes differ."""
    if np.shape(got) != np.shape(ref):
        raise ExportError(f"the graph's output has shape {list(np.shape(got))}, PyTorch's {list(np.shape(ref))}")
    diff = np.abs(np.asarray(got, dtype=np.float64) - np.asarray(ref, dtype=np.float64))
    return float(diff.max()), float(max(diff[:, :4].max() / imgsz, diff[:, 4:].max(initial=0.0)))


def _eval_images(config: dict, data: str | None, imgsz: int, count: int) -> list[torch.Tensor]:
    """The first ``count`` images of the model's evaluation split, letterboxed, one tensor each."""
    spec = data or config.get("dataset") or "synthetic"
    dataset = load_dataset(spec, default_splits(spec)[1], class_names=config.get("class_names"))
    check_classes(dataset, config)
    return [images for images, _ in image_batches(dataset.records[:count], imgsz, 1)]


# per image, per compared step: (onnxruntime output, PyTorch output, onnxruntime rates, PyTorch rates); the
# per-layer firing rates are None for the ANN
Pairs = list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]]


def firing_rates(spikes: np.ndarray, neurons: Sequence[int], steps: int) -> np.ndarray:
    """Per-layer firing rates (spikes per neuron and step) from a graph's ``spikes`` output."""
    return np.asarray(spikes, dtype=np.float64) / (np.asarray(neurons, dtype=np.float64) * steps)


def _parity(graph: str, path: Path, images: list[Pairs], imgsz: int, tol: float, min_match: float) -> dict:
    """The report row of a graph: an image matches when all its outputs agree within ``tol`` (and so do its
    per-layer firing rates); the graph passes when at least ``min_match`` of the images (and at least one)
    match."""
    errors = [[parity_error(got, ref, imgsz) for got, ref, _, _ in pairs] for pairs in images]
    rate_errors = [
        max((float(np.abs(g - r).max()) for _, _, g, r in pairs if g is not None), default=0.0) for pairs in images
    ]
    per_image = [max(e[1] for e in image) for image in errors]
    matched = sum(e <= tol and r <= tol for e, r in zip(per_image, rate_errors))
    return {
        "graph": graph, "path": str(path), "checker": True, "images_matched": matched, "images": len(per_image),
        "median_diff": float(np.median(per_image)), "normalised_diff": max(per_image),
        "max_abs_diff": max(e[0] for image in errors for e in image), "rate_diff": max(rate_errors),
        "ok": matched >= max(1, math.ceil(min_match * len(per_image))),
    }


def _writer(opset: int, write: GraphWriter | None) -> GraphWriter:
    return write or functools.partial(export_graph, opset=opset)


def export_unrolled(network: SpikingNetwork, example: torch.Tensor, out: str | Path, timesteps: int,
                    opset: int = DEFAULT_OPSET, meta: dict | None = None, write: GraphWriter | None = None,
                    ) -> UnrolledSNN:
    """Write the unrolled T-step graph of ``network`` for inputs shaped like ``example``; returns the module
    it was traced from (for PyTorch comparisons). ``write`` replaces the ONNX writer (:func:`export_graph`),
    e.g. by another backend's compiler with the same arguments."""
    unrolled = UnrolledSNN(network, timesteps)
    unrolled(example)  # caches the Detect anchors for this input size, and the layer sizes, before tracing
    _writer(opset, write)(unrolled, [example], out, ["images"], ["output", "spikes"], metadata={"spikedet": {
        **(meta or {}), "graph": "snn-unrolled", "timesteps": timesteps, "neurons": unrolled.spikes.sizes,
    }})
    return unrolled


def export_stateful(network: SpikingNetwork, example: torch.Tensor, out: str | Path, steps: int = 1,
                    leak: float = 1.0, pool_decay: float = 1.0, reset_input: bool = True,
                    opset: int = DEFAULT_OPSET, meta: dict | None = None, write: GraphWriter | None = None,
                    ) -> SteppedSNN:
    """Write the stateful graph (see :class:`SteppedSNN` for the arguments); returns the module it was traced
    from (its ``state_names``, ``readout_slots`` and :meth:`~SteppedSNN.initial_state` describe the state)."""
    stepped = SteppedSNN(network, example, steps, leak, pool_decay, reset_input)
    state = stepped.zero_state()
    stepped(example, *([torch.tensor(True)] if reset_input else []), *state)  # layer sizes for the metadata
    flag = ["reset"] if reset_input else []
    usage = (
        "zero tensors and reset=true on the first step, then feed each state_out.* back as state_in.*"
        if reset_input else "the initial state (v0*threshold for v, zeros else) first, then feed each state_out.* back"
    )
    _writer(opset, write)(
        stepped, [example, *([torch.tensor(True)] if reset_input else []), *state], out,
        ["images", *flag, *(STATE_IN + n for n in stepped.state_names)],
        ["output", "spikes", *(STATE_OUT + n for n in stepped.state_names)],
        metadata={"spikedet": {
            **(meta or {}), "graph": "snn-stateful", "steps": stepped.steps, "leak": leak, "pool_decay": pool_decay,
            "state": stepped.state_names, "state_shapes": [list(s) for s in stepped.state_shapes],
            "neurons": stepped.spikes.sizes, "usage": usage,
        }},
    )
    return stepped


def export_ann(model: nn.Module, example: torch.Tensor, out: str | Path, opset: int = DEFAULT_OPSET,
               meta: dict | None = None, write: GraphWriter | None = None) -> AnnGraph:
    """Write the BN-folded ANN's graph; returns the module it was traced from."""
    ann = AnnGraph(fold_batchnorm(copy.deepcopy(model)))
    with torch.no_grad():
        ann(example)
        _writer(opset, write)(
            ann, [example], out, ["images"], ["output"], metadata={"spikedet": {**(meta or {}), "graph": "ann"}}
        )
    return ann


def graph_metadata(session: ort.InferenceSession) -> dict[str, Any]:
    """The ``spikedet`` metadata an exported graph carries (graph kind, neurons per layer, state names, ...)."""
    return json.loads(session.get_modelmeta().custom_metadata_map.get("spikedet", "{}"))


def _check_unrolled(network: SpikingNetwork, samples: list[torch.Tensor], out: Path, timesteps: int, opset: int,
                    meta: dict) -> list[Pairs]:
    unrolled = export_unrolled(network, samples[0], out, timesteps, opset, meta)
    session = ort_session(out)
    neurons = graph_metadata(session)["neurons"]
    pairs = []
    for x in samples:
        got, got_spikes = session.run(None, {"images": x.numpy()})
        ref, ref_spikes = unrolled(x)
        rates = [firing_rates(s, neurons, timesteps) for s in (got_spikes, ref_spikes.numpy())]
        pairs.append([(got, ref.numpy(), *rates)])
    return pairs


def _monitored_steps(network: SpikingNetwork, x: torch.Tensor, timesteps: int) -> tuple[dict[int, Any], list]:
    """PyTorch's read-outs after each of T steps from a reset, and each step's per-layer spikes counted by a
    :class:`SpikeMonitor` (the neurons' own statistics, not the export's counting)."""
    monitor = SpikeMonitor(network)
    try:
        outputs = network.anytime(x, list(range(1, timesteps + 1)), record=True)
    finally:
        monitor.close()
    return outputs, [[monitor.spikes[name][t] for name in monitor.neurons] for t in range(timesteps)]


def _check_stateful(network: SpikingNetwork, samples: list[torch.Tensor], out: Path, timesteps: int, opset: int,
                    meta: dict) -> list[Pairs]:
    """Export one step; compare every step of a T-step onnxruntime run from reset with PyTorch's read-outs."""
    export_stateful(network, samples[0], out, opset=opset, meta=meta)
    session = ort_session(out)
    neurons = graph_metadata(session)["neurons"]
    images = []
    for x in samples:
        ref, ref_spikes = _monitored_steps(network, x, timesteps)
        steps = run_stateful(session, x.numpy(), timesteps)
        images.append([
            (got, detect_output(ref[t + 1]).numpy(), firing_rates(spikes, neurons, 1),
             firing_rates(ref_spikes[t], neurons, 1))
            for t, (got, spikes) in enumerate(steps)
        ])
    return images


def _check_ann(model: nn.Module, samples: list[torch.Tensor], out: Path, opset: int, meta: dict) -> list[Pairs]:
    ann = export_ann(model, samples[0], out, opset, meta)
    session = ort_session(out)
    with torch.no_grad():
        return [[(session.run(None, {"images": x.numpy()})[0], ann(x).numpy(), None, None)] for x in samples]


def export_detector(
    weights: str | Path | None = None,
    out: str | Path = "model.onnx",
    timesteps: int = 4,
    imgsz: int | None = None,
    stateful: bool = False,
    opset: int = DEFAULT_OPSET,
    data: str | None = None,
    images: int = 16,
    tolerance: float = TOLERANCE,
    min_match: float = MIN_MATCH,
    method: str = "qcfs",
    with_ann: bool = True,
) -> dict[str, Any]:
    """Export a checkpoint's spiking detector (unrolled over T, or ``stateful``) to ``out`` and, for an ANN
    checkpoint (unless ``with_ann`` is False), its ANN to ``<out>_ann.onnx``; run each graph in onnxruntime
    on ``images`` letterboxed images of the model's evaluation split and compare with PyTorch.

    Returns the report; a graph's ``ok`` is False when fewer than ``min_match`` of the images agree within
    ``tolerance`` (see the module docstring).
    """
    timesteps = check_timesteps(timesteps)[0]
    if images < 1:
        raise ValueError(f"--images must be >= 1, got {images}")
    path = resolve_weights(weights)
    kind, model, config = load_detector(path)
    network = build_snn(model, get_recipe(method)) if kind == "ann" else model
    imgsz = check_imgsz(imgsz or int(config.get("imgsz", 320)))
    samples = _eval_images(config, data, imgsz, images)
    out = Path(out)
    meta = {"weights": str(path), "imgsz": imgsz, "class_names": config.get("class_names"), "opset": opset}
    exports = [
        ("snn-stateful", out, lambda: _check_stateful(network, samples, out, timesteps, opset, meta)) if stateful
        else ("snn-unrolled", out, lambda: _check_unrolled(network, samples, out, timesteps, opset, meta))
    ]
    if kind == "ann" and with_ann:
        ann_path = out.with_name(f"{out.stem}_ann.onnx")
        exports.append(("ann", ann_path, lambda: _check_ann(model, samples, ann_path, opset, meta)))
    graphs = [_parity(name, path, run(), imgsz, tolerance, min_match) for name, path, run in exports]
    return {
        "opset": opset, "imgsz": imgsz, "timesteps": timesteps, "images": len(samples), "tolerance": tolerance,
        "min_match": min_match, "graphs": graphs, "ok": all(g["ok"] for g in graphs),
    }


def format_export(report: dict[str, Any]) -> str:
    """The report as a text table."""
    lines = [
        f"ONNX opset {report['opset']}, {report['imgsz']} px, T={report['timesteps']}: onnxruntime vs PyTorch on "
        f"{report['images']} images of the evaluation split",
        f"difference normalised by the output scale (boxes / input size, scores), tolerance {report['tolerance']:g}; "
        f"a graph passes when at least {report['min_match']:.0%} of the images match (outputs and per-layer "
        "firing rates)",
        f"{'graph':<13} {'matched':>8} {'median':>9} {'worst':>9} {'max |diff|':>10} {'rate diff':>9} {'ok':>3}  path",
    ]
    for g in report["graphs"]:
        lines.append(
            f"{g['graph']:<13} {g['images_matched']:>4}/{g['images']:<3} {g['median_diff']:>9.2g} "
            f"{g['normalised_diff']:>9.2g} {g['max_abs_diff']:>10.3g} {g['rate_diff']:>9.2g} "
            f"{'yes' if g['ok'] else 'NO':>3}  {g['path']}"
        )
    return "\n".join(lines)
