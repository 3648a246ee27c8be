import pytest
import torch

from drivevlm.precision import autocast_dtype, native_cpu_bfloat16


def test_precision_resolves_per_device() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype("float32", cpu) is None
    assert autocast_dtype("bfloat16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cpu) is (torch.bfloat16 if native_cpu_bfloat16() else None)
    assert autocast_dtype("auto", torch.device("cuda")) is None  # only a CPU's native bfloat16 is chosen


def test_unknown_precision_is_named() -> None:
    with pytest.raises(ValueError, match="precision: expected one of float32, bfloat16, auto, got 'half'"):
        autocast_dtype("half", torch.device("cpu"))
