"""Convolutions fed by exact codes (see :mod:`.exact_inputs`), computed in bf16, fp16 or int8 with fp32 output.

The input's quantum is folded into the weights per input channel, so the layer sees integer codes: ``x != 0``
for spikes (a comparison, one byte per element), ``sign(x)`` for signed spikes, ``round(x/q)`` for QCFS levels.
These are exact in every precision here; only the weights round (bf16/fp16: to 8/11 significant bits, and the
summed current too; int8: to 8 bits per output channel, the sum itself exact in int32 and scaled in fp32).
The output is fp32, so the neurons after the layer integrate fp32 currents into fp32 membranes.

int8 runs oneDNN's quantized convolution (``torch.ops.onednn.qconv_pointwise``, as PyTorch's inductor calls it
for x86 quantization) with uint8 codes (zero point 1 for signed spikes), int8 per-output-channel weights and
fp32 output; it returns channels-last tensors, which the neurons keep.

Both classes stay ``nn.Conv2d`` with the original fp32 ``weight`` and ``bias``: the runtime's sleep-step bias
mask and the accounting's operation counts treat them like the convolution they replace.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .exact_inputs import InputCode

__all__ = ["INT8_MAX", "CodedConv2d", "FloatCodedConv2d", "Int8CodedConv2d"]

INT8_MAX = 127  # symmetric weights: −128 unused, so negating a weight never overflows


class CodedConv2d(nn.Conv2d):
    """Base class: the original convolution (its parameters shared, not copied) and its input code."""

    def __init__(self, conv: nn.Conv2d, code: InputCode) -> None:
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"coded convolutions take explicit zero padding, got {conv.padding_mode}/{conv.padding}")
        super().__init__(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
            conv.groups, conv.bias is not None, device="meta",
        )
        self.weight, self.bias = conv.weight, conv.bias
        self.code = code
        inverse = (1.0 / code.quantum).view(1, -1, 1, 1).to(conv.weight.device)
        self.register_buffer("inverse_quantum", inverse, persistent=False)

    def weight_quantum(self) -> torch.Tensor:
        """The input quantum each weight multiplies, ``[C_out, C_in / groups, 1, 1]``."""
        quantum = self.code.quantum.to(self.weight.device).view(self.groups, -1)  # [groups, C_in / groups]
        per_output = quantum.repeat_interleave(self.out_channels // self.groups, dim=0)  # [C_out, C_in / groups]
        return per_output[:, :, None, None]

    def folded_weight(self) -> torch.Tensor:
        """``W[o, c] · quantum[c]`` in fp32: the weight that multiplies integer codes."""
        return self.weight.detach().float() * self.weight_quantum()

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The integer codes ``k`` of ``x``: bool for plain spikes (``x != 0``), float otherwise."""
        low, high = self.code.low, self.code.high
        if (low, high) == (0, 1):
            return x.to(torch.bool)  # a cast: ~5× faster on CPU than the comparison x != 0, same result
        if (low, high) == (-1, 1):
            return torch.sign(x)
        return torch.round(x * self.inverse_quantum)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, codes={self.code.low}..{self.code.high}"


class FloatCodedConv2d(CodedConv2d):
    """bf16 or fp16 arithmetic on the codes; the current is cast back to fp32."""

    def __init__(self, conv: nn.Conv2d, code: InputCode, dtype: torch.dtype) -> None:
        super().__init__(conv, code)
        self.compute_dtype = dtype
        folded = self.folded_weight().to(dtype).contiguous(memory_format=torch.channels_last)
        self.register_buffer("low_weight", folded, persistent=False)
        self.register_buffer("low_bias", None if self.bias is None else self.bias.detach().to(dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = self.codes(x).to(self.compute_dtype)
        out = F.conv2d(codes, self.low_weight, self.low_bias, self.stride, self.padding, self.dilation, self.groups)
        return out.float()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {str(self.compute_dtype).removeprefix('torch.')}"


class Int8CodedConv2d(CodedConv2d):
    """uint8 codes × int8 weights (per output channel) summed in int32, scaled and biased in fp32 (oneDNN)."""

    def __init__(self, conv: nn.Conv2d, code: InputCode) -> None:
        super().__init__(conv, code)
        # uint8 holds k − low: the zero point maps signed spikes −1, 0, 1 to 0, 1, 2 (oneDNN pads with it)
        self.zero_point = -code.low
        folded = self.folded_weight()
        scale = folded.abs().amax(dim=(1, 2, 3)).clamp_min(torch.finfo(torch.float32).tiny) / INT8_MAX
        quantized = torch.round(folded / scale[:, None, None, None]).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
        self.register_buffer("weight_scale", scale, persistent=False)
        self.register_buffer("int8_weight", quantized, persistent=False)
        self.register_buffer("weight_zero_point", torch.zeros(self.out_channels, dtype=torch.int64), persistent=False)
        self.float_bias = self.bias.detach().float() if self.bias is not None else None
        # oneDNN's packed layout: an opaque tensor, built once (not a buffer: it cannot be copied or saved)
        self.packed = torch.ops.onednn.qconv_prepack(
            quantized, scale, 1.0, self.zero_point, list(self.stride), list(self.padding), list(self.dilation),
            self.groups, None,
        )

    def dequantized_weight(self) -> torch.Tensor:
        """The fp32 weight the int8 layer computes with (for tests and error bounds)."""
        return self.int8_weight.float() * self.weight_scale[:, None, None, None]

    def shifted_codes(self, x: torch.Tensor) -> torch.Tensor:
        """``k − low`` as uint8, computed without a float pass where the code allows."""
        low, high = self.code.low, self.code.high
        if (low, high) == (0, 1):
            return x.to(torch.bool).view(torch.uint8)
        if (low, high) == (-1, 1):  # −1, 0, 1 as int8 read as uint8 (255, 0, 1), plus 1 (wrapping): 0, 1, 2
            return torch.sign(x).to(torch.int8).view(torch.uint8).add_(1)
        return torch.round(x * self.inverse_quantum).sub_(low).to(torch.uint8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.onednn.qconv_pointwise(
            self.shifted_codes(x), 1.0, self.zero_point, self.packed, self.weight_scale, self.weight_zero_point, self.float_bias,
            list(self.stride), list(self.padding), list(self.dilation), self.groups, 1.0, 0, torch.float32, "none",
            [], "",
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, int8"
