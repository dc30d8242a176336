#!/usr/bin/env python
"""Low-precision spiking inference against fp32, side by side in one run (CPU).

    python tools/bench_precision.py --weights weights/yolov8n_qcfs_l4_bccd.pt --data ../shared/datasets/bccd
    python tools/bench_precision.py --weights W --precisions fp32,int8 --max-images 16 --out outputs/p.json

Per precision (those this machine runs; the others are listed with the reason): mAP50-95 of the SNN at every
--T from one anytime simulation and of the ANN it came from (same precision), images/s of that evaluation, and
the demo's per-frame milliseconds (letterbox, network, NMS) at --demo-T and --demo-imgsz, every model timed in
turns on the same images; and a control row, fp32 summed in another order (channels-last), whose distance from
fp32 is the noise floor of spike flips at float32 ties. Below the table, per precision: the share of spikes (and
of the ANN's QCFS levels) that differ from fp32's, from the first layer that differs to the last, on the first
two images: how far the rounding spreads. Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from spikedet.cli import ToolParser, parse_timesteps, run_cli, write_results  # noqa: E402


def main() -> None:
    parser = ToolParser(prog="bench_precision.py", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="weights/yolov8n_qcfs_l4_bccd.pt", help="ANN or online SNN checkpoint")
    parser.add_argument("--data", default=None, help="dataset (default: the model's)")
    parser.add_argument("--method", default="qcfs", help="recipe for an ANN checkpoint (an online one)")
    parser.add_argument("--precisions", default="fp32,bf16,fp16,int8", help="comma-separated, from fp32,bf16,fp16,int8")
    parser.add_argument("--T", default="1,2,4,8", help="time steps of the anytime evaluation")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-images", type=int, default=None, help="evaluate on the first N images only")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--demo-T", type=int, default=4, help="time steps per demo frame")
    parser.add_argument("--demo-imgsz", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=15, help="demo frames timed per model (median)")
    parser.add_argument("--no-control", action="store_true",
                        help="leave out the 'fp32 reordered' row (fp32 summed in another order: the noise floor)")
    parser.add_argument("--noise-controls", type=int, default=2,
                        help="rows 'fp32 noise k' with int8 measured: fp32 with random weight errors of int8's size")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_precision.json"))
    args = parser.parse_args()

    def job() -> None:
        from spikedet.deploy.bench_precision import (
            bench_precision,
            format_precision_bench,
        )
        from spikedet.validate import check_output_file

        check_output_file(args.out, name="--out")
        result = bench_precision(
            args.weights, data=args.data, method=args.method, precisions=args.precisions.split(","),
            timesteps=parse_timesteps(args.T), batch=args.batch, max_images=args.max_images, threads=args.threads,
            demo_timesteps=args.demo_T, demo_imgsz=args.demo_imgsz, repeats=args.repeats, control=not args.no_control,
            noise_controls=args.noise_controls,
        )
        print(format_precision_bench(result))
        write_results(result, args.out)

    run_cli(job)


if __name__ == "__main__":
    main()
