"""Spiking neuron layers (methods.md §8.2): IF, signed IF (Fast-SNN), CIF (CASC), COS and PASCAL.

Each neuron holds its membrane state explicitly (``reset()`` clears it; the runtime resets between images),
a per-layer threshold θ, and an initial potential ``v0`` in units of θ (a scalar, or a per-neuron tensor for
Dual-Phase's calibrated potentials). In a network it reads time and batch from the shared
:class:`~spikedet.spiking.context.SimContext`; standalone, :meth:`multi_step` takes ``[T, ...]`` tensors.
"""
from __future__ import annotations

import torch

from . import functional as F
from .context import StatefulModule
from .counting import step_counts
from .quant import QCFS
from .registry import Registry
from .surrogate import if_steps_surrogate, signed_if_steps_surrogate

__all__ = [
    "NEURONS", "register_neuron", "SpikingNeuron", "IFNeuron", "SignedIFNeuron", "CIFNeuron", "COSNeuron", "PascalNeuron",
]

# a recipe's ``neuron:`` → the class that replaces each QCFS activation (built with ``from_qcfs``)
NEURONS: Registry[type["SpikingNeuron"]] = Registry("neuron")
register_neuron = NEURONS.register


class SpikingNeuron(StatefulModule):
    """Base class: threshold, initial potential, explicit state, and the folded-time forward."""

    state_attrs = ("v",)
    v: torch.Tensor | None
    # fires as its input arrives, so a simulation can stop or continue at any step; False for neurons that
    # start each run from its whole input (PASCAL integrates it first, COS pre-runs it to set its potentials)
    online = True
    # emits −θ as well as θ (its spike count is then Σ|out|/θ)
    signed = False
    # the values its output takes, in units of θ; None when a spike has no fixed value (PASCAL's are worth
    # θ·T/L). Low-precision inference (spikedet.spiking.precision) codes the inputs of the next layer with them.
    spike_levels: tuple[int, ...] | None = (0, 1)

    def __init__(self, threshold: float | torch.Tensor, v0: float | torch.Tensor = 0.5) -> None:
        super().__init__()
        self.register_buffer("threshold", torch.as_tensor(threshold, dtype=torch.float32).clone())
        self.register_buffer("v0", torch.as_tensor(v0, dtype=torch.float32).clone())
        # statistics, filled when ctx.record is set: running totals, and the last call's spikes per step
        # (summed over the batch), which SpikeMonitor reads instead of counting the output again
        self.spike_count = 0.0
        self.neuron_steps = 0
        self.step_spikes: torch.Tensor | None = None

    @classmethod
    def from_qcfs(cls, q: QCFS, **kwargs) -> "SpikingNeuron":
        """The neuron replacing the QCFS activation ``q`` at conversion: θ = λ, v0 = the QCFS shift."""
        return cls(q.threshold, v0=q.shift, **kwargs)

    def reset_stats(self) -> None:
        self.spike_count = 0.0
        self.neuron_steps = 0
        self.step_spikes = None

    def _init_state(self, shape: torch.Size, like: torch.Tensor) -> None:
        layout = F.step_layout(like if like.shape == shape else like[0])
        self.v = (self.v0 * self.threshold).to(like.dtype).expand(shape).clone(memory_format=layout)

    def _run(self, x: torch.Tensor, steps: int, constant: bool) -> torch.Tensor:
        raise NotImplementedError

    def multi_step(self, x: torch.Tensor, constant_steps: int | None = None) -> torch.Tensor:
        """Run on ``x`` ``[T, *shape]`` (or a constant current ``shape`` for ``constant_steps`` steps)."""
        steps = constant_steps if constant_steps is not None else x.shape[0]
        if steps < 1:
            raise ValueError(f"number of time steps must be >= 1, got {steps}")
        shape = x.shape if constant_steps is not None else x.shape[1:]
        if self.v is None or self.v.shape != shape:
            self._init_state(shape, x)
        out = self._run(x, steps, constant_steps is not None)
        if self.ctx.record:
            self.step_spikes = step_counts(out, self.threshold, signed=self.signed, exact=self.spike_levels is not None)
            self.spike_count = self.spike_count + self.step_spikes.sum()  # a tensor: no host sync per layer
            self.neuron_steps += out.numel()
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.enter_call_site()
        ctx = self.ctx
        ctx.neurons_run += 1
        if ctx.is_constant(x.shape[0]):
            out = self.multi_step(x, constant_steps=ctx.steps)
        else:
            out = self.multi_step(x.view(ctx.steps, x.shape[0] // ctx.steps, *x.shape[1:]))
        return out.flatten(0, 1)

    def extra_repr(self) -> str:
        v0 = f"{self.v0.item():.3g}" if self.v0.dim() == 0 else f"tensor{tuple(self.v0.shape)}"
        return f"threshold={self.threshold.item():.4g}, v0={v0}·θ"


def _needs_grad(x: torch.Tensor, neuron: SpikingNeuron) -> bool:
    """Whether this call trains (spike-aware fine-tuning): the surrogate-gradient kernels run then."""
    return torch.is_grad_enabled() and (x.requires_grad or neuron.v.requires_grad or neuron.threshold.requires_grad)


@register_neuron("if")
class IFNeuron(SpikingNeuron):
    """Integrate-and-fire with soft reset (QCFS: ``θ = λ``, ``v0 = θ/2``, fire on ``≥``).

    While gradients are recorded (spike-aware fine-tuning) the same simulation runs through
    :func:`~spikedet.spiking.surrogate.if_steps_surrogate`: identical spikes, a surrogate derivative backward.
    """

    # the backward pass of spike-aware fine-tuning (spikedet.engine.snn_finetune sets them per run)
    surrogate = "triangle"
    detach_reset = True

    def __init__(self, threshold: float | torch.Tensor, v0: float | torch.Tensor = 0.5, fire_ge: bool = True) -> None:
        super().__init__(threshold, v0)
        self.fire_ge = fire_ge

    def _run(self, x: torch.Tensor, steps: int, constant: bool) -> torch.Tensor:
        if _needs_grad(x, self):
            if self.ctx.input_mask() is not None:
                raise ValueError("spike-aware training has no sleep steps; train an online (all-wake) network")
            out, self.v = if_steps_surrogate(
                x, self.v, self.threshold, steps, constant=constant, fire_ge=self.fire_ge,
                surrogate=self.surrogate, detach_reset=self.detach_reset,
            )
            return out
        return F.if_steps(x, self.v, self.threshold, steps, constant, self.fire_ge, self.ctx.input_mask())


@register_neuron("signed_if")
class SignedIFNeuron(SpikingNeuron):
    """Fast-SNN's signed IF: retracts a spike (−θ) when over-fired; the net count never goes negative.

    Trains like :class:`IFNeuron`, through :func:`~spikedet.spiking.surrogate.signed_if_steps_surrogate`.
    """

    state_attrs = ("v", "count")
    signed = True
    spike_levels = (-1, 0, 1)
    surrogate = "triangle"
    count: torch.Tensor | None

    def __init__(self, threshold: float | torch.Tensor, v0: float | torch.Tensor = 0.5, eps: float = 1e-3) -> None:
        super().__init__(threshold, v0)
        self.eps = eps

    def _init_state(self, shape: torch.Size, like: torch.Tensor) -> None:
        super()._init_state(shape, like)
        self.count = torch.zeros_like(self.v)

    def _run(self, x: torch.Tensor, steps: int, constant: bool) -> torch.Tensor:
        if self.ctx.input_mask() is not None:
            raise ValueError("SignedIFNeuron has no sleep steps; use CIFNeuron for wake/sleep schedules")
        if _needs_grad(x, self):
            out, self.v, self.count = signed_if_steps_surrogate(
                x, self.v, self.count, self.threshold, steps, constant=constant, eps=self.eps, surrogate=self.surrogate
            )
            return out
        return F.signed_if_steps(x, self.v, self.count, self.threshold, steps, constant, self.eps)


@register_neuron("cif")
class CIFNeuron(SpikingNeuron):
    """CASC's consistent IF neuron (±θ spikes, net count capped by the wake steps seen; ``v0 = 0``)."""

    state_attrs = ("v", "count", "wake_steps")
    signed = True
    spike_levels = (-1, 0, 1)
    count: torch.Tensor | None
    wake_steps: torch.Tensor | None

    def __init__(self, threshold: float | torch.Tensor, v0: float | torch.Tensor = 0.0) -> None:
        super().__init__(threshold, v0)

    def _init_state(self, shape: torch.Size, like: torch.Tensor) -> None:
        super()._init_state(shape, like)
        self.count = torch.zeros_like(self.v)
        self.wake_steps = torch.zeros((), dtype=like.dtype, device=like.device)

    def _run(self, x: torch.Tensor, steps: int, constant: bool) -> torch.Tensor:
        wake = self.ctx.wake if self.ctx.wake is not None and len(self.ctx.wake) == steps else [True] * steps
        return F.cif_steps(x, self.v, self.count, self.wake_steps, self.threshold, steps, wake, constant)


@register_neuron("cos")
class COSNeuron(IFNeuron):
    """IF with COS's test-time offset calibration: pre-run ``rho`` steps, shift ``v0`` by ∓θ where the neuron
    over- or under-fired, then simulate from the shifted potential (per image, per neuron).

    The pre-run uses the first ``min(rho, T)`` steps of the same input the layer then integrates, so it adds
    latency (``rho`` steps, reported by the schedule) but no synaptic operations. Sleep steps are not supported.
    """

    online = False

    def __init__(self, threshold: float | torch.Tensor, v0: float | torch.Tensor = 0.5, rho: int = 4) -> None:
        super().__init__(threshold, v0)
        if rho < 1:
            raise ValueError(f"COS pre-run length rho must be >= 1, got {rho}")
        self.rho = rho

    def _run(self, x: torch.Tensor, steps: int, constant: bool) -> torch.Tensor:
        if self.ctx.input_mask() is not None:
            raise ValueError("COSNeuron has no sleep steps")
        v0 = F.cos_offset(x, self.v0, self.threshold, min(self.rho, steps), constant)
        self.v = (v0 * self.threshold).to(self.v.dtype)
        return super()._run(x, steps, constant)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rho={self.rho}"


@register_neuron("pascal")
class PascalNeuron(SpikingNeuron):
    """PASCAL's spike-accumulation neuron: integrates the whole input sequence, then emits the QCFS value of
    its mean exactly (front-loaded). Layer-sequential: an output exists only after all T input steps."""

    online = False
    spike_levels = None  # up to ceil(L/T) quanta per step, each worth θ·T/L: no value fixed before T is

    def __init__(
        self, threshold: float | torch.Tensor, levels: int, v0: float | torch.Tensor = 0.5, tol: float = 8e-5
    ) -> None:
        super().__init__(threshold, v0)
        if float(self.v0) != 0.5:
            raise ValueError("PascalNeuron reproduces QCFS with shift 0.5 (round to nearest); got v0 != 0.5")
        if not 0.0 <= tol < 0.5:
            raise ValueError(f"PascalNeuron tol must be in [0, 0.5), got {tol}")
        self.levels = int(levels)
        self.tol = float(tol)

    @classmethod
    def from_qcfs(cls, q: QCFS, **kwargs) -> "PascalNeuron":
        return cls(q.threshold, levels=q.levels, v0=q.shift, **kwargs)

    def _init_state(self, shape: torch.Size, like: torch.Tensor) -> None:
        """No membrane state carries over: each call integrates its whole input sequence."""

    def _run(self, x: torch.Tensor, steps: int, constant: bool) -> torch.Tensor:
        if self.ctx.input_mask() is not None:
            raise ValueError("PascalNeuron has no sleep steps")
        total = x * steps if constant else x.sum(0)
        return F.pascal_emit(total, self.threshold, self.levels, steps, self.tol)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, levels={self.levels}, tol={self.tol:g}"
