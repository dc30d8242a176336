"""The inductor backend of the demo: graphs compiled ahead of time by PyTorch's AOTInductor.

The spiking graph is the one the ONNX export traces (:func:`~spikedet.deploy.tracing.functional_graph`:
side-effect free, the state as explicit inputs and outputs); ``torch.export`` captures it and AOTInductor
compiles it to C++ with the weights frozen in. What makes it fast on CPU is fusion: a neuron's time step
(add the input, compare with the threshold, emit, subtract) becomes one loop over the layer, where onnxruntime
runs one operator, and one pass over memory, per step of the update. The result is a ``.pt2`` package that
loads in milliseconds; compiling needs a C++ compiler and takes tens of seconds, once per model and setting
(:mod:`~spikedet.deploy.backends` caches it).

The compiled kernels are built for this machine's instruction set (the cache key holds it) and run on torch's
threads (``torch.set_num_threads``).
"""
from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..spiking import StatefulModule
from .runner import GraphRunner, cxx_compiler
from .tracing import ExportError, functional_graph

__all__ = ["compile_graph", "AotRunner"]

_METADATA_KEY = "spikedet"


@contextlib.contextmanager
def _quiet_compiler() -> Iterator[None]:
    """Compiling and loading log that no CUDA runtime was found (we build for the CPU): not the user's concern."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def compile_graph(
    module: nn.Module, inputs: Sequence[torch.Tensor], path: str | Path, input_names: list[str],
    output_names: list[str], metadata: dict[str, Any] | None = None,
) -> Path:
    """Compile ``module(*inputs)`` (made side-effect free first when it holds spiking state) into an
    AOTInductor package at ``path``, with ``metadata`` (and the input and output names) stored in it.
    :class:`ExportError` with the compiler's first line when the compile fails."""
    if cxx_compiler() is None:
        raise ExportError("the inductor backend needs a C++ compiler (g++ or clang++, or $CXX); none was found")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    stateful = any(isinstance(m, StatefulModule) for m in module.modules())
    graph = functional_graph(module, inputs) if stateful else module
    meta = {**(metadata or {}), "inputs": input_names, "outputs": output_names}
    config = {
        "freezing": True,  # weights as constants: folded, and laid out for the convolution kernels
        "aot_inductor.metadata": {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()},
    }
    try:
        with torch.no_grad(), _quiet_compiler():
            program = torch.export.export(graph, tuple(inputs))
            torch._inductor.aoti_compile_and_package(program, package_path=str(path), inductor_configs=config)
    except Exception as err:  # the compiler's errors come in many types; the first line says what failed
        message = str(err).strip().splitlines()
        raise ExportError(f"AOTInductor could not compile the graph: {message[0] if message else type(err).__name__}"
                          ) from None
    return path


class AotRunner(GraphRunner):
    """An AOTInductor package, run on torch's threads (``threads`` is not used: the kernels are OpenMP loops)."""

    backend = "inductor"
    suffix = ".pt2"
    # compiled code: valid for this torch and this instruction set only
    settings = {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability()}
    write = staticmethod(compile_graph)

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        with _quiet_compiler():
            self.model = torch._inductor.aoti_load_package(str(path))
        stored = self.model.get_metadata()
        if _METADATA_KEY not in stored:
            raise ExportError(f"{path} is not a spikedet graph (no '{_METADATA_KEY}' metadata)")
        self.metadata = json.loads(stored[_METADATA_KEY])

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        with torch.inference_mode():
            outputs = self.model(*(x.contiguous() for x in inputs))
        return [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)  # one output comes bare
