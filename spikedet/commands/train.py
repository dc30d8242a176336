"""Train a clip-quantized (QCFS) detector offline: YOLOv8 (or its SiLU reference) through ultralytics' trainer, or
SSD (--model ssd) with spikedet's own loop (albumentations augmentation, checkpoint every epoch, --resume)."""
from __future__ import annotations

import os

from spikedet.cli import ToolParser, run_cli


def _extra(lr0: float | None, settings: dict, family: str) -> dict | None:
    extra = {**({} if lr0 is None else {"lr0": lr0}), **settings}
    if family == "yolo" and "lr0" in extra:
        extra.setdefault("optimizer", "SGD")  # ultralytics' "auto" optimizer would ignore lr0
    return extra or None


def main(argv: list[str] | None = None) -> None:
    parser = ToolParser(prog="spikedet train", description=__doc__)
    parser.add_argument("--data", default="synthetic", help="'synthetic', a VOC/COCO/YOLO folder or an ultralytics yaml")
    parser.add_argument("--model", default="yolov8n", help="yolov8n/s/m/l/x, a YOLOv8 model yaml, or ssd / ssd_vgg_slim")
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
    parser.add_argument("--lr0", type=float, default=None, help="initial learning rate (YOLO: SGD, default 0.01; SSD: AdamW, default 1e-3)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu, 0, or 0,1 (multi-GPU through ultralytics DDP)")
    parser.add_argument("--init", default=None, help="spikedet ANN checkpoint (SiLU or QCFS) to fine-tune from")
    parser.add_argument("--width", type=float, default=None, help="override the width multiplier (tiny models; SSD: backbone channels)")
    parser.add_argument("--depth", type=float, default=None, help="override the depth multiplier")
    parser.add_argument("--resume", action="store_true", help="SSD: continue from --out's train_state.pt")
    parser.add_argument(
        "--select", choices=["last", "best"], default="last",
        help="YOLO epoch to export: last, or best by ultralytics' fitness on the eval split (only honest when "
        "that split is a validation set, not the test set)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a trainer setting, repeatable: for YOLO any ultralytics train argument (workers=8, cos_lr=true, "
        "mosaic=0.5), for SSD lr0, weight_decay, warmup_epochs, workers or val_every (evaluate every N epochs)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines (scripts, CI)")
    parser.add_argument("--out", default="runs/train", help="output folder")
    args = parser.parse_args(argv)
    if args.quiet:
        os.environ["SPIKEDET_QUIET"] = "1"  # read when ultralytics is first imported, inside the job

    def job() -> None:
        from spikedet.cli import parse_settings
        from spikedet.engine.levels import parse_levels
        from spikedet.engine.train import train_detector
        from spikedet.models.family import family_for_model
        from spikedet.validate import check_positive

        check_positive(args.lr0, name="--lr0", optional=True)

        path = train_detector(
            args.data, out=args.out, model=args.model, activation=args.activation, levels=parse_levels(args.levels),
            noise_p=args.noise_p, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device=args.device,
            init=args.init, width=args.width, depth=args.depth, resume=args.resume, select=args.select,
            extra=_extra(args.lr0, parse_settings(args.set, "--set"), family_for_model(args.model).name),
        )
        print(f"checkpoint: {path}")

    run_cli(job)

