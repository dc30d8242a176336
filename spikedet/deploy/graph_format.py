"""What every written graph shares, whatever writes it (ONNX or AOTInductor): the state naming and the writer's
signature."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

__all__ = ["DEFAULT_OPSET", "STATE_IN", "STATE_OUT", "GraphWriter"]

DEFAULT_OPSET = 17
# the name prefixes of a stateful graph's state inputs and outputs
STATE_IN, STATE_OUT = "state_in.", "state_out."
# (module, example inputs, path, input names, output names, metadata=...) → the written graph's path
GraphWriter = Callable[..., Path]
