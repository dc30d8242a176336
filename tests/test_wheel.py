"""The built wheel works without the source tree: recipes and the default model travel inside it, and the
``spikedet`` console script it installs converts."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds and installs the wheel

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import spikedet, torch
from pathlib import Path
from spikedet.recipes import available_recipes, get_recipe
from spikedet.engine.loading import DEFAULT_WEIGHTS, load_model
from spikedet.engine.recipe_run import build_snn
assert Path(spikedet.__file__).is_relative_to(Path.cwd() / "site"), spikedet.__file__
assert "_shipped" in str(DEFAULT_WEIGHTS) and DEFAULT_WEIGHTS.is_file(), DEFAULT_WEIGHTS
assert {"qcfs", "casc", "cos", "dual_phase", "fast_snn", "pascal"} <= set(available_recipes())
ann = load_model(DEFAULT_WEIGHTS, expect="ann").model
out = build_snn(ann, get_recipe("casc"))(torch.rand(1, 3, 64, 64), 2)
print("ok", out[0].shape)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(folder)],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (path,) = folder.glob("spikedet-*.whl")
    return path


def test_wheel_converts_without_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin", "SPIKEDET_CACHE": str(tmp_path / "cache"),
                                 "HOME": str(tmp_path)})
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_console_script_from_a_fresh_virtual_environment(wheel: Path, tmp_path: Path) -> None:
    """pip-install the wheel into a new environment (dependencies seen through a path file, not installed again)
    and convert the shipped default model with ``spikedet convert`` from a folder without the source tree."""
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the development environment's packages (torch, ultralytics, ...); its editable spikedet is not picked up,
    # because path files inside a directory named by a path file are not read
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "SPIKEDET_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path),
           "SPIKEDET_QUIET": "1"}
    where = subprocess.run([str(python), "-c", "import spikedet; print(spikedet.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    data = subprocess.run(["spikedet", "synthetic", "--out", str(tmp_path / "data"), "--images", "8", "--size", "64"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert data.returncode == 0, data.stderr[-3000:]
    run = subprocess.run(
        ["spikedet", "convert", "--data", str(tmp_path / "data"), "--T", "1", "--max-images", "4", "--imgsz", "64",
         "--out", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "out" / "results.json").is_file() and "spiking checkpoint" in run.stdout
    unknown = subprocess.run(["spikedet", "nope"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown command 'nope'" in unknown.stderr
