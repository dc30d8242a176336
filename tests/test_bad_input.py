"""Bad arguments reach every tool's edge check: one line ``error: ...`` and exit status 2, before any long work."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs every tool in a subprocess

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = str(ROOT / "weights" / "yolov8n_qcfs_l4_synthetic.pt")

CASES = [
    (["tools/convert_det.py", "--imgsz", "33"], "--imgsz must be a positive multiple of 32"),
    (["tools/convert_det.py", "--imgsz", "0"], "--imgsz must be a positive multiple of 32"),
    (["tools/convert_det.py", "--batch", "0"], "--batch must be an integer >= 1"),
    (["tools/convert_det.py", "--batch", "-1"], "--batch must be an integer >= 1"),
    (["tools/convert_det.py", "--max-images", "-1"], "--max-images must be an integer >= 1"),
    (["tools/convert_det.py", "--max-images", "0"], "--max-images must be an integer >= 1"),
    (["tools/convert_det.py", "--calib-images", "0", "--method", "dual_phase"], "--calib-images must be an integer >= 1"),
    (["tools/convert_det.py", "--out", "{file}"], "is a file, not a folder"),
    (["tools/convert_det.py", "--out", "{file}/sub"], "is a file, not a folder"),
    (["tools/eval_coco.py", "--imgsz", "100"], "--imgsz must be a positive multiple of 32"),
    (["tools/eval_coco.py", "--json", "{dir}"], "is a folder; give a file name"),
    (["tools/eval_coco.py", "--max-images", "0"], "--max-images must be an integer >= 1"),
    (["tools/train_det.py", "--imgsz", "0"], "--imgsz must be a positive multiple of 32"),
    (["tools/train_det.py", "--batch", "0"], "--batch must be an integer >= 1"),
    (["tools/train_det.py", "--epochs", "0"], "--epochs must be an integer >= 1"),
    (["tools/finetune_snn.py", "--weights", SYNTHETIC, "--imgsz", "48"], "--imgsz must be a positive multiple of 32"),
    (["tools/finetune_snn.py", "--weights", SYNTHETIC, "--out", "{file}"], "is a file, not a folder"),
    (["tools/make_synthetic.py", "--out", "{file}"], "is a file, not a folder"),
    (["tools/make_synthetic.py", "--out", "{dir}/new", "--images", "0"], "--images must be an integer >= 1"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a[1:]) for a, _ in CASES])
def test_bad_argument_fails_in_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    file = tmp_path / "taken.txt"
    file.write_text("not a folder")
    args = [a.format(file=file, dir=tmp_path) for a in args]
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "SPIKEDET_QUIET": "1"})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr[-2000:]
    assert file.read_text() == "not a folder"
