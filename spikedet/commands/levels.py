"""PASCAL's adaptive layer-wise levels: score every activation of a QCFS detector with the AL metric on training
images, print the per-layer L it leads to, and plot the metric. Train with them: train_det.py --levels al."""
from __future__ import annotations

from spikedet.cli import ToolParser, run_cli


def main(argv: list[str] | None = None) -> None:
    parser = ToolParser(prog="spikedet levels", description=__doc__)
    parser.add_argument("--weights", default=None, help="QCFS ANN checkpoint (default: the shipped synthetic model)")
    parser.add_argument("--data", default=None, help="dataset (default: the one the model was trained on)")
    parser.add_argument("--choices", default="2,4,8", help="candidate levels, fewest to the most crowded layers")
    parser.add_argument("--images", type=int, default=64, help="training images to measure on")
    parser.add_argument("--out", default="outputs/adaptive_levels.png", help="plot path")
    args = parser.parse_args(argv)

    def job() -> None:
        from spikedet.engine.loading import DEFAULT_WEIGHTS
        from spikedet.engine.levels import adaptive_levels, al_choices, format_levels, plot_levels
        from spikedet.validate import check_count, check_output_file

        check_count(args.images, name="--images")
        check_output_file(args.out, name="--out")

        levels, layers = adaptive_levels(args.weights or DEFAULT_WEIGHTS, args.data, al_choices(f"al:{args.choices}"), args.images)
        print(format_levels(layers, levels))
        print(f"--levels {','.join(map(str, levels))}")
        print(f"plot: {plot_levels(layers, levels, args.out)}")

    run_cli(job)

