"""Build a reward function from its config; the models come from a factory, so rewards import no backend.

`build_reward(reward_cfg, models_cfg, factory)` asks the preset's builder for a `RewardFunction`. The builder
asks the `ModelProvider` for only the models it needs (a TIRL preset creates none), and the provider wraps
them in the persistent cache when `models.cache.enabled`.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Protocol

from drivevlm.config import ConfigError
from drivevlm.models.base import Detector, ImageTextEncoder, VisionLanguageModel
from drivevlm.models.cache import CachedEncoder, ResultCache, cached_vlm
from drivevlm.models.config import ClipConfig, DetectorConfig, LVLMConfig, ModelsConfig
from drivevlm.rewards.base import RewardFunction
from drivevlm.rewards.config import RewardConfig
from drivevlm.rewards.registry import get_preset


class ModelFactory(Protocol):
    """Creates model objects from their config sections (drivevlm.models.registry provides the real one)."""

    def make_encoder(self, cfg: ClipConfig) -> ImageTextEncoder: ...

    def make_detector(self, cfg: DetectorConfig) -> Detector: ...

    def make_vlm(self, cfg: LVLMConfig) -> VisionLanguageModel: ...


def vlm_options(cfg: LVLMConfig) -> dict[str, Any]:
    """Constructor keywords of the `models.lvlm` backend beyond (backend, model, device)."""
    if cfg.backend == "qwen3vl":
        return {"max_new_tokens": cfg.max_tokens}
    api_key = None
    if cfg.api_key_env:
        api_key = os.environ.get(cfg.api_key_env)
        if api_key is None:
            raise ValueError(f"models.lvlm.api_key_env: environment variable {cfg.api_key_env} is not set")
    return {
        "base_url": cfg.base_url,
        "timeout_s": cfg.timeout_s,
        "retries": cfg.retries,
        "backoff_s": cfg.backoff_s,
        "concurrency": cfg.concurrency,
        "max_tokens": cfg.max_tokens,
        "temperature": cfg.temperature,
        "api_key": api_key,
    }


class RegistryModelFactory:
    """Default factory: the backends of drivevlm.models.registry, configured from the `models:` section."""

    def _registry(self) -> Any:
        return importlib.import_module("drivevlm.models.registry")

    def make_encoder(self, cfg: ClipConfig) -> ImageTextEncoder:
        options: dict[str, Any] = {"batch_size": cfg.batch_size}
        if cfg.pretrained is not None:
            options["pretrained"] = cfg.pretrained
        return self._registry().make_encoder(cfg.backend, cfg.model, cfg.device, **options)

    def make_detector(self, cfg: DetectorConfig) -> Detector:
        try:
            return self._registry().make_detector(
                cfg.backend, cfg.model, cfg.device, threshold=cfg.threshold, **cfg.options
            )
        except TypeError as error:
            if not cfg.options:
                raise
            raise ConfigError(
                f"models.detector.options: the {cfg.backend!r} detector refused"
                f" {sorted(cfg.options)}: {error}"
            ) from error

    def make_vlm(self, cfg: LVLMConfig) -> VisionLanguageModel:
        device = cfg.device if cfg.backend == "qwen3vl" else "cpu"
        return self._registry().make_vlm(cfg.backend, cfg.model, device, **vlm_options(cfg))


class InjectedModels:
    """A factory handing out ready-made model objects (tests, notebooks, a trainer sharing one GPU model)."""

    def __init__(
        self,
        encoder: ImageTextEncoder | None = None,
        detector: Detector | None = None,
        vlm: VisionLanguageModel | None = None,
    ) -> None:
        self.encoder, self.detector, self.vlm = encoder, detector, vlm

    def _get(self, what: str) -> Any:
        value = getattr(self, what)
        if value is None:
            raise ValueError(f"this reward preset needs the {what} model, but none was injected")
        return value

    def make_encoder(self, cfg: ClipConfig) -> ImageTextEncoder:
        return self._get("encoder")

    def make_detector(self, cfg: DetectorConfig) -> Detector:
        return self._get("detector")

    def make_vlm(self, cfg: LVLMConfig) -> VisionLanguageModel:
        return self._get("vlm")


class ModelProvider:
    """Creates each model at most once, on first request, wrapped in the result cache when enabled."""

    def __init__(self, config: ModelsConfig, factory: ModelFactory, prompt_version: str) -> None:
        self.config = config
        self.factory = factory
        self.prompt_version = prompt_version
        self.cache: ResultCache | None = None
        self._made: dict[str, Any] = {}

    def _cache(self) -> ResultCache | None:
        if self.config.cache.enabled and self.cache is None:
            self.cache = ResultCache(self.config.cache.resolved_path(), self.config.cache.max_entries)
        return self.cache

    def encoder(self) -> ImageTextEncoder:
        if "encoder" not in self._made:
            encoder = self.factory.make_encoder(self.config.clip)
            cache = self._cache()
            self._made["encoder"] = CachedEncoder(encoder, cache) if cache is not None else encoder
        return self._made["encoder"]

    def detector(self) -> Detector:
        if "detector" not in self._made:
            self._made["detector"] = self.factory.make_detector(self.config.detector)
        return self._made["detector"]

    def vlm(self) -> VisionLanguageModel:
        if "vlm" not in self._made:
            vlm = self.factory.make_vlm(self.config.lvlm)
            cache = self._cache()
            self._made["vlm"] = cached_vlm(vlm, cache, self.prompt_version) if cache is not None else vlm
        return self._made["vlm"]


def build_reward(
    reward: RewardConfig,
    models: ModelsConfig | None = None,
    factory: ModelFactory | None = None,
) -> RewardFunction:
    """The `RewardFunction` of `reward.preset`; `factory` makes the models (default: the model registry)."""
    models = models or ModelsConfig()
    if models.detector.threshold > reward.gate.threshold:
        raise ConfigError(
            f"models.detector.threshold ({models.detector.threshold}) is above reward.gate.threshold "
            f"({reward.gate.threshold}): the gate would never see detections in between"
        )
    provider = ModelProvider(models, factory or RegistryModelFactory(), reward.prompt)
    return get_preset(reward.preset)(reward, provider)
