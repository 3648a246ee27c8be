"""Batch the per-step `VehicleSignals` of many requests into one array per field, for vectorised formulas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import numpy as np

from drivevlm.rewards.base import RewardRequest
from drivevlm.vehicle_signals import VehicleSignals

SIGNAL_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(VehicleSignals))


def signal_arrays(requests: Sequence[RewardRequest]) -> dict[str, np.ndarray]:
    """{field name: float64 array over the batch}; booleans become 0.0 / 1.0."""
    return {
        name: np.array([float(getattr(r.signals, name)) for r in requests], dtype=np.float64)
        for name in SIGNAL_FIELDS
    }


def terms_rows(terms: dict[str, np.ndarray], n: int) -> list[dict[str, float]]:
    """Split {term: array over the batch} into one {term: float} per step."""
    columns = {
        name: np.broadcast_to(np.asarray(values, dtype=np.float64), (n,)) for name, values in terms.items()
    }
    return [{name: float(values[i]) for name, values in columns.items()} for i in range(n)]
