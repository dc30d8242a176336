"""The built wheel works without the source tree: recipes and the default model travel inside it."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import spikedet, torch
from pathlib import Path
from spikedet.recipes import available_recipes, get_recipe
from spikedet.engine.evaluate import DEFAULT_WEIGHTS, build_snn, load_ann
assert Path(spikedet.__file__).is_relative_to(Path.cwd() / "site"), spikedet.__file__
assert "_shipped" in str(DEFAULT_WEIGHTS) and DEFAULT_WEIGHTS.is_file(), DEFAULT_WEIGHTS
assert {"qcfs", "casc", "cos", "dual_phase", "fast_snn", "pascal"} <= set(available_recipes())
ann, _ = load_ann(DEFAULT_WEIGHTS)
out = build_snn(ann, get_recipe("casc"))(torch.rand(1, 3, 64, 64), 2)
print("ok", out[0].shape)
"""


def test_wheel_converts_without_the_source_tree(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("spikedet-*.whl")
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin", "SPIKEDET_CACHE": str(tmp_path / "cache"),
                                 "HOME": str(tmp_path)})
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
