"""Pipeline latency of layer-sequential spiking networks (PASCAL), measured on the network's own graph.

An online network passes every step through all layers within that step, so its latency is its step count.
A layer-sequential layer emits only after its whole input has arrived (methods.md §4(a)): T steps to integrate,
``max(T, L) − 1`` internal correction steps, then T steps of emission, which overlap the next layer's
integration. The first complete output therefore waits ``Σ (T + max(T, L_l) − 1)`` over the slowest chain of
such layers, plus the T steps the read-out integrates. The chain is found by tagging tensors with the cost of
their slowest path while the network runs once (a ``TorchFunctionMode``: every operation takes the maximum
over its inputs, each layer-sequential neuron adds its own cost), so concatenations, residual adds and reused
modules are followed exactly, whatever the architecture.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from .neuron import PascalNeuron, SpikingNeuron
from .runtime import SpikingNetwork

__all__ = ["is_layer_sequential", "longest_path", "pipeline_steps"]


class _PathCost(TorchFunctionMode):
    """Tags each tensor with the largest cost of a chain of neurons leading to it."""

    def __init__(self) -> None:
        super().__init__()
        self.cost: dict[int, tuple[torch.Tensor, int]] = {}  # id → (tensor kept alive so ids stay unique, cost)

    def of(self, *objects: Any) -> int:
        return max((self.cost.get(id(t), (None, 0))[1] for t in tree_leaves(objects) if isinstance(t, torch.Tensor)), default=0)

    def tag(self, outputs: Any, cost: int) -> None:
        for t in tree_leaves(outputs):
            if isinstance(t, torch.Tensor):
                self.cost[id(t)] = (t, max(cost, self.cost.get(id(t), (None, 0))[1]))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        cost = self.of(args, kwargs)
        if cost:
            self.tag(out, cost)
        return out


@torch.no_grad()
def longest_path(network: SpikingNetwork, x: torch.Tensor, cost: Callable[[nn.Module], int]) -> int:
    """The largest sum of ``cost(neuron)`` over a chain of neurons from the input to the output of one run."""
    mode = _PathCost()

    def add_own_cost(module: nn.Module, inputs: tuple, output: Any) -> None:
        mode.tag(output, mode.of(inputs) + cost(module))

    hooks = [m.register_forward_hook(add_own_cost) for m in network.net.modules() if isinstance(m, SpikingNeuron)]
    try:
        with mode:
            out = network(x, 1)
        return mode.of(out)
    finally:
        for h in hooks:
            h.remove()


def is_layer_sequential(network: SpikingNetwork) -> bool:
    """Whether some layer waits for its whole input before it emits (PASCAL's neuron)."""
    return any(isinstance(m, PascalNeuron) for m in network.net.modules())


def pipeline_steps(network: SpikingNetwork, x: torch.Tensor, timesteps: int) -> int | None:
    """Steps until a layer-sequential network's first complete output (None for an online network, whose
    latency is its step count): ``Σ (T + max(T, L_l) − 1)`` over the slowest chain, plus T for the read-out."""
    if not is_layer_sequential(network):
        return None

    def cost(module: nn.Module) -> int:
        if isinstance(module, PascalNeuron):
            return timesteps + max(timesteps, module.levels) - 1
        return 0

    return longest_path(network, x, cost) + timesteps
