"""bench_precision: every precision side by side, with where its quantizer outputs part from fp32's."""
import pytest

from spikedet.deploy.bench_precision import bench_precision, format_precision_bench
from spikedet.deploy.detector import spiking_network
from spikedet.engine.loading import load_model
from spikedet.spiking import SpikingNeuron

WEIGHTS = "weights/yolov8n_qcfs_l4_synthetic.pt"


@pytest.mark.slow
def test_precisions_side_by_side_with_their_divergence():
    result = bench_precision(WEIGHTS, precisions=["fp32", "int8"], timesteps=[1, 2], max_images=4, repeats=1,
                             demo_timesteps=2)
    rows = result["precisions"]
    assert list(rows) == ["fp32 reordered", "fp32 noise 1", "fp32 noise 2", "fp32", "int8"]
    neurons = sum(isinstance(m, SpikingNeuron) for m in spiking_network(load_model(WEIGHTS)).net.modules())
    assert "snn_divergence" not in rows["fp32"]
    for name in ("fp32 reordered", "fp32 noise 1", "fp32 noise 2", "int8"):
        assert len(rows[name]["snn_divergence"]) == neurons
        assert all(0.0 <= layer["flipped"] <= 1.0 for layer in rows[name]["snn_divergence"])
    mean = {name: sum(layer["flipped"] for layer in row["snn_divergence"]) / neurons
            for name, row in rows.items() if name != "fp32"}
    # rounded weights, or random errors of their size, flip far more spikes than summation order
    for name in ("fp32 noise 1", "fp32 noise 2", "int8"):
        assert mean[name] > 10 * mean["fp32 reordered"]
    assert rows["int8"]["snn_layers"]["lowered"]
    for row in rows.values():
        assert set(row["snn"]) == {"1", "2"} and row["snn_images_per_s"] > 0 and "ann" in row
    table = format_precision_bench(result)
    assert "int8 SNN: spikes at T=2 differing from fp32" in table and "(the first that differs)" in table


@pytest.mark.parametrize("value", [-1, True, 1.5])
def test_noise_controls_checked_first(value):
    with pytest.raises(ValueError, match="--noise-controls must be an integer >= 0"):
        bench_precision("no/such/weights.pt", noise_controls=value)  # refused before the checkpoint is read
