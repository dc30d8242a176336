"""Compiled backends of the demo's detectors: each detector compiled once, cached, and run as a graph.

Two compilers share everything here but the last step:

- ``inductor`` (:mod:`~spikedet.deploy.aot_backend`): PyTorch's AOTInductor compiles the graph to C++ with
  every neuron's elementwise update fused into one loop; a ``.pt2`` package, loaded in milliseconds. Needs a
  C++ compiler when a graph is first built. The fastest on CPU (see BENCHMARKS.md).
- ``onnxruntime`` (:mod:`~spikedet.deploy.ort_backend`): the ONNX export run by onnxruntime. Needs nothing
  beyond the Python packages.

``auto`` (the demo's default) picks ``inductor`` when a C++ compiler is found and falls back to ``onnxruntime``
when there is none or the compile fails, and to PyTorch when no compiled graph reproduces the model
(:func:`make_backend_detector`); ``torch`` runs the PyTorch model eagerly.

Both compile the same side-effect-free graphs (:mod:`~spikedet.deploy.tracing`, :mod:`~spikedet.deploy.graph_modules`): the decoded Detect output
and the spikes of every neuron layer, so the overlay's firing rates cost one sum per layer, as in PyTorch.
Compiling takes tens of seconds, so every graph is cached under ``spikedet.env.cache_dir()/<backend>``, keyed by
a digest of the loaded model (the checkpoint's weights and, for a converted network, the recipe's thresholds
and neuron types), the graph kind and its settings (T, input size, stream steps and forgetting). A fresh graph
is checked against PyTorch before it is cached (:func:`check_detector`, the parity rule of :mod:`~spikedet.deploy.parity`); one
that fails is not kept, and a ``.unfaithful`` note in its place makes later runs skip it instead of compiling
it again.

The stream graph carries the membrane state as explicit inputs and outputs: it is held here between frames,
and the read-out window of :class:`~spikedet.deploy.detector.StreamingDetector` is kept the same way (the
read-outs' state is set to the window's sum before each frame).
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
from .aot_backend import AotRunner
from .detector import FrameDetector, make_detector, window_sum
from .graph_format import DEFAULT_OPSET
from .graph_modules import export_ann, export_stateful, export_unrolled
from .parity import MIN_MATCH, TOLERANCE, firing_rates, parity_error
from .tracing import ExportError
from .runner import GraphRunner, cxx_compiler

__all__ = [
    "BACKENDS", "check_backend", "cxx_compiler", "resolve_backend", "model_digest", "graph_path", "cached_graph",
    "GraphAnnDetector", "GraphSpikingDetector", "GraphStreamingDetector", "check_detector", "make_graph_detector",
    "make_backend_detector",
]

BACKENDS = ("auto", "inductor", "onnxruntime", "torch")
# bump when the exported graphs change, so that graphs cached by an older version are rebuilt
GRAPH_FORMAT = 3


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    return backend


def resolve_backend(backend: str) -> str:
    """``auto`` → ``inductor`` with a C++ compiler, else ``onnxruntime``; any other backend as it is."""
    if check_backend(backend) != "auto":
        return backend
    return "inductor" if cxx_compiler() else "onnxruntime"


def model_digest(model: nn.Module) -> str:
    """A digest of everything that defines the model's graph: its module tree as printed (layer types,
    neuron thresholds, initial potentials) and every parameter and buffer."""
    h = hashlib.sha256(repr(model).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def graph_path(
    model: nn.Module, kind: str, settings: dict[str, Any], backend: str = "onnxruntime", suffix: str = ".onnx"
) -> Path:
    """Where the cache keeps the ``backend`` graph of ``model`` for ``kind`` and ``settings``."""
    key = {"model": model_digest(model), "kind": kind, "format": GRAPH_FORMAT, "opset": DEFAULT_OPSET, **settings}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / backend / f"{kind}-{digest}{suffix}"


def cached_graph(
    model: nn.Module, kind: str, settings: dict[str, Any], export: Callable[[Path], Any], backend: str = "onnxruntime",
    suffix: str = ".onnx",
) -> tuple[Path, bool]:
    """``(path, exported)``: the cached ``backend`` graph of ``model`` for ``kind`` and ``settings``;
    ``export(path)`` writes it when missing (``exported`` is then True).

    The file is written under a temporary name and renamed, so an interrupted export never leaves a partial
    graph behind and two demos starting at once cannot read each other's half-written file.
    """
    path = graph_path(model, kind, settings, backend, suffix)
    if path.is_file():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial{suffix}")
    try:
        export(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path, True


class GraphAnnDetector(FrameDetector):
    """The ANN's graph."""

    def __init__(self, runner: GraphRunner) -> None:
        super().__init__()
        self.runner = runner
        self.label = "ANN"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.runner(images)[0]


class _GraphSpiking(FrameDetector):
    def __init__(self, runner: GraphRunner) -> None:
        super().__init__()
        self.runner = runner
        self.layer_sizes = np.asarray(runner.metadata["neurons"], dtype=np.float64)

    def _count(self, spikes: torch.Tensor, steps: int) -> None:
        """Firing rates from the graph's per-layer spike counts, as :class:`~.detector.SpikingDetector` has them."""
        spikes = spikes.numpy()
        self.rates = firing_rates(spikes, self.layer_sizes, steps).tolist()
        self.rate = float(np.sum(spikes, dtype=np.float64) / (self.layer_sizes.sum() * steps))


class GraphSpikingDetector(_GraphSpiking):
    """The unrolled T-step graph: every frame from a reset state."""

    def __init__(self, runner: GraphRunner, timesteps: int) -> None:
        super().__init__(runner)
        self.timesteps = timesteps
        self.label = f"SNN T={timesteps}"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        output, spikes = self.runner(images)
        self._count(spikes, self.timesteps)
        return output


def _module_name(state: str) -> tuple[str, str]:
    """``(module in the original network, attribute)`` of a stateful graph's state name (the graph gives each
    call site of a module called several times its own copy, ``<module>.sites.<k>``)."""
    module, _, attr = state.rpartition(".")
    return re.sub(r"\.sites\.\d+$", "", module), attr


class GraphStreamingDetector(_GraphSpiking):
    """The stream graph (``steps`` per call, forgetting built in, no reset input), its state carried here.

    Matches :class:`~spikedet.deploy.detector.StreamingDetector` with the same settings: a reset feeds the
    initial state (potentials ``v0·θ``, the rest zero); with a read-out ``window`` the read-outs' running sums
    and step counts are set to those of the window's earlier frames before each frame.
    """

    def __init__(self, runner: GraphRunner, network: SpikingNetwork, steps: int, window: int | None) -> None:
        super().__init__(runner)
        self.steps, self.window = steps, window
        names = runner.metadata["state"]
        self._initial = [self._initial_value(network, name, shape) for name, shape in zip(names, self._shapes(names))]
        located = [_module_name(name) for name in names]
        # (running sum, step count) state indices of each read-out: its state attributes come in that order
        self._readouts = [
            (k, k + 1) for k, (module, attr) in enumerate(located)
            if attr == "total" and isinstance(network.net.get_submodule(module), ReadOut)
        ]
        self._past: deque[list[torch.Tensor]] = deque(maxlen=window // steps - 1 if window else 0)
        span = f"window {window}" if window else "running mean"
        self.label = f"SNN stream {steps} step/frame, {span}"
        self.reset()

    def _shapes(self, names: list[str]) -> list[list[int]]:
        shapes = self.runner.metadata.get("state_shapes")
        if shapes is None or len(shapes) != len(names):
            raise ExportError(f"{self.runner.path}: the graph does not describe its state")
        return shapes

    @staticmethod
    def _initial_value(network: SpikingNetwork, name: str, shape: Sequence[int]) -> torch.Tensor:
        module, attr = _module_name(name)
        neuron = network.net.get_submodule(module)
        if attr == "v" and isinstance(neuron, SpikingNeuron):
            return (neuron.v0 * neuron.threshold).float().expand(*shape).contiguous()
        return torch.zeros(shape)

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
                self.state[total], self.state[count] = loaded[-1], torch.tensor(float(len(frames) * self.steps))
        output, spikes, *self.state = self.runner(images, *self.state)
        if self._past.maxlen:
            self._past.append([self.state[total] - done for (total, _), done in zip(self._readouts, loaded)])
        self._count(spikes, self.steps)
        self.frames += 1
        return output


def _probe_frames(imgsz: int, count: int = 4) -> list[torch.Tensor]:
    """Fixed noise images for the parity check of a fresh graph (the demo has no dataset at hand)."""
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, imgsz, imgsz, generator=generator) for _ in range(count)]


def check_detector(
    got: FrameDetector, ref: FrameDetector, frames: Sequence[torch.Tensor], imgsz: int, tolerance: float = TOLERANCE,
    min_match: float = MIN_MATCH, backend: str = "onnxruntime",
) -> tuple[int, int]:
    """``(matched, frames)``: run both detectors over ``frames`` from a reset and count the frames whose
    outputs (boxes relative to ``imgsz``, scores) and per-layer firing rates agree within ``tolerance``.
    :class:`ExportError` when fewer than ``min_match`` of them (and at least one) do: see the parity rule in
    :mod:`~spikedet.deploy.parity` (a float32 threshold tie flips a spike, a wiring error every frame)."""
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
            f"the {backend} {got.label} graph does not reproduce PyTorch ({matched}/{len(frames)} frames match "
            f"within {tolerance:g})"
        )
    return matched, len(frames)


def _runner_class(backend: str) -> type[GraphRunner]:
    if backend == "inductor":
        return AotRunner
    if backend == "onnxruntime":
        from .ort_backend import OrtRunner  # onnx and onnxruntime only for this backend

        return OrtRunner
    raise ValueError(f"no compiled graphs for the '{backend}' backend (compiled: inductor, onnxruntime)")


def make_graph_detector(
    model: Any, imgsz: int, timesteps: int = 4, stream_state: bool = False, steps_per_frame: int = 1,
    window: int | None = None, leak: float = 0.25, pool_decay: float = 0.5, threads: int | None = None,
    log: Callable[[str], Any] | None = None, backend: str = "inductor",
) -> FrameDetector:
    """The compiled counterpart of :func:`~spikedet.deploy.detector.make_detector` at input size ``imgsz``
    (same arguments and validation) on ``backend`` (``inductor`` or ``onnxruntime``), compiling and checking
    the graph on first use (``log`` says so)."""
    runner_class = _runner_class(backend)
    reference = make_detector(model, timesteps, stream_state, steps_per_frame, window, leak, pool_decay)
    example = _probe_frames(imgsz, 1)[0]
    fresh: list[Path] = []

    def compiled(kind: str, settings: dict[str, Any], write: Callable[[Path], Any]) -> GraphRunner:
        def announced(path: Path) -> None:
            if log:
                log(f"compiling the {reference.label} detector for {backend} (once, then cached)...")
            write(path)

        key = {"imgsz": imgsz, **runner_class.settings, **settings}
        unfaithful = graph_path(model, kind, key, backend, ".unfaithful")
        if unfaithful.is_file():  # this graph failed the parity check before: same model, same runtime
            raise ExportError(f"{unfaithful.read_text()} (found earlier; delete {unfaithful} to try again)")
        path, exported = cached_graph(model, kind, key, announced, backend, runner_class.suffix)
        if exported:
            fresh.append(path)
        return runner_class(path, threads)

    write = runner_class.write
    if not isinstance(model, SpikingNetwork):
        detector = GraphAnnDetector(compiled("ann", {}, lambda p: export_ann(model, example, p, write=write)))
    elif stream_state:
        steps = reference.steps
        settings = {"steps": steps, "leak": leak, "pool_decay": pool_decay}
        runner = compiled("stream", settings, lambda p: export_stateful(
            model, example, p, steps, leak, pool_decay, reset_input=False, write=write
        ))
        detector = GraphStreamingDetector(runner, model, steps, reference.window)
    else:
        t = check_timesteps(timesteps)[0]
        runner = compiled("unrolled", {"T": t}, lambda p: export_unrolled(model, example, p, t, write=write))
        detector = GraphSpikingDetector(runner, t)
    if fresh:  # checked once, when compiled; a graph that fails is not kept
        frames = _probe_frames(imgsz)
        if stream_state:  # each probe twice in a row: the second frame runs on the state the first left
            frames = [x for x in frames for _ in range(2)]
        try:
            with torch.no_grad():
                check_detector(detector, reference, frames, imgsz, backend=backend)
        except ExportError as err:  # not kept; remembered, so that later runs do not compile it again
            fresh[0].unlink(missing_ok=True)
            fresh[0].with_suffix(".unfaithful").write_text(str(err))
            raise
    return detector


def make_backend_detector(
    model: Any, imgsz: int, timesteps: int = 4, stream_state: bool = False, steps_per_frame: int = 1,
    window: int | None = None, leak: float = 0.25, pool_decay: float = 0.5, backend: str = "auto",
    log: Callable[[str], Any] | None = None,
) -> FrameDetector:
    """The detector on ``backend``: ``torch`` (eager), a compiled one, or ``auto``: inductor when a C++ compiler
    is found, else (or when its graph fails to compile or to reproduce PyTorch) onnxruntime, else PyTorch, each
    step down said in a line to ``log``. Some networks cannot be compiled faithfully: CASC's consistent neurons
    sit exactly on their thresholds so often that a change in float32 rounding (another runtime, or PyTorch
    itself with another memory layout) changes most spikes."""
    settings = (timesteps, stream_state, steps_per_frame, window, leak, pool_decay)
    chosen = resolve_backend(backend)
    if chosen == "torch":
        return make_detector(model, *settings)
    if backend != "auto":
        try:
            return make_graph_detector(model, imgsz, *settings, log=log, backend=chosen)
        except ExportError as err:
            raise ExportError(f"{err}; --backend torch runs the PyTorch model") from None
    candidates = ["inductor", "onnxruntime"] if chosen == "inductor" else ["onnxruntime"]
    for name, fallback in zip(candidates, [*candidates[1:], "torch"]):
        try:
            return make_graph_detector(model, imgsz, *settings, log=log, backend=name)
        except ExportError as err:
            if log:
                log(f"{err}; using {fallback} instead")
    return make_detector(model, *settings)
