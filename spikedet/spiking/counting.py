"""Counting spikes and synaptic events per time step, with sums instead of comparisons.

Recording statistics reads every neuron output and every synaptic input once more. A plain sum runs ~5× faster
on CPU than ``count_nonzero`` (vectorised adds against a compare-and-count), so both counts are taken as sums of
values known to be integer multiples of a quantum, divided by it and rounded. The results are exact integers:
each float32 sum runs over one channel of one step (fewer than 2^24 values, which it sums to within far less
than 0.5), and the channels are added in float64.

- A neuron's output is ``θ·s`` with ``s ∈ {0, 1}``: spikes per step = ``Σ out / θ`` (signed ``±θ`` spikes are
  counted element by element, see :func:`step_counts`).
- A synaptic input that the code survey (:func:`~.exact_inputs.survey_inputs`) finds to be 0/1 codes of a
  per-channel quantum ``q_c``: non-zero inputs per step = ``Σ_c (Σ x_c) / q_c``, rounded per channel.
"""
from __future__ import annotations

import torch

__all__ = ["step_counts", "coded_step_counts"]


def step_counts(out: torch.Tensor, threshold: torch.Tensor, *, signed: bool, exact: bool = True) -> torch.Tensor:
    """Spikes per step of a neuron's output ``out`` ``[steps, ...]``, as float.

    Unsigned spikes: ``Σ out / θ``, rounded to the integer it is unless ``exact=False`` (spikes without one
    fixed value, PASCAL's, whose count in units of θ is no integer). Signed spikes (``±θ``): ``count_nonzero``
    per step, since no sum gives ``Σ|out|`` both fast and exactly (float32 L1 norms drift by up to a few
    per cent over millions of elements).
    """
    if signed:
        return torch.stack([torch.count_nonzero(step) for step in out]).double()
    per_channel = out.sum(dim=_all_but_steps_and_channels(out)) / threshold  # [steps, C] (or [steps])
    if exact:
        per_channel = per_channel.round()
    return per_channel.double().reshape(len(out), -1).sum(1)


def coded_step_counts(x: torch.Tensor, steps: int, inverse_quantum: torch.Tensor) -> torch.Tensor:
    """Non-zero elements per step of a time-folded input ``x`` ``[steps·batch, C, ...]`` that holds 0/1 codes
    of the per-channel quantum ``1 / inverse_quantum`` ``[C]``."""
    folded = x.unflatten(0, (steps, -1))  # [steps, batch, C, ...], a view in any memory layout
    per_channel = folded.sum(dim=_all_but_steps_and_channels(folded))  # [steps, C]
    return (per_channel * inverse_quantum).round().double().sum(1)


def _all_but_steps_and_channels(x: torch.Tensor) -> tuple[int, ...]:
    """The dims of a ``[steps, batch, C, ...]`` tensor to sum for per-channel counts (all but step for 2-D).
    Counting per channel keeps every float32 partial sum an exact integer (below 2^24, i.e. fewer than 16.7 M
    elements per channel and step), where one sum over a whole layer of a large batch would not be."""
    return (1, *range(3, x.dim())) if x.dim() >= 3 else (1,)
