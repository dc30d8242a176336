"""ONNX export of the tiny spiking detector: unrolled and stateful graphs against PyTorch in onnxruntime."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from spikedet.data import load_dataset
from spikedet.deploy import SpikingDetector, spiking_network
from spikedet.deploy.bench import graph_latency
from spikedet.deploy.graph_format import DEFAULT_OPSET, STATE_IN, STATE_OUT
from spikedet.deploy.graph_modules import UnrolledSNN
from spikedet.deploy.onnx_export import export_detector
from spikedet.deploy.onnx_writer import graph_metadata, ort_session, run_stateful
from spikedet.deploy.parity import firing_rates, parity_error
from spikedet.deploy.tracing import ExportError
from spikedet.deploy.ort_backend import OrtRunner
from spikedet.engine.inference import image_batches
from spikedet.engine.loading import load_model

ROOT = Path(__file__).resolve().parents[1]
T = 2


@pytest.fixture(scope="module")
def exported(tiny_yolo_checkpoint, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    weights, _ = tiny_yolo_checkpoint
    out = tmp_path_factory.mktemp("onnx")
    return {
        "unrolled": export_detector(weights, out=out / "snn.onnx", timesteps=T, images=2),
        "stateful": export_detector(
            weights, out=out / "snn_step.onnx", timesteps=T, images=2, stateful=True, with_ann=False
        ),
    }


@pytest.fixture(scope="module")
def images(tiny_yolo_checkpoint) -> list[torch.Tensor]:
    val = load_dataset(tiny_yolo_checkpoint[1], "val")
    return [x for x, _ in image_batches(val.records[:2], 64, 1)]


def test_reports_pass_within_tolerance(exported: dict[str, dict]) -> None:
    graphs = {g["graph"]: g for report in exported.values() for g in report["graphs"]}
    assert set(graphs) == {"snn-unrolled", "snn-stateful", "ann"}
    for g in graphs.values():
        assert g["ok"] and g["checker"] and g["normalised_diff"] < 1e-4, g
        assert g["images_matched"] == g["images"] == 2
        model = onnx.load(g["path"])
        onnx.checker.check_model(model, full_check=True)
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [DEFAULT_OPSET]
        meta = json.loads({p.key: p.value for p in model.metadata_props}["spikedet"])
        assert meta["graph"] == g["graph"] and meta["class_names"][0] == "circle"


def test_unrolled_graph_holds_no_simulation_buffers(exported) -> None:
    """Buffers written step by step are rebuilt as stacks: the graph stores little more than the weights."""
    snn, ann = (Path(g["path"]).stat().st_size for g in exported["unrolled"]["graphs"])
    assert snn < 1.2 * ann


def test_unrolled_graph_equals_pytorch(exported, tiny_yolo_checkpoint, images) -> None:
    path = exported["unrolled"]["graphs"][0]["path"]
    model = onnx.load(path)
    assert [i.name for i in model.graph.input] == ["images"]
    assert any("images" in node.input for node in model.graph.node), "the simulation must read the image"
    network = spiking_network(load_model(tiny_yolo_checkpoint[0]))
    session = ort_session(path)
    neurons = graph_metadata(session)["neurons"]
    assert [o.name for o in model.graph.output] == ["output", "spikes"]
    # every IF step's spike is one select (not a cast and a product)
    assert sum(node.op_type == "Where" for node in model.graph.node) >= T * len(neurons)
    for x in images:
        got, spikes = session.run(None, {"images": x.numpy()})
        detector = SpikingDetector(network, T)  # firing rates from the neurons' own counters
        ref = detector(x).numpy()
        assert got.shape == ref.shape == (1, 4 + 6, 84)
        assert parity_error(got, ref, 64)[1] < 1e-4
        np.testing.assert_allclose(firing_rates(spikes, neurons, T), detector.rates, atol=1e-6)


def test_stateful_graph_steps_like_pytorch(exported, tiny_yolo_checkpoint, images) -> None:
    path = exported["stateful"]["graphs"][0]["path"]
    model = onnx.load(path)
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    assert inputs[:2] == ["images", "reset"] and outputs[:2] == ["output", "spikes"]
    states = inputs[2:]
    assert states and [s.replace(STATE_IN, STATE_OUT, 1) for s in states] == outputs[2:]
    kinds = {s.rsplit(".", 1)[1] for s in states}
    assert {"v", "accumulated", "pooled", "total", "effective_steps"} <= kinds
    assert sum(".sites." in s for s in states) == 3 * 2, "SPPF's three pool calls keep separate state"

    network = spiking_network(load_model(tiny_yolo_checkpoint[0]))
    session = ort_session(path)
    neurons = graph_metadata(session)["neurons"]
    detector = SpikingDetector(network, T)
    for x in images:
        steps = run_stateful(session, x.numpy(), T)
        reference = network.anytime(x, [1, T])
        assert parity_error(steps[0][0], reference[1][0].numpy(), 64)[1] < 1e-4
        assert parity_error(steps[-1][0], reference[T][0].numpy(), 64)[1] < 1e-4
        detector(x)  # the mean rate over T steps is the mean of the per-step rates
        rates = np.mean([firing_rates(spikes, neurons, 1) for _, spikes in steps], axis=0)
        np.testing.assert_allclose(rates, detector.rates, atol=1e-6)


def test_stateful_graph_reads_its_state(exported, images) -> None:
    """State inputs are live graph inputs, not constants: changing them changes the output, unless reset."""
    session = ort_session(exported["stateful"]["graphs"][0]["path"])
    feeds = {i.name: np.zeros(i.shape, dtype=np.float32) for i in session.get_inputs()[2:]}
    x = images[0].numpy()
    base = session.run(None, {"images": x, "reset": np.array(True), **feeds})[0]
    raised = {k: np.full_like(v, 3.0) for k, v in feeds.items()}
    assert np.array_equal(session.run(None, {"images": x, "reset": np.array(True), **raised})[0], base)
    assert not np.allclose(session.run(None, {"images": x, "reset": np.array(False), **raised})[0], base)


def test_latency_of_both_runtimes(exported, tiny_yolo_checkpoint, images) -> None:
    network = spiking_network(load_model(tiny_yolo_checkpoint[0]))
    path = exported["unrolled"]["graphs"][0]["path"]
    timing = graph_latency({"onnxruntime": OrtRunner(path)}, UnrolledSNN(network, T), images[0], warmup=0, repeats=1)
    assert set(timing) == {"onnxruntime_ms", "pytorch_ms"} and min(timing.values()) > 0


@pytest.mark.parametrize("tool", ["tools/export_onnx.py", "tools/bench_demo.py"])
def test_tools_fail_on_missing_weights(tool: str) -> None:
    proc = subprocess.run([sys.executable, tool, "--weights", "missing.pt"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: checkpoint not found: missing.pt"


def test_parity_error_scales_boxes_and_rejects_other_shapes() -> None:
    ref = np.zeros((1, 6, 5), dtype=np.float32)
    got = ref.copy()
    got[0, 1, 2], got[0, 5, 0] = 32.0, 0.25  # a box coordinate 32 px off, a score 0.25 off
    assert parity_error(got, ref, 64) == (32.0, 0.5)
    with pytest.raises(ExportError, match=r"output has shape \[6, 5\], PyTorch's \[1, 6, 5\]"):
        parity_error(got[0], ref, 64)


def test_cos_exports(tiny_yolo_checkpoint, tmp_path: Path) -> None:
    """COS's pre-run combines masks with an And, which opset 17 has only as the logical And."""
    report = export_detector(tiny_yolo_checkpoint[0], out=tmp_path / "cos.onnx", timesteps=T, images=2, method="cos",
                             with_ann=False)
    assert report["ok"] and report["graphs"][0]["checker"], report
