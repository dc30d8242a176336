"""How far two versions of one network drift apart: the fraction of quantizer outputs that differ, layer by layer.

A quantizer (a spiking neuron, or an ANN's QCFS activation) turns a small change of its input into a whole
level whenever the input sits near a step. That changed level moves the next layer's inputs by a full quantum,
which flips more outputs there, so a perturbation anywhere grows from layer to layer. Comparing a low-precision
copy with fp32 this way shows where their outputs part and how fast the difference spreads: the reason a
precision moves mAP, beyond what float32 summation order alone does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .neuron import SpikingNeuron
from .quant import QCFS
from .runtime import SpikingNetwork

__all__ = ["LayerDivergence", "quantizer_divergence"]


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
    """Per quantizer layer that runs in ``reference``, in forward order (neurons of a :class:`SpikingNetwork` simulated for
    ``timesteps`` steps from reset, or the QCFS activations of an ANN): the fraction of its outputs on ``images``
    that ``other``, the same network in another arithmetic, computes differently."""
    ref = _quantizer_outputs(reference, images, timesteps)
    alt = _quantizer_outputs(other, images, timesteps)
    if ref.keys() != alt.keys() or any(ref[name].shape != alt[name].shape for name in ref):
        raise ValueError("the two models have different quantizer layers: compare two versions of one network")
    return [LayerDivergence(name, float((ref[name] != alt[name]).float().mean())) for name in ref]
