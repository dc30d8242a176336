"""Which arithmetic precision a machine runs fast, and the ``--precision`` setting resolved against it.

``auto`` picks bf16 on a CPU with bf16 hardware (AVX-512 BF16 or AMX), bf16 (else fp16) on CUDA, and fp32
everywhere else, with one line saying why. ``int8`` runs on oneDNN's x86 quantized convolution (CPU only);
``fp16`` needs CUDA or a CPU with fp16 hardware. What the setting does to a model: :mod:`.precision`.
"""
from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "CPU_BF16_FLAGS",
    "CPU_FP16_FLAGS",
    "PRECISIONS",
    "Hardware",
    "check_precision",
    "cpu_flags",
    "int8_kernels",
    "probe_hardware",
    "resolve_precision",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
# /proc/cpuinfo flags of the CPU features whose kernels make bf16 (fp16) convolutions faster than fp32
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPU_FP16_FLAGS = frozenset({"avx512_fp16", "amx_fp16"})
# torch's own CPU probes (cpuinfo), for systems without /proc/cpuinfo; name → the flag it stands for
_TORCH_PROBES = {
    "_is_avx512_bf16_supported": "avx512_bf16", "_is_amx_tile_supported": "amx_tile",
    "_is_amx_fp16_supported": "amx_fp16", "_is_vnni_supported": "avx512_vnni",
}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags: the ``flags`` line of ``/proc/cpuinfo`` (Linux), else what torch's probes
    report. An AMX tile unit (``amx_tile``) implies AMX-BF16 on every CPU shipped with it."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags":
                return frozenset(value.split())
    flags = {flag for name, flag in _TORCH_PROBES.items() if getattr(torch.cpu, name, lambda: False)()}
    return frozenset(flags | ({"amx_bf16"} if "amx_tile" in flags else set()))


@functools.lru_cache(maxsize=1)
def int8_kernels() -> bool:
    """Whether oneDNN's quantized convolution with float output runs here (x86 CPUs with oneDNN): one tiny
    call decides, so a build or CPU without it is found before any model is touched."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not torch.backends.mkldnn.is_available():
        return False
    try:
        weight = torch.ones(1, 1, 1, 1, dtype=torch.int8)
        scale = torch.ones(1)
        packed = torch.ops.onednn.qconv_prepack(weight, scale, 1.0, 0, [1, 1], [0, 0], [1, 1], 1, None)
        out = torch.ops.onednn.qconv_pointwise(
            torch.ones(1, 1, 1, 1, dtype=torch.uint8), 1.0, 0, packed, scale, torch.zeros(1, dtype=torch.int64),
            None, [1, 1], [0, 0], [1, 1], 1, 1.0, 0, torch.float32, "none", [], "",
        )
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return out.dtype == torch.float32 and float(out) == 1.0


@dataclass(frozen=True)
class Hardware:
    """What the precision setting is resolved against."""

    device: str  # "cpu" or "cuda"
    cpu_flags: frozenset[str]
    cuda_bf16: bool = False
    int8: bool = False

    @property
    def cpu_bf16(self) -> bool:
        return bool(self.cpu_flags & CPU_BF16_FLAGS)

    @property
    def cpu_fp16(self) -> bool:
        return bool(self.cpu_flags & CPU_FP16_FLAGS)


def probe_hardware(*, device: str | torch.device = "cpu") -> Hardware:
    """The hardware facts of ``device`` (the CPU's flags in either case)."""
    kind = torch.device(device).type
    cuda = kind == "cuda" and torch.cuda.is_available()
    return Hardware(
        device=kind, cpu_flags=cpu_flags(), cuda_bf16=cuda and torch.cuda.is_bf16_supported(),
        int8=kind == "cpu" and int8_kernels(),
    )


def check_precision(value: str, *, name: str = "--precision") -> str:
    """One of :data:`PRECISIONS`, else a one-line ValueError naming the choices."""
    if value not in PRECISIONS:
        raise ValueError(f"{name} must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def resolve_precision(
    precision: str, *, device: str | torch.device = "cpu", hardware: Hardware | None = None, name: str = "--precision"
) -> tuple[str, str | None]:
    """``(precision, note)``: the concrete precision (``fp32``, ``bf16``, ``fp16`` or ``int8``) and, when
    ``auto`` falls back to fp32, the one line saying why. A precision the hardware cannot run is a ValueError."""
    check_precision(precision, name=name)
    hw = hardware or probe_hardware(device=device)
    if precision == "auto":
        if hw.device == "cuda":
            return ("bf16" if hw.cuda_bf16 else "fp16"), None
        if hw.device == "cpu" and hw.cpu_bf16:
            return "bf16", None
        if hw.device == "cpu":
            return "fp32", "no avx512_bf16/amx on this CPU: fp32"
        return "fp32", f"no low-precision kernels known for {hw.device}: fp32"
    if precision == "int8" and not hw.int8:
        where = "CPU only" if hw.device != "cpu" else "oneDNN's x86 quantized convolution, not available here"
        raise ValueError(f"{name} int8 needs {where}; use fp32 or bf16")
    if precision == "fp16" and hw.device == "cpu" and not hw.cpu_fp16:
        raise ValueError(f"{name} fp16 needs CUDA or a CPU with avx512_fp16/amx_fp16 (this one has neither); "
                         "use fp32, bf16 or int8")
    if precision == "bf16" and hw.device == "cuda" and not hw.cuda_bf16:
        raise ValueError(f"{name} bf16 is not supported by this GPU; use fp16")
    return precision, None
