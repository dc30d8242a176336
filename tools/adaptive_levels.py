#!/usr/bin/env python
"""PASCAL's adaptive layer-wise levels: the AL metric of every activation and the per-layer L it leads to: ``spikedet levels`` (``--help`` lists the options)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from spikedet.commands.levels import main  # noqa: E402

if __name__ == "__main__":
    main()
