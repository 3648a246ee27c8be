"""The bundled aligned image-text model: loads offline, real text semantics, scores simulator frames."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from drivevlm.env import DriveEnv
from drivevlm.models.base import ImageTextEncoder, ModelNotFoundError
from drivevlm.models.clip.aligned import BUNDLED_DIR, AlignedClipEncoder, MiniLMTextEncoder
from drivevlm.models.registry import make_encoder
from drivevlm.render import BevRgbRenderer, FrontCameraRenderer
from drivevlm.sim.world import Actor, ActorKind, Pose

CLEAR = "The road is clear with no car accidents"
CRASH = "Two cars have collided with each other on the road"


@pytest.fixture(scope="module")
def encoder() -> AlignedClipEncoder:
    model = make_encoder("aligned", "bundled")
    assert isinstance(model, AlignedClipEncoder)
    return model


def test_bundled_weights_are_small_and_documented() -> None:
    size = (BUNDLED_DIR / "model.safetensors").stat().st_size
    assert size < 5 * 2**20
    config = json.loads((BUNDLED_DIR / "config.json").read_text())
    assert config["embed_dim"] == 384
    card = (BUNDLED_DIR / "MODEL_CARD.md").read_text()
    assert "drivevlm" in card and "AUC" in card


def test_encodes_images_and_texts_into_one_normalised_space(encoder: AlignedClipEncoder) -> None:
    assert isinstance(encoder, ImageTextEncoder)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 160, 160, 3), dtype=np.uint8)
    image_emb = encoder.encode_images(images)
    text_emb = encoder.encode_texts([CLEAR, CRASH, "The road ahead is clear"])
    assert image_emb.shape == (3, 384) and text_emb.shape == (3, 384)
    assert image_emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(image_emb, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(text_emb, axis=1), 1.0, atol=1e-4)
    # The frozen MiniLM keeps real meaning: paraphrases are closer than opposites.
    assert text_emb[0] @ text_emb[2] > text_emb[0] @ text_emb[1]
    # Other sizes are resized inside the encoder.
    assert encoder.encode_images(images[0][:96, :96]).shape == (1, 384)


def test_text_cache_smaller_than_a_call_still_answers_in_full(encoder: AlignedClipEncoder) -> None:
    texts = [f"A pedestrian is {d} m ahead." for d in range(5)]
    small = MiniLMTextEncoder(cache_size=2)
    np.testing.assert_allclose(small.encode(texts), encoder.encode_texts(texts), atol=1e-5)
    assert len(small._cache) == 2


def test_bad_input_and_missing_model_say_what_is_wrong(encoder: AlignedClipEncoder, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        encoder.encode_images(np.zeros((1, 32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="texts"):
        encoder.encode_texts("one string")  # type: ignore[arg-type]
    with pytest.raises(ModelNotFoundError, match=str(tmp_path)):
        AlignedClipEncoder(tmp_path)


def test_scores_a_pedestrian_in_front_below_an_empty_road(encoder: AlignedClipEncoder) -> None:
    env = DriveEnv({"town": "tee", "scenario": "car_following", "density": "empty"})
    env.reset(seed=2)
    state = env.world_state
    env.close()
    assert state is not None
    pose = state.ego.pose
    walkers = tuple(
        Actor(
            f"p{i}",
            ActorKind.PEDESTRIAN,
            Pose(pose.x + d * np.cos(pose.yaw), pose.y + d * np.sin(pose.yaw), 0.0),
            1.0,
            0.5,
            0.5,
            1.8,
        )
        for i, d in enumerate((5.0, 6.0))
    )
    empty = dataclasses.replace(state, actors=())
    busy = dataclasses.replace(state, actors=walkers)
    goals = encoder.encode_texts([CLEAR, CRASH])
    for renderer in (BevRgbRenderer(size=160), FrontCameraRenderer(width=160, height=160)):
        emb = encoder.encode_images(np.stack([renderer.render(empty), renderer.render(busy)]))
        r_static = emb @ goals[0] - emb @ goals[1]
        assert r_static[0] > r_static[1], type(renderer).__name__
