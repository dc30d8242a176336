"""The T-step loops of the surrogate-gradient simulation, forward and backward, each fused into one kernel.

Spike-aware fine-tuning spends most of its time not in the convolutions but in the neurons' element-wise
steps: eagerly, each step is ~5 passes over a layer's activations forward and ~15 backward. These loops are
written once as plain tensor functions and compiled with ``torch.compile`` (inductor's C++ backend), which
fuses a whole T-step loop into one pass over the elements. The forward stays bit-identical to the runtime's
kernels (:mod:`~spikedet.spiking.functional`: the same additions, comparisons and exact products ``θ·s``).

The eager functions run instead when no C++ compiler is found or ``SPIKEDET_FUSED=0`` is set; the tests check
the compiled kernels against them.
"""
from __future__ import annotations

import os
import shutil
from typing import Callable

import torch

__all__ = ["SURROGATES", "cxx_compiler", "fused", "if_forward", "if_backward", "signed_if_forward", "signed_if_backward"]


def _triangle(u: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """``max(0, 1 − |u|/θ)/θ``: a spike's value θ then has slope 1 near threshold, like the ANN's STE."""
    return (1 - u.abs() / threshold).clamp(min=0) / threshold


def _sigmoid(u: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Derivative of ``sigmoid(4u/θ)``: the same peak slope as the triangle, with tails."""
    sig = torch.sigmoid(4 * u / threshold)
    return 4 * sig * (1 - sig) / threshold


def _tanh(u: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Derivative of ``0.5·tanh(α u) + 0.5`` with α = 2.5 in the membrane's own units: Dual-Phase's surrogate at its
    initial temperature (the paper learns α; its layer-local calibration here keeps it fixed)."""
    return 1.25 * (1 - torch.tanh(2.5 * u) ** 2)


SURROGATES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "triangle": _triangle, "sigmoid": _sigmoid, "tanh": _tanh,
}


def _spike(m: torch.Tensor, threshold: torch.Tensor, fire_ge: bool) -> torch.Tensor:
    return (m >= threshold if fire_ge else m > threshold).to(m.dtype)


def if_forward(
    x: torch.Tensor, v: torch.Tensor, threshold: torch.Tensor, steps: int, constant: bool, fire_ge: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IF with soft reset: ``(output [T, ...], membranes m_t [T, ...], final v)``."""
    outs, membranes = [], []
    for t in range(steps):
        v = v + (x if constant else x[t])
        membranes.append(v)
        out = _spike(v, threshold, fire_ge) * threshold
        v = v - out
        outs.append(out)
    return torch.stack(outs), torch.stack(membranes), v


def if_backward(
    membranes: torch.Tensor, grad_out: torch.Tensor, threshold: torch.Tensor, constant: bool, fire_ge: bool,
    surrogate: str, detach_reset: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(∂L/∂x, ∂L/∂v_init, ∂L/∂θ per element)`` by the reverse-time recursion of :mod:`.surrogate`."""
    derivative = SURROGATES[surrogate]
    delta = torch.zeros_like(membranes[0])
    grad_theta = torch.zeros_like(delta)
    grads = []
    for t in range(membranes.shape[0] - 1, -1, -1):
        m, g = membranes[t], grad_out[t]
        spike = _spike(m, threshold, fire_ge)
        sigma = derivative(m - threshold, threshold)
        d_spike = threshold * g if detach_reset else threshold * (g - delta)
        delta_prev = delta + sigma * d_spike
        grad_theta = grad_theta + spike * (g - delta) - sigma * d_spike
        grads.append(delta_prev)
        delta = delta_prev
    grad_x = sum(grads) if constant else torch.stack(grads[::-1])
    return grad_x, delta, grad_theta


def signed_if_forward(
    x: torch.Tensor, v: torch.Tensor, count: torch.Tensor, threshold: torch.Tensor, steps: int, constant: bool,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fast-SNN's signed IF: ``(output, membranes, gates [count > 0 before the retraction test], v, count)``."""
    outs, membranes, gates = [], [], []
    floor = -eps * threshold
    for t in range(steps):
        v = v + (x if constant else x[t])
        membranes.append(v)
        spike = (v >= threshold).to(v.dtype)
        v = v - spike * threshold
        count = count + spike
        gate = count > 0
        negative = ((v <= floor) & gate).to(v.dtype)
        v = v + negative * threshold
        count = count - negative
        gates.append(gate)
        outs.append((spike - negative) * threshold)
    return torch.stack(outs), torch.stack(membranes), torch.stack(gates), v, count


def signed_if_backward(
    membranes: torch.Tensor, gates: torch.Tensor, out: torch.Tensor, grad_out: torch.Tensor, threshold: torch.Tensor,
    constant: bool, eps: float, surrogate: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(∂L/∂x, ∂L/∂v_init, ∂L/∂θ per element)`` of the signed IF (resets and gate detached)."""
    derivative = SURROGATES[surrogate]
    delta = torch.zeros_like(membranes[0])
    grad_theta = torch.zeros_like(delta)
    grads = []
    for t in range(membranes.shape[0] - 1, -1, -1):
        m, g = membranes[t], grad_out[t]
        spike = (m >= threshold).to(m.dtype)
        sigma = derivative(m - threshold, threshold)
        nu = derivative(m - threshold * spike + eps * threshold, threshold) * gates[t].to(m.dtype)
        theta_g = threshold * g
        delta_prev = delta + theta_g * (sigma + nu)
        grad_theta = grad_theta + (out[t] / threshold) * (g - delta) - theta_g * sigma - theta_g * nu * (spike - eps)
        grads.append(delta_prev)
        delta = delta_prev
    grad_x = sum(grads) if constant else torch.stack(grads[::-1])
    return grad_x, delta, grad_theta


def cxx_compiler() -> str | None:
    """The path of the C++ compiler inductor would use (its ``cpp.cxx`` setting: ``$CXX`` when torch was
    imported, else ``g++``), or None when there is none."""
    from torch._inductor import config

    names = config.cpp.cxx if isinstance(config.cpp.cxx, (list, tuple)) else (config.cpp.cxx,)
    return next((found for found in map(shutil.which, filter(None, names)) if found), None)


_COMPILED: dict[Callable, Callable] = {}


def fused(kernel: Callable) -> Callable:
    """``kernel`` compiled (once per process; shapes symbolic, so every layer shares one compilation), or
    ``kernel`` itself when fusing is off (``SPIKEDET_FUSED=0``) or no C++ compiler is found."""
    if os.environ.get("SPIKEDET_FUSED", "1") == "0":
        return kernel
    compiled = _COMPILED.get(kernel)
    if compiled is None:
        # looked up once per kernel, not on every neuron call of every training step
        if cxx_compiler() is None:
            return kernel
        compiled = _COMPILED[kernel] = torch.compile(kernel, dynamic=True, fullgraph=True)
    return compiled
