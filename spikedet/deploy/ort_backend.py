"""The demo's onnxruntime backend: each detector exported once to ONNX, cached, and run by onnxruntime.

The graphs come from :mod:`~spikedet.deploy.onnx_export`; they output the Detect head's decoded boxes and the
spikes of every neuron layer, so the overlay's firing rates cost one sum per layer, as in PyTorch. Tracing a
spiking network takes tens of seconds, so every graph is cached under ``spikedet.env.cache_dir()/onnx``, keyed
by a digest of the loaded model (the checkpoint's weights and, for a converted network, the recipe's thresholds
and neuron types), the graph kind and its settings (T, input size, stream steps and forgetting). A fresh export
is checked against PyTorch before it is cached (:func:`check_detector`, the parity rule of ``onnx_export``).

The stream graph carries the membrane state as explicit inputs and outputs: it is held here in numpy between
frames, and the read-out window of :class:`~spikedet.deploy.detector.StreamingDetector` is kept the same way
(the read-outs' state is set to the window's sum before each frame).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..env import cache_dir
from ..spiking import ReadOut, SpikingNetwork, SpikingNeuron, check_timesteps
from .detector import FrameDetector, make_detector, window_sum
from .onnx_export import (
    DEFAULT_OPSET, MIN_MATCH, STATE_IN, STATE_OUT, TOLERANCE, ExportError, export_ann, export_stateful,
    export_unrolled, firing_rates, graph_metadata, ort_session, parity_error,
)

__all__ = [
    "BACKENDS", "check_backend", "model_digest", "cached_graph", "OrtAnnDetector",
    "OrtSpikingDetector", "OrtStreamingDetector", "make_ort_detector", "check_detector",
]

BACKENDS = ("onnxruntime", "torch")
# bump when the exported graphs change, so that graphs cached by an older version are rebuilt
GRAPH_FORMAT = 2


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    return backend


def model_digest(model: nn.Module) -> str:
    """A digest of everything that defines the model's graph: its module tree as printed (layer types,
    neuron thresholds, initial potentials) and every parameter and buffer."""
    h = hashlib.sha256(repr(model).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cached_graph(
    model: nn.Module, kind: str, settings: dict[str, Any], export: Callable[[Path], Any]
) -> tuple[Path, bool]:
    """``(path, exported)``: the cached graph of ``model`` for ``kind`` and ``settings``; ``export(path)`` writes
    it when missing (``exported`` is then True).

    The file is written under a temporary name and renamed, so an interrupted export never leaves a partial
    graph behind and two demos starting at once cannot read each other's half-written file.
    """
    key = {"model": model_digest(model), "kind": kind, "format": GRAPH_FORMAT, "opset": DEFAULT_OPSET, **settings}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / "onnx" / f"{kind}-{digest}.onnx"
    if path.is_file():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.onnx")
    try:
        export(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path, True


class OrtAnnDetector(FrameDetector):
    """The ANN's graph in onnxruntime."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = ort_session(path, threads)
        self.label = "ANN"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"images": images.numpy()})[0])


class _OrtSpiking(FrameDetector):
    def __init__(self, path: str | Path, threads: int | None) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = ort_session(path, threads)
        self.layer_sizes = np.asarray(graph_metadata(self.session)["neurons"], dtype=np.float64)

    def _count(self, spikes: np.ndarray, steps: int) -> None:
        """Firing rates from the graph's per-layer spike counts, as :class:`~.detector.SpikingDetector` has them."""
        self.rates = firing_rates(spikes, self.layer_sizes, steps).tolist()
        self.rate = float(np.sum(spikes, dtype=np.float64) / (self.layer_sizes.sum() * steps))


class OrtSpikingDetector(_OrtSpiking):
    """The unrolled T-step graph: every frame from a reset state."""

    def __init__(self, path: str | Path, timesteps: int, threads: int | None = None) -> None:
        super().__init__(path, threads)
        self.timesteps = timesteps
        self.label = f"SNN T={timesteps}"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        output, spikes = self.session.run(None, {"images": images.numpy()})
        self._count(spikes, self.timesteps)
        return torch.from_numpy(output)


def _module_name(state: str) -> tuple[str, str]:
    """``(module in the original network, attribute)`` of a stateful graph's state name (the graph gives each
    call site of a module called several times its own copy, ``<module>.sites.<k>``)."""
    module, _, attr = state[len(STATE_IN):].rpartition(".")
    return re.sub(r"\.sites\.\d+$", "", module), attr


class OrtStreamingDetector(_OrtSpiking):
    """The stream graph (``steps`` per call, forgetting built in, no reset input), its state carried in numpy.

    Matches :class:`~spikedet.deploy.detector.StreamingDetector` with the same settings: a reset feeds the
    initial state (potentials ``v0·θ``, the rest zero); with a read-out ``window`` the read-outs' running sums
    and step counts are set to those of the window's earlier frames before each frame.
    """

    def __init__(
        self, path: str | Path, network: SpikingNetwork, steps: int, window: int | None, threads: int | None = None,
    ) -> None:
        super().__init__(path, threads)
        self.steps, self.window = steps, window
        meta = graph_metadata(self.session)
        self.leak, self.pool_decay = meta["leak"], meta["pool_decay"]
        inputs = [i for i in self.session.get_inputs() if i.name.startswith(STATE_IN)]
        self._names = [i.name for i in inputs]
        self._initial = [self._initial_value(network, i.name, i.shape) for i in inputs]
        self._readouts = [
            (k, k + 1) for k, name in enumerate(self._names)
            if _module_name(name)[1] == "total" and isinstance(network.net.get_submodule(_module_name(name)[0]), ReadOut)
        ]
        if [o.name for o in self.session.get_outputs()[2:]] != [STATE_OUT + n[len(STATE_IN):] for n in self._names]:
            raise ExportError(f"{path}: the state outputs do not mirror the state inputs")
        self._past: deque[list[np.ndarray]] = deque(maxlen=window // steps - 1 if window else 0)
        span = f"window {window}" if window else "running mean"
        self.label = f"SNN stream {steps} step/frame, {span}"
        self.reset()

    @staticmethod
    def _initial_value(network: SpikingNetwork, name: str, shape: Sequence[int]) -> np.ndarray:
        module, attr = _module_name(name)
        neuron = network.net.get_submodule(module)
        if attr == "v" and isinstance(neuron, SpikingNeuron):
            return (neuron.v0 * neuron.threshold).float().expand(*shape).numpy().copy()
        return np.zeros(shape, dtype=np.float32)

    def reset(self) -> None:
        self.state = list(self._initial)
        self._past.clear()
        self.frames = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        loaded = []
        if self.window:
            for total, count in self._readouts:
                frames = [frame[len(loaded)] for frame in self._past]
                loaded.append(window_sum(frames) if frames else self._initial[total])
                self.state[total], self.state[count] = loaded[-1], np.array(len(frames) * self.steps, np.float32)
        output, spikes, *self.state = self.session.run(
            None, {"images": images.numpy(), **dict(zip(self._names, self.state))}
        )
        if self._past.maxlen:
            self._past.append([self.state[total] - done for (total, _), done in zip(self._readouts, loaded)])
        self._count(spikes, self.steps)
        self.frames += 1
        return torch.from_numpy(output)


def _probe_frames(imgsz: int, count: int = 4) -> list[torch.Tensor]:
    """Fixed noise images for the parity check of a fresh export (the demo has no dataset at hand)."""
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, imgsz, imgsz, generator=generator) for _ in range(count)]


def check_detector(
    got: FrameDetector, ref: FrameDetector, frames: Sequence[torch.Tensor], imgsz: int, tolerance: float = TOLERANCE,
    min_match: float = MIN_MATCH,
) -> tuple[int, int]:
    """``(matched, frames)``: run both detectors over ``frames`` from a reset and count the frames whose
    outputs (boxes relative to ``imgsz``, scores) and per-layer firing rates agree within ``tolerance``.
    :class:`ExportError` when fewer than ``min_match`` of them (and at least one) do: see the parity rule in
    :mod:`~spikedet.deploy.onnx_export` (a float32 threshold tie flips a spike, a wiring error every frame)."""
    got.reset()
    ref.reset()
    matched = 0
    for x in frames:
        a, b = got(x).numpy(), ref(x).numpy()
        rates = float(np.abs(np.subtract(got.rates, ref.rates)).max()) if ref.rates else 0.0
        matched += parity_error(a, b, imgsz)[1] <= tolerance and rates <= tolerance
    got.reset()
    ref.reset()
    if matched < max(1, math.ceil(min_match * len(frames))):
        raise ExportError(
            f"the onnxruntime {got.label} graph does not reproduce PyTorch ({matched}/{len(frames)} frames match "
            f"within {tolerance:g}); run with --backend torch"
        )
    return matched, len(frames)


def make_ort_detector(
    model: Any, imgsz: int, timesteps: int = 4, stream_state: bool = False, steps_per_frame: int = 1,
    window: int | None = None, leak: float = 0.25, pool_decay: float = 0.5, threads: int | None = None,
    log: Callable[[str], Any] | None = None,
) -> FrameDetector:
    """The onnxruntime counterpart of :func:`~spikedet.deploy.detector.make_detector` at input size ``imgsz``
    (same arguments and validation), exporting and checking the graph on first use (``log`` says so)."""
    reference = make_detector(model, timesteps, stream_state, steps_per_frame, window, leak, pool_decay)
    example = _probe_frames(imgsz, 1)[0]
    fresh: list[Path] = []

    def export(kind: str, settings: dict[str, Any], write: Callable[[Path], Any]) -> Path:
        def announced(path: Path) -> None:
            if log:
                log(f"exporting the {reference.label} detector to ONNX for onnxruntime (once, then cached)...")
            write(path)

        path, exported = cached_graph(model, kind, {"imgsz": imgsz, **settings}, announced)
        if exported:
            fresh.append(path)
        return path

    if not isinstance(model, SpikingNetwork):
        detector = OrtAnnDetector(export("ann", {}, lambda p: export_ann(model, example, p)), threads)
    elif stream_state:
        steps, span = reference.steps, reference.window
        settings = {"steps": steps, "leak": leak, "pool_decay": pool_decay}
        path = export("stream", settings, lambda p: export_stateful(
            model, example, p, steps, leak, pool_decay, reset_input=False
        ))
        detector = OrtStreamingDetector(path, model, steps, span, threads)
    else:
        t = check_timesteps(timesteps)[0]
        detector = OrtSpikingDetector(export("unrolled", {"T": t}, lambda p: export_unrolled(model, example, p, t)),
                                      t, threads)
    if fresh:  # checked once, when exported; a graph that fails is not kept
        frames = _probe_frames(imgsz)
        if stream_state:  # each probe twice in a row: the second frame runs on the state the first left
            frames = [x for x in frames for _ in range(2)]
        try:
            with torch.no_grad():
                check_detector(detector, reference, frames, imgsz)
        except ExportError:
            fresh[0].unlink(missing_ok=True)
            raise
    return detector
