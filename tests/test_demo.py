"""The live demo on a tiny trained model: headless runs on a generated video, streaming read-outs, bad sources."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch._inductor import config as inductor_config

from spikedet.data import load_dataset
from spikedet.deploy import (
    SourceError, SpikingDetector, StreamingDetector, VideoSource, make_detector, make_video, process_video, run_demo,
    spiking_network,
)
from spikedet.deploy.demo import frame_input
from spikedet.deploy.parity import MIN_MATCH, TOLERANCE, parity_error
from spikedet.engine.loading import load_model
from spikedet.deploy.tracing import ExportError
from spikedet.deploy.backends import (
    GraphStreamingDetector, cached_graph, check_detector, cxx_compiler, make_backend_detector, make_graph_detector,
    resolve_backend,
)
from spikedet.deploy.stream_eval import stream_accuracy
from spikedet.engine.inference import letterbox, to_tensor
from spikedet.models.postprocess import scaled_nms
from spikedet.spiking import QCFS, ReadOut, SpikingMaxPool, SpikingNeuron

ROOT = Path(__file__).resolve().parents[1]
HOLD = 2
# a 1-epoch model scores far below the default 0.25; a low threshold still shows that boxes come out
CONF = 0.001


@pytest.fixture(scope="module")
def val(tiny_yolo_checkpoint: tuple[Path, Path]):
    return load_dataset(tiny_yolo_checkpoint[1], "val")


@pytest.fixture(scope="module")
def video(val, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(val.records, tmp_path_factory.mktemp("video") / "clip.mp4", fps=10, hold=HOLD)


def _frames(path: Path) -> list:
    with VideoSource(str(path)) as source:
        return list(source)


def test_make_video_holds_each_image(video: Path, val) -> None:
    frames = _frames(video)
    assert len(frames) == len(val.records) * HOLD
    assert frames[0].shape == (64, 64, 3)


def test_frame_input_equals_to_tensor(video: Path) -> None:
    frame = _frames(video)[0]
    values = (np.arange(64 * 64 * 3) % 256).astype(np.uint8).reshape(64, 64, 3)  # every value, kept by letterbox
    for image in (frame, values):
        expected = to_tensor([letterbox(image, 64)])
        assert torch.equal(frame_input(image, 64), expected)


def test_demo_headless_saves_annotated_video(tiny_yolo_checkpoint, video: Path, tmp_path: Path) -> None:
    weights, _ = tiny_yolo_checkpoint
    out = tmp_path / "annotated.mp4"
    summary = run_demo(str(video), weights=weights, timesteps=2, imgsz=64, save=out, show=False, conf=CONF, progress=False,
                       backend="torch")
    frames_in = len(_frames(video))
    assert summary.frames == frames_in and summary.error is None
    assert summary.detections > 0
    assert summary.firing_rate is not None and 0.0 <= summary.firing_rate < 1.0
    assert summary.mode == "SNN T=2" and set(summary.stage_ms) >= {"capture", "network", "nms", "overlay"}
    saved = _frames(out)
    assert len(saved) == frames_in and saved[0].shape == (64, 64, 3)
    assert "frames" in summary.format() and summary.to_dict()["fps"] > 0


def test_demo_ann_and_max_frames(tiny_yolo_checkpoint, video: Path) -> None:
    summary = run_demo(str(video), weights=tiny_yolo_checkpoint[0], imgsz=64, show=False, ann=True, conf=CONF,
                       max_frames=3, progress=False, backend="torch")
    assert summary.mode == "ANN" and summary.frames == 3 and summary.firing_rate is None


def test_stream_state_runs_and_starts_from_reset(tiny_yolo_checkpoint, video: Path) -> None:
    weights, _ = tiny_yolo_checkpoint
    summary = run_demo(str(video), weights=weights, imgsz=64, show=False, stream_state=True, conf=CONF, progress=False,
                       backend="torch")
    assert summary.frames == len(_frames(video)) and summary.mode.startswith("SNN stream 1 step/frame")

    network = spiking_network(load_model(weights))
    x = to_tensor([letterbox(_frames(video)[0], 64)])
    stream = StreamingDetector(network, steps=1, window=4)
    first = stream(x)
    assert torch.equal(first, SpikingDetector(network, 1)(x))
    stream.reset()
    assert torch.equal(stream(x), first)


def _firing_network(weights: Path):
    """The tiny model with its clip levels shrunk 20x so that it fires (a 1-epoch model barely does)."""
    from spikedet.engine.recipe_run import build_snn
    from spikedet.recipes import get_recipe

    ann = load_model(weights, expect="ann").model
    for q in ann.modules():
        if isinstance(q, QCFS):
            q.clip.data *= 0.05
    return build_snn(ann, get_recipe("qcfs"))


@pytest.mark.parametrize("steps, window", [(1, 3), (2, 4), (1, 0)])
def test_stream_readout_averages_the_window(tiny_yolo_checkpoint, steps: int, window: int) -> None:
    """The read-out of each frame is the layer applied to the mean input of the last ``window`` steps (all
    steps since the reset for window 0), while the neurons run on without reset."""
    network = _firing_network(tiny_yolo_checkpoint[0])
    readout = next(m for m in network.net.modules() if isinstance(m, ReadOut))
    inputs, outputs = [], []
    hooks = [
        readout.register_forward_pre_hook(lambda m, args: inputs.extend(args[0].split(1))),
        readout.register_forward_hook(lambda m, args, out: outputs.append(out[-1:])),
    ]
    detector = StreamingDetector(network, steps, window, leak=1.0, pool_decay=1.0)  # pure carry-over fires more
    images = torch.rand(5, 1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for frame in images:
        detector(frame)
    for hook in hooks:
        hook.remove()
    assert any(x.abs().sum() > 0 for x in inputs), "the read-out input must carry spikes for this test to mean anything"
    for f, out in enumerate(outputs):
        seen = inputs[: (f + 1) * steps]
        span = seen[-window:] if window else seen
        expected = readout.layer(torch.stack(span).mean(0))
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_stream_forgets_between_frames(tiny_yolo_checkpoint) -> None:
    """After each frame membranes move toward their initial potential by ``leak`` and max-pools decay."""
    network = _firing_network(tiny_yolo_checkpoint[0])
    neurons = [m for m in network.net.modules() if isinstance(m, SpikingNeuron)]
    pool = next(m for m in network.net.modules() if isinstance(m, SpikingMaxPool))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    StreamingDetector(network, leak=1.0, pool_decay=1.0)(x)
    kept = [n.v.clone() for n in neurons]
    pooled = pool.pooled.clone()
    StreamingDetector(network, leak=0.5, pool_decay=0.25)(x)
    for n, v in zip(neurons, kept):
        rest = n.v0 * n.threshold
        torch.testing.assert_close(n.v, rest + 0.5 * (v - rest))
    torch.testing.assert_close(pool.pooled, 0.25 * pooled)
    assert any((v != n.v0 * n.threshold).any() for n, v in zip(neurons, kept))
    network.anytime(x, [1])  # the forgetting hooks are gone: a plain one-step run ends where the pure stream did
    for n, v in zip(neurons, kept):
        torch.testing.assert_close(n.v, v)


def test_stream_window_must_fit_the_steps(tiny_yolo_checkpoint) -> None:
    network = spiking_network(load_model(tiny_yolo_checkpoint[0]))
    with pytest.raises(ValueError, match="multiple of the steps per frame"):
        make_detector(network, 4, stream_state=True, steps_per_frame=3)


def test_stream_accuracy_rows(tiny_yolo_checkpoint, val) -> None:
    network = spiking_network(load_model(tiny_yolo_checkpoint[0]))
    result = stream_accuracy(network, val, 64, timesteps=2, hold=HOLD)
    assert result["frames"] == len(val.records) * HOLD
    modes = [(r["mode"], r["steps_per_frame"], r["window"], r["leak"], r["pool_decay"]) for r in result["rows"]]
    assert modes == [
        ("per-frame", 1, None, None, None), ("per-frame", 2, None, None, None), ("stream", 1, 2, 0.25, 0.5),
        ("stream", 1, 2, 1.0, 1.0), ("stream", 1, None, 0.25, 0.5),
    ]
    assert all(0.0 <= r["map50_95"] <= r["map50"] <= 1.0 for r in result["rows"])


def test_live_source_that_stops_ends_the_run(tiny_yolo_checkpoint, video: Path, tmp_path: Path) -> None:
    """A stream that drops is reopened, then the run ends with an error; the frames before it count."""
    copy = tmp_path / "live.mp4"
    shutil.copy(video, copy)
    source = VideoSource(str(copy), reconnects=2, reconnect_delay=0.0)
    source.kind, source.live = "stream", True  # the file plays a live stream; once it is gone, reconnecting fails
    copy.unlink()
    loaded = load_model(tiny_yolo_checkpoint[0])
    network, config = spiking_network(loaded), loaded.config
    summary = process_video("live", make_detector(network, 1), imgsz=64, names=config["class_names"], progress=False, video=source)
    assert summary.frames == len(_frames(video))
    assert "stopped delivering frames (2 reconnect attempts failed)" in summary.error


def test_unreachable_stream_gives_up(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"cannot open stream rtsp://127\.0\.0\.1:9/none \(2 attempts"):
        VideoSource("rtsp://127.0.0.1:9/none", timeout=1.0, reconnects=1, reconnect_delay=0.0)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(SourceError, match="cannot read video .*junk.mp4"):
        VideoSource(str(junk))


# inductor's whole-demo run is left out: it compiles for a minute, and test_compiled_matches_torch covers it
@pytest.mark.parametrize("backend", ["onnxruntime"])
def test_compiled_demo_headless(tiny_yolo_checkpoint, video: Path, spikedet_cache: Path, tmp_path: Path,
                                backend: str) -> None:
    if backend == "inductor" and cxx_compiler() is None:
        pytest.skip("the inductor backend needs a C++ compiler (g++ or clang++)")
    weights, _ = tiny_yolo_checkpoint
    out = tmp_path / "annotated.mp4"
    summary = run_demo(str(video), weights=weights, timesteps=2, imgsz=64, save=out, show=False, conf=CONF, progress=False,
                       backend=backend)
    assert summary.frames == len(_frames(video)) == len(_frames(out)) and summary.error is None
    assert summary.detections > 0 and summary.mode == "SNN T=2"
    assert summary.firing_rate is not None and 0.0 <= summary.firing_rate < 1.0  # rates: see the parity test
    ann = run_demo(str(video), weights=weights, imgsz=64, show=False, ann=True, conf=CONF, max_frames=3, progress=False,
                   backend=backend)
    assert ann.mode == "ANN" and ann.frames == 3 and ann.detections > 0 and ann.firing_rate is None
    folder = spikedet_cache / backend
    cached = sorted(p.name.split("-")[0] for p in folder.iterdir())
    assert {"ann", "unrolled"} <= set(cached) and not list(folder.glob("*partial*"))


def test_graph_cache_exports_once(tiny_yolo_checkpoint) -> None:
    network = spiking_network(load_model(tiny_yolo_checkpoint[0]))
    calls = []
    first = cached_graph(network, "probe", {"T": 1}, lambda p: (calls.append(p), p.write_bytes(b"graph")))
    again = cached_graph(network, "probe", {"T": 1}, lambda p: calls.append(p))
    other = cached_graph(network, "probe", {"T": 2}, lambda p: (calls.append(p), p.write_bytes(b"graph")))
    elsewhere = cached_graph(network, "probe", {"T": 1}, lambda p: (calls.append(p), p.write_bytes(b"pt2")),
                             backend="inductor", suffix=".pt2")
    assert first[1] and not again[1] and other[1] and elsewhere[1] and len(calls) == 3
    assert first[0] == again[0] != other[0] and first[0].read_bytes() == b"graph"
    assert elsewhere[0].suffix == ".pt2" and elsewhere[0].parent.name == "inductor"


SETTINGS = {
    "T2": {"timesteps": 2},
    "stream": {"stream_state": True},  # the demo's stream: 1 step per frame, read-out window T=4, forgetting
    "stream-2-steps": {"stream_state": True, "steps_per_frame": 2, "window": 4, "leak": 0.5},
    "stream-carry-over": {"stream_state": True, "window": 0, "leak": 1.0, "pool_decay": 1.0},  # running mean
}


# inductor compiles for a minute or more per graph here: the per-frame graph (the stream graph's export is
# covered on onnxruntime, and the SSD compiles its per-frame graph too)
@pytest.mark.parametrize("backend, settings", [
    *(pytest.param("onnxruntime", s, id=f"onnxruntime-{k}") for k, s in SETTINGS.items()),
    pytest.param("inductor", SETTINGS["T2"], id="inductor-T2", marks=pytest.mark.slow),
])
def test_compiled_matches_torch(tiny_yolo_checkpoint, video: Path, settings: dict, backend: str) -> None:
    """Frame by frame on the video, the compiled detector gives PyTorch's outputs, firing rates and
    detections (on a network that fires, so the state carried between frames matters); frames may differ
    only as the export's parity rule allows (a float32 threshold tie)."""
    if backend == "inductor" and cxx_compiler() is None:
        pytest.skip("the inductor backend needs a C++ compiler (g++ or clang++)")
    network = _firing_network(tiny_yolo_checkpoint[0])
    torch_det = make_detector(network, **settings)
    compiled = make_graph_detector(network, 64, backend=backend, **settings)
    assert compiled.label == torch_det.label
    if settings.get("stream_state"):
        assert isinstance(compiled, GraphStreamingDetector)
    torch_det.reset()
    compiled.reset()
    frames = _frames(video)
    matched = 0
    for frame in frames:
        x = to_tensor([letterbox(frame, 64)])
        got, ref = compiled(x), torch_det(x)
        if parity_error(got.numpy(), ref.numpy(), 64)[1] > TOLERANCE:
            continue
        matched += 1
        assert max(abs(a - b) for a, b in zip(compiled.rates, torch_det.rates)) <= TOLERANCE
        assert compiled.rate == pytest.approx(torch_det.rate, abs=1e-6) and compiled.rate > 0
        dets = [scaled_nms(out, 64, [frame.shape[:2]], CONF)[0] for out in (got, ref)]
        assert len(dets[0]) == len(dets[1]) > 0
        torch.testing.assert_close(dets[0], dets[1], atol=0.1, rtol=1e-3)
    assert matched >= max(1, MIN_MATCH * len(frames)), f"{matched}/{len(frames)} frames match"


def test_parity_check_rejects_a_wrong_graph(tiny_yolo_checkpoint, video: Path) -> None:
    """The check a fresh export must pass: a graph that computes something else fails on every frame."""
    network = _firing_network(tiny_yolo_checkpoint[0])
    frames = [to_tensor([letterbox(frame, 64)]) for frame in _frames(video)[:4]]
    with pytest.raises(ExportError, match=r"does not reproduce PyTorch \(0/4 frames match"):
        check_detector(make_graph_detector(network, 64, timesteps=2, backend="onnxruntime"),
                       make_detector(network, 1), frames, 64)


def test_auto_backend_falls_back_without_a_compiler(tiny_yolo_checkpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a C++ compiler ``auto`` is onnxruntime; ``inductor`` asked for by name fails with one line."""
    network = spiking_network(load_model(tiny_yolo_checkpoint[0]))
    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, "/nonexistent/c++"))
    assert cxx_compiler() is None and resolve_backend("auto") == "onnxruntime"
    with pytest.raises(ExportError, match="^the inductor backend needs a C\\+\\+ compiler"):
        make_backend_detector(network, 64, timesteps=3, backend="inductor")
    detector = make_backend_detector(network, 64, timesteps=3, backend="auto")
    assert detector.runner.backend == "onnxruntime" and detector.label == "SNN T=3"


def test_auto_backend_falls_back_when_the_compile_fails(tiny_yolo_checkpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiler that fails: ``auto`` says so in one line and runs on onnxruntime."""
    import torch._inductor

    network = spiking_network(load_model(tiny_yolo_checkpoint[0]))

    def failing_compiler(*args, **kwargs):  # what a broken C++ toolchain raises, without a minute of lowering first
        raise RuntimeError("C++ compile error\n  g++: fatal error: no input files")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", failing_compiler)
    assert resolve_backend("auto") == "inductor"
    messages: list[str] = []
    detector = make_backend_detector(network, 64, timesteps=3, backend="auto", log=messages.append)
    assert detector.runner.backend == "onnxruntime" and detector.label == "SNN T=3"
    assert messages[-1].startswith("AOTInductor could not compile the graph") and "\n" not in messages[-1]
    assert messages[-1].endswith("; using onnxruntime instead")


def test_auto_backend_ends_on_torch_when_no_graph_reproduces_it(tiny_yolo_checkpoint, monkeypatch) -> None:
    """A network no compiled graph reproduces (CASC's threshold ties): auto steps down to PyTorch, saying so;
    a compiled backend asked for by name fails with one line that names the way out."""
    from spikedet.deploy import backends

    network = spiking_network(load_model(tiny_yolo_checkpoint[0]))
    tried = []

    def unfaithful(*args, backend: str, **kwargs):
        tried.append(backend)
        raise ExportError(f"the {backend} SNN T=2 graph does not reproduce PyTorch (0/4 frames match within 0.001)")

    monkeypatch.setattr(backends, "make_graph_detector", unfaithful)
    monkeypatch.setattr(backends, "cxx_compiler", lambda: "/usr/bin/g++")
    messages: list[str] = []
    detector = make_backend_detector(network, 64, timesteps=2, backend="auto", log=messages.append)
    assert isinstance(detector, SpikingDetector) and tried == ["inductor", "onnxruntime"]
    assert [m.rsplit("; ", 1)[1] for m in messages] == ["using onnxruntime instead", "using torch instead"]
    with pytest.raises(ExportError, match=r"frames match within 0.001\); --backend torch runs the PyTorch model$"):
        make_backend_detector(network, 64, timesteps=2, backend="onnxruntime")


def test_a_graph_that_failed_its_check_is_not_compiled_again(tiny_yolo_checkpoint, monkeypatch) -> None:
    from spikedet.deploy import backends

    network = spiking_network(load_model(tiny_yolo_checkpoint[0]))
    exports = []
    real_export = backends.export_unrolled

    def counted(*args, **kwargs):
        exports.append(args)
        return real_export(*args, **kwargs)

    def failing(got, *args, **kwargs):
        raise ExportError(f"the onnxruntime {got.label} graph does not reproduce PyTorch (0/4 frames match)")

    monkeypatch.setattr(backends, "export_unrolled", counted)
    monkeypatch.setattr(backends, "check_detector", failing)
    for _ in range(2):
        with pytest.raises(ExportError, match=r"^the onnxruntime SNN T=5 graph does not reproduce PyTorch") as err:
            make_graph_detector(network, 64, timesteps=5, backend="onnxruntime")
    assert len(exports) == 1 and "found earlier; delete" in str(err.value)
    marker = Path(str(err.value).rsplit("delete ", 1)[1].split(" to try again")[0])
    assert marker.suffix == ".unfaithful" and not list(marker.parent.glob(f"{marker.stem}.onnx"))


def test_networks_that_restart_from_each_input_have_no_stream_mode(tiny_yolo_checkpoint) -> None:
    from spikedet.engine.recipe_run import build_snn
    from spikedet.recipes import get_recipe

    pascal = build_snn(load_model(tiny_yolo_checkpoint[0], expect="ann").model, get_recipe("pascal"))
    cos = build_snn(load_model(tiny_yolo_checkpoint[0], expect="ann").model, get_recipe("cos"))
    for network, neuron in ((pascal, "PascalNeuron"), (cos, "COSNeuron")):
        with pytest.raises(ValueError, match=f"but {neuron} starts every run from its whole input"):
            make_backend_detector(network, 64, stream_state=True, backend="auto")
        assert make_detector(network, timesteps=2).label == "SNN T=2"  # per frame it runs


def test_demo_converts_with_the_chosen_method(tiny_yolo_checkpoint, video: Path, tmp_path: Path) -> None:
    from spikedet.checkpoint import CheckpointError, save_checkpoint
    from spikedet.deploy import comparison_ann
    from spikedet.recipes import get_recipe

    weights = tiny_yolo_checkpoint[0]
    summary = run_demo(str(video), weights=weights, timesteps=2, imgsz=64, show=False, conf=CONF, max_frames=3,
                       progress=False, backend="torch", method="pascal")
    assert summary.frames == 3 and summary.mode == "SNN T=2" and summary.error is None
    loaded = load_model(weights)
    network, config = spiking_network(loaded, method="casc"), loaded.config
    assert {type(m).__name__ for m in network.net.modules() if isinstance(m, SpikingNeuron)} == {"CIFNeuron"}
    with pytest.raises(ValueError, match=r"^--method dual_phase calibrates on data: convert first"):
        spiking_network(loaded, method="dual_phase")
    snn = tmp_path / "snn.pt"
    save_checkpoint(snn, network.net, "snn", dict(config, recipe=get_recipe("casc").to_dict()))
    assert spiking_network(load_model(snn)).schedule == network.schedule  # stored as converted
    with pytest.raises(CheckpointError, match="holds an SNN converted with casc; --method applies to ANN checkpoints"):
        spiking_network(load_model(snn), method="pascal")
    with pytest.raises(CheckpointError, match="holds a converted SNN; the ANN comparison needs the ANN checkpoint"):
        comparison_ann(snn)
    folded = comparison_ann(weights)
    assert folded.config == config and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.model.modules())


def test_bad_backend_fails_with_one_line(video: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "tools/demo.py", "--source", str(video), "--no-show", "--backend", "tensorflow"], cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --backend must be one of auto, inductor, onnxruntime, torch, got 'tensorflow'"


@pytest.mark.parametrize(
    "source, message",
    [
        ("missing.mp4", "error: video file not found: missing.mp4"),
        ("99", "error: camera 99 is not available"),
        ("junk.mp4", "error: cannot read video"),  # FFmpeg's own complaint must not reach the terminal
    ],
)
def test_bad_source_fails_with_one_line(source: str, message: str, tmp_path: Path) -> None:
    if source == "junk.mp4":
        source = str(tmp_path / source)
        Path(source).write_bytes(b"not a video" * 100)
    proc = subprocess.run(
        [sys.executable, "tools/demo.py", "--source", source, "--no-show"], cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(message)
    assert "Traceback" not in proc.stderr + proc.stdout

