"""Preparing a converted network for spike-aware fine-tuning, and driving its time dimension while it trains.

Fine-tuning trains the network *as a spiking network*: its forward pass is the T-step simulation the runtime
runs (time folded into the batch), its backward pass goes through the neurons' surrogate gradient
(:mod:`spikedet.spiking.surrogate`). Only online neurons can be trained: IF (``qcfs``, ``dual_phase``) and
Fast-SNN's signed IF (``fast_snn``). Their read-out after each step is the output at that T, so one simulation
to ``max(T)`` trains every T at once.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from .context import SimContext
from .convert import spiking_modules
from .neuron import IFNeuron, SignedIFNeuron, SpikingNeuron
from .runtime import check_timesteps, select_step
from .surrogate import SURROGATES

__all__ = [
    "NEURON_LR_SCALE", "TRAINABLE_NEURONS", "attach_context", "check_trainable", "make_trainable", "separate_neuron_parameters",
    "simulation", "steps_of",
]

# Adam-type optimizers move each parameter by about the learning rate per step whatever its size: thresholds
# (~1-4) would barely move at a learning rate sized for conv weights (~0.01-0.1), so theirs is scaled up.
NEURON_LR_SCALE = 10.0

# the neurons with a surrogate-gradient kernel (spiking/surrogate.py)
TRAINABLE_NEURONS = (IFNeuron, SignedIFNeuron)


def check_trainable(net: nn.Module) -> None:
    """Refuse networks with neurons the surrogate-gradient simulation does not cover, naming the first one."""
    neurons = [(n, m) for n, m in net.named_modules() if isinstance(m, SpikingNeuron)]
    if not neurons:
        raise ValueError("the network has no spiking neurons: convert an ANN first (tools/convert_det.py)")
    for name, module in neurons:
        if type(module) not in TRAINABLE_NEURONS:
            raise ValueError(
                f"neuron '{name}' is {type(module).__name__}: spike-aware fine-tuning trains online IF networks "
                "(recipes qcfs, dual_phase and fast_snn); convert the ANN with one of those first"
            )


def _as_parameter(module: nn.Module, name: str) -> None:
    value = getattr(module, name)
    if isinstance(value, nn.Parameter):
        return
    del module._buffers[name]
    module.register_parameter(name, nn.Parameter(value.detach().clone()))


def make_trainable(
    net: nn.Module,
    *,
    thresholds: bool = True,
    v0: bool = False,
    surrogate: str = "triangle",
    detach_reset: bool = True,
) -> nn.Module:
    """Turn each IF neuron's threshold (and optionally its initial potential) into a parameter and set the
    surrogate gradient, in place. The state-dict keys stay the same, so a checkpoint loads into a plain network."""
    check_trainable(net)
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate '{surrogate}'; choose from {', '.join(SURROGATES)}")
    for module in net.modules():
        if isinstance(module, TRAINABLE_NEURONS):
            module.surrogate = surrogate
            if isinstance(module, IFNeuron):
                module.detach_reset = detach_reset
            if thresholds:
                _as_parameter(module, "threshold")
            if v0:
                _as_parameter(module, "v0")
    return net


def attach_context(net: nn.Module) -> SimContext:
    """One simulation context shared by every stateful module of ``net`` (returned)."""
    ctx = SimContext()
    for module in spiking_modules(net):
        module.ctx = ctx
    return ctx


@contextmanager
def simulation(stateful: list[nn.Module], ctx: SimContext, *, batch: int, steps: int) -> Iterator[None]:
    """Inside: ``steps`` online steps of ``batch`` images from a reset state. The state is cleared again on
    exit, so a training forward keeps no graph alive between batches and a deep copy (EMA) finds none."""
    check_timesteps(steps)
    for module in stateful:
        module.reset()
    ctx.steps, ctx.batch, ctx.wake, ctx.record, ctx.neurons_run = steps, batch, None, False, 0
    ctx.run += 1
    try:
        yield
    finally:
        for module in stateful:
            module.reset()


def steps_of(out: Any, *, steps: int, batch: int, timesteps: list[int]) -> list[Any]:
    """The read-outs after each of ``timesteps`` (1-based) from a time-folded output."""
    return [select_step(out, steps, batch, t - 1) for t in timesteps]


def separate_neuron_parameters(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Move every neuron parameter (θ, v0) out of ``optimizer``'s groups into one group of its own with the
    first group's settings, ``NEURON_LR_SCALE`` times its learning rate and no weight decay (in place)."""
    neuron = {id(p) for m in model.modules() if isinstance(m, SpikingNeuron) for p in m.parameters(recurse=False)}
    if not neuron:
        return optimizer
    moved = []
    for group in optimizer.param_groups:
        moved += [p for p in group["params"] if id(p) in neuron]
        group["params"] = [p for p in group["params"] if id(p) not in neuron]
    optimizer.add_param_group({"params": moved, "lr": optimizer.param_groups[0]["lr"] * NEURON_LR_SCALE, "weight_decay": 0.0})
    return optimizer
