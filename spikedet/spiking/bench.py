"""Wall-clock cost of the spiking runtime against the quantized ANN it was converted from.

The fair ANN reference for an SNN simulated for T steps is the same ANN on a batch of T copies of the image:
both do T times the synaptic work, so ``SNN(T) / ANN(batch T)`` isolates the runtime's own overhead (neuron
updates, state, the per-step bookkeeping). ``SNN(T) / (T · ANN batch 1)`` is the latency cost a user sees.
"""
from __future__ import annotations

import copy
import platform
import statistics
import time
from typing import Any, Callable

import torch
from torch import nn

from .convert import convert, fold_batchnorm
from .runtime import SpikingNetwork

__all__ = ["time_ms", "bench_runtime", "format_table"]


def _stats(times: list[float]) -> dict[str, float]:
    return {"median": statistics.median(times), "min": min(times)}


def time_ms(
    *fns: Callable[[], Any], warmup: int = 2, repeats: int = 7, clock: Callable[[], float] = time.perf_counter
) -> list[dict[str, float]]:
    """Median and minimum milliseconds of each ``fn()`` by ``clock``, after ``warmup`` calls of each.

    The functions are timed in turns (round-robin), so a load change on a shared machine hits all of them
    alike and their ratios stay meaningful. ``clock=time.process_time`` counts the CPU time of this process
    instead of wall time: steadier on a loaded machine, and equal to wall time on an idle one with 1 thread.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, acc in zip(fns, times):
            start = clock()
            fn()
            acc.append((clock() - start) * 1e3)
    return [_stats(t) for t in times]


def bench_runtime(
    model: nn.Module,
    readouts: list[str],
    analog: list[str] = (),
    imgsz: int = 320,
    timesteps: tuple[int, ...] = (1, 2, 4, 8),
    warmup: int = 2,
    repeats: int = 7,
    cpu_time: bool = False,
) -> dict[str, Any]:
    """Time the BN-folded quantized ANN (batch 1 and batch T) and its SNN (batch 1, T steps) on one device.

    Uses the current ``torch.get_num_threads()``; set it before calling. ``cpu_time`` measures process CPU time
    rather than wall time (see :func:`time_ms`).
    """
    clock = time.process_time if cpu_time else time.perf_counter
    ann = fold_batchnorm(copy.deepcopy(model).eval())
    snn = SpikingNetwork(convert(model, readouts, analog=analog))
    x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))

    with torch.inference_mode():
        rows = []
        for t in timesteps:
            batch = x.expand(t, -1, -1, -1).contiguous()
            ann_b1, ann_bt, snn_t = time_ms(
                lambda: ann(x), lambda: ann(batch), lambda: snn(x, t), warmup=warmup, repeats=repeats, clock=clock
            )
            rows.append({
                "T": t,
                "ann_b1_ms": ann_b1["median"],
                "ann_bT_ms": ann_bt["median"],
                "snn_ms": snn_t["median"],
                "ratio_batch": snn_t["median"] / ann_bt["median"],
                "ratio_serial": snn_t["median"] / (t * ann_b1["median"]),
                "min_ms": {"ann_b1": ann_b1["min"], "ann_bT": ann_bt["min"], "snn": snn_t["min"]},
                "ratio_batch_of_min": snn_t["min"] / ann_bt["min"],
            })
    return {
        "imgsz": imgsz,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "clock": "cpu" if cpu_time else "wall",
        "warmup": warmup,
        "repeats": repeats,
        "ann_b1_ms": statistics.median(row["ann_b1_ms"] for row in rows),
        "rows": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"ANN batch 1: {result['ann_b1_ms']:.1f} ms/img  ({result['imgsz']} px, {result['threads']} threads, "
        f"{result['clock']} time, median of {result['repeats']} after {result['warmup']} warm-up)",
        f"{'T':>3} {'ANN b1 ms':>10} {'ANN bT ms':>10} {'SNN(T) ms':>10} {'SNN/ANN(bT)':>12} "
        f"{'SNN/(T·ANN b1)':>15} {'SNN/ANN(bT) of min':>19}",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['T']:>3} {row['ann_b1_ms']:>10.1f} {row['ann_bT_ms']:>10.1f} {row['snn_ms']:>10.1f} "
            f"{row['ratio_batch']:>12.3f} {row['ratio_serial']:>15.3f} {row['ratio_batch_of_min']:>19.3f}"
        )
    return "\n".join(lines)
