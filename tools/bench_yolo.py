#!/usr/bin/env python
"""Accuracy benchmark: SiLU ANN, QCFS ANN and its SNN at T = 1, 2, 4, 8 on one dataset split.

Prints a markdown table (pycocotools mAP, ultralytics-validator mAP of the ANNs, firing rate, SOPs, energy)
and writes JSON.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spikedet.cli import parse_timesteps, run_cli  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="QCFS ANN checkpoint (default: the shipped synthetic model)")
    parser.add_argument("--silu", default=None, help="SiLU reference checkpoint of the same architecture")
    parser.add_argument("--data", default=None, help="dataset (default: the one the QCFS model was trained on)")
    parser.add_argument("--method", default="qcfs")
    parser.add_argument("--T", default="1,2,4,8")
    parser.add_argument("--imgsz", type=int, default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", default="outputs/bench_yolo.json", help="JSON output path")
    args = parser.parse_args()

    def job() -> None:
        from spikedet.engine.benchmark import benchmark_yolo, format_benchmark, write_json
        from spikedet.engine.loading import DEFAULT_WEIGHTS

        rows = benchmark_yolo(
            args.weights or DEFAULT_WEIGHTS, args.data, args.silu, args.method, parse_timesteps(args.T),
            args.imgsz, args.batch,
        )
        print(format_benchmark(rows))
        print(f"json: {write_json(rows, args.out)}")

    run_cli(job)


if __name__ == "__main__":
    main()
