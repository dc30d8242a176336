#!/usr/bin/env python
"""End-to-end demo benchmark on CPU: throughput, ONNX latency, stream-state accuracy.

    python tools/bench_demo.py                          # shipped model, 320 px, 2 threads → outputs/bench_demo.json
    python tools/bench_demo.py --weights W --imgsz 320 --frames 300 --hold 4

Throughput of the headless demo loop (capture, letterbox, network, NMS, overlay) on a video of the model's
evaluation split for the ANN, the SNN at T per frame and the SNN streaming at 1 step per frame, each on the torch,
onnxruntime and inductor backends (graphs from the cache, compiled on first use); the compiled backends' latency
of the unrolled T-step graph against PyTorch's; and the mAP of stream-state inference against per-frame T-step
inference on a video holding each evaluation image for --hold frames.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spikedet.cli import run_cli, write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="spikedet checkpoint (default: the shipped model)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--T", type=int, default=4, help="time steps per frame (stream mode: read-out window)")
    parser.add_argument("--frames", type=int, default=200, help="frames of the throughput video")
    parser.add_argument("--hold", type=int, default=4, help="frames each image is held in the accuracy video")
    parser.add_argument("--images", type=int, default=None, help="images for the accuracy video (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch and onnxruntime")
    parser.add_argument("--data", default=None, help="dataset (default: the model's)")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime", "inductor"],
                        choices=["torch", "onnxruntime", "inductor"], help="backends to time (default: all three)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_demo.json"))
    args = parser.parse_args()

    def job() -> None:
        from spikedet.deploy.bench import bench_demo, format_bench

        result = bench_demo(
            args.weights, args.imgsz, args.T, args.frames, args.hold, args.images, args.threads, args.data,
            backends=args.backends,
        )
        print(format_bench(result))
        write_results(result, args.out)

    run_cli(job)


if __name__ == "__main__":
    main()
