"""Shared simulation context, and the base class of every module that keeps simulation state."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = ["SimContext", "StatefulModule"]


@dataclass
class SimContext:
    """Set by the runtime before each forward and read by every spiking module.

    Time is folded into the batch: a spiking module receives ``[steps·batch, ...]`` tensors, or ``[batch, ...]``
    for a current that is constant over the steps (the analog image path before the first neuron).

    Attributes:
        steps: time steps simulated by this call.
        batch: images in the batch.
        wake: per-step flag; ``False`` marks a sleep step (zero input, zero bias; CASC). ``None``: all wake.
        record: collect firing-rate and synaptic-operation statistics.
        neurons_run: neuron layers executed so far in this forward (a synaptic layer running before any neuron
            sees the analog image).
        run: incremented by the runtime for every forward; tells a module called several times per forward
            which call site it is at (see :class:`StatefulModule`).
    """

    steps: int = 1
    batch: int = 1
    wake: list[bool] | None = None
    record: bool = False
    neurons_run: int = 0
    run: int = 0

    def is_constant(self, shape0: int) -> bool:
        """Whether a tensor with leading size ``shape0`` is a constant current (not time-folded)."""
        return self.steps > 1 and shape0 == self.batch

    def input_mask(self) -> list[bool] | None:
        return None if self.wake is None or all(self.wake) else self.wake


class StatefulModule(nn.Module):
    """A module whose state (named in ``state_attrs``) carries over between steps and between forwards.

    A module may be called several times in one forward (ultralytics' SPPF applies one max-pool three times
    in a row); each call site then needs its own state. :meth:`enter_call_site`, called at the start of
    ``forward``, counts the calls of the current run (``ctx.run``) and swaps the matching state in, so the k-th
    call of a forward resumes where the k-th call of the previous forward stopped. With one call per forward
    (the usual case) nothing is swapped.
    """

    state_attrs: tuple[str, ...] = ()
    _plain_attrs: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plain_attrs = frozenset(cls.state_attrs) | {"_site", "_last_run", "_calls"}

    def __setattr__(self, name: str, value: Any) -> None:
        # State and call-site counters change on every call and are never parameters, buffers or submodules:
        # skip nn.Module's registration checks (~10 µs per assignment, ~5 ms per YOLOv8n forward at T = 1).
        if name in self._plain_attrs:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def __init__(self) -> None:
        super().__init__()
        self.ctx = SimContext()
        self._saved: dict[int, dict[str, Any]] = {}  # state of the inactive call sites
        self._site = 0
        self._last_run = -1
        self._calls = 0
        for name in self.state_attrs:
            setattr(self, name, None)

    def reset(self) -> None:
        """Forget all state: the next input starts a new sequence."""
        for name in self.state_attrs:
            setattr(self, name, None)
        self._saved.clear()
        self._site, self._last_run = 0, -1

    def enter_call_site(self) -> None:
        if self.ctx.run != self._last_run:
            self._last_run, self._calls = self.ctx.run, 0
        site, self._calls = self._calls, self._calls + 1
        if site != self._site:
            self._saved[self._site] = {name: getattr(self, name) for name in self.state_attrs}
            restored = self._saved.pop(site, {})
            for name in self.state_attrs:
                setattr(self, name, restored.get(name))
            self._site = site
