"""The precision setting applied to a model: the convolutions fed by exact codes compute in bf16, fp16 or int8.

Which convolutions: :func:`~.exact_inputs.survey_inputs` (spikes and QCFS levels, through concat, upsample and
max-pooling). How: :mod:`.coded_conv` (quantum folded into the weights, fp32 output). Everything else stays
fp32: the analog image layer, residual sums, the read-outs and their running means, decoding, and every
membrane. A quantized ANN gets the same treatment (its QCFS levels are codes too), so ANN and SNN compare fairly.
``fp32`` leaves the model untouched. Resolving ``auto`` against the hardware: :mod:`.hardware`.
"""
from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from torch import nn

from .coded_conv import CodedConv2d, FloatCodedConv2d, Int8CodedConv2d
from .exact_inputs import InputCode, survey_inputs
from .runtime import SpikingNetwork

__all__ = ["CONCRETE_PRECISIONS", "PrecisionReport", "check_concrete_precision", "to_precision"]

CONCRETE_PRECISIONS = ("fp32", "bf16", "fp16", "int8")
_FLOAT_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# hooks registered on a convolution (the runtime's sleep-step bias mask, a monitor's counters) move with it
_HOOK_DICTS = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
)

Model = TypeVar("Model", bound=nn.Module)


@dataclass
class PrecisionReport:
    """What :func:`to_precision` did: the convolutions it lowered, those it kept in fp32 and why, and every
    convolution's multiply-accumulates per image and step (at the survey's input size)."""

    precision: str
    lowered: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    macs: dict[str, int] = field(default_factory=dict)

    @property
    def lowered_macs(self) -> float:
        """The fraction of the surveyed convolutions' MACs that run in low precision."""
        total = sum(self.macs.values())
        return sum(self.macs.get(name, 0) for name in self.lowered) / total if total else 0.0

    def summary(self) -> str:
        """One line: how much runs in the precision, and why the rest does not."""
        if self.precision == "fp32":
            return "fp32: every layer as converted"
        reasons = ", ".join(f"{n} {why}" for why, n in Counter(self.kept.values()).most_common())
        return (
            f"{self.precision}: {len(self.lowered)} of {len(self.lowered) + len(self.kept)} convolutions "
            f"({100 * self.lowered_macs:.1f} % of their MACs); fp32: {reasons or 'none'}"
        )

    def to_dict(self) -> dict:
        return {"precision": self.precision, "lowered": self.lowered, "kept": self.kept,
                "lowered_macs": self.lowered_macs}


def _lowered(conv: nn.Conv2d, code: InputCode, precision: str) -> CodedConv2d:
    if precision == "int8":
        return Int8CodedConv2d(conv, code)
    return FloatCodedConv2d(conv, code, _FLOAT_DTYPES[precision])


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    old = getattr(parent, child)
    for attr in _HOOK_DICTS:
        if hasattr(old, attr):
            setattr(new, attr, getattr(old, attr))
    setattr(parent, child, new)


def check_concrete_precision(value: str, *, name: str = "precision") -> str:
    """One of :data:`CONCRETE_PRECISIONS` (``auto`` already resolved), else a one-line ValueError naming them."""
    if value not in CONCRETE_PRECISIONS:
        raise ValueError(f"{name} must be one of {', '.join(CONCRETE_PRECISIONS)}, got {value!r}")
    return value


def to_precision(
    model: Model, precision: str, *, readouts: Sequence[str] = (), pools_exact: bool = True, survey_size: int = 64
) -> tuple[Model, PrecisionReport]:
    """``(model in precision, report)``: for ``fp32`` the model itself, else a copy whose code-fed
    convolutions compute in ``precision`` (``bf16``, ``fp16`` or ``int8``; resolve ``auto`` first with
    :func:`~.hardware.resolve_precision`). ``model`` is a quantized ANN or a :class:`SpikingNetwork`; it is
    not modified. ``readouts``: an ANN's read-out layers (the detector family's), kept fp32 like the SNN's, so
    that both run the same layers in low precision. ``pools_exact=False``: see
    :func:`~.exact_inputs.survey_inputs`. ``survey_size``: the input size of the survey's forward (any size the
    model takes; the result does not depend on it)."""
    if check_concrete_precision(precision) == "fp32":
        return model, PrecisionReport("fp32")
    lowered = copy.deepcopy(model)
    survey = survey_inputs(lowered, imgsz=survey_size, pools_exact=pools_exact)
    report = PrecisionReport(precision, kept=dict(survey.kept), macs=dict(survey.macs))
    net = lowered.net if isinstance(lowered, SpikingNetwork) else lowered
    for name, code in survey.codes.items():
        conv = net.get_submodule(name)
        if any(name == r or name.startswith(f"{r}.") for r in readouts):
            report.kept[name] = "read-out (fp32 like the SNN's)"
            continue
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            report.kept[name] = f"padding {conv.padding_mode}/{conv.padding}"
            continue
        _replace(net, name, _lowered(conv, code, precision))
        report.lowered.append(name)
    for module in net.modules():  # the fp32 layers left take the coded layers' channels-last currents as they come
        if isinstance(module, nn.Conv2d) and not isinstance(module, CodedConv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
    return lowered, report
