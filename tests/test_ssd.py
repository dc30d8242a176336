"""Spiking SSD: the model converts fully, the maths holds, and the tiny SSD trains, converts and evaluates."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from spikedet.checkpoint import CheckpointError, load_checkpoint
from spikedet.data import generate_synthetic, load_dataset
from spikedet.engine.coco_eval import evaluate_checkpoint
from spikedet.engine.convert import convert_detector
from spikedet.engine.loading import load_model
from spikedet.engine.recipe_run import build_snn
from spikedet.models import SSDQCFS, build_ssd, family_for_model, family_of, get_family, ssd_config, ssd_from_config
from spikedet.models.ssd_loss import SSDLoss
from spikedet.engine.ssd_train import train_ssd
from spikedet.recipes import get_recipe
from spikedet.spiking import IFNeuron, ReadOut, SpikingMaxPool
from spikedet.spiking.accounting import SpikeMonitor
from spikedet.spiking.convert import UNSUPPORTED, ConversionError, fold_batchnorm, is_analog
from spikedet.spiking.quant import QCFS
from spiking_nets import firing_batchnorm

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(width=0.25, imgsz=64, batch=8, extra={"workers": 0})


def _tiny_ssd(**kwargs) -> SSDQCFS:
    torch.manual_seed(0)
    return build_ssd(num_classes=3, width=0.25, **kwargs)


def _firing(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and a small clip, so that every layer of a random model fires."""
    firing_batchnorm(model, mean=0.2, var=(0.5, 1.5), weight=(0.5, 1.5))
    for module in model.modules():
        if isinstance(module, QCFS):
            module.clip.data.fill_(1.0)
    return model.eval()


# --- the model ------------------------------------------------------------------------------------------------

def test_every_activation_is_qcfs() -> None:
    model = _tiny_ssd()
    assert not [n for n, m in model.named_modules() if isinstance(m, UNSUPPORTED)]
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    quants = [m for m in model.modules() if isinstance(m, QCFS)]
    assert len(quants) == len(convs) == 11  # one QCFS after every backbone conv; the head's convs are read-outs
    assert {q.levels for q in quants} == {4}


def test_eval_output_is_the_shared_decoded_layout() -> None:
    model = _tiny_ssd().eval()
    y = model(torch.rand(2, 3, 64, 64))
    anchors = model.decode.anchors(torch.rand(1, 3, 64, 64), model.backbone(torch.rand(1, 3, 64, 64)))
    assert y.shape == (2, 4 + 3, len(anchors))
    scores = y[:, 4:]
    assert (scores >= 0).all() and (scores.sum(1) <= 1 + 1e-5).all()  # softmax without the background class
    model.train()
    out = model(torch.rand(2, 3, 64, 64))
    assert out["cls_logits"].shape == (2, len(anchors), 4) and out["bbox_regression"].shape == (2, len(anchors), 4)


def test_conversion_is_complete_and_only_the_first_conv_is_analog() -> None:
    model = _firing(_tiny_ssd())
    network = build_snn(model, get_recipe("qcfs"))
    assert family_of(network) is get_family("ssd")
    modules = dict(network.net.named_modules())
    assert not any(isinstance(m, QCFS) for m in modules.values())
    assert sum(isinstance(m, IFNeuron) for m in modules.values()) == 11
    assert sum(isinstance(m, SpikingMaxPool) for m in modules.values()) == 4
    assert sum(isinstance(m, ReadOut) for m in modules.values()) == 2 * 5
    assert [n for n, m in modules.items() if is_analog(m) and n.count(".") == 0] == ["decode"]
    monitor = SpikeMonitor(network)
    network.anytime(torch.rand(1, 3, 64, 64), [4], record=True)
    monitor.close()
    report = monitor.report(4)
    assert [row["layer"] for row in report["layers"] if row["kind"] == "analog"] == ["backbone.stages.0.0.0"]
    assert report["firing_rate"] > 0


def test_relu_reference_is_refused_by_conversion() -> None:
    with pytest.raises(ConversionError, match="no quantized \\(QCFS\\) activation"):
        build_snn(build_ssd(num_classes=3, width=0.25, activation="relu"), get_recipe("qcfs"))


def test_pascal_recipe_is_exact_in_float64() -> None:
    """Layer-sequential spike accumulation reproduces the quantized ANN exactly, max-pools and read-outs included."""
    model = _firing(_tiny_ssd().double())
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    ann = fold_batchnorm(copy.deepcopy(model))(x)
    network = build_snn(model, get_recipe("pascal"))
    torch.testing.assert_close(network(x, 4), ann, rtol=0, atol=1e-9)


def test_if_neuron_equals_qcfs_on_constant_input() -> None:
    """The stem sees the constant analog image: with T = L its IF spike rate is exactly the QCFS activation."""
    model = _firing(_tiny_ssd().double())
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    stem = fold_batchnorm(copy.deepcopy(model)).backbone.stages[0][0]
    expected = stem(x)
    network = build_snn(model, get_recipe("qcfs"))
    rates = []
    hook = network.net.backbone.stages[0][0][2].register_forward_hook(lambda m, i, o: rates.append(o))
    network(x, 4)
    hook.remove()
    assert expected.abs().sum() > 0
    torch.testing.assert_close(rates[0].view(4, *expected.shape).mean(0), expected, rtol=0, atol=1e-9)


def test_config_round_trip() -> None:
    model = build_ssd("ssd_vgg_slim", num_classes=5, width=0.25, levels=[2] * 11)
    config = json.loads(json.dumps(ssd_config(model)))
    rebuilt = ssd_from_config(config)
    assert config["family"] == "ssd" and config["quant"]["levels"] == [2] * 11
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    rebuilt.load_state_dict(model.state_dict())


# --- bad configuration ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(model="ssd_resnet50"), "unknown SSD backbone 'resnet50' in 'ssd_resnet50'; available: vgg_slim"),
        (dict(model="ssdlite"), "unknown SSD model 'ssdlite'"),
        (dict(levels=[4, 4]), "2 levels given for the 11 activations of this SSD"),
        (dict(levels=0), "QCFS levels must be >= 1"),
        (dict(activation="silu"), "SSD activation must be 'qcfs' or 'relu'"),
        (dict(num_classes=0), "num_classes must be >= 1"),
        (dict(width=0), "SSD width must be > 0"),
        (dict(scales=[0.1, 0.2]), "5 aspect-ratio lists and 6 scales are needed"),
    ],
)
def test_bad_model_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        build_ssd(**{"num_classes": 3, "width": 0.25, **kwargs})


def test_family_registry() -> None:
    assert family_for_model("ssd").name == family_for_model("ssd_vgg_slim").name == "ssd"
    assert family_for_model("yolov8n").name == "yolo"
    with pytest.raises(ValueError, match="unknown detector family 'rcnn'; known: ssd, yolo"):
        get_family("rcnn")
    with pytest.raises(ValueError, match="belongs to no detector family"):
        family_of(nn.Conv2d(1, 1, 1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(activation="silu"), "SSD trains clip-quantized activations"),
        (dict(depth=0.33), "--depth applies to YOLO only"),
        (dict(extra={"lr": 1.0}), "unknown SSD training settings"),
        (dict(device="tpu"), "SSD training runs on one device"),
    ],
)
def test_bad_training_config(kwargs: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        train_ssd("synthetic", tmp_path, **kwargs)


# --- loss -----------------------------------------------------------------------------------------------------

def test_loss_handles_empty_images_and_learns() -> None:
    model = _tiny_ssd().train()
    criterion = SSDLoss(model.decode.box_coder)
    images = torch.rand(2, 3, 64, 64)
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
    ]
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(5):
        loss, parts = criterion(model(images), targets)
        assert torch.isfinite(loss) and set(parts) == {"box", "cls"}
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


# --- the tiny SSD end to end ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ssd")
    return generate_synthetic(root / "data", num_images=24, image_size=64, seed=3, progress=False)


@pytest.fixture(scope="module")
def tiny_ssd(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_ssd(tiny_data, tmp_path_factory.mktemp("ssd_train"), epochs=1, **TINY)


def test_trains_and_resumes(tiny_data: Path, tmp_path: Path) -> None:
    first = train_ssd(tiny_data, tmp_path, epochs=1, **TINY)
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "train_state.pt").is_file()
    torch.load(tmp_path / "train_state.pt", weights_only=True)  # the training state is safe to load too
    resumed = train_ssd(tiny_data, tmp_path, epochs=2, resume=True, **TINY)
    config, _, _ = load_checkpoint(resumed)
    assert resumed == first and [row["epoch"] for row in config["history"]] == [1, 2]
    with pytest.raises(CheckpointError, match="cannot resume"):
        train_ssd(tiny_data, tmp_path / "fresh", epochs=1, resume=True, **TINY)


def test_checkpoint_loads_as_ssd(tiny_ssd: Path) -> None:
    config, state, kind = load_checkpoint(tiny_ssd)
    assert kind == "ann" and config["family"] == "ssd" and config["imgsz"] == 64
    assert config["class_names"] == ["circle", "square", "triangle", "star", "ring", "cross"]
    model = load_model(tiny_ssd, expect="ann").model
    assert isinstance(model, SSDQCFS) and model(torch.rand(1, 3, 64, 64)).shape[1] == 4 + 6


@pytest.mark.parametrize("method", ["qcfs", "dual_phase", "casc"])
def test_convert_and_evaluate(method: str, tiny_ssd: Path, tiny_data: Path, tmp_path: Path) -> None:
    results = convert_detector(tiny_ssd, data=tiny_data, method=method, timesteps=[1, 2], out=tmp_path, batch=4, calib_images=8)
    for metrics in [results["ann"], *results["snn"].values()]:
        assert 0.0 <= metrics["map50_95"] <= metrics["map50"] <= 1.0
    config = load_model(tmp_path / f"snn_{method}.pt", expect="snn").config
    assert config["family"] == "ssd" and config["recipe"]["name"] == method
    summary = evaluate_checkpoint(tmp_path / f"snn_{method}.pt", tiny_data, [2], tmp_path / "eval", batch=4)
    assert summary["snn"]["2"]["map50_95"] == pytest.approx(results["snn"]["2"]["map50_95"], abs=1e-9)
    assert len(summary["coco_lines"]["SNN T=2"]) == 12


@pytest.mark.parametrize("stateful", [False, True])
def test_onnx_export_matches_pytorch(stateful: bool, tiny_ssd: Path, tiny_data: Path, tmp_path: Path) -> None:
    """The shared export path handles SSD (anchors cached before tracing, an export-friendly head flatten)."""
    from spikedet.deploy.onnx_export import export_detector

    report = export_detector(
        tiny_ssd, out=tmp_path / "ssd.onnx", timesteps=2, stateful=stateful, data=str(tiny_data), images=2
    )
    assert report["ok"], report
    assert report["graphs"][0]["graph"] == ("snn-stateful" if stateful else "snn-unrolled")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(model="ssd", activation="silu"), "SSD trains clip-quantized activations"),
        (dict(model="ssd", levels=[4, 4]), "2 levels given for the 11 activations of this SSD"),
        (dict(model="rcnn"), "--model rcnn: no detector family takes it"),
    ],
)
def test_train_detector_dispatches_and_rejects(kwargs: dict, message: str, tiny_data: Path, tmp_path: Path) -> None:
    from spikedet.engine.train import train_detector

    with pytest.raises(ValueError, match=message):
        train_detector(tiny_data, out=tmp_path, epochs=1, imgsz=64, **kwargs)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "ssd_resnet50"], "error: unknown SSD backbone 'resnet50' in 'ssd_resnet50'; available: vgg_slim"),
        (["--model", "yolov8n", "--resume"], "error: --resume is for SSD training"),
        (["--model", "ssd", "--set", "bogus=1"], "error: unknown SSD training settings ['bogus']"),
        (["--model", "yolov8n", "--set", "bogus=1"], "error: unknown ultralytics train settings ['bogus']"),
        (["--set", "workers"], "error: --set expects KEY=VALUE, got 'workers'"),
    ],
)
def test_train_tool_rejects_bad_config(args: list[str], message: str, tiny_data: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "tools/train_det.py", "--data", str(tiny_data), "--out", str(tmp_path), "--epochs", "1",
         *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr


def test_train_tool_trains_ssd(tiny_data: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "tools/train_det.py", "--data", str(tiny_data), "--model", "ssd", "--width", "0.25",
         "--imgsz", "64", "--batch", "8", "--epochs", "1", "--lr0", "1e-3", "--set", "workers=0",
         "--set", "val_every=1", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(tmp_path / "ssd_vgg_slim_qcfs_l4.pt")[0]["family"] == "ssd"


@pytest.mark.parametrize("name, classes", [("raccoon", ["raccoon"]), ("coco-tiny", None)])
def test_trains_on_real_voc_and_coco_data(
    name: str, classes: list[str] | None, shared_datasets: Path, tmp_path: Path
) -> None:
    """The same data layer as YOLO: a VOC and a COCO folder train the SSD without conversion steps."""
    path = train_ssd(shared_datasets / name, tmp_path, epochs=1, **TINY)
    config, _, _ = load_checkpoint(path)
    assert config["family"] == "ssd" and config["num_classes"] == len(config["class_names"])
    if classes is not None:
        assert config["class_names"] == classes


def test_demo_runs_the_ssd_with_its_own_nms_iou(tiny_ssd: Path, tiny_data: Path, tmp_path: Path, monkeypatch) -> None:
    """The live demo takes any family; without --iou it uses the family's NMS IoU (SSD 0.5, as its evaluation)."""
    from spikedet.deploy import demo
    from spikedet.deploy.video import make_video

    frames = sorted(p for p in Path(tiny_data).rglob("*") if p.suffix in (".jpg", ".png"))[:4]
    assert frames
    video = make_video(frames, tmp_path / "clip.avi")
    seen = {}
    original = demo.process_video

    def spy(source, detector, **kwargs):
        seen["iou"] = kwargs["iou"]
        return original(source, detector, **kwargs)

    monkeypatch.setattr(demo, "process_video", spy)
    summary = demo.run_demo(str(video), weights=tiny_ssd, timesteps=2, imgsz=64, show=False, progress=False, backend="torch")
    assert seen["iou"] == get_family("ssd").nms_iou == 0.5
    assert summary.frames == len(frames)


# the stream graph's compile is covered on YOLO (test_demo.py); here the per-frame graph, a minute less
@pytest.mark.slow
@pytest.mark.parametrize("settings", [{"timesteps": 2}], ids=["T2"])
def test_inductor_backend_runs_the_ssd(settings: dict, tiny_ssd: Path, tiny_data: Path) -> None:
    """The compiled demo backend takes the SSD family as it takes YOLO: PyTorch's outputs, frame after frame."""
    from spikedet.deploy.backends import cxx_compiler, make_graph_detector
    from spikedet.deploy.detector import make_detector, spiking_network
    from spikedet.deploy.parity import MIN_MATCH, TOLERANCE, parity_error
    from spikedet.engine.inference import image_batches

    if cxx_compiler() is None:
        pytest.skip("the inductor backend needs a C++ compiler (g++ or clang++)")
    network = spiking_network(load_model(tiny_ssd))
    compiled = make_graph_detector(network, 64, backend="inductor", **settings)
    reference = make_detector(network, **settings)
    images = [x for x, _ in image_batches(load_dataset(tiny_data, "val").records, 64, 1)]
    errors = [parity_error(compiled(x).numpy(), reference(x).numpy(), 64)[1] for x in images]
    assert sum(e <= TOLERANCE for e in errors) >= max(1, MIN_MATCH * len(images)), errors


@pytest.mark.parametrize("weight_fit", ["surrogate", "ann_proxy"])
def test_weight_calibration_finds_every_ssd_synaptic_layer(weight_fit: str) -> None:
    """SSD blocks are nn.Sequential(conv, bn, act): the weight fit must reach their convs, not skip them
    (the shipped BCCD SSD: a trained network whose layers have an error to reduce)."""
    from spikedet.recipes import get_recipe
    from spikedet.spiking.calibrate import calibrate_layerwise

    ann = load_model(Path(__file__).resolve().parents[1] / "weights" / "ssd_vgg_slim_qcfs_l4_bccd.pt", expect="ann").model
    network = build_snn(ann, get_recipe("qcfs"))
    before = {k: v.clone() for k, v in network.net.state_dict().items() if k.endswith(".weight")}
    torch.manual_seed(0)
    report = calibrate_layerwise(
        network, ann, torch.rand(8, 3, 96, 96), 2, weight_steps=5, lr=1e-3, shift=False, weight_fit=weight_fit
    )
    after = network.net.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    kept = [name for name, layer in report.layers.items() if layer["kept"].startswith("weights")]
    assert kept, report.layers
    assert changed and len(changed) >= len(kept), (changed, kept)


def test_spike_aware_fine_tuning_of_the_ssd(tiny_ssd: Path, tiny_data: Path, tmp_path: Path) -> None:
    """The SSD fine-tunes through its own loop; the saved network's runtime simulation equals the training
    forward (surrogate path, gradients on) of the same weights."""
    from spikedet.checkpoint import load_checkpoint
    from spikedet.engine.snn_finetune import finetune_snn
    from spikedet.spiking.convert import spiking_modules
    from spikedet.spiking.trainable import make_trainable, simulation, steps_of

    path = finetune_snn(tiny_ssd, data=tiny_data, out=tmp_path, timesteps=[1, 2], epochs=1, batch=8, imgsz=64,
                        layer_distill=1.0, extra={"workers": 0, "lr0": 1e-3})
    config, state, kind = load_checkpoint(path)
    assert kind == "snn" and config["finetune"]["epochs_done"] == 1 and "val_map50_95" in config["finetune"]["history"][0]
    source = load_checkpoint(tmp_path / "snn_qcfs.pt")[1]
    assert any(not torch.equal(state[k], source[k]) for k in state if k.endswith(".threshold"))
    assert any(not torch.equal(state[k], source[k]) for k in state if k.endswith(".weight"))

    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    runtime = load_model(path, expect="snn").network
    runtime.net.train()  # raw head output, the no-grad simulation kernels
    expected = runtime.anytime(x, [1, 2])
    trained = load_model(path, expect="snn").network
    net = make_trainable(trained.net).train()
    with simulation(spiking_modules(net), trained.ctx, batch=2, steps=2):
        out = net(x)
    for t, got in zip([1, 2], steps_of(out, steps=2, batch=2, timesteps=[1, 2])):
        for key in ("bbox_regression", "cls_logits"):
            assert torch.equal(got[key].detach(), expected[t][key]), (t, key)


def test_ssd_fine_tuning_quiet_prints_no_epoch_lines(
    tiny_ssd: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--quiet (SPIKEDET_QUIET=1) hides the SSD loop's bars and per-epoch lines; without it each epoch prints one."""
    from spikedet.engine.snn_finetune import finetune_snn

    def epoch_lines(out: Path) -> list[str]:
        finetune_snn(tiny_ssd, data=tiny_data, out=out, timesteps=[1], epochs=1, batch=8, imgsz=64, extra={"workers": 0})
        captured = capsys.readouterr()
        return [line for line in captured.out.splitlines() if line.startswith('{"epoch"')] + [
            line for line in captured.err.splitlines() if "epoch 1/1" in line]

    assert len(epoch_lines(tmp_path / "loud")) >= 1
    monkeypatch.setenv("SPIKEDET_QUIET", "1")
    assert epoch_lines(tmp_path / "quiet") == []
