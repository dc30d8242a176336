"""Shared test fixtures: the real datasets beside the repository and a private spikedet cache."""
import inspect
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

# A test is slow when it needs a model trained first (these fixtures train one, or build on one that was) or runs
# a whole tool in a fresh interpreter (~5 s of imports each); `make test-fast` leaves those out.
TRAINED_FIXTURES = {
    "tiny_yolo_checkpoint", "tiny_ssd", "tiny_ann", "converted", "finetuned", "silu_checkpoint", "exported",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        function = getattr(item, "function", None)
        trains = TRAINED_FIXTURES & set(getattr(item, "fixturenames", ()))
        if trains or (function is not None and "subprocess.run(" in inspect.getsource(function)):
            item.add_marker(pytest.mark.slow)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs 2 workers) each worker gets its share of the cores, and so do the
    tools the tests start: oversubscribed threads would make both slower than one worker alone."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = threads
        import torch

        torch.set_num_threads(int(threads))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` relative to the repository root; skips the test when it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS} (expected ../shared/datasets beside the repo)")
    return SHARED_DATASETS


@pytest.fixture(scope="session", autouse=True)
def spikedet_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``$SPIKEDET_CACHE`` at a temporary folder so tests never touch the user's cache; eager neuron loops."""
    path = tmp_path_factory.mktemp("spikedet_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPIKEDET_CACHE", str(path))
        # training runs the eager neuron loops: compiling the fused ones costs more than tiny runs gain, and
        # test_fused_kernels_equal_the_eager_ones checks the two give the same
        mp.setenv("SPIKEDET_FUSED", "0")
        yield path


@pytest.fixture(scope="session")
def tiny_yolo_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(checkpoint, data_dir)``: a tiny YOLOv8-QCFS (width 1/16) trained 1 epoch on 24 synthetic 64-px images."""
    from spikedet.data import generate_synthetic
    from spikedet.engine.train import train_detector

    root = tmp_path_factory.mktemp("tiny_yolo")
    data = generate_synthetic(root / "data", num_images=24, image_size=64, seed=3, progress=False)
    checkpoint = train_detector(
        data, out=root / "train", model="yolov8n", width=0.0625, depth=0.33, imgsz=64, batch=8, epochs=1
    )
    return checkpoint, data
