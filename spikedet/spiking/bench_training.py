"""Wall-clock cost of spike-aware fine-tuning's neuron loops: eager against fused (compiled) kernels.

Two measurements, each eager and fused in one run: the forward + backward of one neuron layer's T-step loop
(IF and Fast-SNN's signed IF) on a YOLOv8n-sized activation, and one whole training step (forward, loss,
backward) of a converted detector. Fusing is switched with ``SPIKEDET_FUSED`` as a user would.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from .bench import time_ms
from .surrogate import if_steps_surrogate, signed_if_steps_surrogate

__all__ = ["fused_setting", "bench_kernels", "bench_training_step"]


@contextmanager
def fused_setting(enabled: bool) -> Iterator[None]:
    previous = os.environ.get("SPIKEDET_FUSED")
    os.environ["SPIKEDET_FUSED"] = "1" if enabled else "0"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SPIKEDET_FUSED"]
        else:
            os.environ["SPIKEDET_FUSED"] = previous


def bench_kernels(*, shape: tuple[int, ...] = (8, 32, 80, 80), steps: int = 4, repeats: int = 5) -> dict[str, Any]:
    """Median ms of forward + backward of each neuron loop, eager and fused, on ``[steps, *shape]`` currents."""
    torch.manual_seed(0)
    x = torch.randn(steps, *shape, requires_grad=True)
    theta = torch.tensor(1.0, requires_grad=True)
    kernels = {
        "if": lambda: if_steps_surrogate(x, 0.5 * theta, theta, steps)[0],
        "signed_if": lambda: signed_if_steps_surrogate(x, 0.5 * theta, torch.zeros(()), theta, steps)[0],
    }
    rows = {}
    for name, kernel in kernels.items():
        eager, fused = time_ms(*_both(lambda: kernel().sum().backward()), warmup=2, repeats=repeats)
        rows[name] = {"eager": eager["median"], "fused": fused["median"]}
    return {"shape": [steps, *shape], "rows": rows}


def _both(fn) -> tuple:
    """``fn`` run eagerly and fused: timed in turns by :func:`time_ms`, so load changes hit both alike."""
    def run(enabled: bool) -> None:
        with fused_setting(enabled):
            fn()

    return (lambda: run(False)), (lambda: run(True))


def bench_training_step(model: nn.Module, images: torch.Tensor, *, repeats: int = 3) -> dict[str, float]:
    """Median ms of one training step of a spiking detector's training forward (``model.predict``, as
    :class:`~spikedet.engine.yolo_finetune.SpikingDetectionModel` runs it) with a stand-in loss, eager and fused."""
    def step() -> None:
        outs = model.predict(images)
        sum(o["boxes"].square().mean() + o["scores"].sigmoid().mean() for o in outs).backward()

    eager, fused = time_ms(*_both(step), warmup=1, repeats=repeats)
    return {"eager": eager["median"], "fused": fused["median"]}
