#!/usr/bin/env python
"""Train a clip-quantized (QCFS) or SiLU YOLOv8 detector through ultralytics' trainer, offline."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spikedet.cli import run_cli  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="synthetic", help="'synthetic', a VOC/COCO/YOLO folder or an ultralytics yaml")
    parser.add_argument("--model", default="yolov8n", help="yolov8n/s/m/l/x or a YOLOv8 model yaml")
    parser.add_argument(
        "--activation", choices=["qcfs", "casc", "silu"], default="qcfs",
        help="qcfs (learnable clip, floor+1/2), casc (fixed clip 1, floor) or silu (full-precision reference)",
    )
    parser.add_argument(
        "--levels", default="4",
        help="quantization levels: L (uniform), L1,L2,... (one per activation) or al[:2,4,8] (PASCAL's adaptive "
        "layer-wise levels chosen from the --init model's activations)",
    )
    parser.add_argument("--noise-p", type=float, default=0.0, help="Dual-Phase phase I: noisy quantization probability (0.1)")
    parser.add_argument("--lr0", type=float, default=None, help="initial learning rate (ultralytics default 0.01)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu, 0, or 0,1 (multi-GPU through ultralytics DDP)")
    parser.add_argument("--init", default=None, help="spikedet ANN checkpoint (SiLU or QCFS) to fine-tune from")
    parser.add_argument("--width", type=float, default=None, help="override the width multiplier (tiny models)")
    parser.add_argument("--depth", type=float, default=None, help="override the depth multiplier")
    parser.add_argument("--out", default="runs/train", help="output folder")
    args = parser.parse_args()

    def job() -> None:
        from spikedet.engine.levels import parse_levels
        from spikedet.engine.train import train_detector

        path = train_detector(
            args.data, args.out, model=args.model, activation=args.activation, levels=parse_levels(args.levels),
            noise_p=args.noise_p, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device=args.device,
            init=args.init, width=args.width, depth=args.depth,
            extra={"lr0": args.lr0, "optimizer": "SGD"} if args.lr0 else None,  # "auto" would ignore lr0
        )
        print(f"checkpoint: {path}")

    run_cli(job)


if __name__ == "__main__":
    main()
