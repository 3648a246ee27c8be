"""Shipped pretrained policies: each loads by name, drives its own env, and has a card with its figures."""

from __future__ import annotations

import numpy as np
import pytest

from drivevlm.env import DriveEnv
from drivevlm.eval.runs import load_driver
from drivevlm.policies import POLICIES_DIR, policy_names

CARD_SECTIONS = ("## Command", "## Figures", "`unseen_routes`", "Commit")


def test_a_policy_of_each_headline_method_is_shipped() -> None:
    assert {"drivevlm_rl_laptop", "vlm_rl_laptop"} <= set(policy_names())


@pytest.mark.parametrize("name", policy_names())
def test_shipped_policy_drives_its_env_and_has_a_card(name: str) -> None:
    folder = POLICIES_DIR / name
    card = (folder / "POLICY_CARD.md").read_text(encoding="utf-8")
    assert all(section in card for section in CARD_SECTIONS), name
    assert (folder / "policy.onnx").stat().st_size < 8_000_000  # a few MB, as the package ships it
    driver = load_driver(None, name)  # by name, checked against the env recorded beside it
    env = DriveEnv(driver.env_config)
    try:
        obs, _ = env.reset(seed=0)
        for _ in range(5):
            action = np.asarray(driver.act(obs))
            assert action.shape == (2,) and np.all(np.abs(action) <= 1.0)
            obs, *_ = env.step(action)
    finally:
        env.close()
