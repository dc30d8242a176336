"""Spike-aware fine-tuning: the surrogate-gradient simulation, the trainable YOLO, and the fine-tuning job."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

from spikedet.checkpoint import load_checkpoint
from spikedet.engine.loading import load_model
from spikedet.engine.recipe_run import build_snn
from spikedet.recipes import get_recipe
from spikedet.spiking.functional import if_steps, signed_if_steps
from spikedet.spiking.surrogate import SURROGATES, if_steps_surrogate, signed_if_steps_surrogate
from spikedet.spiking.trainable import check_trainable, make_trainable

ROOT = Path(__file__).resolve().parents[1]


class _Spike(torch.autograd.Function):
    """Reference: a Heaviside step with the same surrogate, for an unrolled autograd simulation."""

    @staticmethod
    def forward(ctx, m, threshold, surrogate):
        ctx.save_for_backward(m, threshold)
        ctx.surrogate = surrogate
        return (m >= threshold).to(m.dtype)

    @staticmethod
    def backward(ctx, grad):
        m, threshold = ctx.saved_tensors
        sigma = SURROGATES[ctx.surrogate](m - threshold, threshold)
        return grad * sigma, -(grad * sigma).sum().reshape(threshold.shape), None


def _unrolled(x, v_init, threshold, steps, constant, surrogate, detach_reset):
    v, out = v_init, []
    for t in range(steps):
        m = v + (x if constant else x[t])
        s = _Spike.apply(m, threshold, surrogate)
        out.append(threshold * s)
        v = m - threshold * (s.detach() if detach_reset else s)
    return torch.stack(out)


class _NegativeSpike(torch.autograd.Function):
    """Reference: Fast-SNN's retraction test ``v' ≤ −εθ`` with the surrogate at ``v' + εθ``."""

    @staticmethod
    def forward(ctx, after_reset, threshold, eps, surrogate):
        ctx.save_for_backward(after_reset, threshold)
        ctx.eps, ctx.surrogate = eps, surrogate
        return (after_reset <= -eps * threshold).to(after_reset.dtype)

    @staticmethod
    def backward(ctx, grad):
        after_reset, threshold = ctx.saved_tensors
        sigma = SURROGATES[ctx.surrogate](after_reset + ctx.eps * threshold, threshold)
        return -grad * sigma, -ctx.eps * (grad * sigma).sum().reshape(threshold.shape), None, None


def _unrolled_signed(x, v_init, threshold, steps, constant, surrogate, eps=1e-3):
    v, count, out = v_init, torch.zeros_like(v_init), []
    for t in range(steps):
        m = v + (x if constant else x[t])
        s = _Spike.apply(m, threshold, surrogate)
        after_reset = m - threshold * s.detach()
        count = count + s.detach()
        n = _NegativeSpike.apply(after_reset, threshold, eps, surrogate) * (count > 0).to(m.dtype)
        count = count - n.detach()
        v = after_reset + threshold * n.detach()
        out.append(threshold * (s - n))
    return torch.stack(out)


@pytest.mark.parametrize("constant", [False, True])
def test_signed_surrogate_forward_equals_the_hard_spike_function(constant: bool) -> None:
    torch.manual_seed(0)
    threshold = torch.tensor(1.3)
    x = (torch.randint(-6, 9, (6, 3, 5, 5)) * 0.325).float()
    x = x[0] if constant else x
    v_hard = (0.5 * threshold).expand(3, 5, 5).clone()
    count_hard = torch.zeros(3, 5, 5)
    hard = signed_if_steps(x, v_hard, count_hard, threshold, 6, constant)
    soft, v_soft, count_soft = signed_if_steps_surrogate(x, 0.5 * threshold, torch.zeros(()), threshold, 6, constant=constant)
    assert (hard < 0).any() or constant  # the case under test: retractions happen
    assert torch.equal(hard, soft)
    assert torch.equal(v_hard, v_soft) and torch.equal(count_hard, count_soft)


@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_signed_surrogate_backward_matches_unrolled_autograd(constant: bool, surrogate: str) -> None:
    torch.manual_seed(2)
    shape = (2, 3, 4)
    x = torch.randn(shape if constant else (6, *shape), dtype=torch.float64, requires_grad=True)
    theta = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    v0 = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(6, *shape, dtype=torch.float64)
    results = []
    for fn in (
        lambda: _unrolled_signed(x, v0 * theta, theta, 6, constant, surrogate),
        lambda: signed_if_steps_surrogate(x, v0 * theta, torch.zeros(()), theta, 6, constant=constant, surrogate=surrogate)[0],
    ):
        out = fn()
        (out * weights).sum().backward()
        results.append((out.detach(), [t.grad.clone() for t in (x, theta, v0)]))
        for t in (x, theta, v0):
            t.grad = None
    (out_ref, ref), (out, got) = results
    assert torch.equal(out, out_ref) and ((out < 0).any() or constant)  # a constant current never over-fires
    for name, a, b in zip(("x", "threshold", "v0"), got, ref):
        assert torch.allclose(a, b, atol=1e-12), name
        assert a.abs().sum() > 0, name


@pytest.mark.slow
@pytest.mark.parametrize("constant", [False, True])
def test_fused_kernels_equal_the_eager_ones(monkeypatch, constant: bool) -> None:
    """The compiled loops (what fine-tuning runs) give the eager ones' spikes bit for bit and their gradients."""
    from spikedet.spiking.surrogate_kernels import cxx_compiler

    if cxx_compiler() is None:
        pytest.skip("no C++ compiler: fine-tuning runs the eager loops")
    torch.manual_seed(3)
    shape = (2, 5, 7, 9)
    x = ((torch.randint(-6, 9, shape if constant else (4, *shape)) * 0.325).float()).requires_grad_()
    theta = torch.tensor(1.3, requires_grad=True)
    v0 = torch.full((), 0.5, requires_grad=True)
    weights = torch.randn(4, *shape)
    for kernel in (
        lambda: if_steps_surrogate(x, v0 * theta, theta, 4, constant=constant),
        lambda: signed_if_steps_surrogate(x, v0 * theta, torch.zeros(()), theta, 4, constant=constant),
    ):
        results = []
        for setting in ("0", "1"):
            monkeypatch.setenv("SPIKEDET_FUSED", setting)
            out, *state = kernel()
            (out * weights).sum().backward()
            results.append((out.detach(), [s.detach() for s in state], [t.grad.clone() for t in (x, theta, v0)]))
            for t in (x, theta, v0):
                t.grad = None
        (eager_out, eager_state, eager_grads), (out, state, grads) = results
        assert torch.equal(out, eager_out) and all(map(torch.equal, state, eager_state))
        for a, b in zip(grads, eager_grads):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("fire_ge", [True, False])
def test_surrogate_forward_equals_the_hard_spike_function(constant: bool, fire_ge: bool) -> None:
    torch.manual_seed(0)
    threshold = torch.tensor(1.3)
    # inputs on a grid so that exact threshold ties occur (where >= and > differ)
    x = (torch.randint(-4, 9, (4, 3, 5, 5)) * 0.325).float()
    x = x[0] if constant else x
    v_hard = (0.5 * threshold).expand(3, 5, 5).clone()
    hard = if_steps(x, v_hard, threshold, 4, constant, fire_ge)
    soft, v_soft = if_steps_surrogate(x, 0.5 * threshold, threshold, 4, constant=constant, fire_ge=fire_ge)
    assert torch.equal(hard, soft)
    assert torch.equal(v_hard, v_soft)


@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_surrogate_backward_matches_unrolled_autograd(detach_reset: bool, constant: bool, surrogate: str) -> None:
    torch.manual_seed(1)
    shape = (2, 3, 4)
    x = torch.randn(shape if constant else (5, *shape), dtype=torch.float64, requires_grad=True)
    theta = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    v0 = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(5, *shape, dtype=torch.float64)

    def grads(fn):
        out = fn(x, v0 * theta, theta, 5, constant, surrogate, detach_reset)
        (out * weights).sum().backward()
        result = [t.grad.clone() for t in (x, theta, v0)]
        for t in (x, theta, v0):
            t.grad = None
        return out.detach(), result

    def ours(x, v_init, theta, steps, constant, surrogate, detach_reset):
        return if_steps_surrogate(
            x, v_init, theta, steps, constant=constant, surrogate=surrogate, detach_reset=detach_reset
        )[0]

    out_ref, ref = grads(_unrolled)
    out, got = grads(ours)
    assert torch.equal(out, out_ref)
    for name, a, b in zip(("x", "threshold", "v0"), got, ref):
        assert torch.allclose(a, b, atol=1e-12), name
        assert a.abs().sum() > 0, name


def test_tanh_surrogate_is_dual_phase_derivative() -> None:
    """``tanh`` is the derivative of Dual-Phase's ``0.5·tanh(α u) + 0.5`` at α = 2.5, in the membrane's units."""
    u = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad((0.5 * torch.tanh(2.5 * u) + 0.5).sum(), u)
    assert torch.allclose(SURROGATES["tanh"](u.detach(), torch.tensor(3.0, dtype=torch.float64)), expected, atol=1e-14)


@pytest.fixture(scope="module")
def shipped_snn() -> torch.nn.Module:
    """The shipped synthetic YOLOv8n-QCFS converted with qcfs (a real network: 57 neuron layers, SPPF pools)."""
    ann = load_model(ROOT / "weights" / "yolov8n_qcfs_l4_synthetic.pt", expect="ann").model
    return build_snn(ann, get_recipe("qcfs"))


@pytest.mark.parametrize("method", ["qcfs", "fast_snn"])
def test_training_forward_equals_runtime_and_gradients_reach_every_trainable_tensor(shipped_snn, method: str) -> None:
    from spikedet.engine.yolo_finetune import SpikingDetectionModel

    if method != "qcfs":
        shipped_ann = load_model(ROOT / "weights" / "yolov8n_qcfs_l4_synthetic.pt", expect="ann").model
        shipped_snn = build_snn(shipped_ann, get_recipe(method))
    torch.manual_seed(0)
    x = torch.rand(2, 3, 96, 96)
    reference = shipped_snn.anytime(x, [1, 2, 4])
    model = SpikingDetectionModel.from_converted(make_trainable(copy.deepcopy(shipped_snn.net), v0=True), timesteps=[1, 2, 4])
    outs = model.train().predict(x)
    for t, out in zip([1, 2, 4], outs):
        for key in ("boxes", "scores"):
            assert torch.equal(out[key], reference[t][1][key]), (t, key)
    loss = sum(o["boxes"].square().mean() + o["scores"].sigmoid().mean() for o in outs)
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert any(n.endswith(".threshold") for n, _ in trainable) and any(n.endswith(".v0") for n, _ in trainable)
    silent = [n for n, p in trainable if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, silent[:5]
    # evaluation mode: the decoded output after val_T steps, as the runtime gives it
    with torch.no_grad():
        decoded = model.eval()(x)
    assert torch.equal(decoded[0], reference[4][0])


def test_thresholds_become_parameters_with_the_same_state_keys(shipped_snn) -> None:
    net = copy.deepcopy(shipped_snn.net)
    keys = set(net.state_dict())
    make_trainable(net)
    assert set(net.state_dict()) == keys
    assert all(n.endswith("threshold") for n, p in net.named_parameters() if p.ndim == 0)


@pytest.mark.parametrize("method", ["casc", "pascal", "cos"])
def test_networks_without_online_if_neurons_are_refused(shipped_snn, method: str) -> None:
    ann = load_model(ROOT / "weights" / "yolov8n_qcfs_l4_synthetic.pt", expect="ann").model
    network = build_snn(ann, get_recipe(method))
    with pytest.raises(ValueError, match="online IF networks"):
        check_trainable(network.net)


def _labelled_batch(folder: Path, size: int = 160) -> dict[str, torch.Tensor]:
    """Four synthetic images (generated at the network's input size, so no letterbox) and their labels in
    ultralytics' training-batch layout."""
    from spikedet.data import generate_synthetic, load_dataset

    data = generate_synthetic(folder, num_images=8, image_size=size, seed=5, progress=False)
    records = load_dataset(data, "train").records[:4]
    images, index, classes, boxes = [], [], [], []
    for i, record in enumerate(records):
        image = cv2.imread(record.path)[..., ::-1].copy()
        images.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
        for (x1, y1, x2, y2), label in zip(record.boxes / size, record.labels):
            index.append(i)
            classes.append([float(label)])
            boxes.append([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    return {"img": torch.stack(images), "batch_idx": torch.tensor(index, dtype=torch.float32),
            "cls": torch.tensor(classes), "bboxes": torch.tensor(boxes, dtype=torch.float32)}


@pytest.mark.parametrize("distill", [0.0, 1.0])
def test_snn_detection_loss_falls_on_a_fixed_batch(shipped_snn, tmp_path: Path, distill: float) -> None:
    """A few steps of spike-aware training (T = 1, 2 at once) lower ultralytics' detection loss, with and
    without the distillation term towards the ANN's read-outs."""
    from spikedet.engine.yolo_finetune import SpikingDetectionModel
    from spikedet.spiking.trainable import separate_neuron_parameters
    from ultralytics.cfg import get_cfg

    batch = _labelled_batch(tmp_path)
    model = SpikingDetectionModel.from_converted(make_trainable(copy.deepcopy(shipped_snn.net)), timesteps=[1, 2])
    model.args = get_cfg()
    teacher = load_model(ROOT / "weights" / "yolov8n_qcfs_l4_synthetic.pt", expect="ann").model if distill else None
    model.set_teacher(teacher, distill=distill)
    optimizer = separate_neuron_parameters(torch.optim.AdamW(model.parameters(), lr=1e-3), model)
    assert len(optimizer.param_groups) == 2 and optimizer.param_groups[1]["lr"] > optimizer.param_groups[0]["lr"]
    model.train()
    losses = []
    for _ in range(8):
        loss, items = model(copy.deepcopy(batch))  # ultralytics' criterion rescales the boxes in place
        assert set(items) == {"box_loss", "cls_loss", "dfl_loss", "kd_loss"}
        assert (float(items["kd_loss"]) > 0) == bool(distill)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        losses.append(float(loss.detach().sum()))
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.fixture(scope="module")
def finetuned(tiny_yolo_checkpoint, tmp_path_factory) -> tuple[Path, Path, Path]:
    """``(fine-tuned checkpoint, data, out folder)``: the tiny YOLO converted with qcfs, fine-tuned 1 epoch
    (initial potentials trained too, as in the shipped T = 4 checkpoint)."""
    from spikedet.engine.snn_finetune import finetune_snn

    checkpoint, data = tiny_yolo_checkpoint
    out = tmp_path_factory.mktemp("finetune")
    path = finetune_snn(checkpoint, data=data, out=out, timesteps=[1, 2], epochs=1, batch=8, imgsz=64, train_v0=True,
                        extra={"lr0": 1e-3})
    return path, data, out


def test_finetuned_checkpoint_round_trips_without_train_eval_mismatch(finetuned) -> None:
    """The runtime's simulation of the saved checkpoint gives what the training forward computes."""
    from spikedet.engine.yolo_finetune import SpikingDetectionModel
    from ultralytics.nn.tasks import load_checkpoint as load_ultralytics

    path, _, out = finetuned
    config, state, kind = load_checkpoint(path)
    assert kind == "snn" and config["recipe"]["name"] == "qcfs" and config["finetune"]["timesteps"] == [1, 2]
    source = load_checkpoint(out / "snn_qcfs.pt")[1]
    changed = [k for k in state if k.endswith(".weight") and not torch.equal(state[k], source[k])]
    thresholds = [k for k in state if k.endswith(".threshold") and not torch.equal(state[k], source[k])]
    potentials = [k for k in state if k.endswith(".v0") and not torch.equal(state[k], source[k])]
    assert changed and thresholds and potentials, "fine-tuning changed no weight, threshold or initial potential"

    network = load_model(path, expect="snn").network
    trained, _ = load_ultralytics(out / "train" / "weights" / "last.pt")
    trained = trained.float()
    assert isinstance(trained, SpikingDetectionModel)
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    runtime = network.anytime(x, [1, 2])
    training = trained.train().predict(x)
    for t, out_t in zip([1, 2], training):
        for key in ("boxes", "scores"):
            assert torch.equal(out_t[key].detach(), runtime[t][1][key]), (t, key)


def test_finetuned_checkpoint_works_in_every_tool(finetuned, tmp_path: Path) -> None:
    path, data, _ = finetuned
    commands = [
        ["tools/eval_coco.py", "--weights", str(path), "--data", str(data), "--T", "1,2", "--json", str(tmp_path / "e" / "s.json")],
        ["tools/export_onnx.py", "--weights", str(path), "--T", "2", "--out", str(tmp_path / "m.onnx")],
    ]
    for command in commands:
        result = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--T", "0"], "--T expects integers >= 1"),
        (["--epochs", "0"], "--epochs must be an integer >= 1"),
        (["--method", "casc"], "online IF networks"),
        (["--method", "dual_phase"], "calibrates on data"),
        (["--surrogate", "box"], "unknown surrogate"),
    ],
)
def test_finetune_tool_refuses_bad_input_in_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    weights = ROOT / "weights" / "yolov8n_qcfs_l4_synthetic.pt"
    result = subprocess.run(
        [sys.executable, "tools/finetune_snn.py", "--weights", str(weights), "--out", str(tmp_path), *args],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_finetuned_checkpoint_runs_in_the_demo(finetuned, tmp_path: Path, backend: str) -> None:
    from spikedet.data import load_dataset
    from spikedet.deploy import make_video, run_demo

    path, data, _ = finetuned
    video = make_video(load_dataset(data, "val").records[:3], tmp_path / "clip.mp4", fps=10, hold=1)
    summary = run_demo(str(video), weights=path, timesteps=2, imgsz=64, save=tmp_path / "out.mp4", show=False, progress=False,
                       backend=backend)
    assert summary.error is None and summary.frames == 3
