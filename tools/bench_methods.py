#!/usr/bin/env python
"""Compare the conversion recipes on one ANN: per recipe and T, mAP, steps_total, firing rate, SOPs, energy and
calibration time, the ANN on every row. Prints a markdown table, writes JSON and a PNG of mAP vs T."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spikedet.cli import parse_assignments, parse_timesteps, run_cli  # noqa: E402


def method_settings(assignments: dict[str, str]) -> dict[str, dict[str, str]]:
    """``{"dual_phase.calibration.weight_steps": "20"}`` → ``{"dual_phase": {"calibration.weight_steps": "20"}}``."""
    out: dict[str, dict[str, str]] = {}
    for key, value in assignments.items():
        method, _, knob = key.partition(".")
        out.setdefault(method, {})[knob] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", default=None, help="QCFS ANN checkpoint (default: the shipped synthetic model)")
    parser.add_argument("--data", default=None, help="dataset (default: the one the model was trained on)")
    parser.add_argument("--methods", default="qcfs,cos,dual_phase,casc,fast_snn,pascal", help="recipes; '' for none (only --snn rows)")
    parser.add_argument("--T", default="1,2,4,8")
    parser.add_argument("--imgsz", type=int, default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--calib-images", type=int, default=None)
    parser.add_argument("--max-images", type=int, default=None, help="evaluate on the first N images only")
    parser.add_argument(
        "--ann", action="append", default=[], metavar="METHOD=PATH",
        help="the ANN trained for one recipe (e.g. casc=casc.pt); repeatable; others convert --weights",
    )
    parser.add_argument(
        "--snn", action="append", default=[], metavar="NAME=PATH",
        help="a spiking checkpoint evaluated as stored (e.g. qcfs+ft=snn_qcfs_ft.pt from tools/finetune_snn.py); repeatable",
    )
    parser.add_argument(
        "--method-T", action="append", default=[], metavar="METHOD=T1,T2",
        help="a recipe's own timesteps (e.g. fast_snn=3,7 for T = 2^b - 1); repeatable",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="METHOD.SECTION.NAME=VALUE",
        help="change a recipe knob, e.g. dual_phase.calibration.weight_steps=20; repeatable",
    )
    parser.add_argument("--out", default="outputs/bench_methods.json", help="JSON path; the PNG goes beside it")
    args = parser.parse_args()

    def job() -> None:
        from spikedet.engine.benchmark import benchmark_methods, format_methods, plot_methods_png, write_json
        from spikedet.engine.loading import DEFAULT_WEIGHTS

        method_t = parse_assignments(args.method_T, "--method-T", "METHOD=T[,T...]")
        rows = benchmark_methods(
            args.weights or DEFAULT_WEIGHTS, [m for m in args.methods.split(",") if m], args.data, parse_timesteps(args.T),
            args.imgsz, args.batch, args.calib_images, args.max_images,
            method_weights=parse_assignments(args.ann, "--ann", "METHOD=PATH"),
            method_timesteps={k: parse_timesteps(v) for k, v in method_t.items()},
            method_settings=method_settings(parse_assignments(args.set, "--set", "METHOD.SECTION.NAME=VALUE")),
            snn_weights=parse_assignments(args.snn, "--snn", "NAME=PATH"),
        )
        print(format_methods(rows))
        png = plot_methods_png(rows, Path(args.out).with_suffix(".png"))
        steps_png = plot_methods_png(rows, Path(args.out).with_name(Path(args.out).stem + "_steps.png"), x="steps_total")
        print(f"json: {write_json(rows, args.out)}  plots: {png} {steps_png}")

    run_cli(job)


if __name__ == "__main__":
    main()
