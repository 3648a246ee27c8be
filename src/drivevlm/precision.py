"""bfloat16 where the CPU multiplies it in hardware: for the learner's encoder and the model backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import torch

# The config fields' type; importing it costs no torch (configs are validated before any model loads).
Precision = Literal["float32", "bfloat16", "auto"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def native_cpu_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX tiles or AVX512-BF16); elsewhere oneDNN
    emulates it and bfloat16 convolutions run slower than float32 ones."""
    import torch

    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast type for `precision` on `device`, None for float32; `auto` picks bfloat16 only on a CPU
    that has it natively (on CUDA it stays float32: not measured)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    import torch

    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cpu" and native_cpu_bfloat16():
        return torch.bfloat16
    return None
