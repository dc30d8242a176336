"""Low-precision inference: the hardware probe and --precision, the survey of code-fed convolutions, the coded
convolutions (exact codes, bounded weight rounding), whole networks against fp32, and the tools' errors."""
from __future__ import annotations

import pytest
import torch
from spiking_nets import ConvBNAct, firing_batchnorm
from torch import nn
from torch.nn import functional as F

from spikedet.recipes import get_recipe
from spikedet.spiking import hardware
from spikedet.spiking.coded_conv import CodedConv2d, FloatCodedConv2d, Int8CodedConv2d
from spikedet.spiking.convert import fold_batchnorm
from spikedet.spiking.exact_inputs import InputCode, survey_inputs
from spikedet.spiking.hardware import Hardware, check_precision, resolve_precision
from spikedet.spiking.neuron import IFNeuron
from spikedet.spiking.precision import to_precision
from spikedet.spiking.quant import quantized_activations

INT8 = pytest.mark.skipif(not hardware.int8_kernels(), reason="no oneDNN x86 quantized convolution here")
# bf16 keeps 8 significant bits of the weights and of every summed current, int8 8 bits of the weights: a few
# spikes flip, and each flip moves the read-out. The mean absolute deviation of the read-out allowed, relative to
# its mean magnitude; measured on these tiny models: 0 to 0.7 % at T = 1, 2.1 to 4.8 % at T = 4 (CASC, bf16).
TOLERANCE = 0.1


class TinyDetector(nn.Module):
    """Every case of the survey in a few layers: an analog stem, spikes into a conv, a max-pool into a conv, a
    nearest upsample and concat of two different quanta, a residual sum, and a read-out."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        w = width
        self.stem = ConvBNAct(3, w, 3, 1, 4, False)
        self.down = ConvBNAct(w, w, 3, 2, 4, False)        # fed by spikes
        self.pool = nn.MaxPool2d(2, 2)
        self.after_pool = ConvBNAct(w, w, 3, 1, 4, False)  # fed by a max-pool of spikes
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse = ConvBNAct(2 * w, w, 1, 1, 4, False)    # concat of two quanta
        self.block = ConvBNAct(w, w, 3, 1, 4, False)
        self.after_sum = ConvBNAct(w, w, 3, 1, 4, False)   # fed by a residual sum
        self.head = nn.Conv2d(w, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.down(self.stem(x))
        p = self.after_pool(self.pool(a))
        f = self.fuse(torch.cat([self.up(p), a], 1))
        return self.head(self.after_sum(f + self.block(f)))


def tiny(seed: int = 0) -> TinyDetector:
    """A TinyDetector in eval mode with BN statistics that keep activations in a range where neurons fire."""
    torch.manual_seed(seed)
    net = firing_batchnorm(TinyDetector())
    for i, q in enumerate(quantized_activations(net)):
        q[1].clip.data.fill_(0.8 + 0.1 * i)  # every layer its own λ, so that sums and concats mix quanta
    return net.eval()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def snn(method: str = "qcfs", seed: int = 0):
    return get_recipe(method).build(tiny(seed), ["head"])


# --- the setting and the hardware probe ---------------------------------------------------------------


@pytest.mark.parametrize("hw, fast", [
    (Hardware("cpu", frozenset({"avx2"})), []),
    (Hardware("cpu", frozenset({"avx512_vnni"}), int8=True), ["int8"]),
    (Hardware("cpu", frozenset({"amx_bf16"}), int8=True), ["bf16", "int8"]),
    (Hardware("cuda", frozenset(), cuda_bf16=True), ["bf16", "fp16"]),
    (Hardware("cuda", frozenset(), cuda_bf16=False), ["fp16"]),
])
def test_auto_stays_fp32_until_a_low_precision_is_measured_accurate(hw: Hardware, fast: list) -> None:
    """auto picks only precisions measured within 0.3 mAP points of fp32 (none yet), and says in one line
    what the hardware could run instead."""
    assert hardware.fast_precisions(hw) == fast
    precision, note = resolve_precision("auto", hardware=hw)
    assert precision == "fp32" and "\n" not in note
    if fast:
        assert note.startswith(f"auto: fp32 (faster here: {', '.join(fast)};") and f"--precision {fast[0]} chooses" in note
    else:
        assert note == f"auto: fp32 (no low-precision kernels known for this {hw.device})"


def test_auto_picks_the_fastest_accurate_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "ACCURATE_PRECISIONS", frozenset({"int8", "fp16"}))
    assert resolve_precision("auto", hardware=Hardware("cpu", frozenset({"amx_bf16"}), int8=True)) == ("int8", None)
    assert resolve_precision("auto", hardware=Hardware("cuda", frozenset(), cuda_bf16=True)) == ("fp16", None)
    assert resolve_precision("auto", hardware=Hardware("cpu", frozenset()))[0] == "fp32"


@pytest.mark.parametrize("precision, hw, match", [
    ("int8", Hardware("cuda", frozenset(), cuda_bf16=True), "int8 needs CPU only"),
    ("int8", Hardware("cpu", frozenset(), int8=False), "int8 needs oneDNN"),
    ("fp16", Hardware("cpu", frozenset({"avx512_bf16"})), "fp16 needs CUDA or a CPU with avx512_fp16"),
    ("bf16", Hardware("cuda", frozenset(), cuda_bf16=False), "bf16 is not supported by this GPU"),
])
def test_unsupported_precisions_are_one_clear_error(precision: str, hw: Hardware, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resolve_precision(precision, hardware=hw)


def test_unknown_precision() -> None:
    with pytest.raises(ValueError, match="--precision must be one of auto, fp32, bf16, fp16, int8, got 'fp64'"):
        check_precision("fp64")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16, int8"):
        to_precision(nn.Conv2d(1, 1, 1), "auto")


@pytest.mark.parametrize("command, argv, message", [
    ("eval", ["--precision", "fp64"], "--precision must be one of auto, fp32, bf16, fp16, int8, got 'fp64'"),
    ("eval", ["--precision", "fp16"], "--precision fp16 needs CUDA or a CPU with avx512_fp16/amx_fp16"),
    ("demo", ["--precision", "fp16", "--no-show"], "--precision fp16 needs CUDA or a CPU"),
    ("demo", ["--precision", "bf16", "--backend", "inductor", "--no-show", "--source", "missing.mp4"],
     "--precision bf16 runs on the torch backend only"),
])
def test_tools_refuse_bad_precisions_with_status_2(
    command: str, argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path, capsys
) -> None:
    import importlib

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    main = importlib.import_module(f"spikedet.commands.{command}").main
    extra = ["--json", str(tmp_path / "s.json")] if command == "eval" else []
    with pytest.raises(SystemExit) as exit_info:
        main(argv + extra)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


# --- which convolutions are fed by codes ----------------------------------------------------------------


def test_survey_of_a_spiking_network() -> None:
    survey = survey_inputs(snn(), imgsz=32)
    assert set(survey.codes) == {"down.conv", "after_pool.conv", "fuse.conv", "block.conv"}
    assert "the image" in survey.kept["stem.conv"]
    assert "residual add" in survey.kept["after_sum.conv"]
    assert "read-out" in survey.kept["head.layer"]
    net = snn().net
    thresholds = {name: float(m.threshold) for name, m in net.named_modules() if isinstance(m, IFNeuron)}
    code = survey.codes["fuse.conv"]  # concat: the upsampled pool of after_pool's spikes, then down's spikes
    expected = [thresholds["after_pool.act"]] * 8 + [thresholds["down.act"]] * 8
    assert torch.equal(code.quantum, torch.tensor(expected)) and (code.low, code.high) == (0, 1)


def test_survey_of_signed_spikes_and_of_the_ann() -> None:
    assert {(c.low, c.high) for c in survey_inputs(snn("fast_snn"), imgsz=32).codes.values()} == {(-1, 1)}
    ann = fold_batchnorm(tiny())
    codes = survey_inputs(ann, imgsz=32).codes
    assert "head" in codes and "after_sum.conv" not in codes and "stem.conv" not in codes  # QCFS levels, 0..L
    assert (codes["down.conv"].low, codes["down.conv"].high) == (0, 4)
    assert torch.allclose(codes["down.conv"].quantum, ann.stem.act.threshold.expand(8) / 4)


def test_survey_leaves_pascal_and_decaying_pools_alone() -> None:
    assert not survey_inputs(snn("pascal"), imgsz=32).codes  # PASCAL's spikes are worth θ·T/L
    codes = survey_inputs(snn(), imgsz=32, pools_exact=False).codes
    assert set(codes) == {"down.conv", "fuse.conv", "block.conv"}  # only after_pool.conv reads the pool


# --- the coded convolutions ---------------------------------------------------------------------------


def _spikes(shape: tuple[int, ...], levels: tuple[int, ...], quantum: torch.Tensor, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(levels), shape, generator=generator)
    return torch.tensor(levels, dtype=torch.float32)[pick] * quantum.view(1, -1, 1, 1)


@pytest.mark.parametrize("levels", [(0, 1), (-1, 0, 1), (0, 1, 2, 3, 4)])
@pytest.mark.parametrize("kind", ["bf16", pytest.param("int8", marks=INT8)])
def test_low_precision_input_is_exact(levels: tuple[int, ...], kind: str) -> None:
    """The codes the layer computes with, times the folded quantum, are the fp32 input (exactly)."""
    quantum = torch.linspace(0.3, 1.7, 6)
    x = _spikes((3, 6, 9, 9), levels, quantum)
    conv = nn.Conv2d(6, 5, 3, 1, 1)
    code = InputCode(quantum, min(levels), max(levels))
    if kind == "int8":
        layer = Int8CodedConv2d(conv, code)
        codes = layer.shifted_codes(x).to(torch.int64) - layer.zero_point
        assert layer.shifted_codes(x).dtype == torch.uint8
    else:
        layer = FloatCodedConv2d(conv, code, torch.bfloat16)
        low = layer.codes(x).to(torch.bfloat16)
        codes = low.to(torch.int64)
        assert torch.equal(low.float(), codes.float())  # integers: exact in bf16
    assert torch.equal(codes.float() * quantum.view(1, -1, 1, 1), x)


@INT8
@pytest.mark.parametrize("levels, stride, padding", [((0, 1), 1, 1), ((-1, 0, 1), 2, 1), ((0, 1, 2, 3, 4), 1, 0)])
def test_int8_conv_rounds_only_the_weights(levels: tuple[int, ...], stride: int, padding: int) -> None:
    torch.manual_seed(0)
    quantum = torch.linspace(0.3, 1.7, 6)
    x = _spikes((2, 6, 11, 11), levels, quantum, seed=1)
    conv = nn.Conv2d(6, 7, 3, stride, padding)
    layer = Int8CodedConv2d(conv, InputCode(quantum, min(levels), max(levels)))
    with torch.no_grad():
        out = layer(x)
        codes = (x / quantum.view(1, -1, 1, 1)).round()
        same_weights = F.conv2d(codes, layer.dequantized_weight(), conv.bias, stride, padding)
        reference = conv(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, same_weights, rtol=1e-5, atol=1e-5)  # int32 sums: exact, then fp32 scaling
    # each weight rounds by at most half a step; |code| ≤ max|level| on every one of the 6·3·3 inputs
    bound = 0.5 * layer.weight_scale.view(1, -1, 1, 1) * 6 * 9 * max(abs(k) for k in levels)
    assert bool(((out - reference).abs() <= bound + 1e-5).all())


def test_coded_conv_stays_a_conv_with_the_original_parameters() -> None:
    conv = nn.Conv2d(4, 3, 3, 1, 1)
    layer = FloatCodedConv2d(conv, InputCode(torch.ones(4), 0, 1), torch.bfloat16)
    assert isinstance(layer, nn.Conv2d) and isinstance(layer, CodedConv2d)
    assert layer.weight is conv.weight and layer.bias is conv.bias
    assert set(layer.state_dict()) == {"weight", "bias"}


# --- whole networks -------------------------------------------------------------------------------------


def test_fp32_is_the_model_itself(image: torch.Tensor) -> None:
    network = snn()
    same, report = to_precision(network, "fp32")
    assert same is network and not report.lowered
    with torch.no_grad():
        assert torch.equal(snn().anytime(image, [1, 4])[4], same.anytime(image, [1, 4])[4])


def test_neurons_keep_a_channels_last_current_bit_for_bit() -> None:
    x = torch.randn(3, 2, 5, 4, 4) * 0.6
    plain, strided = IFNeuron(0.5), IFNeuron(0.5)
    channels_last = torch.stack([step.contiguous(memory_format=torch.channels_last) for step in x])
    out, out_cl = plain.multi_step(x), strided.multi_step(channels_last)
    assert torch.equal(out, out_cl) and torch.equal(plain.v, strided.v)
    assert out_cl[0].is_contiguous(memory_format=torch.channels_last)
    assert strided.v.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("precision", ["bf16", pytest.param("int8", marks=INT8)])
@pytest.mark.parametrize("method", ["qcfs", "fast_snn", "casc"])
def test_low_precision_network_stays_close_to_fp32(image: torch.Tensor, precision: str, method: str) -> None:
    network = snn(method)
    lowered, report = to_precision(network, precision)
    assert lowered is not network and report.lowered == ["down.conv", "after_pool.conv", "fuse.conv", "block.conv"]
    assert not any(isinstance(m, CodedConv2d) for m in network.net.modules())  # the original is untouched
    with torch.no_grad():
        ref, out = network.anytime(image, [1, 4]), lowered.anytime(image, [1, 4])
    for t in (1, 4):
        deviation = float((out[t] - ref[t]).abs().mean() / ref[t].abs().mean())
        assert deviation < TOLERANCE, (t, deviation)


@pytest.mark.parametrize("precision", ["bf16", pytest.param("int8", marks=INT8)])
def test_low_precision_ann(image: torch.Tensor, precision: str) -> None:
    ann = fold_batchnorm(tiny())
    assert "head" in to_precision(ann, precision)[1].lowered  # QCFS levels feed it
    lowered, report = to_precision(ann, precision, readouts=["head"])  # kept fp32, as the SNN's read-out
    assert report.lowered == ["down.conv", "after_pool.conv", "fuse.conv", "block.conv"]
    assert "read-out" in report.kept["head"] and 0 < report.lowered_macs < 1
    with torch.no_grad():
        ref, out = ann(image), lowered(image)
    assert float((out - ref).abs().mean() / ref.abs().mean()) < TOLERANCE


@INT8
def test_eval_tool_runs_a_yolo_in_int8(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """``spikedet eval --precision int8`` end to end on a tiny untrained YOLOv8 (no training: the wiring is
    what is tested) and the synthetic data; ``auto`` says in one line why it stays fp32 here."""
    from spikedet.checkpoint import save_checkpoint
    from spikedet.commands.eval import main
    from spikedet.data import CLASS_NAMES, generate_synthetic
    from spikedet.models.yolo import build_yolo, yolo_config

    data = generate_synthetic(tmp_path / "data", num_images=10, image_size=64, seed=3, progress=False)
    model = build_yolo(num_classes=len(CLASS_NAMES), width=0.0625, depth=0.33).eval()
    config = {**yolo_config(model), "class_names": list(CLASS_NAMES), "imgsz": 64, "dataset": str(data)}
    weights = save_checkpoint(tmp_path / "tiny.pt", model, "ann", config)
    summary = tmp_path / "eval" / "summary.json"
    main(["--weights", str(weights), "--T", "1,2", "--precision", "int8", "--json", str(summary)])
    assert '"precision": "int8"' in summary.read_text()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    capsys.readouterr()
    main(["--weights", str(weights), "--T", "1", "--precision", "auto", "--json", str(summary)])
    assert capsys.readouterr().out.splitlines()[0].startswith("auto: fp32 (faster here: int8;")
    assert '"precision": "fp32"' in summary.read_text()
