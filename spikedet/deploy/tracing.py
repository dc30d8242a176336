"""Tracing a spiking module into a side-effect-free FX graph that graph compilers and the ONNX exporter take.

The spiking kernels update their state in place and write into preallocated buffers, which the TorchScript
tracer does not follow (it would bake the simulation into constants). So the forward is first made
side-effect free: :func:`functional_graph` traces it with ``make_fx`` under ``functionalize`` (every in-place
update becomes a pure op) and rewrites the few ops the exporters lack. No ONNX here: AOTInductor compiles the
same graph.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, functionalize
from torch.fx.experimental.proxy_tensor import make_fx

from ..spiking import StatefulModule

__all__ = ["ExportError", "functional_graph"]


class ExportError(ValueError):
    """The export failed, or a compiled graph does not reproduce PyTorch within the tolerance."""


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
