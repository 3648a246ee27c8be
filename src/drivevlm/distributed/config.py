"""The `train.ray:` section: where the Ray cluster is and what each actor asks of it.

Kept free of Ray imports so that validating a preset never needs the `ray` extra.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import Field, field_validator

from drivevlm.config import Section


class ActorResources(Section):
    """What one actor reserves on the cluster (Ray's num_cpus / num_gpus / custom resources)."""

    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    # Custom resources, e.g. {"carla": 1} on machines started with `ray start --resources '{"carla": 4}'`.
    resources: dict[str, float] = Field(default_factory=dict)
    memory_mb: int | None = Field(None, ge=1)

    @field_validator("resources")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if amount < 0:
                raise ValueError(f"resources: {name} must be >= 0, got {amount}")
        return value

    def ray_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.memory_mb is not None:
            options["memory"] = self.memory_mb * 1024 * 1024
        return options


class SimulatorServer(Section):
    """One CARLA server; runner i drives server i (its backend_options get host, port and tm_port)."""

    host: str
    port: int = Field(2000, ge=1, le=65535)
    tm_port: int | None = Field(None, ge=1, le=65535)
    # Schedule the runner on the Ray node whose address is `host` (the server's machine).
    pin_to_host: bool = True

    @field_validator("host")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f"host: expected the server machine's IP address (Ray names nodes by IP), got {value!r}"
            ) from None
        return value

    def backend_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.tm_port is not None:
            options["tm_port"] = self.tm_port
        return options


class RayConfig(Section):
    # None: start a private local Ray instance; "auto": join the cluster this machine belongs to
    # (`ray start` ran here); "HOST:PORT": the head node's GCS address.
    address: str | None = None
    # Local instance only (address None): CPUs it may use (None: all) and its object store size.
    num_cpus: float | None = Field(None, gt=0)
    object_store_mb: int | None = Field(None, ge=64)
    # The number of environment runners is train.n_envs (one simulator process per runner actor).
    runner: ActorResources = Field(default_factory=ActorResources)
    num_annotators: int = Field(1, ge=1, le=1024)
    annotator: ActorResources = Field(default_factory=ActorResources)
    # Batches handed to one annotator actor at once (>1 overlaps transfer with computation).
    annotator_max_in_flight: int = Field(2, ge=1, le=64)
    # Actors replaced after they died, over the whole run, before it gives up (per kind).
    max_actor_restarts: int = Field(20, ge=0)
    # A runner that does not answer a step within this time is treated as lost and replaced.
    step_timeout_s: float = Field(120.0, gt=0)
    # CARLA: one server per runner (length train.n_envs), empty for simulators that run anywhere (SUMO).
    simulator_servers: list[SimulatorServer] = Field(default_factory=list)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or value == "auto" or value.startswith("ray://"):
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"address: expected auto, HOST:PORT or ray://HOST:PORT, got {value!r}")
        return value
