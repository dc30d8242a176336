"""Frame-by-frame detectors for live use: the ANN, the spiking network reset per frame, and the streaming network.

Each takes a letterboxed batch ``[B, 3, S, S]`` and returns the Detect head's decoded output ``[B, 4 + nc, A]``
(boxes in input pixels, class scores), ready for NMS; spiking ones also report per-layer firing rates.
"""
from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..checkpoint import CheckpointError, CheckpointKindError
from ..engine.loading import LoadedAnn, LoadedSnn, load_model
from ..engine.recipe_run import build_snn
from ..models.postprocess import decoded_output
from ..recipes import data_free_recipe
from ..spiking import ReadOut, SpikingMaxPool, SpikingNetwork, SpikingNeuron, check_timesteps, fold_batchnorm

__all__ = [
    "spiking_network", "comparison_ann", "forgetting_modules", "forgetting", "window_sum",
    "FrameDetector", "AnnDetector", "SpikingDetector", "StreamingDetector", "make_detector",
]


def spiking_network(loaded: LoadedAnn | LoadedSnn, *, method: str | None = None) -> SpikingNetwork:
    """The spiking network to run from a loaded checkpoint: an SNN as stored, an ANN converted with ``method``.

    An ANN is converted with the recipe ``method`` (default qcfs); one that calibrates on data (dual_phase,
    fast_snn) is refused, since calibration needs a dataset: convert with ``tools/convert_det.py`` and load the
    SNN checkpoint it writes. An SNN checkpoint is used as stored (it cannot be converted again, so ``method``
    is refused).
    """
    if isinstance(loaded, LoadedSnn):
        if method is not None:
            raise CheckpointError(f"{loaded.path} holds an SNN converted with {loaded.recipe.name}; --method applies "
                                  "to ANN checkpoints")
        return loaded.network
    return build_snn(loaded.model, data_free_recipe(method or "qcfs"))


def comparison_ann(weights: str | Path) -> LoadedAnn:
    """The ANN checkpoint ``weights`` with BatchNorm folded into its convolutions, to run beside the spiking
    network; a spiking checkpoint (which cannot give back its ANN) is a one-line CheckpointError."""
    try:
        loaded = load_model(weights, expect="ann")
    except CheckpointKindError:
        raise CheckpointError(
            f"{weights} holds a converted SNN; the ANN comparison needs the ANN checkpoint"
        ) from None
    return replace(loaded, model=fold_batchnorm(loaded.model).eval())


def forgetting_modules(net: nn.Module, leak: float, pool_decay: float) -> list[nn.Module]:
    """The modules that forget between stream frames: the neurons when ``leak < 1``, the max-pools when
    ``pool_decay < 1`` (a factor of 1 is the pure carry-over, left untouched rather than multiplied by 1)."""
    return [m for m in net.modules() if isinstance(m, SpikingNeuron) and leak < 1] + [
        m for m in net.modules() if isinstance(m, SpikingMaxPool) and pool_decay < 1
    ]


def _forget(module: nn.Module, leak: float, pool_decay: float) -> None:
    """``v ← v0·θ + leak·(v − v0·θ)`` for a neuron; the accumulators scaled by ``pool_decay`` for a max-pool."""
    if isinstance(module, SpikingNeuron):
        rest = module.v0 * module.threshold
        module.v.sub_(rest).mul_(leak).add_(rest)
    else:
        module.accumulated.mul_(pool_decay)
        module.pooled.mul_(pool_decay)


@contextlib.contextmanager
def forgetting(modules: Sequence[nn.Module], leak: float, pool_decay: float) -> Iterator[None]:
    """Inside the block, each of ``modules`` forgets right after each of its calls: a forward hook, so each of
    SPPF's three pool call sites decays its own state, which the module holds right after that call. Used by
    the PyTorch stream and traced into the ONNX stream graph alike."""
    hooks = [m.register_forward_hook(lambda mod, args, out: _forget(mod, leak, pool_decay)) for m in modules]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def window_sum(frames: Sequence[Any]) -> Any:
    """``frames[0] + frames[1] + …`` in this order (tensors or arrays alike), so the PyTorch and the
    onnxruntime stream round the read-out window's sum the same way."""
    total = frames[0]
    for frame in frames[1:]:
        total = total + frame
    return total


class FrameDetector:
    """Base class: ``detector(images)`` → decoded Detect output; ``rates`` after each call (spiking only)."""

    label = "detector"

    def __init__(self) -> None:
        self.rates: list[float] = []  # per neuron layer, for the last call
        self.rate: float | None = None  # spikes per neuron and step over the whole network, last call

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reset(self) -> None:
        """Start a new sequence (no-op for detectors without state)."""


class AnnDetector(FrameDetector):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()
        self.label = "ANN"

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return decoded_output(self.model(images))


class _SpikingBase(FrameDetector):
    """Firing rates from the neurons' own counters (filled when the network runs with ``record``): one
    reduction per layer, no hooks."""

    def __init__(self, network: SpikingNetwork) -> None:
        super().__init__()
        self.network = network
        self.neurons = [m for m in network.net.modules() if isinstance(m, SpikingNeuron)]

    def _counted(self, run: Callable[[], Any]) -> Any:
        before = [(m.spike_count, m.neuron_steps) for m in self.neurons]
        out = run()
        spikes = [float(m.spike_count - s) for m, (s, _) in zip(self.neurons, before)]
        steps = [m.neuron_steps - n for m, (_, n) in zip(self.neurons, before)]
        self.rates = [s / n if n else 0.0 for s, n in zip(spikes, steps)]
        self.rate = sum(spikes) / sum(steps) if sum(steps) else 0.0
        return out


class SpikingDetector(_SpikingBase):
    """Every frame is simulated for T steps from a reset state."""

    def __init__(self, network: SpikingNetwork, timesteps: int = 4) -> None:
        super().__init__(network)
        self.timesteps = check_timesteps(timesteps)[0]
        self.label = f"SNN T={self.timesteps}"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        t = self.timesteps
        return decoded_output(self._counted(lambda: self.network.anytime(images, [t], record=True)[t]))


class StreamingDetector(_SpikingBase):
    """Membrane state carries over from frame to frame; each frame adds ``steps`` time steps.

    Two things keep a stream close to a per-frame T-step run (measured on the steady-scene video of
    :func:`~spikedet.deploy.stream_eval.stream_accuracy`):

    - **Read-out window.** The read-outs' own running mean covers every step since the reset: on a moving scene a
      new object weighs ``1/n`` after ``n`` steps, so detections lag further behind the longer the video runs.
      The read-out here averages the last ``window`` steps instead (exactly: the read-outs' per-frame input sums
      are kept and their running sums are set to the window's sum before each frame). ``window = T`` averages as
      many steps as a per-frame T-step run; ``window=None`` (or 0) keeps the running mean since the reset.
    - **Forgetting.** An IF neuron integrates without bound: a neuron held below threshold by one scene sinks to
      tens of thresholds below and stays silent long after the scene has changed; max-pooling over accumulated
      counts keeps the old scene's maxima. Left as they are, a stream scores near zero mAP on a video that
      changes scene every 4-16 frames. After every frame the membranes are therefore pulled toward their initial
      potential, ``v ← v0·θ + leak·(v − v0·θ)``, and the max-pool accumulators scaled by ``pool_decay``. Both
      roughly keep a steady input's mean rate (with ``v0 = ½`` the residual of a regular spike train averages
      ``v0·θ``; a decayed max-pool of a constant input still emits ``maxpool(x)`` per step) while bounding the
      memory to a few steps. ``leak = pool_decay = 1`` is the pure carry-over.

    The first frame after :meth:`reset` equals a per-frame run with T = ``steps``.
    """

    def __init__(
        self, network: SpikingNetwork, steps: int = 1, window: int | None = 4, leak: float = 0.25,
        pool_decay: float = 0.5,
    ) -> None:
        sequential = network.restarting_neurons()
        if sequential:
            raise ValueError(
                f"--stream-state carries membranes over from frame to frame, but {', '.join(sequential)} "
                "starts every run from its whole input (PASCAL integrates it before firing, COS pre-runs it): "
                "run it per frame, without --stream-state"
            )
        super().__init__(network)
        self.steps = check_timesteps(steps)[0]
        self.window = window or None
        if self.window is not None and (self.window < self.steps or self.window % self.steps):
            raise ValueError(f"the read-out window ({window}) must be a multiple of the steps per frame ({steps})")
        for name, value in (("leak", leak), ("pool decay", pool_decay)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"the {name} must be in [0, 1], got {value}")
        self.leak, self.pool_decay = leak, pool_decay
        self.readouts = [m for m in network.net.modules() if isinstance(m, ReadOut)]
        self._forgetting = forgetting_modules(network.net, leak, pool_decay)
        # per-frame input sums of the read-outs, for the frames before the current one inside the window
        self._past: deque[list[torch.Tensor]] = deque(maxlen=self.window // self.steps - 1 if self.window else 0)
        span = f"window {self.window}" if self.window else "running mean"
        self.label = f"SNN stream {self.steps} step/frame, {span}"
        self.reset()

    def reset(self) -> None:
        self.network.reset()
        self._past.clear()
        self.frames = 0

    def _load_window(self) -> list[torch.Tensor | None]:
        """Set each read-out's running sum and step count to those of the window's earlier frames."""
        loaded = []
        for i, readout in enumerate(self.readouts):
            total = window_sum([frame[i] for frame in self._past]) if self._past else None
            readout.total, readout.effective_steps = total, len(self._past) * self.steps or None
            loaded.append(total)
        return loaded

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        loaded = self._load_window() if self.window else None
        self.network.ctx.record = True  # stream() records statistics when the context asks (any run resets it)
        with forgetting(self._forgetting, self.leak, self.pool_decay):  # hooked only while streaming
            out = self._counted(lambda: self.network.stream(images, self.steps))
        if loaded is not None and self._past.maxlen:
            self._past.append([r.total if t is None else r.total - t for r, t in zip(self.readouts, loaded)])
        self.frames += 1
        return decoded_output(out)


def make_detector(
    model: Any, timesteps: int = 4, stream_state: bool = False, steps_per_frame: int = 1, window: int | None = None,
    leak: float = 0.25, pool_decay: float = 0.5,
) -> FrameDetector:
    """The detector for a loaded model: ANN; SNN at T per frame; or streaming (read-out window default: T)."""
    if not isinstance(model, SpikingNetwork):
        if stream_state:
            raise ValueError("--stream-state carries spiking state over frames; the ANN (--ann) has none")
        return AnnDetector(model)
    if stream_state:
        return StreamingDetector(model, steps_per_frame, timesteps if window is None else window, leak, pool_decay)
    return SpikingDetector(model, timesteps)
