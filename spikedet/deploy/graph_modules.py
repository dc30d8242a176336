"""The modules that are traced into graphs, and the functions that write them.

- **unrolled** (:class:`UnrolledSNN`): ``images → (output, spikes)``; T steps from a reset state, the head's
  decoded output before NMS, exactly what ``SpikingNetwork(x, T)`` returns.
- **stateful** (:class:`SteppedSNN`): ``(images, reset, state…) → (output, spikes, state…)``; one time step
  with the whole simulation state as explicit tensors — membrane potentials (and the counters of signed/CIF
  neurons), the max-pool accumulators (one set per call site: SPPF calls its pool three times), the read-outs'
  running sums and step counts. A streaming runtime starts with zero tensors and ``reset = true``, then feeds
  each ``state_out.*`` back as ``state_in.*``; the output after t steps is the t-step read-out. The demo's
  stream graph is a variant: several steps per call, the stream's forgetting built in, and no ``reset`` input
  (the caller feeds :meth:`SteppedSNN.initial_state` instead, which spares a select over every state tensor).
- **ann** (:class:`AnnGraph`): the BN-folded ANN with the same output.

``spikes`` ``[L]`` holds the spikes each neuron layer emitted in the call (a sum per layer, in the order of
``network.modules()``), the quantity the neurons' own ``record`` counters add up; the metadata's ``neurons``
gives each layer's neurons per image and step, so firing rates need no second pass.

The ``export_*`` functions write a graph with a :data:`GraphWriter`: the ONNX writer by default
(:func:`~spikedet.deploy.onnx_writer.export_graph`), or another backend's compiler with the same arguments.
"""
from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ..spiking import (
    OnlineSchedule, ReadOut, SpikingNetwork, SpikingNeuron, StatefulModule, check_timesteps, fold_batchnorm,
)
from ..models.postprocess import decoded_output
from .detector import forgetting, forgetting_modules
from .graph_format import DEFAULT_OPSET, STATE_IN, STATE_OUT, GraphWriter

__all__ = [
    "UnrolledSNN", "SteppedSNN", "AnnGraph",
    "export_unrolled", "export_stateful", "export_ann",
]



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
            output = decoded_output(self.network(images, self.timesteps))
        return output, self.spikes.stacked()


class AnnGraph(nn.Module):
    """The ANN with the same output as the spiking graphs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return decoded_output(self.model(images))


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
            output = decoded_output(self.network.stream(images, self.steps))
        return (output, self.spikes.stacked(), *(getattr(module, attr) for _, module, attr in self._slots))


def _writer(opset: int, write: GraphWriter | None) -> GraphWriter:
    if write is not None:
        return write
    from .onnx_writer import export_graph  # onnx only when writing ONNX

    return functools.partial(export_graph, opset=opset)


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
