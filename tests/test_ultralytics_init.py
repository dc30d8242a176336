"""Starting QCFS training from ultralytics checkpoints (yolov8n.pt, a run's best/last) without running pickle code."""
from __future__ import annotations

import copy
import os
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from spikedet.checkpoint import CheckpointError, load_checkpoint
from spikedet.models.ultralytics_checkpoint import load_ultralytics_model, unsafe_global
from spikedet.models.yolo import build_yolo
from spikedet.models.yolo_train import QCFSDetectionTrainer, read_init

pytestmark = pytest.mark.slow  # trains through ultralytics

TINY = dict(model="yolov8n", width=0.0625, depth=0.33)


def _save_like_ultralytics(model: torch.nn.Module, path: Path) -> Path:
    """The layout of ultralytics' ``BaseTrainer.save_model`` (pickled fp16 modules, args as a dict)."""
    torch.save({
        "epoch": -1, "best_fitness": None, "model": None, "ema": copy.deepcopy(model).half(), "updates": 0,
        "optimizer": None, "train_args": {"imgsz": 64, "task": "detect"}, "date": datetime.now().isoformat(),
        "version": "8.4.190",
    }, path)
    return path


@pytest.fixture(scope="module")
def silu_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SiLU YOLOv8 (3 classes) with random BatchNorm statistics, saved as ultralytics saves it."""
    torch.manual_seed(0)
    model = build_yolo(activation="silu", num_classes=3, **TINY)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-1.0, 1.0)
    return _save_like_ultralytics(model, tmp_path_factory.mktemp("ultra") / "best.pt")


def _trainer(nc: int) -> QCFSDetectionTrainer:
    """The spikedet trainer with only what ``get_model`` reads (no dataset, no run folder)."""
    trainer = QCFSDetectionTrainer.__new__(QCFSDetectionTrainer)
    trainer.data = {"nc": nc, "names": {i: f"c{i}" for i in range(nc)}}
    trainer.args = SimpleNamespace(cls_remap=True)
    return trainer


def _cfg(init: Path) -> dict:
    config, _, _ = read_init(init)
    return {**config["yaml"], "spikedet": {"activation": "qcfs", "levels": 4, "clip": 4.0, "init": str(init)}}


def test_qcfs_model_starts_from_exactly_the_ultralytics_weights(silu_checkpoint: Path) -> None:
    source = torch.load(silu_checkpoint, weights_only=False)["ema"].float().state_dict()
    model = _trainer(3).get_model(_cfg(silu_checkpoint), verbose=False)
    state = model.state_dict()
    assert any(k.endswith("act.clip") for k in state)  # the activations are QCFS now
    for key, value in source.items():
        assert torch.equal(state[key], value), key


def test_a_foreign_class_count_keeps_backbone_and_neck(silu_checkpoint: Path) -> None:
    source = torch.load(silu_checkpoint, weights_only=False)["ema"].float().state_dict()
    model = _trainer(5).get_model(_cfg(silu_checkpoint), verbose=False)
    state = model.state_dict()
    head = f"model.{len(model.model) - 1}."
    assert model.model[-1].nc == 5
    for key, value in source.items():
        if not key.startswith(head):
            assert torch.equal(state[key], value), key
    assert state[f"{head}cv3.0.2.weight"].shape[0] == 5


class _Hostile:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = _Hostile()
    _Hostile.marker = marker
    path = tmp_path / "yolov8n.pt"
    torch.save({"model": hostile}, path)
    with pytest.raises(CheckpointError, match=r"refusing to unpickle '(posix|os|nt)\.system'"):
        read_init(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "unsafe"),
    [
        ("torch.nn.modules.conv.Conv2d", False),
        ("ultralytics.nn.modules.conv.Conv", False),
        ("ultralytics.nn.tasks.DetectionModel", False),
        ("ultralytics.utils.IterableSimpleNamespace", False),
        ("ultralytics.nn.tasks.load_checkpoint", True),  # a function, not a layer
        ("ultralytics.models.yolo.model.YOLO", True),  # downloads and unpickles in its constructor
        ("torch.hub.load", True),
        ("builtins.eval", True),
        ("subprocess.Popen", True),
    ],
)
def test_the_unpickling_policy(name: str, unsafe: bool) -> None:
    assert unsafe_global(name) is unsafe


def test_damaged_and_foreign_files_fail_with_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="neither a spikedet nor an ultralytics checkpoint"):
        read_init(junk)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_init(tmp_path / "missing.pt")


def test_attention_models_are_refused(tmp_path: Path) -> None:
    from spikedet.env import import_ultralytics

    import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    cfg = yaml_model_load("yolo11n.yaml")
    model = DetectionModel(cfg, nc=3, verbose=False)
    path = _save_like_ultralytics(model, tmp_path / "yolo11n.pt")
    with pytest.raises(CheckpointError, match=r"\(attention\)"):
        load_ultralytics_model(path)


def test_train_from_an_ultralytics_run(tiny_yolo_checkpoint, tmp_path: Path) -> None:
    """A SiLU ultralytics run's last.pt starts a QCFS run end to end (architecture taken from the checkpoint)."""
    from spikedet.engine.train import train_detector

    _, data = tiny_yolo_checkpoint
    silu = train_detector(data, out=tmp_path / "silu", activation="silu", imgsz=64, batch=8, epochs=1, **TINY)
    last = tmp_path / "silu" / "train" / "weights" / "last.pt"
    assert last.is_file() and load_checkpoint(silu)[0]["activation"] == "silu"
    qcfs = train_detector(data, out=tmp_path / "qcfs", init=last, imgsz=64, batch=8, epochs=1)
    config, state, _ = load_checkpoint(qcfs)
    assert config["activation"] == "qcfs" and config["yaml"]["scales"] == load_checkpoint(silu)[0]["yaml"]["scales"]


@pytest.mark.parametrize("layout", ["coco", "voc", "yolo"])
def test_ultralytics_init_on_every_data_layout(silu_checkpoint: Path, tmp_path_factory, layout: str) -> None:
    """train_det --init yolov8n.pt on COCO-, VOC- and YOLO-layout data (one epoch, 64 px)."""
    from spikedet.data import export_ultralytics, generate_synthetic, load_dataset
    from spikedet.engine.train import train_detector

    root = tmp_path_factory.mktemp(f"layout_{layout}")
    data = generate_synthetic(root / "data", num_images=16, image_size=64, seed=7, layout="both", progress=False)
    if layout == "yolo":
        train = load_dataset(data, "train")
        data = export_ultralytics(train, load_dataset(data, "val", class_names=train.class_names), root / "yolo")
    checkpoint = train_detector(data, out=root / "out", init=silu_checkpoint, imgsz=64, batch=8, epochs=1)
    config, _, _ = load_checkpoint(checkpoint)
    assert config["activation"] == "qcfs" and config["num_classes"] == 6 and config["init"] == str(silu_checkpoint)


def test_python_api_trains_from_an_ultralytics_checkpoint(silu_checkpoint: Path, tiny_yolo_checkpoint, tmp_path: Path) -> None:
    import spikedet as sd

    _, data = tiny_yolo_checkpoint
    det = sd.train(data, out=tmp_path, init=silu_checkpoint, imgsz=64, batch=8, epochs=1)
    assert det.kind == "ann" and det.config["activation"] == "qcfs" and det.config["init"] == str(silu_checkpoint)
