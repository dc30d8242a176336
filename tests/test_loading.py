"""One loader for every checkpoint kind (typed results, one-line errors for the other kind), and evaluation
that asks the network, not a flag, whether one simulation may serve every T."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spikedet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from spikedet.data import generate_synthetic, load_dataset
from spikedet.engine.evaluate import evaluate_snn
from spikedet.engine.loading import LoadedAnn, LoadedSnn, load_model
from spikedet.engine.recipe_run import build_snn
from spikedet.recipes import Recipe, get_recipe
from spikedet.spiking import SpikingNetwork

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
ANN = WEIGHTS / "yolov8n_qcfs_l4_synthetic.pt"
SNN = WEIGHTS / "yolov8n_qcfs_l4_synthetic_ft.pt"


def test_one_loader_reads_either_kind_into_typed_objects() -> None:
    ann = load_model(ANN)
    assert isinstance(ann, LoadedAnn) and ann.kind == "ann" and ann.path == ANN and not ann.model.training
    assert ann.config["class_names"] == load_checkpoint(ANN)[0]["class_names"]
    snn = load_model(SNN)
    assert isinstance(snn, LoadedSnn) and snn.kind == "snn" and isinstance(snn.network, SpikingNetwork)
    assert snn.recipe == Recipe.from_dict(snn.config["recipe"]) and snn.recipe.name == "fast_snn"
    assert snn.ann_path is not None and snn.ann_path.name == ANN.name  # the ANN shipped beside it
    assert isinstance(load_model(ANN, expect="ann"), LoadedAnn) and isinstance(load_model(SNN, expect="snn"), LoadedSnn)
    with pytest.raises(AttributeError):
        ann.model = None  # frozen


def test_expect_refuses_the_other_kind_with_one_line() -> None:
    with pytest.raises(CheckpointError, match=r"holds a SNN model, but a ANN model is required here$"):
        load_model(SNN, expect="ann")
    with pytest.raises(CheckpointError, match=r"holds a ANN model, but a SNN model is required here$"):
        load_model(ANN, expect="snn")
    with pytest.raises(ValueError, match="expect must be 'ann', 'snn' or None"):
        load_model(ANN, expect="spiking")


def test_old_checkpoints_that_store_anytime_still_load(tmp_path: Path) -> None:
    """Spiking checkpoints written before the network answered the anytime question carry the key."""
    config, state, _ = load_checkpoint(SNN)
    assert "anytime" not in get_recipe("cos").to_dict()
    old = tmp_path / "old.pt"
    save_checkpoint(old, load_model(SNN).network.net, "snn", dict(config, recipe={**config["recipe"], "anytime": True}))
    loaded = load_model(old, expect="snn")
    assert loaded.recipe == load_model(SNN).recipe
    assert all(torch.equal(v, loaded.network.net.state_dict()[k]) for k, v in state.items())
    assert Recipe.from_dict({**get_recipe("pascal").to_dict(), "anytime": False}) == get_recipe("pascal")


@pytest.fixture(scope="module")
def tiny_val(tmp_path_factory: pytest.TempPathFactory):
    data = generate_synthetic(tmp_path_factory.mktemp("loading") / "data", num_images=8, image_size=64, seed=2,
                              progress=False)
    return load_dataset(data, "val")


@pytest.mark.parametrize(("method", "simulations"), [
    ("qcfs", [[1, 2, 4]]),  # online: one simulation to max(T) serves every T
    ("pascal", [[1], [2], [4]]),  # restarting neurons: each T on its own, with no flag from the caller
    ("cos", [[1], [2], [4]]),
])
def test_evaluation_asks_the_network_whether_one_simulation_serves_every_t(
    method: str, simulations: list[list[int]], tiny_val, monkeypatch: pytest.MonkeyPatch,
) -> None:
    network = build_snn(load_model(ANN, expect="ann").model, get_recipe(method))
    runs: list[list[int]] = []
    anytime = network.anytime

    def counted(x, timesteps, record=False):
        runs.append(list(timesteps))
        return anytime(x, timesteps, record=record)

    monkeypatch.setattr(network, "anytime", counted)
    results, dets, _ = evaluate_snn(network, tiny_val, [4, 1, 2], imgsz=64, batch=8)
    batches = -(-len(tiny_val) // 8)
    assert runs == [group for group in simulations for _ in range(batches)]
    for t in (1, 2, 4):  # the same numbers as evaluating each T alone
        alone, alone_dets, _ = evaluate_snn(network, tiny_val, [t], imgsz=64, batch=8)
        assert [d.scores.tolist() for d in dets[t]] == [d.scores.tolist() for d in alone_dets[t]]
        assert {k: results[t][k] for k in ("map50_95", "map50", "sops", "firing_rate")} == {
            k: alone[t][k] for k in ("map50_95", "map50", "sops", "firing_rate")
        }
