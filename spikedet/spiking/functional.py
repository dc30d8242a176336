"""Multi-step neuron kernels on time-major tensors (methods.md §1.1, §3a, §4a, §5a).

Every kernel takes the input current of all steps at once, ``x`` of shape ``[T, *shape]`` (or a constant
current of shape ``shape`` with ``constant=True``, the analog-input layer), updates the membrane state ``v``
in place and returns the output ``[T, *shape]`` with spikes carrying the value θ (``x = θ·s``).
The loops touch each element a handful of times per step and allocate nothing per step.
"""
from __future__ import annotations

import torch

__all__ = ["if_steps", "signed_if_steps", "cif_steps", "pascal_accumulate"]


def _current(x: torch.Tensor, t: int, constant: bool) -> torch.Tensor:
    return x if constant else x[t]


def if_steps(
    x: torch.Tensor,
    v: torch.Tensor,
    threshold: torch.Tensor,
    steps: int,
    constant: bool = False,
    fire_ge: bool = True,
    input_mask: list[bool] | None = None,
) -> torch.Tensor:
    """Integrate-and-fire with soft reset: ``m = v + I; s = [m ≥ θ]; v = m − θ s``.

    ``fire_ge=False`` fires on ``m > θ`` (Dual-Phase at conversion). ``input_mask[t] = False`` zeroes the
    current of step t (sleep steps).
    """
    out = torch.empty((steps, *v.shape), dtype=v.dtype, device=v.device)
    fired = torch.empty(v.shape, dtype=torch.bool, device=v.device)
    compare = torch.ge if fire_ge else torch.gt
    for t in range(steps):
        if input_mask is None or input_mask[t]:
            v.add_(_current(x, t, constant))
        compare(v, threshold, out=fired)
        torch.mul(fired, threshold, out=out[t])
        v.sub_(out[t])
    return out


def signed_if_steps(
    x: torch.Tensor,
    v: torch.Tensor,
    count: torch.Tensor,
    threshold: torch.Tensor,
    steps: int,
    constant: bool = False,
    eps: float = 1e-3,
) -> torch.Tensor:
    """Fast-SNN's signed IF: a neuron that has over-fired (``v ≤ −ε·θ``) retracts one earlier spike.

    A negative spike needs a positive net count first, so the count never goes negative. ``count`` is the net
    spike count, updated in place.
    """
    out = torch.empty((steps, *v.shape), dtype=v.dtype, device=v.device)
    floor = -eps * threshold
    for t in range(steps):
        v.add_(_current(x, t, constant))
        pos = v >= threshold
        v.sub_(pos * threshold)
        count.add_(pos)
        neg = (v <= floor) & (count > 0)
        v.add_(neg * threshold)
        count.sub_(neg)
        torch.mul(pos.to(v.dtype) - neg.to(v.dtype), threshold, out=out[t])
    return out


def cif_steps(
    x: torch.Tensor,
    v: torch.Tensor,
    count: torch.Tensor,
    wake_steps: torch.Tensor,
    threshold: torch.Tensor,
    steps: int,
    wake: list[bool],
    constant: bool = False,
) -> torch.Tensor:
    """CASC's consistent IF neuron: ±1 spikes with ``0 ≤ count ≤ wake steps so far``.

    ``m = v + I``; ``s = +1`` if ``m ≥ θ`` and ``count < t_wake``; ``s = −1`` if ``m < 0`` and ``count > 0``.
    The wake counter advances only on wake steps; sleep steps get no input (the caller masks bias too), so the
    neuron drains its residual both ways and ends at ``clip(floor(Σ I / θ), 0, t_wake)`` spikes.
    ``wake_steps`` is a 0-dim tensor updated in place.
    """
    out = torch.empty((steps, *v.shape), dtype=v.dtype, device=v.device)
    for t in range(steps):
        if wake[t]:
            v.add_(_current(x, t, constant))
            wake_steps.add_(1)
        pos = (v >= threshold) & (count < wake_steps)
        neg = (v < 0) & (count > 0)
        spike = pos.to(v.dtype) - neg.to(v.dtype)
        count.add_(spike)
        torch.mul(spike, threshold, out=out[t])
        v.sub_(out[t])
    return out


def pascal_accumulate(x: torch.Tensor, quantum: torch.Tensor, levels: int, tol: float = 8e-5) -> torch.Tensor:
    """PASCAL's integrate → correct → emit neuron, in sum semantics (methods.md §4a).

    ``x`` ``[T_in, *shape]`` is integrated from ``v(0) = q/2`` with spikes of value ``q``; the correction stage
    resolves the residual with internal ±q spikes (at most ``max(T_in, L) − 1`` of them, one per step); the
    emit stage sends ``clip(count, 0, L)`` spikes front-loaded over ``L`` steps. Returns ``[L, *shape]`` with
    ``Σ_t out = q·clip(floor(Σ_t x / q + ½), 0, L)`` exactly. ``tol`` absorbs float error at exact multiples
    of ``q`` as the reference does.
    """
    v = torch.full_like(x[0], 0.5) * quantum
    count = torch.zeros_like(v)
    for t in range(x.shape[0]):  # stage 1: integrate and fire
        v.add_(x[t])
        fired = v - quantum >= -tol
        v.sub_(fired * quantum)
        count.add_(fired)
    for _ in range(max(x.shape[0], levels) - 1):  # stage 2: correct with internal ±q spikes
        up = v - quantum >= -tol
        down = v < -tol
        v.add_((down.to(v.dtype) - up.to(v.dtype)) * quantum)
        count.add_(up.to(v.dtype) - down.to(v.dtype))
    count.clamp_(0, levels)
    steps = torch.arange(levels, device=x.device, dtype=x.dtype).view(-1, *([1] * v.dim()))
    return (steps < count).to(x.dtype) * quantum  # stage 3: front-loaded emission
