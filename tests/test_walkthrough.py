"""README's "Your own data, end to end", every command run through the real tools at tiny scale on raccoon."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# tiny scale: one epoch at 64 px on a quarter of the images, 8 evaluation images; every other argument as the
# README gives it
TINY = {
    "train_det.py": ["--epochs", "1", "--imgsz", "64", "--batch", "8", "--set", "fraction=0.25"],
    "finetune_snn.py": ["--epochs", "1", "--batch", "8", "--set", "fraction=0.25"],
    "convert_det.py": ["--max-images", "8"],
    # the default backend compiles with AOTInductor (a minute here); the compiled path has tests of its own
    "demo.py": ["--backend", "onnxruntime"],
}


def _walkthrough() -> list[list[str]]:
    """The commands of the README section, in order (``python tools/...`` lines of its bash block)."""
    section = README.split("## Your own data, end to end", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split()[1:] for line in block.splitlines() if line.startswith("python tools/")]


@pytest.mark.slow
def test_the_walkthrough_runs_on_raccoon(shared_datasets: Path, tmp_path: Path) -> None:
    from spikedet.data import load_dataset
    from spikedet.deploy import make_video
    from spikedet.models.yolo import build_yolo

    # the user's starting point: an ultralytics checkpoint (a tiny one, saved as ultralytics saves it)
    model = build_yolo(activation="silu", num_classes=80, model="yolov8n", width=0.0625, depth=0.33)
    torch.save({"model": None, "ema": copy.deepcopy(model).half(), "train_args": {}}, tmp_path / "yolov8n.pt")
    make_video(load_dataset(shared_datasets / "raccoon", "test").records[:3], tmp_path / "clip.mp4", fps=10, hold=1)
    commands = _walkthrough()
    assert [c[0] for c in commands] == [
        "tools/train_det.py", "tools/convert_det.py", "tools/finetune_snn.py", "tools/convert_det.py", "tools/demo.py",
    ]
    for command in commands:
        args = [a.replace("path/to/your/data", str(shared_datasets / "raccoon")) for a in command]
        args += TINY.get(Path(args[0]).name, [])
        args[0] = str(ROOT / args[0])  # run from a scratch folder, as a user's project would
        result = subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True,
                                env={**os.environ, "SPIKEDET_QUIET": "1"})
        assert result.returncode == 0, f"{' '.join(args)}\n{result.stderr[-3000:]}"
    results = json.loads((tmp_path / "runs" / "mine_eval" / "results.json").read_text())
    assert set(results["snn"]) == {"1", "2", "4", "8"} and results["method"] == "qcfs+ft"
    assert (tmp_path / "annotated.mp4").stat().st_size > 0
