"""Distillation targets for spike-aware fine-tuning: the ANN a spiking network was converted from.

Two terms, both mean squared errors averaged over the trained T:

* read-out: the spiking read-outs after step t (raw head outputs) towards the ANN's;
* layer-wise: each neuron layer's running rate after step t (its mean output over steps 1..t) towards the
  ANN's quantized activation of the same layer, in units of the layer's threshold. Conversion keeps module
  names, so neuron ``model.2.cv1.act`` is matched with the ANN's QCFS ``model.2.cv1.act``. This is the signal
  layer-wise calibration (Dual-Phase) uses, given to every layer at once and trained end to end.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .neuron import SpikingNeuron
from .quant import QCFS

__all__ = ["matched_layers", "record_outputs", "layer_distillation"]


def matched_layers(student: nn.Module, teacher: nn.Module) -> dict[str, tuple[SpikingNeuron, QCFS]]:
    """Neuron layers of ``student`` and the ANN activations of ``teacher`` with the same name."""
    acts = {n: m for n, m in teacher.named_modules() if isinstance(m, QCFS)}
    pairs = {n: (m, acts[n]) for n, m in student.named_modules() if isinstance(m, SpikingNeuron) and n in acts}
    if not pairs:
        raise ValueError("no neuron layer matches an ANN activation: was the network converted from this ANN?")
    return pairs


@contextmanager
def record_outputs(modules: dict[str, nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """Inside: ``{name: output}`` of each module's last call (forward hooks, removed on exit)."""
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
        for name, module in modules.items()
    ]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()


def layer_distillation(
    spikes: dict[str, torch.Tensor],
    activations: dict[str, torch.Tensor],
    thresholds: dict[str, torch.Tensor],
    *,
    steps: int,
    timesteps: list[int],
) -> torch.Tensor:
    """Mean over layers and over ``timesteps`` of ``MSE(rate_t / θ, a / θ)``: ``spikes`` are time-folded neuron
    outputs ``[steps·B, ...]``, ``activations`` the ANN's ``[B, ...]``."""
    index = torch.tensor([t - 1 for t in timesteps])
    total = torch.zeros(())
    for name, out in spikes.items():
        target = activations[name].detach()
        seq = out.view(steps, -1, *out.shape[1:])
        counts = torch.arange(1, steps + 1, dtype=out.dtype, device=out.device).view(-1, *([1] * (seq.dim() - 1)))
        rates = (seq.cumsum(0) / counts)[index.to(out.device)]
        theta = thresholds[name].detach()
        total = total.to(out.device) + ((rates - target.unsqueeze(0)) / theta).pow(2).mean()
    return total / max(1, len(spikes))
