"""The typed `models:` section of a preset: which backend and weights serve as CLIP, the detector and the
LVLM, and the persistent result cache. Every invalid value is an error naming its field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from drivevlm.config import Section


class ClipConfig(Section):
    # A name known to drivevlm.models.registry (e.g. transformers, open_clip).
    backend: str = "transformers"
    # A Hugging Face model id or a local folder; these weights equal OpenCLIP ViT-B-32 laion2b_s34b_b79k.
    model: str = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
    # open_clip's pretrained tag when the backend needs one.
    pretrained: str | None = None
    device: str = "cpu"
    batch_size: int = Field(32, ge=1)


class DetectorConfig(Section):
    # A drivevlm.models.registry name: rtdetr (Apache-2.0), torchvision_ssd, ultralytics (AGPL extra).
    backend: str = "rtdetr"
    model: str = "PekingU/rtdetr_r18vd_coco_o365"
    device: str = "cpu"
    # The detector's own floor; must not exceed reward.gate.threshold or the gate never sees those detections.
    threshold: float = Field(0.25, ge=0.0, le=1.0)
    # Further keyword arguments of the backend, e.g. the bundled tiny detector's
    # {flip_test: false, batch_size: 8}; a name the backend does not take is an error naming it.
    options: dict[str, Any] = Field(default_factory=dict)


class LVLMConfig(Section):
    # openai: any OpenAI-compatible server; openai_pool: several such servers, load-balanced
    # (base_url a comma-separated list); qwen3vl: in-process transformers Qwen3-VL.
    backend: Literal["openai", "openai_pool", "qwen3vl"] = "openai"
    # OpenAI-compatible server: vLLM :8000/v1, SGLang :30000/v1, Ollama :11434/v1.
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "Qwen/Qwen3-VL-2B-Instruct"
    # qwen3vl only; the openai backend runs wherever the server runs.
    device: str = "cpu"
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(2, ge=0)
    backoff_s: float = Field(0.5, ge=0)
    concurrency: int = Field(8, ge=1)
    # Windows per call for backends that answer several at once (qwen3vl: one padded generate() call).
    batch_size: int = Field(32, ge=1)
    max_tokens: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0)
    # Name of an environment variable holding the server's API key (most local servers need none).
    api_key_env: str | None = None


class CacheConfig(Section):
    enabled: bool = True
    # None: ~/.cache/drivevlm/reward_cache.sqlite
    path: Path | None = None
    max_entries: int | None = Field(None, ge=1)

    def resolved_path(self) -> Path:
        return (
            self.path
            if self.path is not None
            else Path.home() / ".cache" / "drivevlm" / "reward_cache.sqlite"
        )


class ModelsConfig(Section):
    clip: ClipConfig = Field(default_factory=ClipConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    lvlm: LVLMConfig = Field(default_factory=LVLMConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
