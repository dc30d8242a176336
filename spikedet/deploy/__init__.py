"""Deployment: the live demo (camera, video, stream) on eager, onnxruntime or AOTInductor backends, streaming
read-outs, and ONNX export checked with onnxruntime."""
from .demo import DemoSummary, process_video, run_demo
from .detector import (
    AnnDetector, FrameDetector, SpikingDetector, StreamingDetector, comparison_ann, make_detector, spiking_network,
)
from .video import SourceError, VideoSource, fit_frame, make_video

__all__ = [
    "DemoSummary", "process_video", "run_demo", "AnnDetector", "FrameDetector", "SpikingDetector",
    "StreamingDetector", "comparison_ann", "make_detector", "spiking_network", "SourceError", "VideoSource",
    "fit_frame", "make_video",
]
