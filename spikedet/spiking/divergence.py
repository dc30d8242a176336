"""How far two versions of one network drift apart: the fraction of quantizer outputs that differ, layer by layer.

A quantizer (a spiking neuron, or an ANN's QCFS activation) turns a small change of its input into a whole
level whenever the input sits near a step. That changed level moves the next layer's inputs by a full quantum,
which flips more outputs there, so a perturbation anywhere grows from layer to layer. Comparing a low-precision
copy with fp32 this way shows where their outputs part and how fast the difference spreads: the reason a
precision moves mAP, beyond what float32 summation order alone does.

Whether that move is the precision's own loss or chance needs a control of the same size: :func:`int8_sized_noise`
gives fp32 copies whose weights carry random errors as large as int8's rounding. Their mAP spread around fp32 is
what any such perturbation does; int8 inside that spread lost nothing of its own.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from .coded_conv import Int8CodedConv2d
from .neuron import SpikingNeuron
from .precision import to_precision
from .quant import QCFS
from .runtime import SpikingNetwork

__all__ = ["LayerDivergence", "quantizer_divergence", "int8_sized_noise"]


@dataclass(frozen=True)
class LayerDivergence:
    """One quantizer layer: its name and the fraction of its outputs (all images, steps, elements) that differ."""

    layer: str
    flipped: float


def _quantizer_outputs(model: nn.Module, images: torch.Tensor, timesteps: int) -> dict[str, torch.Tensor]:
    net = model.net if isinstance(model, SpikingNetwork) else model
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_hook(lambda m, args, out, name=name: outputs.__setitem__(name, out.detach().float()))
        for name, module in net.named_modules()
        if isinstance(module, (SpikingNeuron, QCFS))
    ]
    try:
        with torch.no_grad():
            model(images, timesteps) if isinstance(model, SpikingNetwork) else model(images)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


def quantizer_divergence(
    reference: nn.Module, other: nn.Module, images: torch.Tensor, *, timesteps: int = 4
) -> list[LayerDivergence]:
    """Per quantizer layer that runs in ``reference``, in forward order (neurons of a :class:`SpikingNetwork`
    simulated for ``timesteps`` steps from reset, or the QCFS activations of an ANN): the fraction of its outputs
    on ``images`` that ``other``, the same network in another arithmetic, computes differently."""
    ref = _quantizer_outputs(reference, images, timesteps)
    alt = _quantizer_outputs(other, images, timesteps)
    if ref.keys() != alt.keys() or any(ref[name].shape != alt[name].shape for name in ref):
        raise ValueError("the two models have different quantizer layers: compare two versions of one network")
    return [LayerDivergence(name, float((ref[name] != alt[name]).float().mean())) for name in ref]


Model = TypeVar("Model", bound=nn.Module)


def int8_sized_noise(model: Model, *, seed: int, readouts: Sequence[str] = ()) -> Model:
    """An fp32 copy of ``model`` (a quantized ANN or a :class:`SpikingNetwork`) whose convolutions that int8 lowers
    (:func:`~.precision.to_precision`) carry a random weight error as large as int8's rounding: uniform in ±half
    of that layer's int8 step, per output channel, drawn from ``seed``. ``readouts``: as for ``to_precision``."""
    lowered, report = to_precision(model, "int8", readouts=readouts)
    noisy = copy.deepcopy(model)
    low_net = lowered.net if isinstance(lowered, SpikingNetwork) else lowered
    noisy_net = noisy.net if isinstance(noisy, SpikingNetwork) else noisy
    generator = torch.Generator().manual_seed(seed)
    for name in report.lowered:
        coded: Int8CodedConv2d = low_net.get_submodule(name)
        weight = noisy_net.get_submodule(name).weight
        step = coded.weight_scale.view(-1, 1, 1, 1)  # int8 step of the folded weight W·quantum
        error = (torch.rand(weight.shape, generator=generator) - 0.5).to(weight.device) * step / coded.weight_quantum()
        weight.data += error.to(weight.dtype)
    return noisy
