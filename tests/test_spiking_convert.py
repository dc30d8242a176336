"""Conversion and runtime: QANN equivalence of multi-layer nets, exact spiking max-pool, BN folding, state
handling (reset, batching, anytime, streaming), CASC wake/sleep exactness, errors, and a YOLOv8 smoke test."""
import pytest
import torch
from spiking_nets import READOUTS, ConvBNAct, quant, small_detector, with_levels
from torch import nn

from spikedet.env import import_ultralytics
from spikedet.spiking import (
    CIFNeuron, ConversionError, IFNeuron, QCFS, ReadOut, SimContext, SpikeMonitor, SpikingMaxPool, SpikingNetwork,
    WakeSleepSchedule, convert, fold_batchnorm,
)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def unwrapped_maxpools(model: nn.Module) -> list[nn.Module]:
    wrapped = {id(m.pool) for m in model.modules() if isinstance(m, SpikingMaxPool)}
    return [m for m in model.modules() if isinstance(m, nn.MaxPool2d) and id(m) not in wrapped]


def snn_of(net: nn.Module, **kwargs) -> SpikingNetwork:
    schedule = kwargs.pop("schedule", None)
    return SpikingNetwork(convert(net, READOUTS, **kwargs), schedule=schedule)


# ---------------------------------------------------------------- multi-layer QANN equivalence


def test_conversion_replaces_modules():
    net = small_detector()
    snn = convert(net, READOUTS)
    kinds = {type(m) for m in snn.modules()}
    assert QCFS not in kinds and nn.BatchNorm2d not in kinds
    assert not unwrapped_maxpools(snn)
    assert isinstance(snn.head, ReadOut) and isinstance(snn.pool1, SpikingMaxPool)
    assert isinstance(snn.stem.act, IFNeuron) and snn.stem.act.threshold.item() == 1.0
    assert isinstance(net.stem.act, QCFS)  # the input model is left untouched


def test_single_step_is_exact(image):
    """At T = 1 every layer sees one step, so the SNN equals the QANN with L = 1 (pools, add, concat included)."""
    net = small_detector()
    torch.testing.assert_close(snn_of(net)(image, 1), with_levels(net, 1)(image), rtol=0, atol=1e-10)


def test_gap_to_qann_shrinks_with_t(image):
    net = small_detector()
    snn = snn_of(net)
    err = {t: (snn(image, t) - with_levels(net, t)(image)).abs().mean().item() for t in (4, 16, 64)}
    scale = with_levels(net, 64)(image).abs().mean().item()
    assert err[4] < 0.5 * scale  # close to the QANN already at T = 4
    assert err[64] < err[16] < err[4]
    assert err[64] < err[4] / 8


def test_cif_wake_sleep_equals_qann(image):
    """CASC (methods.md §3c): CIF neurons, wake T steps then enough sleep steps → exactly the QANN (L = T)."""
    for pools in (False, True):
        for t in (4, 8):
            net = small_detector(levels=t, casc=True, pools=pools)
            snn = snn_of(net, neuron="cif", schedule=WakeSleepSchedule(wake=t, sleep=4 * t))
            assert isinstance(snn.net.stem.act, CIFNeuron) and snn.net.stem.act.v0.item() == 0.0
            torch.testing.assert_close(snn(image, t), net(image), rtol=0, atol=1e-5)
    # without the sleep phase the residuals are not drained: not exact
    no_sleep = snn_of(net, neuron="cif", schedule=WakeSleepSchedule(wake=8, sleep=0))
    assert (no_sleep(image, 8) - net(image)).abs().max() > 1e-3


class BNAfterConcat(nn.Module):
    """A BatchNorm that cannot be folded (it follows a concat): its offset must be masked in sleep steps too."""

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.a = ConvBNAct(3, 4, 3, 1, levels, casc=True)
        self.b = ConvBNAct(4, 4, 3, 1, levels, casc=True)
        self.bn = nn.BatchNorm2d(8)
        self.act = quant(levels, casc=True)
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        return self.head(self.act(self.bn(torch.cat([a, self.b(a)], 1))))


def test_wake_sleep_masks_unfolded_batchnorm(image):
    torch.manual_seed(0)
    net = BNAfterConcat(levels=4).double()
    for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.3, 1.0)
        bn.bias.data.uniform_(0.1, 0.4)
    net.eval()
    snn = SpikingNetwork(convert(net, ["head"], neuron="cif"), schedule=WakeSleepSchedule(wake=4, sleep=16))
    assert isinstance(snn.net.bn, nn.BatchNorm2d)
    torch.testing.assert_close(snn(image, 4), net(image), rtol=0, atol=1e-5)


def test_wake_sleep_leaves_analog_bias_alone(image):
    """A decoder conv with bias after the read-out stays ANN arithmetic: no sleep-step bias masking there."""
    net = nn.Sequential(small_detector(levels=4, casc=True), nn.Conv2d(5, 2, 1)).double().eval()
    nn.init.uniform_(net[1].bias, 0.5, 1.0)
    snn = SpikingNetwork(convert(net, ["0.head"], neuron="cif", analog=["1"]),
                         schedule=WakeSleepSchedule(wake=4, sleep=8))
    torch.testing.assert_close(snn(image, 4), net(image), rtol=0, atol=1e-5)


class SharedActivation(nn.Module):
    """One activation module used at two places (as torchvision's BasicBlock does with its ReLU)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.act = QCFS(levels=4, clip=1.0)
        self.head = nn.Conv2d(6, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.conv2(self.act(self.conv1(x)))))


def test_module_called_twice_keeps_separate_state(image):
    torch.manual_seed(0)
    net = SharedActivation().double().eval()
    snn = SpikingNetwork(convert(net, ["head"]))
    torch.testing.assert_close(snn(image, 1), with_levels(net, 1)(image), rtol=0, atol=1e-10)
    reference = snn(image, 6)
    snn.reset()
    for _ in range(6):
        out = snn.stream(image, 1)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- max-pool


def _pool_sequence(pools: list[nn.Module], x: torch.Tensor, ctx: SimContext) -> torch.Tensor:
    """Run ``x`` ``[T, B, ...]`` through the spiking pools in sequence within one simulation run."""
    for pool in pools:
        pool.ctx = ctx
    y = x.flatten(0, 1)
    for pool in pools:
        y = pool(y)
    return y.view(x.shape[0], x.shape[1], *y.shape[1:])


def _check_prefixes(out: torch.Tensor, x: torch.Tensor, ann, atol: float) -> None:
    for tau in range(1, x.shape[0] + 1):
        torch.testing.assert_close(out[:tau].sum(0), ann(x[:tau].sum(0)), rtol=0, atol=atol)


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (5, 1, 2), (3, 1, 1)])
@pytest.mark.parametrize("spikes", [True, False])
def test_spiking_maxpool_prefix_exact(kernel, stride, padding, spikes):
    g = torch.Generator().manual_seed(kernel * 10 + stride)
    steps, theta = 6, 0.5
    shape = (steps, 2, 3, 9, 9)
    x = (torch.rand(shape, generator=g) < 0.4).double() * theta if spikes else torch.randn(shape, generator=g).double()
    pool = nn.MaxPool2d(kernel, stride, padding)
    out = _pool_sequence([SpikingMaxPool(pool)], x, SimContext(steps=steps, batch=2))
    _check_prefixes(out, x, pool, atol=0 if spikes else 1e-12)
    if spikes:
        assert set(out.unique().tolist()) <= {0.0, theta}  # spikes in, spikes out


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("spikes", [True, False])
def test_spiking_maxpool_cascade(shared, spikes):
    """SPPF: three k=5 s=1 pools in a row, as separate modules or as one module called three times."""
    g = torch.Generator().manual_seed(3)
    steps, theta = 8, 1.0
    shape = (steps, 2, 4, 11, 11)
    x = (torch.rand(shape, generator=g) < 0.3).double() * theta if spikes else torch.randn(shape, generator=g).double()
    pool = nn.MaxPool2d(5, 1, 2)
    spiking = [SpikingMaxPool(pool)] * 3 if shared else [SpikingMaxPool(pool) for _ in range(3)]

    def ann(s: torch.Tensor) -> torch.Tensor:
        return pool(pool(pool(s)))

    out = _pool_sequence(spiking, x, SimContext(steps=steps, batch=2, run=1))
    _check_prefixes(out, x, ann, atol=0 if spikes else 1e-12)
    if spikes:
        assert set(out.unique().tolist()) <= {0.0, theta}
    # streaming: the same train in two runs of 3 + 5 steps continues each call site's state
    for pool_ in spiking:
        pool_.reset()
    first = _pool_sequence(spiking, x[:3], SimContext(steps=3, batch=2, run=1))
    second = _pool_sequence(spiking, x[3:], SimContext(steps=5, batch=2, run=2))
    torch.testing.assert_close(torch.cat([first, second]), out, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- BN folding


def test_fold_batchnorm_sequential():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.Conv2d(6, 4, 1, bias=False),
                        nn.BatchNorm2d(4, affine=True)).double()
    for bn in (net[1], net[3]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    before = net(x)
    fold_batchnorm(net)
    assert isinstance(net[1], nn.Identity) and isinstance(net[3], nn.Identity) and net[2].bias is not None
    torch.testing.assert_close(net(x), before)


def test_fold_batchnorm_ultralytics_conv():
    import_ultralytics()
    from ultralytics.nn.modules import Conv

    torch.manual_seed(0)
    conv = Conv(3, 5, 3, 2, act=False).double()
    conv.bn.running_mean.uniform_(-1, 1)
    conv.bn.running_var.uniform_(0.2, 2)
    conv.bn.weight.data.uniform_(0.5, 1.5)
    conv.bn.bias.data.uniform_(-0.5, 0.5)
    conv.eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    before = conv(x)
    fold_batchnorm(conv)
    assert isinstance(conv.bn, nn.Identity)
    torch.testing.assert_close(conv(x), before)


# ---------------------------------------------------------------- state handling


def test_no_state_leak_between_images(image):
    snn = snn_of(small_detector())
    first = snn(image, 4)
    snn(torch.rand_like(image), 7)  # something else in between
    assert torch.equal(snn(image, 4), first)
    assert torch.equal(snn(image, 4), first)


def test_batch_equals_singles(image):
    snn = snn_of(small_detector())
    batched = snn(image, 6)
    singles = torch.cat([snn(image[i:i + 1], 6) for i in range(image.shape[0])])
    torch.testing.assert_close(batched, singles, rtol=0, atol=1e-6)


def test_anytime_equals_separate_runs(image):
    snn = snn_of(small_detector())
    outputs = snn.anytime(image, [8, 1, 4, 2])
    assert sorted(outputs) == [1, 2, 4, 8]
    for t, out in outputs.items():
        torch.testing.assert_close(out, snn(image, t), rtol=0, atol=1e-12)


def test_anytime_wake_sleep_equals_separate_runs(image):
    net = small_detector(levels=4, casc=True)
    snn = snn_of(net, neuron="cif", schedule=WakeSleepSchedule(wake=4, sleep=4))
    outputs = snn.anytime(image, [4, 8])
    for t, out in outputs.items():
        torch.testing.assert_close(out, snn(image, t), rtol=0, atol=1e-12)
    torch.testing.assert_close(outputs[4], net(image), rtol=0, atol=1e-5)


def test_streaming_equals_forward(image):
    snn = snn_of(small_detector())
    steps = 5
    snn.reset()
    for _ in range(steps):
        out = snn.stream(image, 1)
    torch.testing.assert_close(out, snn(image, steps), rtol=0, atol=1e-12)
    snn.reset()
    snn.stream(image, 2)  # uneven chunks
    torch.testing.assert_close(snn.stream(image, 3), snn(image, steps), rtol=0, atol=1e-12)


@pytest.mark.parametrize("neuron, name", [("pascal", "PascalNeuron"), ("cos", "COSNeuron")])
def test_stream_refuses_neurons_that_restart_from_the_input(image, neuron: str, name: str):
    """PASCAL and COS start each run from its whole input: continuing a run would silently restart it."""
    snn = snn_of(small_detector(), neuron=neuron)
    assert snn.restarting_neurons() == [name] and snn_of(small_detector()).restarting_neurons() == []
    snn(image, 4)  # a run from reset works
    with pytest.raises(ValueError, match=f"^{name} start every run afresh: stream\\(\\) cannot continue it$"):
        snn.stream(image, 1)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("t", [0, -1, 2.5, True])
def test_bad_timesteps(image, t):
    snn = snn_of(small_detector())
    with pytest.raises(ValueError):
        snn(image, t)
    with pytest.raises(ValueError):
        snn.anytime(image, [1, t])


def test_model_without_qcfs():
    with pytest.raises(ConversionError, match="QCFS"):
        convert(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)), readouts=["1"])


def test_model_with_silu_names_the_layer():
    net = small_detector()
    net.mid.act = nn.SiLU()
    with pytest.raises(ConversionError, match=r"'mid\.act'.*SiLU"):
        convert(net, READOUTS)


@pytest.mark.parametrize("kwargs,match", [
    ({"readouts": ["nope"]}, "read-out layer 'nope'"),
    ({"readouts": READOUTS, "neuron": "lif"}, "unknown neuron"),
    ({"readouts": READOUTS, "analog": ["decoder"]}, "analog layer 'decoder'"),
])
def test_unknown_names(kwargs, match):
    with pytest.raises(ConversionError, match=match):
        convert(small_detector(), **kwargs)


# ---------------------------------------------------------------- YOLOv8


@pytest.fixture(scope="module")
def yolo():
    from spikedet.models.yolo import build_yolo

    return build_yolo("yolov8n", num_classes=3, width=0.125, depth=0.33).eval()


def test_yolov8_smoke(yolo):
    from spikedet.models.yolo import yolo_readouts

    head = yolo.model[-1]
    dfl = next(name for name, m in yolo.named_modules() if m is head.dfl)
    snn = convert(yolo, yolo_readouts(yolo), analog=[dfl])
    assert not unwrapped_maxpools(snn)
    sppf = next(m for m in snn.modules() if type(m).__name__ == "SPPF")
    assert isinstance(sppf.m, SpikingMaxPool)
    net = SpikingNetwork(snn)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ann = yolo(x)
    out = net(x, 4)
    assert out[0].shape == ann[0].shape
    assert torch.isfinite(out[0]).all()
    # DFL stays in ANN arithmetic: not counted as a spiking (or analog-input) synapse
    monitor = SpikeMonitor(net)
    net.anytime(x, [2], record=True)
    counted = {row["layer"] for row in monitor.report(2)["layers"]}
    assert f"{dfl}.conv" not in counted and len(counted) > 10


def test_yolov8_single_step_is_exact(yolo):
    """End to end in float64: the T = 1 SNN is the QANN with L = 1 (SPPF pools, C2f splits, concat, DFL)."""
    from spikedet.models.yolo import yolo_readouts

    model = with_levels(yolo, 1).double()
    net = SpikingNetwork(convert(model, yolo_readouts(model), analog=["model.22.dfl"]))
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        ann = model(x)[0]
    torch.testing.assert_close(net(x, 1)[0], ann, rtol=0, atol=1e-8)
    batched = net(x, 3)[0]
    torch.testing.assert_close(torch.cat([net(x[i:i + 1], 3)[0] for i in range(2)]), batched, rtol=0, atol=1e-6)


def test_build_yolo_rejects_later_yolos():
    from spikedet.models.yolo import build_yolo

    with pytest.raises(ValueError, match="yolo11n: only YOLOv8 is supported .*attention"):
        build_yolo("yolo11n")
