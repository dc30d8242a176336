"""Spike-aware fine-tuning: train a converted online spiking detector end to end as a spiking network
(T-step simulation forward, surrogate gradient backward, detection loss at every T of --T at once).

Starts from a spiking checkpoint (qcfs or dual_phase, from tools/convert_det.py) or converts an ANN checkpoint
with --method; writes an ordinary spiking checkpoint that every tool takes (convert_det, eval_coco, demo,
export_onnx). YOLO trains through ultralytics' trainer (progress bars, per-epoch validation at max T), SSD
through spikedet's SSD loop."""
from __future__ import annotations

import os

from spikedet.cli import ToolParser, parse_timesteps, run_cli


def main(argv: list[str] | None = None) -> None:
    parser = ToolParser(prog="spikedet finetune", description=__doc__)
    parser.add_argument("--weights", required=True, help="spikedet SNN checkpoint (qcfs/dual_phase) or ANN checkpoint")
    parser.add_argument("--method", default="qcfs", help="recipe converting an ANN checkpoint (one that needs no data)")
    parser.add_argument("--data", default=None, help="dataset (default: the one the model was trained on)")
    parser.add_argument("--T", default="1,2,4", help="time steps whose read-outs are trained, e.g. 1,2,4 or 4")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=None, help="default: the model's training size")
    parser.add_argument("--batch", type=int, default=8, help="images per optimizer step (default 8)")
    parser.add_argument("--device", default="cpu", help="cpu, 0, or 0,1 (YOLO: multi-GPU through ultralytics DDP)")
    parser.add_argument("--surrogate", default="triangle", help="surrogate derivative of the spike: triangle, sigmoid or tanh (Dual-Phase's)")
    parser.add_argument("--fixed-thresholds", action="store_true", help="keep the thresholds θ = λ (train weights only)")
    parser.add_argument("--distill", type=float, default=0.0, help="weight of the distillation term towards the ANN's read-outs")
    parser.add_argument("--layer-distill", type=float, default=0.0, help="weight of the layer-wise distillation term (each neuron layer's rate towards the ANN activation)")
    parser.add_argument("--teacher", default=None, help="ANN checkpoint to distil from (default: the one the SNN came from)")
    parser.add_argument("--train-v0", action="store_true", help="also train each layer's initial potential")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a trainer setting, repeatable: for YOLO any ultralytics train argument (lr0=1e-4, mosaic=0.5, "
        "optimizer=SGD), for SSD lr0, weight_decay, warmup_epochs or workers",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines (scripts, CI)")
    parser.add_argument("--out", default="runs/finetune", help="output folder")
    args = parser.parse_args(argv)
    if args.quiet:
        os.environ["SPIKEDET_QUIET"] = "1"

    def job() -> None:
        from spikedet.cli import parse_settings
        from spikedet.engine.snn_finetune import finetune_snn

        path = finetune_snn(
            args.weights, data=args.data, out=args.out, method=args.method, timesteps=parse_timesteps(args.T),
            epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device=args.device,
            train_thresholds=not args.fixed_thresholds, train_v0=args.train_v0, surrogate=args.surrogate,
            distill=args.distill, layer_distill=args.layer_distill, teacher=args.teacher, extra=parse_settings(args.set, "--set") or None,
        )
        print(f"checkpoint: {path}")

    run_cli(job)

