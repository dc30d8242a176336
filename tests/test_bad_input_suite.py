"""Bad input never crashes a tool and never loses data (issue 15).

A table of malformed arguments, checkpoints, VOC / COCO / YOLO datasets, images, video sources and output paths.
Each case ends in one of two ways: the tool exits with status 2 and one line ``error: ...`` naming what is wrong
(before any long work), or the input is read with a counted warning for each thing dropped and every other record
intact. No case may raise: an uncaught exception fails the test with its traceback.

The tools run in-process (``spikedet.commands.<tool>.main``); dataset cases call ``load_dataset`` inside
``run_cli``, the wrapper every tool uses. A few subprocess cases at the end show the real tools behave the same.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from bad_input_data import (
    GOOD, add_voc_image, make_coco, make_voc, make_yolo, truncate, voc_xml, write_coco_json, write_exif_rotated,
    write_image, write_png_bomb,
)
import spikedet.engine.evaluate  # noqa: F401  (imports ultralytics outside any capsys: its log handler keeps a live stream)
from spikedet.cli import run_cli
from spikedet.data import DetectionDataset, load_dataset

ROOT = Path(__file__).resolve().parents[1]
ANN = ROOT / "weights" / "yolov8n_qcfs_l4_synthetic.pt"
SNN = ROOT / "weights" / "yolov8n_qcfs_l4_synthetic_ft.pt"
SSD = ROOT / "weights" / "ssd_vgg_slim_qcfs_l4_bccd.pt"


def run_tool(tool: str, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Exit status and stderr of ``spikedet <tool> argv`` run in this process."""
    capsys.readouterr()
    try:
        importlib.import_module(f"spikedet.commands.{tool}").main(argv)
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err


def run_entry(job: Callable[[], object], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Exit status and stderr of ``job`` run inside ``run_cli``, the wrapper of every tool."""
    capsys.readouterr()
    try:
        run_cli(job)
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, message: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err[-2000:]


def assert_intact(dataset: DetectionDataset, count: int) -> None:
    """``count`` records, among them the two ``GOOD`` images with their exact size, boxes and classes."""
    assert len(dataset.records) == count, dataset.summary()
    by_name = {Path(r.path).name: r for r in dataset.records}
    for stem, (w, h, objects) in GOOD.items():
        record = by_name[f"{stem}.jpg"]
        assert (record.width, record.height) == (w, h)
        np.testing.assert_allclose(record.boxes, [o[1:] for o in objects], atol=0.01)
        assert [dataset.class_names[i] for i in record.labels] == [o[0] for o in objects]


# ---------------------------------------------------------------------------------------------- arguments
# (tool, argv, message); {file}: an existing file, {dir}: an existing folder, {missing}: a path that is not there
ARGUMENT_CASES = [
    ("convert", ["--imgsz", "33"], "--imgsz must be a positive multiple of 32"),
    ("convert", ["--imgsz", "-32"], "--imgsz must be a positive multiple of 32"),
    ("convert", ["--imgsz", "abc"], "argument --imgsz: invalid int value"),
    ("convert", ["--imgsz", "32000"], "--imgsz must be a positive multiple of 32 (the detectors' largest stride) up to 4096"),
    ("demo", ["--no-show", "--imgsz", "8192"], "up to 4096, got 8192"),
    ("convert", ["--batch", "0"], "--batch must be an integer >= 1"),
    ("convert", ["--batch", "1.5"], "argument --batch: invalid int value"),
    ("convert", ["--max-images", "-1"], "--max-images must be an integer >= 1"),
    ("convert", ["--calib-images", "0", "--method", "dual_phase"], "--calib-images must be an integer >= 1"),
    ("convert", ["--T", "0"], "--T expects integers >= 1"),
    ("convert", ["--T", "a"], "--T expects integers >= 1 separated by commas"),
    ("convert", ["--T", "1,,2"], "--T expects integers >= 1 separated by commas"),
    ("convert", ["--T", "-4"], "--T expects integers >= 1"),
    ("convert", ["--T", ""], "--T expects integers >= 1 separated by commas"),
    ("convert", ["--method", "nope"], "unknown method 'nope'"),
    ("convert", ["--set", "neuron_args.eps"], "--set expects SECTION.NAME=VALUE"),
    ("convert", ["--set", "=1"], "--set expects SECTION.NAME=VALUE"),
    ("convert", ["--method", "fast_snn", "--set", "neuron_args.eps=abc"], "'neuron_args.eps' expects a number"),
    ("convert", ["--method", "dual_phase", "--set", "calibration.images=1.5"], "'calibration.images' expects an integer"),
    ("convert", ["--method", "dual_phase", "--set", "calibration.images=true"], "'calibration.images' expects an integer"),
    ("convert", ["--method", "dual_phase", "--set", "calibration.lr=fast"], "'calibration.lr' expects a number"),
    ("convert", ["--method", "qcfs", "--set", "neuron_args.eps=1"], "recipe 'qcfs' has no neuron_args"),
    ("convert", ["--method", "fast_snn", "--set", "neuron_args.nope=1"], "neuron_args has no 'nope'"),
    ("convert", ["--method", "fast_snn", "--set", "foo.bar=1"], "recipe setting 'foo.bar'"),
    ("convert", ["--method", "fast_snn", "--set", "a=1", "--set", "a=2"], "--set given twice for 'a'"),
    ("convert", ["--weights", str(SNN), "--method", "qcfs"], "is already spiking"),
    ("convert", ["--weights", "{missing}"], "checkpoint not found"),
    ("convert", ["--weights", "{dir}"], "checkpoint not found"),
    ("convert", ["--weights", "{file}"], "is not a spikedet checkpoint"),
    ("convert", ["--weights", str(ANN), "--data", "{missing}"], "dataset not found"),
    ("convert", ["--weights", str(ANN), "--data", "{dir}"], "unknown dataset layout"),
    ("convert", ["--bogus"], "unrecognized arguments: --bogus"),
    ("eval", ["--imgsz", "100"], "--imgsz must be a positive multiple of 32"),
    ("eval", ["--batch", "-1"], "--batch must be an integer >= 1"),
    ("eval", ["--max-images", "0"], "--max-images must be an integer >= 1"),
    ("eval", ["--T", "2,x"], "--T expects integers >= 1 separated by commas"),
    ("eval", ["--method", "nope"], "unknown method 'nope'"),
    ("eval", ["--method", "dual_phase"], "calibrates on data: convert first"),
    ("eval", ["--weights", "{missing}"], "checkpoint not found"),
    ("eval", ["--weights", str(ANN), "--data", "{missing}"], "dataset not found"),
    ("train", ["--imgsz", "0"], "--imgsz must be a positive multiple of 32"),
    ("train", ["--imgsz", "48"], "--imgsz must be a positive multiple of 32"),
    ("train", ["--batch", "0"], "--batch must be an integer >= 1"),
    ("train", ["--epochs", "-3"], "--epochs must be an integer >= 1"),
    ("train", ["--noise-p", "1.5"], "--noise-p must be a number from 0 to 1"),
    ("train", ["--noise-p", "nan"], "--noise-p must be a number from 0 to 1"),
    ("train", ["--lr0", "0"], "--lr0 must be a finite number > 0"),
    ("train", ["--lr0=-1e-3"], "--lr0 must be a finite number > 0"),
    ("train", ["--lr0", "inf"], "--lr0 must be a finite number > 0"),
    ("train", ["--width", "0"], "--width must be a finite number > 0"),
    ("train", ["--depth", "-1"], "--depth must be a finite number > 0"),
    ("train", ["--levels", "x"], "--levels must be an integer"),
    ("train", ["--levels", "0"], "levels must be >= 1"),
    ("train", ["--levels", "al"], "--levels al needs --init"),
    ("train", ["--activation", "relu"], "argument --activation: invalid choice"),
    ("train", ["--select", "worst"], "argument --select: invalid choice"),
    ("train", ["--set", "lr0"], "--set expects KEY=VALUE"),
    ("train", ["--set", "lr00=0.1"], "unknown ultralytics train settings ['lr00']"),
    ("train", ["--resume"], "--resume is for SSD training"),
    ("train", ["--init", "{missing}"], "checkpoint not found"),
    ("train", ["--init", "{file}"], "neither a spikedet nor an ultralytics checkpoint"),
    ("train", ["--data", "{missing}"], "dataset not found"),
    ("finetune", ["--weights", str(SNN), "--imgsz", "48"], "--imgsz must be a positive multiple of 32"),
    ("finetune", ["--weights", str(SNN), "--epochs", "0"], "--epochs must be an integer >= 1"),
    ("finetune", ["--weights", str(SNN), "--batch", "0"], "--batch must be an integer >= 1"),
    ("finetune", ["--weights", str(SNN), "--T", "0"], "--T expects integers >= 1"),
    ("finetune", ["--weights", str(SNN), "--distill", "-1"], "--distill must be a finite number >= 0"),
    ("finetune", ["--weights", str(SNN), "--layer-distill", "nan"], "--layer-distill must be a finite number >= 0"),
    ("finetune", ["--weights", str(SNN), "--surrogate", "box"], "unknown surrogate 'box'"),
    ("finetune", ["--weights", "{missing}"], "checkpoint not found"),
    ("finetune", [], "the following arguments are required: --weights"),
    ("demo", ["--no-show", "--T", "0"], "--T must be an integer >= 1"),
    ("demo", ["--no-show", "--imgsz", "33"], "--imgsz must be a positive multiple of 32"),
    ("demo", ["--no-show", "--steps-per-frame", "0"], "--steps-per-frame must be an integer >= 1"),
    ("demo", ["--no-show", "--window", "-1"], "--window must be an integer >= 0"),
    ("demo", ["--no-show", "--leak", "1.5"], "--leak must be a number from 0 to 1"),
    ("demo", ["--no-show", "--pool-decay", "-0.1"], "--pool-decay must be a number from 0 to 1"),
    ("demo", ["--no-show", "--conf", "2"], "--conf must be a number from 0 to 1"),
    ("demo", ["--no-show", "--iou", "nan"], "--iou must be a number from 0 to 1"),
    ("demo", ["--no-show", "--max-frames", "0"], "--max-frames must be an integer >= 1"),
    ("demo", ["--no-show", "--backend", "tensorrt"], "tensorrt"),
    ("export", ["--T", "0"], "--T must be an integer >= 1"),
    ("export", ["--imgsz", "50"], "--imgsz must be a positive multiple of 32"),
    ("export", ["--images", "0"], "--images must be an integer >= 1"),
    ("export", ["--tolerance", "0"], "--tolerance must be a finite number > 0"),
    ("export", ["--min-match", "1.1"], "--min-match must be a number from 0 to 1"),
    ("export", ["--opset", "0"], "--opset must be from 1 to"),
    ("export", ["--opset", "999"], "--opset must be from 1 to"),
    ("export", ["--weights", "{missing}"], "checkpoint not found"),
    ("synthetic", ["--out", "{dir}/new", "--images", "0"], "--images must be an integer >= 1"),
    ("synthetic", ["--out", "{dir}/new", "--size", "0"], "--size must be an integer >= 1"),
    ("synthetic", ["--out", "{dir}/new", "--workers", "0"], "--workers must be an integer >= 1"),
    ("synthetic", ["--out", "{dir}/new", "--workers", "100000"], "--workers must be at most"),
    ("synthetic", ["--out", "{dir}/new", "--size", "100000"], "--size must be at most 4096"),
    ("synthetic", ["--out", "{dir}/new", "--val-fraction", "1.5"], "0 < val_fraction < 1"),
    ("synthetic", ["--out", "{dir}/new", "--images", "1"], "num_images >= 2"),
    ("synthetic", ["--out", "{dir}/new", "--layout", "yolo"], "argument --layout: invalid choice"),
    ("synthetic", [], "the following arguments are required: --out"),
    ("levels", ["--images", "0"], "--images must be an integer >= 1"),
    ("levels", ["--choices", "x"], "--levels must be an integer"),
    ("levels", ["--weights", "{missing}"], "checkpoint not found"),
    ("levels", ["--weights", str(SNN)], "holds a SNN model, but a ANN model is required"),
]

# A dataset that does not fit the tool's request, through the tool ({voc}: the tiny VOC set, split val only).
DATASET_ARGUMENT_CASES = [
    ("eval", ["--weights", str(ANN), "--data", "{voc}", "--split", "nope"], "split file not found (splits here: ['val'])"),
    ("eval", ["--weights", str(ANN), "--data", "{voc}"], "none of the split pairs"),
    ("eval", ["--weights", str(ANN), "--data", "{voc}", "--split", "val"], "class 'cat' is not in class_names"),
    ("convert", ["--weights", str(ANN), "--data", "{voc}", "--split", "val"], "class 'cat' is not in class_names"),
    ("train", ["--data", "{voc}"], "none of the split pairs"),
    ("finetune", ["--weights", str(SNN), "--data", "{voc}"], "none of the split pairs"),
    ("levels", ["--data", "{voc}"], "none of the split pairs"),
]

# Output paths: checked before the work, never after it (an existing file is never overwritten by a folder).
OUTPUT_CASES = [
    ("convert", ["--out", "{file}"], "is a file, not a folder"),
    ("convert", ["--out", "{file}/sub"], "is a file, not a folder"),
    ("eval", ["--json", "{dir}"], "is a folder; give a file name"),
    ("eval", ["--json", "{file}/summary.json"], "is a file, not a folder"),
    ("train", ["--out", "{file}"], "is a file, not a folder"),
    ("finetune", ["--weights", str(SNN), "--out", "{file}"], "is a file, not a folder"),
    ("finetune", ["--weights", str(SNN), "--out", "{file}/run"], "is a file, not a folder"),
    ("synthetic", ["--out", "{file}"], "is a file, not a folder"),
    ("export", ["--out", "{dir}"], "is a folder; give a file name"),
    ("export", ["--out", "{file}/model.onnx"], "is a file, not a folder"),
    ("demo", ["--no-show", "--save", "{dir}"], "is a folder; give a file name"),
    ("demo", ["--no-show", "--save", "{file}/out.mp4"], "is a file, not a folder"),
    ("levels", ["--out", "{dir}"], "is a folder; give a file name"),
    ("levels", ["--out", "{file}/plot.png"], "is a file, not a folder"),
]


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    file = tmp_path / "taken.txt"
    file.write_text("not a folder")
    (tmp_path / "folder").mkdir()
    return {"file": str(file), "dir": str(tmp_path / "folder"), "missing": str(tmp_path / "missing" / "x.pt"),
            "voc": str(make_voc(tmp_path / "voc"))}


def _case_id(tool: str, argv: list[str]) -> str:
    return " ".join([tool, *(a if not a.startswith("/") else Path(a).name for a in argv)])


@pytest.mark.parametrize(("tool", "argv", "message"), ARGUMENT_CASES + DATASET_ARGUMENT_CASES + OUTPUT_CASES,
                         ids=[_case_id(t, a) for t, a, _ in ARGUMENT_CASES + DATASET_ARGUMENT_CASES + OUTPUT_CASES])
def test_bad_argument_is_one_line(tool: str, argv: list[str], message: str, places: dict[str, str], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    work = tmp_path / "work"  # where the default outputs (runs/...) would go
    work.mkdir()
    monkeypatch.chdir(work)
    code, err = run_tool(tool, [a.format(**places) for a in argv], capsys)
    assert_one_line_error(code, err, message)
    assert Path(places["file"]).read_text() == "not a folder"
    assert not any(work.iterdir())  # refused before anything was written


@pytest.mark.parametrize(("argv", "message"), [(["nope"], "unknown command 'nope'; commands: convert, eval"),
                                               (["--imgsz"], "unknown command '--imgsz'")], ids=["nope", "an option"])
def test_unknown_command_is_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    from spikedet.commands import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert_one_line_error(exit.value.code, capsys.readouterr().err, message)


# (recipe YAML given as --method, message)
RECIPE_CASES = [
    ("neuron: [if\n", "not a readable YAML recipe"),
    ("- if\n- online\n", "a recipe is a mapping"),
    (b"neuron: \xff\n", "not a readable YAML recipe"),
    ("neuron: lif\n", "unknown neuron 'lif'"),
    ("neuron: [if]\n", "unknown neuron"),
    ("neuron: if\nneuron_args: eps\n", "'neuron_args' must be a mapping"),
    ("neuron: if\ncalibration: dual_phase\n", "'calibration' must be a mapping"),
    ("neuron: if\ncalibration:\n  kind: magic\n", "unknown calibration 'magic'"),
    ("neuron: if\nschedule: sideways\n", "sideways"),
]


@pytest.mark.parametrize(("text", "message"), RECIPE_CASES, ids=[m for _, m in RECIPE_CASES])
def test_bad_recipe_file_is_one_line(text: str | bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = tmp_path / "mine.yaml"
    recipe.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, err = run_tool("convert", ["--method", str(recipe), "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------- checkpoints
def _blob(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _with_config(base: Path, change: Callable[[dict], None]) -> dict:
    blob = _blob(base)
    config = json.loads(blob["config"])
    change(config)
    return {**blob, "config": json.dumps(config)}


def _with_state(base: Path, change: Callable[[dict], None]) -> dict:
    blob = _blob(base)
    change(blob["state_dict"])
    return blob


def _pop(key: str) -> Callable[[dict], None]:
    return lambda d: d.pop(key)


def _put(key: str, value: object) -> Callable[[dict], None]:
    return lambda d: d.__setitem__(key, value)


class _Hostile:
    """Pickles to a call of ``os.system``: loading it must never run the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# (name, build(tmp) -> object torch.save writes, or bytes written as they are; message)
CHECKPOINT_CASES = [
    ("empty file", lambda t: b"", "is not a spikedet checkpoint"),
    ("text file", lambda t: b"hello", "is not a spikedet checkpoint"),
    ("random bytes", lambda t: bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "is not a spikedet checkpoint"),
    ("truncated", lambda t: ANN.read_bytes()[:100_000], "is not a spikedet checkpoint"),
    ("hostile pickle", lambda t: {"model": _Hostile(t / "pwned")}, "is not a spikedet checkpoint"),
    ("a list", lambda t: [1, 2, 3], "format tag 'spikedet/1' missing"),
    ("a tensor", lambda t: torch.zeros(3), "format tag 'spikedet/1' missing"),
    ("no format tag", lambda t: {k: v for k, v in _blob(ANN).items() if k != "format"}, "format tag 'spikedet/1' missing"),
    ("other format", lambda t: {**_blob(ANN), "format": "spikedet/0"}, "format tag 'spikedet/1' missing"),
    ("kind missing", lambda t: {k: v for k, v in _blob(ANN).items() if k != "kind"}, "entry 'kind' must be 'ann' or 'snn'"),
    ("kind bogus", lambda t: {**_blob(ANN), "kind": "cnn"}, "entry 'kind' must be 'ann' or 'snn'"),
    ("config missing", lambda t: {k: v for k, v in _blob(ANN).items() if k != "config"}, "entry 'config' (a JSON text) is missing"),
    ("config not JSON", lambda t: {**_blob(ANN), "config": "{family: yolo"}, "entry 'config' is not valid JSON"),
    ("config a JSON list", lambda t: {**_blob(ANN), "config": "[1, 2]"}, "entry 'config' must be a JSON object"),
    ("state missing", lambda t: {k: v for k, v in _blob(ANN).items() if k != "state_dict"}, "entry 'state_dict' must map"),
    ("state not tensors", lambda t: _with_state(ANN, _put("model.0.conv.weight", [1.0])), "entry 'state_dict' must map"),
    ("num_classes missing", lambda t: _with_config(ANN, _pop("num_classes")), "'num_classes' must be an integer >= 1"),
    ("num_classes 0", lambda t: _with_config(ANN, _put("num_classes", 0)), "'num_classes' must be an integer >= 1"),
    ("num_classes text", lambda t: _with_config(ANN, _put("num_classes", "6")), "'num_classes' must be an integer >= 1"),
    ("class_names text", lambda t: _with_config(ANN, _put("class_names", "circle")), "'class_names' must be a list of names"),
    ("class_names numbers", lambda t: _with_config(ANN, _put("class_names", list(range(6)))), "'class_names' must be a list of names"),
    ("fewer names than head", lambda t: _with_config(ANN, lambda c: c["class_names"].pop()), "5 class names for a head of 6 classes"),
    ("more names than head", lambda t: _with_config(ANN, lambda c: c["class_names"].append("x")), "7 class names for a head of 6 classes"),
    ("imgsz 0 in config", lambda t: _with_config(ANN, _put("imgsz", 0)), "config 'imgsz' must be a positive multiple of 32"),
    ("imgsz 33 in config", lambda t: _with_config(ANN, _put("imgsz", 33)), "config 'imgsz' must be a positive multiple of 32"),
    ("family unknown", lambda t: _with_config(ANN, _put("family", "rcnn")), "unknown detector family 'rcnn'"),
    ("model yaml missing", lambda t: _with_config(ANN, _pop("yaml")), "does not describe a buildable model"),
    ("model yaml broken", lambda t: _with_config(ANN, _put("yaml", {"backbone": 3})), "does not describe a buildable model"),
    ("head smaller than weights", lambda t: _with_config(ANN, lambda c: c.update(num_classes=5, class_names=c["class_names"][:5])),
     "weights do not fit the model its config describes (size mismatch"),
    ("tensor missing", lambda t: _with_state(ANN, _pop("model.0.conv.weight")), "weights do not fit the model its config describes"),
    ("tensor of wrong shape", lambda t: _with_state(ANN, _put("model.0.conv.weight", torch.zeros(2, 2))), "size mismatch"),
    ("extra tensor", lambda t: _with_state(ANN, _put("model.99.weight", torch.zeros(1))), "weights do not fit"),
    ("snn recipe missing", lambda t: _with_config(SNN, _pop("recipe")), "needs its conversion 'recipe' in the config"),
    ("snn recipe text", lambda t: _with_config(SNN, _put("recipe", "qcfs")), "needs its conversion 'recipe' in the config"),
    ("snn recipe neuron unknown", lambda t: _with_config(SNN, lambda c: c["recipe"].update(neuron="lif")), "unknown neuron 'lif'"),
    ("snn recipe schedule unknown", lambda t: _with_config(SNN, lambda c: c["recipe"].update(schedule={"kind": "nope"})),
     "its conversion recipe cannot be applied"),
    ("snn recipe name missing", lambda t: _with_config(SNN, lambda c: c["recipe"].pop("name")), "its conversion recipe cannot be applied"),
    ("ssd fewer names than head", lambda t: _with_config(SSD, lambda c: c["class_names"].pop()), "2 class names for a head of 3 classes"),
    ("ssd head smaller than weights", lambda t: _with_config(SSD, lambda c: c.update(num_classes=2, class_names=c["class_names"][:2])),
     "weights do not fit the model its config describes (size mismatch"),
    ("ssd backbone unknown", lambda t: _with_config(SSD, _put("model", "ssd_resnet")), "does not describe a buildable model"),
    ("snn neuron state missing", lambda t: _with_state(SNN, lambda s: s.pop(next(k for k in s if k.endswith(".v0")))),
     "weights do not fit"),
]


@pytest.mark.parametrize(("name", "build", "message"), CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_bad_checkpoint_is_one_line(name: str, build: Callable[[Path], object], message: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bad.pt"
    content = build(tmp_path)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    code, err = run_tool("eval", ["--weights", str(path), "--json", str(tmp_path / "out" / "summary.json")], capsys)
    assert_one_line_error(code, err, message)
    assert str(path) in err  # the line names the file
    assert not (tmp_path / "pwned").exists()  # no pickled code ran
    assert not (tmp_path / "out").exists()  # refused before any work


def test_hostile_pickle_is_refused_as_training_start(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``--init`` also reads ultralytics checkpoints through an allow-list: a pickled ``os.system`` names itself."""
    path = tmp_path / "init.pt"
    torch.save({"model": _Hostile(tmp_path / "pwned")}, path)
    code, err = run_tool("train", ["--init", str(path), "--out", str(tmp_path / "run")], capsys)
    assert_one_line_error(code, err, "refusing to unpickle 'posix.system'")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------- datasets
def _voc_object(name: str = "cat", box: tuple = ("5", "5", "30", "30"), difficult: str = "0") -> str:
    tags = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{tags}</bndbox></object>"


def _voc_c(objects: list, **kwargs) -> Callable[[Path], None]:
    """Adds image ``c`` (64 × 48) annotated with ``objects``."""
    return lambda root: add_voc_image(root, "c", voc_xml("c", 64, 48, objects), **kwargs)


def _voc_broken_image(damage: Callable[[Path], None], suffix: str = "jpg") -> Callable[[Path], None]:
    def change(root: Path) -> None:
        image = add_voc_image(root, "c", voc_xml("c", 64, 48, [("cat", 1, 1, 20, 20)], filename=f"c.{suffix}"), image=suffix)
        damage(image)
    return change


def _voc_split(text: str | bytes) -> Callable[[Path], None]:
    path = "ImageSets/Main/val.txt"
    return lambda root: (root / path).write_bytes(text if isinstance(text, bytes) else text.encode())


# (name, change(root), warnings, records kept)
VOC_WARNING_CASES = [
    ("annotation missing", lambda r: add_voc_image(r, "c", None), {"annotation missing (image skipped)": 1}, 2),
    ("annotation malformed", lambda r: add_voc_image(r, "c", "<annotation><object>"), {"annotation unreadable (image skipped)": 1}, 2),
    ("annotation empty", lambda r: add_voc_image(r, "c", ""), {"annotation unreadable (image skipped)": 1}, 2),
    ("annotation not UTF-8", lambda r: (add_voc_image(r, "c", ""), (r / "Annotations/c.xml").write_bytes(b"<annotation>\xff\xfe</annotation>")),
     {"annotation unreadable (image skipped)": 1}, 2),
    ("image missing", lambda r: (add_voc_image(r, "c", voc_xml("c", 64, 48, [])), (r / "JPEGImages/c.jpg").unlink()),
     {"image missing (skipped)": 1}, 2),
    ("image is text", _voc_broken_image(lambda p: p.write_text("not an image")), {"image unreadable (skipped)": 1}, 2),
    ("image empty", _voc_broken_image(lambda p: p.write_bytes(b"")), {"image unreadable (skipped)": 1}, 2),
    ("jpeg truncated", _voc_broken_image(truncate), {"image truncated (skipped)": 1}, 2),
    ("jpeg cut to its header", _voc_broken_image(lambda p: truncate(p, 0.2)), {"image truncated (skipped)": 1}, 2),
    ("png truncated", _voc_broken_image(truncate, "png"), {"image truncated (skipped)": 1}, 2),
    ("decompression bomb", _voc_broken_image(write_png_bomb, "png"), {"image too large (over 100 megapixels) (skipped)": 1}, 2),
    ("object without name", _voc_c([("cat", 1, 1, 20, 20), _voc_object(name="")]), {"malformed object dropped": 1}, 3),
    ("object without box", _voc_c([("cat", 1, 1, 20, 20), "<object><name>cat</name></object>"]), {"malformed object dropped": 1}, 3),
    ("coordinate not a number", _voc_c([("cat", 1, 1, 20, 20), _voc_object(box=("5", "x", "30", "30"))]), {"malformed object dropped": 1}, 3),
    ("coordinate missing", _voc_c([("cat", 1, 1, 20, 20), _voc_object(box=("5", "5", "30", ""))]), {"malformed object dropped": 1}, 3),
    ("box past the border", _voc_c([("cat", 1, 1, 20, 20), ("dog", 40, 30, 90, 70)]), {"box clipped to image": 1}, 3),
    ("box reversed", _voc_c([("cat", 1, 1, 20, 20), ("dog", 30, 30, 10, 10)]), {"degenerate box dropped": 1}, 3),
    ("box a click", _voc_c([("cat", 1, 1, 20, 20), _voc_object(box=("9", "9", "9", "20"))]), {"degenerate box dropped": 1}, 3),
    ("box NaN", _voc_c([("cat", 1, 1, 20, 20), _voc_object(box=("nan", "5", "30", "30"))]), {"degenerate box dropped": 1}, 3),
    ("box outside the image", _voc_c([("cat", 1, 1, 20, 20), ("dog", 70, 50, 90, 60)]), {"degenerate box dropped": 1}, 3),
    ("size missing in XML", lambda r: add_voc_image(r, "c", voc_xml("c", None, None, [("cat", 1, 1, 20, 20)])),
     {"size missing in XML (read from image)": 1}, 3),
    ("size wrong in XML", lambda r: add_voc_image(r, "c", voc_xml("c", 640, 480, [("cat", 1, 1, 20, 20)])),
     {"XML size differs from image (image used)": 1}, 3),
    ("id listed twice", _voc_split("a\nb\na\n"), {"id listed again in split file (kept once)": 1}, 2),
    ("id listed three times", _voc_split("a\na\nb\na\n"), {"id listed again in split file (kept once)": 2}, 2),
]

# (name, change(root), records kept): odd but valid input read without a warning
VOC_CLEAN_CASES = [
    ("byte-order mark in split file", _voc_split("\ufeffa\nb\n"), 2),
    ("CRLF split file", _voc_split("a\r\nb\r\n"), 2),
    ("blank lines and columns in split file", _voc_split("\n a  1\n\nb -1\n\n"), 2),
    ("byte-order mark in XML", lambda r: add_voc_image(r, "c", "\ufeff" + voc_xml("c", 64, 48, [("cat", 1, 1, 20, 20)])), 3),
    ("difficult flag as text", _voc_c([("cat", 1, 1, 20, 20), _voc_object(difficult="yes")]), 3),
    ("image of 5 px", lambda r: add_voc_image(r, "c", voc_xml("c", 5, 5, []), width=5, height=5), 3),
    ("png image", lambda r: add_voc_image(r, "c", voc_xml("c", 64, 48, [("cat", 1, 1, 20, 20)], filename="c.png"), image="png"), 3),
]

VOC_ERROR_CASES = [
    ("split file missing", lambda r: (r / "ImageSets/Main/val.txt").unlink(), "split file not found"),
    ("split file empty", _voc_split(""), "split file is empty"),
    ("split file blank", _voc_split("\n\n  \n"), "split file is empty"),
    ("split file not UTF-8", _voc_split(b"a\n\xff\xfeb\n"), "split file is not UTF-8 text"),
    ("every annotation broken", lambda r: [(r / f"Annotations/{s}.xml").write_text("<annotation>") for s in GOOD],
     "split 'val' has no usable images (problems: annotation unreadable (image skipped) x2)"),
    ("every image missing", lambda r: [(r / f"JPEGImages/{s}.jpg").unlink() for s in GOOD], "has no usable images"),
    ("every listed id unknown", _voc_split("x\ny\n"), "has no usable images (problems: annotation missing (image skipped) x2)"),
]


def _read(root: Path) -> DetectionDataset:
    return load_dataset(root, "val")


@pytest.mark.parametrize(("name", "change", "warnings", "kept"), VOC_WARNING_CASES, ids=[c[0] for c in VOC_WARNING_CASES])
def test_voc_problem_is_counted(name: str, change: Callable, warnings: dict, kept: int, tmp_path: Path) -> None:
    root = make_voc(tmp_path / "voc")
    change(root)
    dataset = _read(root)
    assert dataset.warnings == Counter(warnings)
    assert_intact(dataset, kept)


@pytest.mark.parametrize(("name", "change", "kept"), VOC_CLEAN_CASES, ids=[c[0] for c in VOC_CLEAN_CASES])
def test_odd_but_valid_voc_is_read_whole(name: str, change: Callable, kept: int, tmp_path: Path) -> None:
    root = make_voc(tmp_path / "voc")
    change(root)
    dataset = _read(root)
    assert dataset.warnings == Counter()
    assert_intact(dataset, kept)


@pytest.mark.parametrize(("name", "change", "message"), VOC_ERROR_CASES, ids=[c[0] for c in VOC_ERROR_CASES])
def test_unusable_voc_is_one_line(name: str, change: Callable, message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_voc(tmp_path / "voc")
    change(root)
    assert_one_line_error(*run_entry(lambda: _read(root), capsys), message)


def test_voc_unknown_class_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_voc(tmp_path / "voc")
    code, err = run_entry(lambda: load_dataset(root, "val", class_names=["cat"]), capsys)
    assert_one_line_error(code, err, "b.xml: class 'dog' is not in class_names ['cat']")


def test_exif_rotated_image_keeps_its_boxes_and_pixels_match(tmp_path: Path) -> None:
    """Stored 64 × 48 with orientation 6: the record is upright (48 × 64), its box in that frame is kept, and
    the pixels the evaluator decodes have the record's size."""
    from spikedet.engine.inference import image_batches

    root = make_voc(tmp_path / "voc")
    add_voc_image(root, "c", voc_xml("c", 48, 64, [("cat", 2, 30, 40, 62)]))
    write_exif_rotated(root / "JPEGImages" / "c.jpg", 64, 48, orientation=6)
    dataset = _read(root)
    assert dataset.warnings == Counter()
    assert_intact(dataset, 3)
    record = next(r for r in dataset.records if r.path.endswith("c.jpg"))
    assert (record.width, record.height) == (48, 64)
    np.testing.assert_allclose(record.boxes, [[2, 30, 40, 62]])
    batch, _ = next(image_batches(dataset.records, 64, batch_size=8))
    assert batch.shape == (3, 3, 64, 64)


@pytest.mark.parametrize("orientation", [3, 8])
def test_exif_orientation_is_applied_to_the_record(orientation: int, tmp_path: Path) -> None:
    from spikedet.data.image_check import check_image

    path = write_exif_rotated(tmp_path / "r.jpg", 64, 48, orientation=orientation)
    assert check_image(path) == (((64, 48) if orientation == 3 else (48, 64)), None)


def test_record_and_pixels_of_another_size_fail_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A file replaced after its split was read: the evaluator names it rather than mix two frames."""
    from spikedet.engine.inference import image_batches

    root = make_voc(tmp_path / "voc")
    dataset = _read(root)
    write_image(root / "JPEGImages" / "a.jpg", 32, 32)
    code, err = run_entry(lambda: list(image_batches(dataset.records, 64, 8)), capsys)
    assert_one_line_error(code, err, "a.jpg: decoded as 32x32, but its record says 64x48")


def test_api_predict_refuses_damaged_images(tmp_path: Path) -> None:
    import spikedet as sd
    from spikedet.data import DatasetError

    detector = sd.load(ANN)
    for path, reason in ((truncate(write_image(tmp_path / "t.jpg")), "truncated"),
                         (write_png_bomb(tmp_path / "b.png"), "too large"), (tmp_path / "none.jpg", "missing")):
        with pytest.raises(DatasetError, match=f"cannot read image {path}: {reason}"):
            detector.predict(path)


# ---------------------------------------------------------------------------------------------------- COCO
def _coco(change: Callable[[dict], None]) -> Callable[[Path, dict], None]:
    """Changes the json of the tiny COCO set in place."""
    def apply(root: Path, data: dict) -> None:
        change(data)
        write_coco_json(root, data)
    return apply


def _bad_ann(**fields) -> dict:
    """An annotation of image ``c`` with ``fields`` changed (a field set to ``...`` is left out)."""
    ann = {"id": 51, "image_id": 3, "category_id": 1, "bbox": [1, 1, 10, 10], **fields}
    return {k: v for k, v in ann.items() if v is not ...}


def _coco_c(bad: object = None, *, damage: Callable[[Path], None] | None = None, suffix: str = "jpg",
            annotated: bool = True) -> Callable[[Path, dict], None]:
    """Adds image ``c`` (id 3, 64 × 48) with one valid annotation (unless not ``annotated``) and ``bad`` as a
    further entry of ``annotations``; ``damage`` changes its image file."""
    def apply(root: Path, data: dict) -> None:
        image = write_image(root / "val" / f"c.{suffix}", 64, 48, seed=5)
        if damage is not None:
            damage(image)
        data["images"].append({"id": 3, "file_name": f"c.{suffix}", "width": 64, "height": 48})
        if annotated:
            data["annotations"].append({"id": 50, "image_id": 3, "category_id": 1, "bbox": [1, 1, 10, 10]})
        if bad is not None:
            data["annotations"].append(bad)
        write_coco_json(root, data)
    return apply


COCO_WARNING_CASES = [
    ("image id listed twice", _coco(lambda d: d["images"].append(dict(d["images"][0], file_name="zz.jpg"))),
     {"image id listed again (kept once)": 1}, 2),
    ("annotation not an object", _coco_c([3, 1]), {"malformed annotation dropped": 1}, 3),
    ("annotation image id text", _coco_c(_bad_ann(image_id="3")), {"malformed annotation dropped": 1}, 3),
    ("annotation image id missing", _coco_c(_bad_ann(image_id=...)), {"malformed annotation dropped": 1}, 3),
    ("annotation of unknown image", _coco_c(_bad_ann(image_id=77)), {"annotation of unknown image dropped": 1}, 3),
    ("annotation of unknown category", _coco_c(_bad_ann(category_id=9)), {"malformed annotation dropped": 1}, 3),
    ("category id a list", _coco_c(_bad_ann(category_id=[1])), {"malformed annotation dropped": 1}, 3),
    ("bbox of three numbers", _coco_c(_bad_ann(bbox=[1, 2, 3])), {"malformed annotation dropped": 1}, 3),
    ("bbox of text", _coco_c(_bad_ann(bbox=["1", "2", "3", "4"])), {"malformed annotation dropped": 1}, 3),
    ("bbox missing", _coco_c(_bad_ann(bbox=...)), {"malformed annotation dropped": 1}, 3),
    ("bbox null", _coco_c(_bad_ann(bbox=None)), {"malformed annotation dropped": 1}, 3),
    ("bbox negative width", _coco_c(_bad_ann(bbox=[20, 5, -10, 10])), {"degenerate box dropped": 1}, 3),
    ("bbox NaN", _coco_c(_bad_ann(bbox=[float("nan"), 5, 10, 10])), {"degenerate box dropped": 1}, 3),
    ("bbox past the border", _coco_c(_bad_ann(bbox=[50, 40, 30, 30])), {"box clipped to image": 1}, 3),
    ("image missing", _coco_c(damage=lambda p: p.unlink()), {"image missing (skipped)": 1}, 2),
    ("image is text", _coco_c(damage=lambda p: p.write_text("x")), {"image unreadable (skipped)": 1}, 2),
    ("image truncated", _coco_c(damage=truncate), {"image truncated (skipped)": 1}, 2),
    ("decompression bomb", _coco_c(damage=write_png_bomb, suffix="png"), {"image too large (over 100 megapixels) (skipped)": 1}, 2),
    ("json size wrong", _coco(lambda d: d["images"][0].update(width=640)), {"json size differs from image (image used)": 1}, 2),
    ("json size missing", _coco(lambda d: d["images"][0].pop("width")), {"json size differs from image (image used)": 1}, 2),
]

COCO_CLEAN_CASES = [
    ("byte-order mark", lambda r, d: (r / "annotations/instances_val.json").write_text("\ufeff" + json.dumps(d)), 2),
    ("image without annotations", _coco_c(annotated=False), 3),
    ("extra keys everywhere", _coco(lambda d: (d.update(licenses=[], info={}), d["images"][0].update(flickr="x"))), 2),
]

COCO_ERROR_CASES = [
    ("json not JSON", lambda r, d: (r / "annotations/instances_val.json").write_text("{images: ["), "not valid JSON"),
    ("json empty", lambda r, d: (r / "annotations/instances_val.json").write_text(""), "not valid JSON"),
    ("json not UTF-8", lambda r, d: (r / "annotations/instances_val.json").write_bytes(b'{"a": "\xff"}'), "not valid JSON"),
    ("json a list", lambda r, d: write_coco_json(r, [d]), "not a COCO detection file"),
    ("categories missing", _coco(lambda d: d.pop("categories")), "not a COCO detection file"),
    ("images not a list", _coco(lambda d: d.update(images={"1": "a.jpg"})), "'images' must be a list"),
    ("annotations null", _coco(lambda d: d.update(annotations=None)), "'annotations' must be a list"),
    ("image without file name", _coco(lambda d: d["images"][0].pop("file_name")), "every entry of 'images' needs"),
    ("image entry a string", _coco(lambda d: d["images"].append("c.jpg")), "every entry of 'images' needs"),
    ("image id text", _coco(lambda d: d["images"][0].update(id="1")), "ids must be integers"),
    ("image id a list", _coco(lambda d: d["images"][0].update(id=[1])), "ids must be integers"),
    ("file name null", _coco(lambda d: d["images"][0].update(file_name=None)), "has file_name None, not a file name"),
    ("category without name", _coco(lambda d: d["categories"][0].pop("name")), "every entry of 'categories' needs"),
    ("category ids repeat", _coco(lambda d: d["categories"].append({"id": 1, "name": "cow"})), "category ids repeat ([1])"),
    ("image folder missing", lambda r, d: [p.unlink() for p in (r / "val").iterdir()] and (r / "val").rmdir(), "no image folder for split 'val'"),
    ("every image missing", lambda r, d: [p.unlink() for p in (r / "val").iterdir()], "has no usable images (problems: image missing (skipped) x2)"),
    ("split missing", lambda r, d: (r / "annotations/instances_val.json").rename(r / "annotations/instances_x.json"),
     "instances_val.json: annotation file not found (found: ['instances_x.json'])"),
]


@pytest.mark.parametrize(("name", "change", "warnings", "kept"), COCO_WARNING_CASES, ids=[c[0] for c in COCO_WARNING_CASES])
def test_coco_problem_is_counted(name: str, change: Callable, warnings: dict, kept: int, tmp_path: Path) -> None:
    root = tmp_path / "coco"
    change(root, make_coco(root))
    dataset = _read(root)
    assert dataset.warnings == Counter(warnings)
    assert_intact(dataset, kept)


@pytest.mark.parametrize(("name", "change", "kept"), COCO_CLEAN_CASES, ids=[c[0] for c in COCO_CLEAN_CASES])
def test_odd_but_valid_coco_is_read_whole(name: str, change: Callable, kept: int, tmp_path: Path) -> None:
    root = tmp_path / "coco"
    change(root, make_coco(root))
    dataset = _read(root)
    assert dataset.warnings == Counter()
    assert_intact(dataset, kept)


@pytest.mark.parametrize(("name", "change", "message"), COCO_ERROR_CASES, ids=[c[0] for c in COCO_ERROR_CASES])
def test_unusable_coco_is_one_line(name: str, change: Callable, message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "coco"
    change(root, make_coco(root))
    assert_one_line_error(*run_entry(lambda: _read(root), capsys), message)


# ---------------------------------------------------------------------------------------------------- YOLO
def _label_c(text: str | bytes) -> Callable[[Path], None]:
    """Adds image ``c`` (64 × 48) with the label file ``text``."""
    def apply(root: Path) -> None:
        write_image(root / "images" / "val" / "c.jpg", 64, 48, seed=5)
        path = root / "labels" / "val" / "c.txt"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return apply


def _yolo_image_c(damage: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        damage(write_image(root / "images" / "val" / "c.jpg", 64, 48, seed=5))
        (root / "labels" / "val" / "c.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return apply


def _yaml(text: str) -> Callable[[Path], None]:
    return lambda root: (root / "data.yaml").write_text(text)


def _image_list(lines: list[str], prefix: str = "") -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / "val.txt").write_text(prefix + "".join(f"{line}\n" for line in lines))
        (root / "data.yaml").write_text("path: .\nval: val.txt\nnames: [cat, dog]\n")
    return apply


GOOD_LINE = "0 0.5 0.5 0.25 0.25\n"
YOLO_WARNING_CASES = [
    ("four fields", _label_c(GOOD_LINE + "0 0.5 0.5 0.2\n"), {"malformed label line dropped": 1}, 3),
    ("six fields", _label_c(GOOD_LINE + "0 0.5 0.5 0.2 0.2 0.9\n"), {"malformed label line dropped": 1}, 3),
    ("text field", _label_c(GOOD_LINE + "cat 0.5 0.5 0.2 0.2\n"), {"malformed label line dropped": 1}, 3),
    ("class 1.5", _label_c(GOOD_LINE + "1.5 0.5 0.5 0.2 0.2\n"), {"malformed label line dropped": 1}, 3),
    ("class out of range", _label_c(GOOD_LINE + "5 0.5 0.5 0.2 0.2\n"), {"label class out of range dropped": 1}, 3),
    ("class negative", _label_c(GOOD_LINE + "-1 0.5 0.5 0.2 0.2\n"), {"label class out of range dropped": 1}, 3),
    ("coordinates past 1", _label_c(GOOD_LINE + "1 0.9 0.9 0.5 0.5\n"), {"box clipped to image": 1}, 3),
    ("coordinates NaN", _label_c(GOOD_LINE + "1 nan 0.5 0.2 0.2\n"), {"degenerate box dropped": 1}, 3),
    ("zero width", _label_c(GOOD_LINE + "1 0.5 0.5 0 0.2\n"), {"degenerate box dropped": 1}, 3),
    ("label not UTF-8", _label_c(b"0 0.5 0.5 \xff\xfe 0.2\n"), {"label file not UTF-8 text (image kept, no boxes)": 1}, 3),
    ("label missing", lambda r: write_image(r / "images" / "val" / "c.jpg", 64, 48), {"label file missing (image kept, no boxes)": 1}, 3),
    ("image is text", _yolo_image_c(lambda p: p.write_text("x")), {"image unreadable (skipped)": 1}, 2),
    ("image empty", _yolo_image_c(lambda p: p.write_bytes(b"")), {"image unreadable (skipped)": 1}, 2),
    ("image truncated", _yolo_image_c(truncate), {"image truncated (skipped)": 1}, 2),
    ("image listed twice", _image_list(["images/val/a.jpg", "images/val/b.jpg", "./images/val/a.jpg"]),
     {"image listed again (kept once)": 1}, 2),
    ("listed image missing", _image_list(["images/val/a.jpg", "images/val/b.jpg", "images/val/zz.jpg"]), {"image missing (skipped)": 1}, 2),
]

YOLO_CLEAN_CASES = [
    ("byte-order mark in label", _label_c("\ufeff" + GOOD_LINE), 3),
    ("blank lines and spaces in label", _label_c("\n  " + GOOD_LINE + "\n\n"), 3),
    ("empty label file", _label_c(""), 3),
    ("byte-order mark in image list", _image_list(["images/val/a.jpg", "images/val/b.jpg"], prefix="\ufeff"), 2),
    ("names as a list", _yaml("path: .\nval: images/val\nnames: [cat, dog]\n"), 2),
    ("no path key", _yaml("val: images/val\nnames: {0: cat, 1: dog}\n"), 2),
]

YOLO_ERROR_CASES = [
    ("yaml syntax", _yaml("names: [cat\nval: :"), "cannot read dataset yaml"),
    ("yaml a list", _yaml("- cat\n- dog\n"), "dataset yaml must be a mapping"),
    ("yaml not UTF-8", lambda r: (r / "data.yaml").write_bytes(b"names: [\xff]\n"), "cannot read dataset yaml"),
    ("names missing", _yaml("path: .\nval: images/val\n"), "'names' (a list or a {index: name} mapping) is required"),
    ("names keys skip", _yaml("path: .\nval: images/val\nnames: {0: cat, 2: dog}\n"), "'names' keys must be 0..1"),
    ("names keys text", _yaml("path: .\nval: images/val\nnames: {'0': cat, '1': dog}\n"), "'names' keys must be 0..1"),
    ("names a number", _yaml("path: .\nval: images/val\nnames: 2\n"), "'names' (a list or a {index: name} mapping) is required"),
    ("split missing", lambda r: ((r / "images" / "val").rename(r / "images" / "train"),
                                 _yaml("path: .\ntrain: images/train\nnames: [cat, dog]\n")(r)), "no split 'val' (splits: ['train'])"),
    ("split folder missing", _yaml("path: .\nval: images/nowhere\nnames: [cat, dog]\n"), "which does not exist"),
    ("dataset to download", _yaml("path: .\nval: images/nowhere\nnames: [cat, dog]\ndownload: http://x\n"), "must be downloaded first"),
    ("split entry a csv", lambda r: ((r / "val.csv").write_text("a"), _yaml("path: .\nval: val.csv\nnames: [cat, dog]\n")(r)),
     "a split entry must be an image folder or a .txt list"),
    ("image list not UTF-8", lambda r: ((r / "val.txt").write_bytes(b"\xff\xfe\n"), _yaml("path: .\nval: val.txt\nnames: [cat]\n")(r)),
     "image list is not UTF-8 text"),
    ("no images", lambda r: [p.unlink() for p in (r / "images" / "val").iterdir()], "split 'val' has no images"),
    ("every image broken", lambda r: [p.write_text("x") for p in (r / "images" / "val").iterdir()],
     "has no usable images (problems: image unreadable (skipped) x2)"),
]


@pytest.mark.parametrize(("name", "change", "warnings", "kept"), YOLO_WARNING_CASES, ids=[c[0] for c in YOLO_WARNING_CASES])
def test_yolo_problem_is_counted(name: str, change: Callable, warnings: dict, kept: int, tmp_path: Path) -> None:
    root = make_yolo(tmp_path / "yolo")
    change(root)
    dataset = _read(root)
    assert dataset.warnings == Counter(warnings)
    assert_intact(dataset, kept)


@pytest.mark.parametrize(("name", "change", "kept"), YOLO_CLEAN_CASES, ids=[c[0] for c in YOLO_CLEAN_CASES])
def test_odd_but_valid_yolo_is_read_whole(name: str, change: Callable, kept: int, tmp_path: Path) -> None:
    root = make_yolo(tmp_path / "yolo")
    change(root)
    dataset = _read(root)
    assert dataset.warnings == Counter()
    assert_intact(dataset, kept)


@pytest.mark.parametrize(("name", "change", "message"), YOLO_ERROR_CASES, ids=[c[0] for c in YOLO_ERROR_CASES])
def test_unusable_yolo_is_one_line(name: str, change: Callable, message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_yolo(tmp_path / "yolo")
    change(root)
    assert_one_line_error(*run_entry(lambda: _read(root), capsys), message)


# ------------------------------------------------------------------------------- what training would drop
def test_export_leaves_out_what_ultralytics_cannot_train_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A 5-px image (ultralytics skips sides under 10 px) and a repeated box (it keeps one row): both counted in
    export.json and in one warning, every other image and box written."""
    from spikedet.data import export_ultralytics

    root = make_voc(tmp_path / "voc")
    add_voc_image(root, "tiny", voc_xml("tiny", 5, 5, []), width=5, height=5)
    add_voc_image(root, "twice", voc_xml("twice", 64, 48, [("cat", 1, 1, 20, 20), ("cat", 1, 1, 20, 20)]))
    dataset = _read(root)
    with caplog.at_level("WARNING"):
        yaml_path = export_ultralytics(dataset, dataset, tmp_path / "export")
    report = json.loads((yaml_path.parent / "export.json").read_text())["splits"]["train"]
    assert report["images"] == 3 and report["boxes"] == 4
    assert report["images left out: side under 10 px (ultralytics skips it)"] == 1
    assert report["repeated boxes written once"] == 1
    assert sorted(p.name for p in (yaml_path.parent / "images" / "train").iterdir()) == ["a.jpg", "b.jpg", "twice.jpg"]
    assert "side under 10 px (ultralytics skips it) x1" in caplog.text and "repeated boxes written once x1" in caplog.text


def test_export_of_nothing_trainable_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from spikedet.data import export_ultralytics

    root = make_voc(tmp_path / "voc")
    for stem in GOOD:
        write_image(root / "JPEGImages" / f"{stem}.jpg", 8, 8)
    dataset = _read(root)
    code, err = run_entry(lambda: export_ultralytics(dataset, dataset, tmp_path / "export"), capsys)
    assert_one_line_error(code, err, "split 'val' has no image ultralytics can train on")


def test_ultralytics_skips_are_counted_after_training(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An image ultralytics still drops (here: corrupted after the export) is reported with its count."""
    from types import SimpleNamespace

    from spikedet.models.yolo_train import report_ultralytics_skips

    (tmp_path / "export.json").write_text(json.dumps({"splits": {"train": {"images": 5}, "val": {"images": 2}}}))
    loader = lambda n: SimpleNamespace(dataset=SimpleNamespace(labels=[{}] * n))  # noqa: E731
    trainer = SimpleNamespace(train_loader=loader(4), test_loader=loader(2))
    with caplog.at_level("WARNING"):
        assert report_ultralytics_skips(trainer, tmp_path / "data.yaml") == {"train": 1}
    assert "train 1 of 5" in caplog.text
    trainer.args = SimpleNamespace(fraction=0.5)  # half the data asked for: not a skip
    assert report_ultralytics_skips(trainer, tmp_path / "data.yaml") == {}


# ------------------------------------------------------------------------------------------- video sources
def _file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


VIDEO_CASES = [
    ("file missing", lambda t: t / "none.mp4", "video file not found"),
    ("a folder", lambda t: t, "video file not found"),
    ("text file", lambda t: _file(t / "clip.mp4", b"not a video"), "clip.mp4"),
    ("empty file", lambda t: _file(t / "clip.mp4", b""), "clip.mp4"),
    ("truncated video", lambda t: _video(t / "clip.mp4", cut=0.05), "clip.mp4"),
    ("an unreadable image", lambda t: _file(t / "frame.jpg", b"x"), "frame.jpg"),
]


def _video(path: Path, cut: float) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
    for i in range(10):
        writer.write(np.full((64, 64, 3), i * 20, dtype=np.uint8))
    writer.release()
    return truncate(path, cut)


@pytest.mark.parametrize(("name", "source", "message"), VIDEO_CASES, ids=[c[0] for c in VIDEO_CASES])
def test_bad_video_source_is_one_line(name: str, source: Callable[[Path], Path], message: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    code, err = run_tool("demo", ["--no-show", "--source", str(source(tmp_path)), "--backend", "torch"], capsys)
    assert_one_line_error(code, err, message)


# ------------------------------------------------------------------------------------------ the real tools
@pytest.mark.parametrize(("tool", "args", "message"), [
    ("tools/eval_coco.py", ["--T", "0"], "--T expects integers >= 1"),
    ("tools/make_synthetic.py", ["--out", "{file}"], "is a file, not a folder"),
    ("tools/convert_det.py", ["--imgsz", "x"], "argument --imgsz: invalid int value"),
    ("tools/demo.py", ["--no-show", "--source", "{missing}"], "video file not found"),
])
def test_real_tools_fail_the_same_way(tool: str, args: list[str], message: str, places: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, tool, *(a.format(**places) for a in args)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "SPIKEDET_QUIET": "1"})
    assert_one_line_error(result.returncode, result.stderr, message)


def test_the_suite_has_at_least_150_cases() -> None:
    tables = [ARGUMENT_CASES, DATASET_ARGUMENT_CASES, OUTPUT_CASES, RECIPE_CASES, CHECKPOINT_CASES, VOC_WARNING_CASES, VOC_CLEAN_CASES, VOC_ERROR_CASES,
              COCO_WARNING_CASES, COCO_CLEAN_CASES, COCO_ERROR_CASES, YOLO_WARNING_CASES, YOLO_CLEAN_CASES,
              YOLO_ERROR_CASES, VIDEO_CASES]
    assert sum(map(len, tables)) >= 150
