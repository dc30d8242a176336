"""Multi-step neuron kernels on time-major tensors (methods.md §1.1, §3a, §4a, §5a).

Every kernel takes the input current of all steps at once, ``x`` of shape ``[T, *shape]`` (or a constant
current of shape ``shape`` with ``constant=True``, the analog-input layer), updates the membrane state ``v``
in place and returns the output ``[T, *shape]`` with spikes carrying the value θ (``x = θ·s``).
The loops touch each element a handful of times per step, in place, and allocate nothing per step.
"""
from __future__ import annotations

import torch

__all__ = ["step_layout", "if_steps", "signed_if_steps", "cif_steps", "cos_offset", "pascal_accumulate", "pascal_emit"]


def _current(x: torch.Tensor, t: int, constant: bool) -> torch.Tensor:
    return x if constant else x[t]


def step_layout(x: torch.Tensor) -> torch.memory_format:
    """``channels_last`` for a 4-D channels-last tensor (int8 convolutions return them), else contiguous: a
    neuron keeps the layout of its input current in its state and spikes, so its updates never mix layouts."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _step_buffer(v: torch.Tensor, steps: int) -> torch.Tensor:
    """An uninitialised ``[steps, *v.shape]`` whose every step is laid out like ``v``."""
    if step_layout(v) is torch.channels_last:
        return torch.empty_strided((steps, *v.shape), (v.numel(), *v.stride()), dtype=v.dtype, device=v.device)
    return torch.empty((steps, *v.shape), dtype=v.dtype, device=v.device)


# Kernel design: each step writes the spike indicator straight into its output slice as a float (a comparison
# with a float ``out=``), scales it to θ in place and subtracts it from v. Four in-place passes over cache-sized
# tensors, no bool→float conversions and no temporaries: ~10× faster on CPU than mixing bool masks into
# arithmetic, and bit-identical to it (1.0·θ = θ).


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

    ``fire_ge=False`` fires on ``m > θ`` (Dual-Phase at conversion). ``input_mask[t] = False`` switches a
    constant (analog image) current off at step t (a sleep step); a time-varying input is always integrated,
    since in sleep steps it carries the upstream layers' corrections (its bias is masked upstream).
    """
    out = _step_buffer(v, steps)
    compare = torch.ge if fire_ge else torch.gt
    for t in range(steps):
        if not constant or input_mask is None or input_mask[t]:
            v.add_(_current(x, t, constant))
        spike = out[t]
        compare(v, threshold, out=spike)
        v.sub_(spike.mul_(threshold))
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
    out = _step_buffer(v, steps)
    neg = torch.empty_like(v)
    positive = torch.empty_like(v)
    floor = -eps * threshold
    for t in range(steps):
        v.add_(_current(x, t, constant))
        spike = out[t]
        torch.ge(v, threshold, out=spike)
        v.addcmul_(spike, threshold, value=-1)
        count.add_(spike)
        torch.le(v, floor, out=neg)
        torch.gt(count, 0, out=positive)
        neg.mul_(positive)
        v.addcmul_(neg, threshold)
        count.sub_(neg)
        spike.sub_(neg).mul_(threshold)
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
    The wake counter advances only on wake steps. In sleep steps a constant (analog image) current is off and
    the biases upstream are masked by the runtime, so the input is just the upstream corrections; the neuron
    drains its residual both ways and ends at ``clip(floor(Σ I / θ), 0, t_wake)`` spikes.
    ``wake_steps`` is a 0-dim tensor updated in place.
    """
    out = _step_buffer(v, steps)
    neg = torch.empty_like(v)
    allowed = torch.empty_like(v)
    for t in range(steps):
        if wake[t] or not constant:
            v.add_(_current(x, t, constant))
        if wake[t]:
            wake_steps.add_(1)
        spike = out[t]
        torch.ge(v, threshold, out=spike)
        torch.lt(count, wake_steps, out=allowed)
        spike.mul_(allowed)
        torch.lt(v, 0, out=neg)
        torch.gt(count, 0, out=allowed)
        neg.mul_(allowed)
        spike.sub_(neg)
        count.add_(spike)
        v.sub_(spike.mul_(threshold))
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


def cos_offset(
    x: torch.Tensor, v0: torch.Tensor, threshold: torch.Tensor, rho: int, constant: bool = False
) -> torch.Tensor:
    """COS's offset calibration (methods.md §6(c)): the initial potential to re-simulate from, in units of θ.

    Pre-simulates ``rho`` steps of ``x`` from ``v0·θ`` (IF, soft reset, ``≥``) and records per neuron the spike
    count, the final potential, the smallest pre-reset potential of a spiking step (``m_min``) and the largest
    potential of a non-spiking step (``m_max``). An over-fired neuron (``v(ρ) < 0`` after at least one spike)
    starts again from ``v0 − max(1, m_min/θ − 0.999)``, an under-fired one (``v(ρ) ≥ θ``) from
    ``v0 + max(1, 1.001 − m_max/θ)``: one θ in theory, more where one θ would not remove or add a spike.
    """
    v = (v0 * threshold).expand_as(x if constant else x[0]).clone()
    count = torch.zeros_like(v)
    m_min = torch.full_like(v, float("inf"))
    m_max = torch.full_like(v, float("-inf"))
    for t in range(rho):
        v.add_(_current(x, t, constant))
        fired = v >= threshold
        m_min = torch.where(fired, torch.minimum(m_min, v), m_min)
        m_max = torch.where(fired, m_max, torch.maximum(m_max, v))
        v.sub_(fired * threshold)
        count.add_(fired)
    over = (v < 0) & (count >= 1)
    under = v >= threshold
    down = torch.clamp(m_min / threshold - 0.999, min=1.0)
    up = torch.clamp(1.001 - m_max / threshold, min=1.0)
    base = v0.expand_as(v)
    return torch.where(over, base - down, torch.where(under, base + up, base))


def pascal_emit(total: torch.Tensor, threshold: torch.Tensor, levels: int, steps: int, tol: float = 8e-5) -> torch.Tensor:
    """PASCAL in rate semantics: the QCFS value of the mean input, emitted front-loaded over ``steps`` steps.

    ``total`` is the input summed over the steps. Integrate → correct → emit (:func:`pascal_accumulate` on the
    mean current, quantum ``q = θ/L``) gives ``c = clip(floor(mean/q + ½), 0, L)`` quanta; they leave as spikes
    worth ``q·steps`` (θ when ``steps = L``), at most ``ceil(L/steps)`` per step, so the mean output over the
    steps is exactly ``q·c``, the QCFS activation, whatever the timing of the input. ``tol``: see
    :func:`pascal_accumulate`.
    """
    quantum = threshold / levels
    quanta = pascal_accumulate((total / steps).unsqueeze(0), quantum, levels, tol).sum(0) / quantum
    per_step = -(-levels // steps)
    t = torch.arange(steps, device=total.device, dtype=total.dtype).view(-1, *([1] * total.dim()))
    counts = (quanta.unsqueeze(0) - t * per_step).clamp(0, per_step)
    return counts * (quantum * steps)
