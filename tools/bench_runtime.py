"""Spiking runtime vs quantized ANN on CPU: YOLOv8n-QCFS, batch 1, T = 1, 2, 4, 8.

    python tools/bench_runtime.py                       # 320 px, 2 threads → outputs/bench_runtime.json
    python tools/bench_runtime.py --imgsz 640 --threads 8 --out outputs/bench_640.json
    OMP_WAIT_POLICY=PASSIVE python tools/bench_runtime.py --threads 1 --cpu-time   # on a shared, loaded machine

The ANN reference is the same QCFS model with BatchNorm folded, on batch 1 and on a batch of T copies.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from spikedet.cli import write_results  # noqa: E402
from spikedet.models.yolo import build_yolo, yolo_analog, yolo_readouts  # noqa: E402
from spikedet.spiking.bench import bench_runtime, format_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolov8n")
    parser.add_argument("--num-classes", type=int, default=80)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--timesteps", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cpu-time", action="store_true", help="process CPU time, not wall time (loaded machine)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_runtime.json"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = build_yolo(args.model, num_classes=args.num_classes).eval()
    result = bench_runtime(
        model, yolo_readouts(model), analog=yolo_analog(model), imgsz=args.imgsz, timesteps=tuple(args.timesteps),
        warmup=args.warmup, repeats=args.repeats, cpu_time=args.cpu_time,
    )
    result["model"] = args.model
    print(format_table(result))
    write_results(result, args.out)


if __name__ == "__main__":
    main()
