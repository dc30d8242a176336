"""Export a spiking detector to ONNX and check it against PyTorch with onnxruntime.

    python tools/export_onnx.py                          # shipped model, T=4 unrolled → model.onnx (+ model_ann.onnx)
    python tools/export_onnx.py --weights W --T 4 --stateful --out snn_step.onnx

Unrolled (default): images → T steps from a reset state → decoded boxes and scores [1, 4 + nc, anchors] before
NMS, and the spikes of each neuron layer (`spikes`). --stateful: one time step, the membrane state as explicit inputs/outputs (state_in.* / state_out.*, plus a
bool `reset`) for streaming runtimes. An ANN checkpoint also gives <out>_ann.onnx. Every graph is run in
onnxruntime on real images of the model's evaluation split and compared with PyTorch (box coordinates relative
to the input size); the tool fails when fewer than --min-match of the images agree within --tolerance.
"""
from __future__ import annotations

import argparse


from spikedet.cli import ToolParser, run_cli


def main(argv: list[str] | None = None) -> None:
    from spikedet.deploy.graph_format import DEFAULT_OPSET
    from spikedet.deploy.parity import MIN_MATCH, TOLERANCE

    parser = ToolParser(prog="spikedet export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="spikedet ANN or SNN checkpoint (default: the shipped model)")
    parser.add_argument("--T", type=int, default=4, help="time steps of the unrolled graph, and of the parity check")
    parser.add_argument("--imgsz", type=int, default=None, help="input size (default: the model's, 320 shipped)")
    parser.add_argument("--out", default="model.onnx", help="output file")
    parser.add_argument("--stateful", action="store_true", help="export one time step with explicit state instead")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--data", default=None, help="images for the check (default: the model's dataset)")
    parser.add_argument("--images", type=int, default=16, help="images compared (default 16)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help=f"largest normalised difference of a matching image (default {TOLERANCE:g})")
    parser.add_argument("--min-match", type=float, default=MIN_MATCH,
                        help=f"fraction of the images that must match (default {MIN_MATCH:g}; a spike decided by "
                             "float32 rounding makes an image differ, see spikedet/deploy/parity.py)")
    args = parser.parse_args(argv)

    def job() -> None:
        import onnx

        from spikedet.deploy.onnx_export import export_detector, format_export
        from spikedet.deploy.tracing import ExportError
        from spikedet.validate import check_count, check_fraction, check_imgsz, check_output_file, check_positive

        check_count(args.T, name="--T")
        check_imgsz(args.imgsz)
        check_count(args.images, name="--images")
        check_positive(args.tolerance, name="--tolerance")
        check_fraction(args.min_match, name="--min-match")
        newest = onnx.defs.onnx_opset_version()  # lower opsets the exporter cannot meet fail with an ExportError
        if not 1 <= args.opset <= newest:
            raise ValueError(f"--opset must be from 1 to {newest} (the newest this onnx knows), got {args.opset}")
        check_output_file(args.out, name="--out")

        report = export_detector(
            args.weights, out=args.out, timesteps=args.T, imgsz=args.imgsz, stateful=args.stateful, opset=args.opset,
            data=args.data, images=args.images, tolerance=args.tolerance, min_match=args.min_match,
        )
        print(format_export(report))
        if not report["ok"]:
            bad = ", ".join(
                f"{g['graph']} ({g['images_matched']}/{g['images']})" for g in report["graphs"] if not g["ok"]
            )
            raise ExportError(
                f"onnxruntime does not reproduce PyTorch within {args.tolerance:g} on enough images: {bad}"
            )

    run_cli(job)

