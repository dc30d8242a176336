"""Which convolutions of a network are fed by exact codes: per input channel, a quantum times a small integer.

A spiking layer's input is spikes (``θ·s``, ``s ∈ {0, 1}``, or ``{−1, 0, 1}`` for signed neurons), and a
quantized ANN's is QCFS levels (``λ/L · k``, ``k ∈ 0..L``), passed on unchanged by concat, nearest upsample and
max-pooling (exactly so for :class:`SpikingMaxPool`). Folding the quantum into the next layer's weights, per
input channel, leaves integers: exact in bf16, fp16 and int8. A residual add of two spike trains is not (``θ_a +
θ_b`` is no multiple of one quantum), nor is the image, a read-out's running mean, or anything after it.

:func:`survey_inputs` finds these convolutions from two forwards with every quantizer (neuron or QCFS) made to
emit codes of its own quantum: first code 1 everywhere, which shows each input channel's quantum (a constant
channel), then random codes of the quantizer's levels, which must all be integer multiples of that quantum. Random
codes make every combination of sources appear, so a channel that sums two sources (quantum ``θ_a + θ_b``) shows
values that are not. The graph decides, not the data: the survey holds for any input.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .convert import is_analog
from .layer import ReadOut, SpikingMaxPool
from .neuron import SpikingNeuron
from .quant import QCFS
from .runtime import SpikingNetwork

__all__ = ["InputCode", "InputSurvey", "survey_inputs"]

# |x/q − round(x/q)| allowed when checking a code: float32 sums of θ (max-pool differences) and QCFS's λ·k/L
# differ from k·q by a few ulps; a residual sum of two sources misses an integer by far more.
CODE_TOLERANCE = 1e-3
# codes must fit uint8 with a zero point
MAX_CODE_SPAN = 255


@dataclass(frozen=True)
class InputCode:
    """A convolution input equal to ``quantum[c] · k`` in channel c, with integers ``low ≤ k ≤ high``."""

    quantum: torch.Tensor  # [C_in], float32
    low: int
    high: int


@dataclass
class InputSurvey:
    """The convolutions fed by codes (``codes``), the others with the reason (``kept``), and each one's
    multiply-accumulates per image and step at the survey's input size (``macs``)."""

    codes: dict[str, InputCode] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)
    macs: dict[str, int] = field(default_factory=dict)


def _channel_quantum(x: torch.Tensor) -> torch.Tensor | None:
    """Per channel of ``x`` ``[N, C, ...]`` from the code-1 forward: the value if the channel is one positive
    constant, else None (the image, or a max-pool that is no code)."""
    values = x.detach().transpose(0, 1).reshape(x.shape[1], -1)
    high, low = values.amax(1), values.amin(1)
    return high.float() if bool((high == low).all() and (low > 0).all()) else None


def _channel_codes(x: torch.Tensor, quantum: torch.Tensor) -> InputCode | None:
    """The code of ``x`` ``[N, C, ...]`` with the channels' ``quantum``, or None when some value is no integer
    multiple of it or the codes span more than uint8 holds."""
    values = x.detach().transpose(0, 1).reshape(x.shape[1], -1).double()
    codes = values / quantum.double()[:, None]
    rounded = codes.round()
    if float((codes - rounded).abs().max()) > CODE_TOLERANCE:
        return None
    low, high = min(int(rounded.min()), 0), max(int(rounded.max()), 1)
    if high - low > MAX_CODE_SPAN:
        return None
    return InputCode(quantum, low, high)


def _forced_output(module: nn.Module, shape: torch.Size, generator: torch.Generator, ones: bool) -> torch.Tensor:
    """What a quantizer emits in the survey: code 1 everywhere (``ones``) or random codes of its levels, times
    its quantum; uniform noise for a quantizer without fixed levels, so that nothing downstream counts as coded."""
    if isinstance(module, SpikingNeuron):
        levels, quantum = module.spike_levels, module.threshold.cpu()
    elif isinstance(module, QCFS):
        levels, quantum = tuple(range(module.levels + 1)), module.threshold.cpu() / module.levels
    else:  # a max-pool whose accumulators decay between calls (the demo's stream): its outputs are no codes
        levels, quantum = None, torch.ones(())
    if levels is None:
        return torch.rand(shape, generator=generator) * quantum.float()
    if ones:
        return torch.ones(shape) * quantum.float()
    pick = torch.randint(len(levels), shape, generator=generator)
    return torch.tensor(levels, dtype=torch.float32)[pick] * quantum.float()


def survey_inputs(
    model: nn.Module, *, imgsz: int = 64, steps: int = 2, pools_exact: bool = True, seed: int = 0
) -> InputSurvey:
    """Classify every ``nn.Conv2d`` of ``model`` (a quantized ANN or a :class:`SpikingNetwork`) by the two
    forwards of the module docstring on a random ``imgsz`` input (``steps`` time steps of one image for a
    spiking network, ``steps`` images for an ANN).

    ``pools_exact=False`` treats the outputs of spiking max-pools as no codes: the demo's stream scales their
    accumulators between frames (``--pool-decay``), which breaks the spike values of what they emit.
    The model is left as it was (its state reset, no hooks).
    """
    net = model.net if isinstance(model, SpikingNetwork) else model
    survey = InputSurvey()
    generator = torch.Generator().manual_seed(seed)
    readout_layers = {id(m) for r in net.modules() if isinstance(r, ReadOut) for m in r.modules()}
    ones = True  # which of the two forwards runs
    quanta: dict[str, torch.Tensor | None] = {}
    found: dict[str, InputCode | None] = {}
    calls: Counter[str] = Counter()

    def force(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        return _forced_output(module, output.shape, generator, ones).to(output)

    def inspect(name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if ones:
                survey.macs[name] = int(output[0].numel() * module.weight[0].numel())
            if name in survey.kept:
                return
            calls[name] += 1
            if ones:
                quanta[name] = _channel_quantum(args[0].cpu())
            else:
                quantum = quanta.get(name)
                found[name] = None if quantum is None else _channel_codes(args[0].cpu(), quantum)
        return hook

    hooks = []
    for name, module in net.named_modules():
        if isinstance(module, (SpikingNeuron, QCFS)) or (isinstance(module, SpikingMaxPool) and not pools_exact):
            hooks.append(module.register_forward_hook(force))
        if not isinstance(module, nn.Conv2d):
            continue
        if id(module) in readout_layers:
            survey.kept[name] = "read-out (running mean of its input)"
        elif is_analog(module):
            survey.kept[name] = "decoding after the read-out"
        hooks.append(module.register_forward_hook(inspect(name)))
    # two samples per forward: two time steps of one image, or two images for an ANN
    image = torch.rand(1 if isinstance(model, SpikingNetwork) else steps, 3, imgsz, imgsz, generator=generator)
    image = image.to(next(net.parameters()))  # its device and dtype
    try:
        with torch.no_grad():
            for ones in (True, False):
                if isinstance(model, SpikingNetwork):
                    # an all-wake simulation set up as the runtime does, with no sleep-step hooks registered
                    ctx = model.ctx
                    ctx.steps, ctx.batch, ctx.wake, ctx.record, ctx.neurons_run = steps, 1, None, False, 0
                    ctx.run += 1
                    model.reset()
                net(image)
    finally:
        for hook in hooks:
            hook.remove()
        if isinstance(model, SpikingNetwork):
            model.reset()
    for name, module in net.named_modules():
        if not isinstance(module, nn.Conv2d) or name in survey.kept:
            continue
        if name not in found:
            survey.kept[name] = "not reached by a forward"
        elif calls[name] != 2:
            survey.kept[name] = "called more than once per forward"
        elif quanta[name] is None:
            survey.kept[name] = "input is no quantizer's code (the image, PASCAL spikes, a decaying max-pool)"
        elif found[name] is None:
            survey.kept[name] = "input sums codes of different quanta (a residual add)"
        else:
            survey.codes[name] = found[name]
    return survey
