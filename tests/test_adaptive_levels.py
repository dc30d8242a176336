"""PASCAL's adaptive layer-wise levels: the AL metric, the metric → L rule, and training with per-layer L."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scipy import stats
from torch import nn

from spikedet.checkpoint import load_checkpoint
from spikedet.engine.loading import load_model
from spikedet.engine.levels import adaptive_levels, parse_levels
from spikedet.engine.train import train_detector
from spikedet.spiking import QCFS
from spikedet.spiking.adaptive_levels import al_metric, choose_levels, measure_layers, set_levels


def _values_with_counts(counts: list[int], clip: float = 1.0) -> torch.Tensor:
    """Values whose 5-bin histogram over [0, clip] is ``counts`` (each value at a bin centre)."""
    centres = [(i + 0.5) * clip / 5 for i in range(5)]
    return torch.tensor([c for c, n in zip(centres, counts) for _ in range(n)])


def test_al_metric_matches_its_definition_on_bin_counts() -> None:
    """A·B with A = 1 − (n_dense − 1)/(n − 1) and B = (g² + 1)(k + 3n²/((n−2)(n−3))), g and k from scipy."""
    counts = [60, 20, 10, 10, 0]
    expected_a = 1 - (2 - 1) / 4  # 60 and 20 are >= the mean count 20
    g = stats.skew(counts)
    k = stats.kurtosis(counts)  # excess (Fisher), population moments
    expected = expected_a * (g**2 + 1) * (k + 3 * 25 / (3 * 2))
    assert al_metric(_values_with_counts(counts), clip=1.0) == pytest.approx(expected, rel=1e-9)


def test_al_metric_is_zero_for_evenly_used_levels_and_larger_when_crowded() -> None:
    assert al_metric(_values_with_counts([7, 7, 7, 7, 7]), clip=1.0) == 0.0  # every bin dense → A = 0
    spread = al_metric(_values_with_counts([30, 25, 20, 15, 10]), clip=1.0)
    crowded = al_metric(_values_with_counts([90, 6, 2, 1, 1]), clip=1.0)
    assert crowded > spread


def test_al_metric_histogram_spans_zero_to_clip() -> None:
    """Levels of an L = 4 QCFS with clip λ fall one per bin: the metric sees the level occupancy."""
    lam = 3.0
    q = QCFS(levels=4, clip=lam)
    out = q(torch.linspace(-1, 4, 1001))
    levels_used = torch.histc(out, bins=5, min=0, max=lam)
    assert (levels_used > 0).all()
    # the metric depends on the outputs only through those bin counts
    counts = [int(n) for n in levels_used]
    assert al_metric(out, clip=lam) == pytest.approx(al_metric(_values_with_counts(counts, clip=lam), clip=lam), rel=1e-9)


def test_al_metric_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 4 bins"):
        al_metric(torch.ones(10), clip=1.0, bins=3)
    with pytest.raises(ValueError, match="no activation values"):
        al_metric(torch.ones(0), clip=1.0)


def test_choose_levels_gives_fewest_levels_to_the_most_crowded_layers() -> None:
    metrics = [5.0, 30.0, 1.0, 20.0, 2.0, 10.0]
    levels = choose_levels(metrics, choices=(8, 2, 4))
    assert levels == [4, 2, 8, 2, 8, 4]
    assert sorted(levels) == [2, 2, 4, 4, 8, 8]  # equal groups
    assert choose_levels([1.0, 1.0, 1.0], choices=(2, 4, 8)) == [2, 4, 8]  # ties keep layer order


def test_choose_levels_rejects_bad_choices() -> None:
    with pytest.raises(ValueError, match="no layers"):
        choose_levels([], choices=(2, 4))
    with pytest.raises(ValueError, match=">= 1"):
        choose_levels([1.0], choices=(0, 4))


def _qcfs_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), QCFS(4, clip=1.0), nn.Conv2d(4, 4, 3), QCFS(4, clip=2.0))


def test_measure_layers_scores_every_activation_and_removes_its_hooks() -> None:
    net = _qcfs_net()
    images = torch.rand(6, 3, 12, 12)
    layers = measure_layers(net, images.split(2))
    assert [layer.name for layer in layers] == ["1", "3"]
    assert [layer.clip for layer in layers] == [1.0, 2.0]
    for layer in layers:
        assert sum(layer.occupancy) == pytest.approx(1.0)
    # the full outputs, scored directly, give the same metric (no sampling below max_values)
    first = net[1](net[0](images))
    assert layers[0].metric == pytest.approx(al_metric(first, clip=1.0))
    assert all(not m._forward_hooks for m in net.modules())
    with pytest.raises(ValueError, match="no QCFS"):
        measure_layers(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()), [images])
    with pytest.raises(ValueError, match="no batches"):
        measure_layers(net, [])


def test_set_levels_checks_the_count() -> None:
    net = _qcfs_net()
    set_levels(net, [2, 8])
    assert [net[1].levels, net[3].levels] == [2, 8]
    with pytest.raises(ValueError, match="2 quantized activations"):
        set_levels(net, [2])


@pytest.mark.parametrize("text, expected", [("4", 4), ("2,4,8", [2, 4, 8]), ("al", "al"), ("al:1,2", "al:1,2")])
def test_parse_levels(text: str, expected: object) -> None:
    assert parse_levels(text) == expected


@pytest.mark.parametrize("text", ["four", "0", "2,-1", "4,"])
def test_parse_levels_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError, match="levels"):
        parse_levels(text)


def test_train_with_adaptive_levels(tiny_yolo_checkpoint: tuple[Path, Path], tmp_path: Path) -> None:
    """AL steps 2–3 on the tiny detector: levels chosen from the init model's activations, then training
    resumes with them and the checkpoint records them per layer."""
    init, data = tiny_yolo_checkpoint
    chosen, layers = adaptive_levels(init, data, choices=(1, 2), images=8, imgsz=64)
    model = load_model(init, expect="ann").model
    assert len(chosen) == len(layers) == sum(isinstance(m, QCFS) for m in model.modules())
    assert set(chosen) == {1, 2}
    path = train_detector(
        data, out=tmp_path / "al", model="yolov8n", width=0.0625, depth=0.33, imgsz=64, batch=8, epochs=1,
        init=init, levels="al:1,2",
    )
    assert path.name.endswith("_lal.pt")
    config = load_checkpoint(path)[0]
    assert config["quant"]["levels"] == chosen  # same init, same training images → same choice
    assert (tmp_path / "al" / "adaptive_levels.png").stat().st_size > 0
    trained = load_model(path, expect="ann").model
    assert [m.levels for m in trained.modules() if isinstance(m, QCFS)] == chosen


def test_adaptive_levels_need_an_init_model(tiny_yolo_checkpoint: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = tiny_yolo_checkpoint
    with pytest.raises(ValueError, match="needs --init"):
        train_detector(data, out=tmp_path, levels="al", epochs=1)


def test_adaptive_levels_refuse_a_silu_model(tiny_yolo_checkpoint: tuple[Path, Path], tmp_path: Path) -> None:
    from spikedet.checkpoint import save_checkpoint
    from spikedet.models.yolo import build_yolo, yolo_config

    init, data = tiny_yolo_checkpoint
    config = load_checkpoint(init)[0]
    silu = build_yolo(config["yaml"], num_classes=config["num_classes"], activation="silu")
    meta = {k: v for k, v in config.items() if k in ("class_names", "dataset", "imgsz")}
    save_checkpoint(tmp_path / "silu.pt", silu, "ann", {**yolo_config(silu), **meta})
    with pytest.raises(ValueError, match="need a QCFS model"):
        adaptive_levels(tmp_path / "silu.pt", data, images=4, imgsz=64)
