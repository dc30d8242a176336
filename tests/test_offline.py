"""ultralytics must never touch the network: importing spikedet and training a tiny model opens no socket."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains in a subprocess

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import socket, sys
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:2] or args)
        raise OSError("network disabled by test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    socket.gethostbyname = refuse

    from spikedet.data import generate_synthetic
    from spikedet.engine.train import train_detector

    data = generate_synthetic(sys.argv[1] + "/data", num_images=12, image_size=64, seed=1, progress=False)
    train_detector(data, out=sys.argv[1] + "/run", model="yolov8n", width=0.0625, depth=0.33, epochs=1, imgsz=64, batch=4)
    print("ATTEMPTS", len(attempts), attempts[:3])
    """
)


def test_training_makes_no_network_call(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SPIKEDET_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ATTEMPTS 0 []" in proc.stdout, proc.stdout[-1000:]
