"""The spiking-YOLO vertical slice on a tiny model and a tiny synthetic set: train, convert, evaluate."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spikedet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from spikedet.data import DatasetError, generate_synthetic
from spikedet.engine.coco_eval import evaluate_checkpoint
from spikedet.engine.convert import convert_detector
from spikedet.engine.loading import load_model
from spikedet.engine.train import train_detector
from spikedet.spiking import IFNeuron, SpikingMaxPool

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(model="yolov8n", width=0.0625, depth=0.33, imgsz=64, batch=8)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("tiny") / "data", num_images=24, image_size=64, seed=3, progress=False)


@pytest.fixture(scope="module")
def tiny_ann(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train")
    return train_detector(tiny_data, out=out, epochs=2, **TINY)


@pytest.fixture(scope="module")
def converted(tiny_ann: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("convert")
    return convert_detector(tiny_ann, data=tiny_data, method="qcfs", timesteps=[1, 2], out=out, batch=4), out


def test_trained_checkpoint_is_safe_and_quantized(tiny_ann: Path) -> None:
    config, state, kind = load_checkpoint(tiny_ann)
    assert kind == "ann" and config["activation"] == "qcfs"
    assert set(config["quant"]["levels"]) == {4}
    assert config["class_names"] == ["circle", "square", "triangle", "star", "ring", "cross"]
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model = load_model(tiny_ann, expect="ann").model
    assert model(torch.rand(1, 3, 64, 64))[0].shape[1] == 4 + 6


def test_convert_writes_results_plot_and_spiking_checkpoint(converted: tuple[dict, Path]) -> None:
    results, out = converted
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert set(on_disk["snn"]) == {"1", "2"}
    for metrics in [on_disk["ann"], *on_disk["snn"].values()]:
        assert 0.0 <= metrics["map50_95"] <= metrics["map50"] <= 1.0
        assert metrics["energy_mj"] > 0
    assert on_disk["snn"]["2"]["steps_total"] == 2
    # a 2-epoch model barely fires; the accounting itself is checked in test_spiking_accounting.py
    assert on_disk["snn"]["2"]["sops"] >= on_disk["snn"]["1"]["sops"] >= 0
    assert 0.0 <= on_disk["snn"]["2"]["firing_rate"] < 1.0
    assert (out / "map_vs_T.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = load_model(out / "snn_qcfs.pt", expect="snn")
    network, config = loaded.network, loaded.config
    assert config["recipe"]["name"] == "qcfs"
    assert any(isinstance(m, SpikingMaxPool) for m in network.net.modules())
    assert any(isinstance(m, IFNeuron) for m in network.net.modules())


def test_snn_checkpoint_reproduces_the_conversion(converted: tuple[dict, Path], tiny_data: Path, tmp_path: Path) -> None:
    results, out = converted
    summary = evaluate_checkpoint(out / "snn_qcfs.pt", tiny_data, [1, 2], tmp_path, batch=4)
    for t in ("1", "2"):
        assert summary["snn"][t]["map50_95"] == pytest.approx(results["snn"][t]["map50_95"], abs=1e-9)
    detections = json.loads((tmp_path / "detections_snn_T2.json").read_text())
    assert {d["category_id"] for d in detections} <= set(range(1, 7))
    assert len(summary["coco_lines"]["SNN T=2"]) == 12


def test_spiking_checkpoint_is_evaluated_as_stored(converted: tuple[dict, Path], tiny_data: Path, tmp_path: Path) -> None:
    """convert_det.py --weights SNN: the stored network beside its ANN, the same numbers as the conversion."""
    results, out = converted
    with pytest.raises(ValueError, match="already spiking"):
        convert_detector(out / "snn_qcfs.pt", data=tiny_data, method="qcfs", timesteps=[1], out=tmp_path)
    again = convert_detector(out / "snn_qcfs.pt", data=tiny_data, method=None, timesteps=[1, 2], out=tmp_path, batch=4)
    assert again["method"] == "qcfs" and again["ann"]["map50_95"] == results["ann"]["map50_95"]
    for t in ("1", "2"):
        assert again["snn"][t]["map50_95"] == results["snn"][t]["map50_95"]
        assert again["snn"][t]["sops"] == pytest.approx(results["snn"][t]["sops"])
    assert (tmp_path / "map_vs_T.png").is_file()


def test_pickled_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save(torch.nn.Conv2d(1, 1, 1), path)
    with pytest.raises(CheckpointError, match="not a spikedet checkpoint"):
        load_checkpoint(path)


def test_dataset_with_other_classes(tiny_ann: Path, shared_datasets: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="raccoon"):
        convert_detector(tiny_ann, data=shared_datasets / "raccoon", method="qcfs", timesteps=[1], out=tmp_path)


def test_empty_split(tiny_ann: Path, tiny_data: Path, tmp_path: Path) -> None:
    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "JPEGImages").mkdir()
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    for split in ("train", "val"):
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("")
    with pytest.raises(DatasetError, match="empty"):
        convert_detector(tiny_ann, data=voc, method="qcfs", timesteps=[1], out=tmp_path / "out")


@pytest.mark.parametrize("bad", [[0], [-2]])
def test_bad_timesteps(tiny_ann: Path, tiny_data: Path, tmp_path: Path, bad: list[int]) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        convert_detector(tiny_ann, data=tiny_data, method="qcfs", timesteps=bad, out=tmp_path)


def test_unknown_method(tiny_ann: Path, tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown method 'nope'; available: .*qcfs"):
        convert_detector(tiny_ann, data=tiny_data, method="nope", timesteps=[1], out=tmp_path)


@pytest.mark.parametrize(
    "args, message",
    [
        (["tools/convert_det.py", "--T", "0"], "error: --T expects integers >= 1"),
        (["tools/eval_coco.py", "--T", "two"], "error: --T expects integers >= 1"),
        (["tools/convert_det.py", "--weights", "missing.pt"], "error: checkpoint not found: missing.pt"),
    ],
)
def test_tools_fail_with_one_line(args: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(message)


def test_tools_document_their_flags() -> None:
    for tool, flags in {
        "tools/convert_det.py": ["--weights", "--data", "--method", "--T", "--out"],
        "tools/eval_coco.py": ["--T", "--weights", "--data", "--json"],
        "tools/train_det.py": ["--data", "--model", "--levels", "--epochs", "--imgsz", "--device", "--init"],
    }.items():
        proc = subprocess.run([sys.executable, tool, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0
        for flag in flags:
            assert flag in proc.stdout, (tool, flag)


def test_fine_tune_from_checkpoint(tiny_ann: Path, tiny_data: Path, tmp_path: Path) -> None:
    """--init: a QCFS checkpoint warm-starts training; its weights are the starting point."""
    loaded = load_model(tiny_ann, expect="ann")
    model, config = loaded.model, loaded.config
    silu = tmp_path / "silu.pt"
    save_checkpoint(silu, model, "ann", config)
    path = train_detector(tiny_data, out=tmp_path / "ft", epochs=1, init=silu, **TINY)
    assert load_checkpoint(path)[0]["init"] == str(silu)


def test_fine_tune_keeps_ultralytics_bias_warmup_off(tiny_ann: Path, tiny_data: Path, tmp_path: Path) -> None:
    """With SGD (what an explicit lr0 selects), a fine-tune's biases warm up from lr0, not from ultralytics' 0.1
    (kept when training from scratch); an explicit setting still wins."""
    from spikedet.data import export_ultralytics, load_dataset
    from spikedet.models.yolo_train import train_yolo

    data_yaml = export_ultralytics(load_dataset(tiny_data, "train"), load_dataset(tiny_data, "val"))
    tiny = {"width": 0.0625, "depth": 0.33, "imgsz": 64, "batch": 8, "epochs": 1}
    _, scratch = train_yolo(data_yaml, tmp_path / "scratch", extra={"lr0": 0.01, "optimizer": "SGD"}, **tiny)
    _, tuned = train_yolo(data_yaml, tmp_path / "ft", init=tiny_ann, extra={"lr0": 1e-4, "optimizer": "SGD"}, **tiny)
    chosen_extra = {"warmup_bias_lr": 0.05, "optimizer": "SGD"}
    _, chosen = train_yolo(data_yaml, tmp_path / "set", init=tiny_ann, extra=chosen_extra, **tiny)
    assert scratch.args.warmup_bias_lr == 0.1 and tuned.args.warmup_bias_lr == 1e-4
    assert chosen.args.warmup_bias_lr == 0.05


def test_ultralytics_validator_and_predictor_accept_ann_and_snn(tiny_ann: Path, tiny_data: Path) -> None:
    """The QCFS model is a plain ultralytics DetectionModel; the converted one poses as one for the validator."""
    from spikedet.data import export_ultralytics, load_dataset
    from spikedet.engine.recipe_run import build_snn
    from spikedet.env import import_ultralytics
    from spikedet.models.yolo_validate import UltralyticsSpikingModel, validate_ultralytics
    from spikedet.recipes import get_recipe

    loaded = load_model(tiny_ann, expect="ann")
    model, config = loaded.model, loaded.config
    train, val = load_dataset(tiny_data, "train"), load_dataset(tiny_data, "val")
    data_yaml = export_ultralytics(train, val)
    names = dict(enumerate(config["class_names"]))
    network = build_snn(model, get_recipe("qcfs"))
    spiking = UltralyticsSpikingModel(network, 2, model.stride, names)
    images = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(spiking(images)[0], network(images, 2)[0])
    for candidate in (model, spiking):
        metrics = validate_ultralytics(candidate, data_yaml, imgsz=64, batch=4)
        assert set(metrics) == {"map50_95", "map50"} and 0.0 <= metrics["map50_95"] <= metrics["map50"] <= 1.0

    import_ultralytics()
    from ultralytics import YOLO

    model.names = names
    yolo = YOLO("yolov8n.yaml", task="detect")
    yolo.model = model
    results = yolo.predict(val.records[0].path, imgsz=64, conf=0.001, verbose=False)
    assert len(results) == 1
    boxes, (height, width) = results[0].boxes, results[0].orig_shape
    assert len(boxes) > 0  # conf 0.001: even an untrained head gives candidates
    assert set(boxes.cls.int().tolist()) <= set(names) and ((boxes.conf > 0) & (boxes.conf <= 1)).all()
    assert (boxes.xyxy[:, [0, 2]] <= width).all() and (boxes.xyxy[:, [1, 3]] <= height).all() and (boxes.xyxy >= 0).all()


def test_ultralytics_trainers_and_validator_keep_torch_threads(tiny_ann: Path, tiny_data: Path, tmp_path: Path) -> None:
    """ultralytics' select_device sets CPU runs to cpu_count - 1 threads; spikedet's trainers and validator
    keep the count the process had (CPU batches load in the main process, so no core is left for workers)."""
    from spikedet.data import export_ultralytics, load_dataset
    from spikedet.engine.yolo_finetune import SpikingDetectionTrainer
    from spikedet.models.yolo_train import QCFSDetectionTrainer
    from spikedet.models.yolo_validate import validate_ultralytics

    data_yaml = export_ultralytics(load_dataset(tiny_data, "train"), load_dataset(tiny_data, "val"))
    before = torch.get_num_threads()
    wanted = (os.cpu_count() or 1) + 1  # never what ultralytics would pick
    torch.set_num_threads(wanted)
    try:
        for trainer in (QCFSDetectionTrainer, SpikingDetectionTrainer):
            trainer(overrides={"data": str(data_yaml), "device": "cpu", "project": str(tmp_path), "name": "t",
                               "exist_ok": True, "model": "yolov8n.yaml", "imgsz": 64})
            assert torch.get_num_threads() == wanted, trainer.__name__
        validate_ultralytics(load_model(tiny_ann, expect="ann").model, data_yaml, imgsz=64, batch=4)
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)
