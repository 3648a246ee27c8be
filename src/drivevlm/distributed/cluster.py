"""Joining (or starting) the Ray cluster a training run uses."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

from drivevlm.distributed.config import RayConfig

log = logging.getLogger(__name__)


def import_ray() -> ModuleType:
    """The `ray` module, or an ImportError naming the extra that provides it."""
    try:
        return importlib.import_module("ray")
    except ImportError as error:
        raise ImportError(
            f"train.executor=ray needs the `ray` extra (pip install 'drivevlm[ray]'): {error}"
        ) from error


def connect(cfg: RayConfig) -> bool:
    """Connect to the configured cluster; True when this call started Ray (the caller shuts it down).

    An already initialised Ray (a notebook, a test fixture, `ray job submit`) is used as it is.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    if cfg.address is None:
        ray.init(
            num_cpus=cfg.num_cpus,
            object_store_memory=cfg.object_store_mb * 1024 * 1024 if cfg.object_store_mb else None,
            include_dashboard=False,
            log_to_driver=False,
        )
    else:
        ray.init(address=cfg.address, log_to_driver=False)
    log.info("Ray resources: %s", ray.cluster_resources())
    return True


def disconnect(started_here: bool) -> None:
    if started_here:
        ray = import_ray()
        if ray.is_initialized():
            ray.shutdown()
