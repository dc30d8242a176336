"""Conversion surgery: quantized ANN → spiking network (methods.md §8.6).

Works on any ``nn.Module`` by module replacement: BatchNorm is folded into the preceding conv, each
:class:`QCFS` becomes a neuron with ``θ = |λ|``, ``nn.MaxPool2d`` becomes :class:`SpikingMaxPool`, the named
read-out layers become :class:`ReadOut`. Linear layers stay as they are. Any other nonlinearity left in the
network is an error naming the layer, since it would silently break the rate code.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from .layer import ReadOut, SpikingMaxPool
from .neuron import NEURONS, SpikingNeuron
from .quant import QCFS

__all__ = ["ConversionError", "fold_batchnorm", "convert", "is_analog", "spiking_modules"]

# Nonlinear modules with no spiking equivalent here: left in place they would be applied to spikes.
UNSUPPORTED = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.LeakyReLU,
    nn.PReLU, nn.ELU, nn.Mish, nn.Softmax, nn.LayerNorm, nn.GroupNorm, nn.MultiheadAttention,
)


# Set by `convert` on the modules after the read-out that stay in ANN arithmetic (the runtime masks no sleep-step
# bias there and the accounting counts no operations there).
_ANALOG_ATTR = "spikedet_analog"


class ConversionError(ValueError):
    """The model cannot be converted as asked; the message names the layer."""


def is_analog(module: nn.Module) -> bool:
    """Whether ``module`` was declared analog (post-read-out, ANN arithmetic) at conversion."""
    return getattr(module, _ANALOG_ATTR, False)




def _fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold eval-mode BatchNorm into ``conv`` in place: ``W' = W·γ/σ``, ``b' = (b − μ)·γ/σ + β``."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.data.mul_(scale.view(-1, 1, 1, 1))
    new_bias = (bias - bn.running_mean) * scale + bn.bias.detach()
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.data.copy_(new_bias)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d into it (in place); the BN becomes Identity.

    Recognises ``nn.Sequential`` runs ``[..., Conv2d, BatchNorm2d, ...]`` and modules holding ``conv`` and
    ``bn`` attributes (ultralytics ``Conv``).
    """
    for module in model.modules():
        if isinstance(getattr(module, "conv", None), nn.Conv2d) and isinstance(getattr(module, "bn", None), nn.BatchNorm2d):
            _fuse_conv_bn(module.conv, module.bn)
            module.bn = nn.Identity()
        if isinstance(module, nn.Sequential):
            children = list(module._modules.items())
            for (_, first), (name, second) in zip(children, children[1:]):
                if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d):
                    _fuse_conv_bn(first, second)
                    module._modules[name] = nn.Identity()
    return model


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def _inside(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def convert(
    model: nn.Module,
    readouts: list[str],
    neuron: str | Callable[..., SpikingNeuron] = "if",
    analog: list[str] = (),
    neuron_args: dict | None = None,
) -> nn.Module:
    """Return a spiking copy of a quantized ANN (the input model is not modified).

    Args:
        model: a network whose activations are :class:`QCFS` (eval mode is set on the copy).
        readouts: qualified names of the layers whose outputs are the network's read-out (e.g. a detector
            head's final convs); their outputs are averaged over the effective time steps.
        neuron: a registered neuron's name (:data:`~spikedet.spiking.neuron.NEURONS`) or a factory
            ``(QCFS, **neuron_args) -> SpikingNeuron``.
        analog: qualified names of sub-modules after the read-out that stay in ANN arithmetic (decoding).
        neuron_args: extra keyword arguments of the neuron (e.g. COS's ``rho``).
    """
    if isinstance(neuron, str):
        if neuron not in NEURONS:
            raise ConversionError(f"unknown neuron '{neuron}'; choose from {', '.join(NEURONS.names())}")
        factory = NEURONS.get(neuron).from_qcfs
    else:
        factory = neuron
    snn = copy.deepcopy(model).eval()
    names = dict(snn.named_modules())
    for name in readouts:
        if name not in names:
            raise ConversionError(f"read-out layer '{name}' not found in the model")
    for name in analog:
        if name not in names:
            raise ConversionError(f"analog layer '{name}' not found in the model")
    quants = [(n, m) for n, m in names.items() if isinstance(m, QCFS)]
    if not quants:
        raise ConversionError("the model has no quantized (QCFS) activation: train or build it with QCFS first")
    skip = list(analog) + list(readouts)
    for name, module in names.items():
        if isinstance(module, UNSUPPORTED) and not _inside(name, skip):
            raise ConversionError(
                f"layer '{name}' is {type(module).__name__}, which has no spiking equivalent; "
                "replace it with QCFS and retrain (see spikedet.models)"
            )
    fold_batchnorm(snn)
    for name, q in quants:
        _set_module(snn, name, factory(q, **(neuron_args or {})))
    for name, module in names.items():
        if isinstance(module, nn.MaxPool2d) and not _inside(name, skip):
            _set_module(snn, name, SpikingMaxPool(module))
    for name in readouts:
        _set_module(snn, name, ReadOut(snn.get_submodule(name)))
    for name in analog:
        for module in snn.get_submodule(name).modules():
            setattr(module, _ANALOG_ATTR, True)
    return snn


def spiking_modules(model: nn.Module) -> list[nn.Module]:
    """Every module of a converted network that holds simulation state."""
    return [m for m in model.modules() if isinstance(m, (SpikingNeuron, SpikingMaxPool, ReadOut))]
