"""Live spiking object detection on a camera, a video file or a network stream.

    python tools/demo.py                                   # camera 0, shipped model (qcfs), T=4, window (q quits)
    python tools/demo.py --source clip.mp4 --no-show --save out.mp4
    python tools/demo.py --source rtsp://host/stream --stream-state      # state carries over, 1 step per frame
    python tools/demo.py --source clip.mp4 --ann                         # the ANN, for comparison
    python tools/demo.py --source clip.mp4 --method pascal               # PASCAL: close to the ANN at T=4

--stream-state keeps the membrane state from frame to frame and simulates --steps-per-frame steps per frame; the
read-out averages the last --window steps (default: T), and membranes and max-pools forget old scenes (--leak,
--pool-decay). The overlay shows boxes, FPS, T, the mean firing rate and a per-layer firing-rate bar chart.
--backend picks the runtime: auto (default: inductor when a C++ compiler is found, else onnxruntime), inductor,
onnxruntime or torch. The compiled backends build the graph once per model and setting, then load it from the cache.
"""
from __future__ import annotations

import argparse


from spikedet.cli import ToolParser, resolved_precision, run_cli


def main(argv: list[str] | None = None) -> None:
    parser = ToolParser(prog="spikedet demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="0", help="camera index, video file or stream URL (default: 0)")
    parser.add_argument("--weights", default=None, help="spikedet ANN or SNN checkpoint (default: the shipped model)")
    parser.add_argument("--T", type=int, default=4,
                        help="time steps per frame (stream mode: the default read-out window)")
    parser.add_argument("--imgsz", type=int, default=None, help="input size (default: the model's, 320 shipped)")
    parser.add_argument("--save", default=None, help="write the annotated video here (mp4)")
    parser.add_argument("--no-show", action="store_true", help="no window (servers, CI)")
    parser.add_argument("--stream-state", action="store_true", help="carry the membrane state over between frames")
    parser.add_argument("--steps-per-frame", type=int, default=1, help="stream mode: time steps per frame")
    parser.add_argument("--window", type=int, default=None,
                        help="stream mode: read-out over the last N steps (default: T; 0: all steps since start)")
    parser.add_argument("--leak", type=float, default=0.25,
                        help="stream mode: fraction of each membrane's offset from its initial potential kept "
                             "per frame (1: pure carry-over)")
    parser.add_argument("--pool-decay", type=float, default=0.5,
                        help="stream mode: fraction of the max-pool accumulators kept per frame (1: no decay)")
    parser.add_argument("--method", default=None,
                        help="conversion recipe for an ANN checkpoint (default qcfs): qcfs, cos, casc or pascal; "
                             "the calibrating ones (dual_phase, fast_snn) need data: convert with "
                             "tools/convert_det.py and pass the SNN checkpoint as --weights")
    parser.add_argument("--ann", action="store_true", help="run the quantized ANN instead, for comparison")
    parser.add_argument("--conf", type=float, default=0.25, help="score threshold")
    parser.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (default: the detector family's, 0.7 YOLO, 0.5 SSD)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    parser.add_argument("--backend", default="auto",
                        help="auto (default), inductor, onnxruntime or torch. inductor compiles the detector ahead "
                             "of time with PyTorch's AOTInductor (needs a C++ compiler; the fastest on CPU, see "
                             "BENCHMARKS.md); onnxruntime runs its ONNX export; auto takes inductor when it can and "
                             "onnxruntime otherwise. The first run with a model and settings compiles and checks the "
                             "graph (up to a minute), later runs load it from the spikedet cache. torch runs the "
                             "PyTorch model eagerly")
    parser.add_argument("--precision", default="fp32",
                        help="auto, fp32 (default), bf16, fp16 or int8: the arithmetic of the layers fed by spikes "
                             "(QCFS levels for --ann); membranes and read-outs stay fp32. Not fp32 runs on the torch "
                             "backend. auto picks a faster one only once measured within 0.3 mAP points of fp32: none is yet")
    args = parser.parse_args(argv)

    def job() -> None:
        from spikedet.deploy.demo import run_demo
        from spikedet.deploy.video import SourceError

        precision = resolved_precision(args.precision)
        summary = run_demo(
            args.source, weights=args.weights, timesteps=args.T, imgsz=args.imgsz, save=args.save,
            show=not args.no_show, stream_state=args.stream_state, steps_per_frame=args.steps_per_frame,
            window=args.window, leak=args.leak, pool_decay=args.pool_decay, ann=args.ann, conf=args.conf,
            iou=args.iou, max_frames=args.max_frames, backend=args.backend, method=args.method, precision=precision,
        )
        print(summary.format())
        if summary.error:
            raise SourceError(summary.error)

    run_cli(job)

