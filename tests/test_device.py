"""--device: checked at the edge (one line, exit status 2) before any model or data is read."""
import importlib

import pytest
import torch

from spikedet.validate import check_device


def test_check_device_accepts_this_machines_devices() -> None:
    assert check_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert check_device("cuda:0") == "cuda:0"


@pytest.mark.parametrize("value, message", [
    ("gpu", "--device must be cpu, cuda or cuda:N, got 'gpu'"),
    ("meta", "--device must be cpu, cuda or cuda:N, got 'meta'"),
    ("cuda", "--device cuda: no CUDA device is available here; use --device cpu"),
    ("cuda:3", "--device cuda:3: no CUDA device is available here"),
])
def test_check_device_refuses(value: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        check_device(value)


def test_check_device_counts_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda:0") == "cuda:0"
    with pytest.raises(ValueError, match=r"--device cuda:1: this machine has 1 CUDA device\(s\)"):
        check_device("cuda:1")


@pytest.mark.parametrize("argv, cuda, message", [
    (["--device", "cuda"], False, "--device cuda: no CUDA device is available here"),
    (["--device", "tpu"], False, "--device must be cpu, cuda or cuda:N"),
    (["--device", "cuda", "--precision", "int8"], True, "--precision int8 needs CPU only"),
])
def test_eval_refuses_bad_devices_with_status_2(
    argv: list[str], cuda: bool, message: str, monkeypatch: pytest.MonkeyPatch, tmp_path, capsys
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(cuda))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: cuda)
    main = importlib.import_module("spikedet.commands.eval").main
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--json", str(tmp_path / "s.json")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s.json").exists()


def test_api_val_checks_the_device_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import spikedet as sd

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    detector = sd.load("weights/yolov8n_qcfs_l4_synthetic.pt")
    with pytest.raises(ValueError, match="device cuda: no CUDA device is available here"):
        detector.val(device="cuda", data="no/such/dataset")  # refused before the dataset is looked for
