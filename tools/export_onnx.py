#!/usr/bin/env python
"""Export a spiking detector to ONNX and check it against PyTorch with onnxruntime: ``spikedet export`` (``--help`` lists the options)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from spikedet.commands.export import main  # noqa: E402

if __name__ == "__main__":
    main()
