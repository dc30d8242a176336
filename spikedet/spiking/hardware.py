"""Which arithmetic precision a machine runs fast, and the ``--precision`` setting resolved against it.

``auto`` picks the fastest precision the hardware runs (bf16 on a CPU with AVX-512 BF16 or AMX, int8 on an x86
CPU with oneDNN, bf16 else fp16 on CUDA) among those measured to keep mAP within 0.3 points of fp32
(:data:`ACCURATE_PRECISIONS`), and fp32 otherwise, with one line saying why. ``int8`` runs on oneDNN's x86
quantized convolution (CPU only); ``fp16`` needs CUDA or a CPU with fp16 hardware. What the setting does to a
model: :mod:`.precision`.
"""
from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "ACCURATE_PRECISIONS",
    "CPU_BF16_FLAGS",
    "CPU_FP16_FLAGS",
    "PRECISIONS",
    "Hardware",
    "check_precision",
    "cpu_flags",
    "fast_precisions",
    "int8_kernels",
    "probe_hardware",
    "resolve_precision",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
# The low precisions ``auto`` may pick: measured within 0.3 mAP50-95 points of fp32 at T = 1, 2, 4, 8 for every
# online recipe on BCCD (BENCHMARKS.md, "Low-precision spiking inference"). None is yet: int8 lost up to 1.81
# points (qcfs, T = 1), bf16 up to 1.44 (random weight errors of int8's size move mAP as much: the networks
# amplify any perturbation); fp16/bf16 on a GPU are unmeasured. An explicit --precision still runs.
ACCURATE_PRECISIONS: frozenset[str] = frozenset()
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


def fast_precisions(hw: Hardware) -> list[str]:
    """The low precisions ``hw`` runs faster than fp32, fastest first."""
    if hw.device == "cuda":
        return ["bf16", "fp16"] if hw.cuda_bf16 else ["fp16"]
    if hw.device != "cpu":
        return []
    return (["bf16"] if hw.cpu_bf16 else []) + (["int8"] if hw.int8 else [])


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
        fast = fast_precisions(hw)
        accurate = [p for p in fast if p in ACCURATE_PRECISIONS]
        if accurate:
            return accurate[0], None
        if fast:
            return "fp32", (f"auto: fp32 (faster here: {', '.join(fast)}; none measured within 0.3 mAP points of "
                            f"fp32, see BENCHMARKS.md; --precision {fast[0]} chooses it)")
        return "fp32", f"auto: fp32 (no low-precision kernels known for this {hw.device})"
    if precision == "int8" and not hw.int8:
        where = "CPU only" if hw.device != "cpu" else "oneDNN's x86 quantized convolution, not available here"
        raise ValueError(f"{name} int8 needs {where}; use fp32 or bf16")
    if precision == "fp16" and hw.device == "cpu" and not hw.cpu_fp16:
        raise ValueError(f"{name} fp16 needs CUDA or a CPU with avx512_fp16/amx_fp16 (this one has neither); "
                         "use fp32, bf16 or int8")
    if precision == "bf16" and hw.device == "cuda" and not hw.cuda_bf16:
        raise ValueError(f"{name} bf16 is not supported by this GPU; use fp16")
    return precision, None
