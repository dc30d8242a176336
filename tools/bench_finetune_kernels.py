#!/usr/bin/env python
"""Spike-aware fine-tuning's neuron loops, eager against fused: per-kernel forward + backward, and one training
step of the BCCD YOLOv8n converted with qcfs and with fast_snn (batch 8, 320 px, T = 4 with read-outs at 1, 2, 4).

    python tools/bench_finetune_kernels.py --out outputs/bench_finetune_kernels.json
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from spikedet.cli import write_results  # noqa: E402
from spikedet.engine.loading import load_model  # noqa: E402
from spikedet.engine.recipe_run import build_snn  # noqa: E402
from spikedet.engine.yolo_finetune import SpikingDetectionModel  # noqa: E402
from spikedet.recipes import get_recipe  # noqa: E402
from spikedet.spiking.bench_training import bench_kernels, bench_training_step  # noqa: E402
from spikedet.spiking.trainable import make_trainable  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="weights/yolov8n_qcfs_l4_bccd.pt")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_finetune_kernels.json"))
    args = parser.parse_args()

    result = {"kernels": bench_kernels(), "steps": {}}
    ann = load_model(args.weights, expect="ann").model
    images = torch.rand(args.batch, 3, args.imgsz, args.imgsz)
    for method in ("qcfs", "fast_snn"):
        net = make_trainable(copy.deepcopy(build_snn(ann, get_recipe(method)).net))
        model = SpikingDetectionModel.from_converted(net, timesteps=[1, 2, 4]).train()
        result["steps"][method] = bench_training_step(model, images, repeats=args.repeats)
    print(f"{'what':<34} {'eager ms':>9} {'fused ms':>9} {'speed-up':>8}")
    rows = [(f"{k} loop {result['kernels']['shape']}", v) for k, v in result["kernels"]["rows"].items()]
    rows += [(f"training step, {m} (batch {args.batch})", v) for m, v in result["steps"].items()]
    for name, v in rows:
        print(f"{name:<34} {v['eager']:>9.0f} {v['fused']:>9.0f} {v['eager'] / v['fused']:>7.2f}x")
    write_results(result, args.out)


if __name__ == "__main__":
    main()
