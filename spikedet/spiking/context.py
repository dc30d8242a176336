"""Shared simulation context: what every spiking module of one network needs to know about the current call."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SimContext"]


@dataclass
class SimContext:
    """Set by the runtime before each forward and read by every spiking module.

    Time is folded into the batch: a spiking module receives ``[steps·batch, ...]`` tensors, or ``[batch, ...]``
    for a current that is constant over the steps (the analog image path before the first neuron).

    Attributes:
        steps: time steps simulated by this call.
        batch: images in the batch.
        wake: per-step flag; ``False`` marks a sleep step (zero input, zero bias; CASC). ``None``: all wake.
        readout_at: indices (within this call) of the steps after which read-outs are taken ("anytime" outputs).
        record: collect firing-rate and synaptic-operation statistics.
        neurons_run: neuron layers executed so far in this forward (a synaptic layer running before any neuron
            sees the analog image).
    """

    steps: int = 1
    batch: int = 1
    wake: list[bool] | None = None
    readout_at: list[int] = field(default_factory=lambda: [0])
    record: bool = False
    neurons_run: int = 0

    def is_constant(self, shape0: int) -> bool:
        """Whether a tensor with leading size ``shape0`` is a constant current (not time-folded)."""
        return self.steps > 1 and shape0 == self.batch

    def input_mask(self) -> list[bool] | None:
        return None if self.wake is None or all(self.wake) else self.wake
