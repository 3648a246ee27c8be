"""The `train:` section of a preset: learner, annotator and run-folder settings.

Defaults are VLM-RL's SAC hyper-parameters (paper-spec §4); every invalid value is an error naming its field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from drivevlm.annotation.config import AnnotatorConfig
from drivevlm.config import ConfigError, Section, build
from drivevlm.distributed.config import RayConfig
from drivevlm.precision import Precision


class SacConfig(Section):
    # lr(p) = final + (initial − final)·p², p = progress remaining (VLM-RL's quadratic schedule).
    learning_rate: float = Field(1e-4, gt=0)
    learning_rate_final: float = Field(5e-7, ge=0)
    buffer_size: int = Field(100_000, ge=2)
    batch_size: int = Field(256, ge=1)
    gamma: float = Field(0.98, gt=0, le=1)
    tau: float = Field(0.02, gt=0, le=1)
    train_freq: int = Field(64, ge=1)
    gradient_steps: int = Field(64, ge=0)
    learning_starts: int = Field(10_000, ge=0)
    ent_coef: str | float = "auto"
    # Learning rate of the automatic entropy coefficient; None: it follows the quadratic schedule as in
    # SB3 (with 1e-4 decaying, a short run barely moves it from its initial value).
    ent_coef_lr: float | None = Field(None, gt=0)
    use_sde: bool = True
    # gSDE: steps between two draws of the exploration noise; -1: once per rollout (SB3's default), so on
    # a 64-step chunk the steering noise acts as a constant bias.
    sde_sample_freq: int = Field(-1, ge=-1)
    # Warm-up (the first learning_starts steps): actions drawn uniformly, steering in [-warmup_steer,
    # warmup_steer] and throttle/brake in warmup_throttle. The defaults are SB3's uniform draws over the
    # action space, under which braking (8 m/s^2) outweighs throttle (3 m/s^2) and the car barely moves.
    warmup_steer: float = Field(1.0, ge=0, le=1)
    warmup_throttle: tuple[float, float] = (-1.0, 1.0)
    # route_follower: the warm-up's actions come from the scripted route follower (pure pursuit at the
    # target speed, braking for what is ahead) with Gaussian noise of std warmup_noise, as prior data in
    # SAC from demonstrations; the replay buffer starts with drives along the route, still rewarded by the
    # preset's own reward. Off in the paper's presets (uniform draws).
    warmup_driver: Literal["uniform", "route_follower"] = "uniform"
    warmup_noise: float = Field(0.2, ge=0)
    # Gradient steps of behaviour cloning on the warm-up's stored actions (actor and its encoder), then as
    # many critic steps of the cloned policy, before the first SAC update: with the route follower's
    # warm-up, SAC starts from a policy that drives and critics that know its values. 0: none.
    warmup_imitation_steps: int = Field(0, ge=0)
    log_std_init: float = -3.0
    net_arch: list[int] = Field(default_factory=lambda: [500, 300])
    # shared: one BEV encoder that the critic trains and the actor and targets reuse, one pass per batch
    # (DrQ / SAC-AE; train/sac.py); separate: SB3's own SAC, an encoder each for actor and critic
    # (what VLM-RL ran), several times slower per gradient step.
    encoder: Literal["shared", "separate"] = "shared"
    # The shared encoder's arithmetic in gradient steps: bfloat16 runs its convolutions under autocast
    # (weights, gradients and Adam's state stay float32); auto picks bfloat16 on a CPU that multiplies it
    # natively (AMX or AVX512-BF16), float32 elsewhere. The learner step on a 2-core Sapphire Rapids VM
    # (benchmarks/learner_step.py): 1.7-1.9x faster at 96 px, batch 256; 1.3-1.5x at 48 px, batch 128.
    encoder_precision: Precision = "float32"
    # Policy masks stored one bit per pixel (the renderer's masks are 0/255): 8x less memory than uint8.
    bev_storage: Literal["bits", "uint8"] = "bits"

    @model_validator(mode="after")
    def _precision_needs_shared(self) -> SacConfig:
        if self.encoder_precision == "bfloat16" and self.encoder != "shared":
            raise ValueError("encoder_precision: bfloat16 needs encoder: shared (SB3's own SAC runs float32)")
        return self

    @field_validator("warmup_throttle")
    @classmethod
    def _throttle_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not -1.0 <= low <= high <= 1.0:
            raise ValueError(f"expected [low, high] with -1 <= low <= high <= 1, got {list(value)}")
        return value


class PpoConfig(Section):
    learning_rate: float = Field(1e-4, gt=0)
    learning_rate_final: float = Field(1e-6, ge=0)
    n_steps: int = Field(1024, ge=2)
    batch_size: int = Field(64, ge=2)
    n_epochs: int = Field(10, ge=1)
    gamma: float = Field(0.98, gt=0, le=1)
    gae_lambda: float = Field(0.95, gt=0, le=1)
    clip_range: float = Field(0.2, gt=0)
    ent_coef: float = Field(0.05, ge=0)
    use_sde: bool = False
    net_arch: list[int] = Field(default_factory=lambda: [500, 300])


class PolicyConfig(Section):
    """BEV CNN (VLM-RL's layer plan, padded so that 96 px masks survive six convolutions) + state MLP."""

    cnn_channels: list[int] = Field(default_factory=lambda: [8, 16, 32, 64, 128, 256])
    cnn_kernels: list[int] = Field(default_factory=lambda: [5, 5, 5, 3, 3, 3])
    cnn_strides: list[int] = Field(default_factory=lambda: [2, 2, 2, 2, 2, 1])
    bev_features: int = Field(256, ge=1)
    state_hidden: list[int] = Field(default_factory=lambda: [64])

    @model_validator(mode="after")
    def _same_lengths(self) -> PolicyConfig:
        n = len(self.cnn_channels)
        if n == 0 or len(self.cnn_kernels) != n or len(self.cnn_strides) != n:
            raise ValueError(
                "cnn_channels, cnn_kernels and cnn_strides must be non-empty lists of the same length, got "
                f"{len(self.cnn_channels)}, {len(self.cnn_kernels)}, {len(self.cnn_strides)}"
            )
        if min(self.cnn_channels + self.cnn_kernels + self.cnn_strides) < 1:
            raise ValueError("cnn_channels, cnn_kernels and cnn_strides must be positive")
        return self


class ValidationConfig(Section):
    # Episodes each checkpoint's policy drives (train/validation.py); the best-scoring policy becomes the
    # run's `best`, which evaluate, drive and export use. 0: no validation (the paper's way).
    episodes: int = Field(0, ge=0)
    # Seeds of the validation episodes (random routes of the training town), far from the suites' 0-99.
    seed: int = Field(1_000_000, ge=0)


class TrainConfig(Section):
    # The shipped presets spell it `algo`.
    algorithm: Literal["sac", "ppo"] = Field("sac", validation_alias=AliasChoices("algorithm", "algo"))
    # async: a reward thread annotates while the agent collects; sync: collect a chunk, annotate, learn.
    mode: Literal["async", "sync"] = "async"
    total_timesteps: int = Field(1_000_000, ge=1)
    n_envs: int = Field(1, ge=1, le=256)
    # subprocess: one simulator per process (libsumo needs it for n_envs > 1); dummy: all in this process.
    vec_env: Literal["auto", "subprocess", "dummy"] = "auto"
    # Pending (not yet annotated) transitions allowed before collection waits for the annotator.
    backlog_limit: int = Field(4096, ge=1)
    checkpoint_interval: int = Field(50_000, ge=1)
    # Save the replay buffer with each checkpoint so that resume continues with the same data.
    checkpoint_replay_buffer: bool = True
    log_interval: int = Field(1000, ge=1)
    seed: int = 100
    device: str = "auto"
    # How often a simulator subprocess that died is restarted before the run gives up.
    max_env_restarts: int = Field(20, ge=0)
    # local: simulator subprocesses and reward threads here; ray: runner and annotator actors (train.ray).
    executor: Literal["local", "ray"] = "local"
    ray: RayConfig = Field(default_factory=RayConfig)
    sac: SacConfig = Field(default_factory=SacConfig)
    ppo: PpoConfig = Field(default_factory=PpoConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    annotator: AnnotatorConfig = Field(default_factory=AnnotatorConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)

    @model_validator(mode="after")
    def _device(self) -> TrainConfig:
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise ValueError(f"device: unknown value {self.device!r}; allowed: auto, cpu, cuda, cuda:N, mps")
        return self

    @property
    def use_subprocesses(self) -> bool:
        return self.vec_env == "subprocess" or (self.vec_env == "auto" and self.n_envs > 1)


def train_section(data: dict[str, Any]) -> TrainConfig:
    """Validate the `train:` section of a whole preset mapping (other sections are ignored)."""
    section = data.get("train") or {}
    if not isinstance(section, dict):
        raise ConfigError("train: expected a mapping")
    return build(TrainConfig, section, "train")
