"""Reward fidelity: ground-truth bands, the AUC, summaries, and a run on real frames and real presets."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from drivevlm.cli import app
from drivevlm.config import ConfigError, EnvConfig
from drivevlm.inspection.fidelity import (
    BANDS,
    POOLED,
    ScoredFrame,
    Truth,
    auc,
    path_truth,
    run_fidelity,
    scripted_driver,
    suggest_theta,
    summarise,
)
from drivevlm.presets import load_preset
from drivevlm.rewards.build import build_reward
from drivevlm.sim.world import Actor, ActorKind, EgoState, MapGeometry, Pose, Route, WorldState


def _state(*actors: tuple[ActorKind, float, float]) -> WorldState:
    ego = EgoState(Pose(10.0, 5.0, math.pi / 2), 5.0, 0.0, 0.0)  # heading +y
    placed = tuple(
        Actor(f"a{i}", kind, Pose(10.0 - left, 5.0 + ahead, 0.0), 1.0, 0.6, 0.6, 1.7)
        for i, (kind, ahead, left) in enumerate(actors)
    )
    return WorldState(0.0, 0, ego, placed, MapGeometry("empty", ()), Route(np.zeros((2, 2)), np.zeros(2)))


def test_truth_takes_the_nearest_person_in_the_path_only() -> None:
    truth = path_truth(
        _state(
            (ActorKind.PEDESTRIAN, 15.0, 1.0),  # in the path, 15 m
            (ActorKind.BICYCLE, 9.0, -2.0),  # in the path, 9 m: the nearest
            (ActorKind.PEDESTRIAN, 4.0, 6.0),  # on the sidewalk: not in the path
            (ActorKind.PEDESTRIAN, -3.0, 0.0),  # behind
        )
    )
    assert truth.vru_m == pytest.approx(9.0) and truth.band == "6-12" and not truth.clear
    assert [Truth(d, False).band for d in (0.5, 6.0, 6.1, 20.0, 20.1, math.inf)] == [
        "0-6",
        "0-6",
        "6-12",
        "12-20",
        "none",
        "none",
    ]
    car_ahead = path_truth(_state((ActorKind.CAR, 12.0, 0.0)))
    assert car_ahead.band == "none" and not car_ahead.clear
    assert path_truth(_state((ActorKind.CAR, 30.0, 0.0), (ActorKind.PEDESTRIAN, 3.0, 5.0))).clear
    assert path_truth(_state()).clear


def test_auc_is_the_share_of_correctly_ordered_pairs() -> None:
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 30).astype(float), rng.integers(0, 5, 40).astype(float)
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    assert auc(pos, neg) == pytest.approx(np.mean(pairs))
    assert auc([2.0, 3.0], [0.0, 1.0]) == 1.0 and auc([0.0], [1.0]) == 0.0
    assert auc([], [1.0]) is None


def test_summary_bands_clear_road_gate_and_answers() -> None:
    def frame(
        scenario: str, vru_m: float, r_norm: float, gate: float = 0.0, answer: str = "", clear: bool = True
    ) -> ScoredFrame:
        truth = Truth(vru_m, math.isinf(vru_m) and clear)
        return ScoredFrame(scenario, truth, r_norm, 25.0 * r_norm, gate, answer)

    frames = [
        frame("a", 3.0, 0.2, 1.0, "close"),
        frame("a", 9.0, 0.4, 1.0, "close"),
        frame("a", 15.0, 0.6, 1.0, "far"),
        frame("b", math.inf, 0.9),
        frame("b", math.inf, 1.0, 1.0, "far"),
        frame("c", math.inf, 0.1, clear=False),  # a car stopped in the path: slowing is right
    ]
    summary = summarise(frames)
    assert set(summary) == {"a", "b", "c", POOLED}
    pooled = summary[POOLED]
    # Against no risk ahead the order is perfect; with the car-following frame among the negatives it is not.
    assert pooled["auc_near_vs_clear"] == 1.0
    assert pooled["auc_near_vs_none"] == pytest.approx(4 / 6)
    assert pooled["theta_from_truth"] is None  # no raw scores: nothing to anchor θ on
    frames = frames[:5]
    summary = summarise(frames)
    pooled = summary[POOLED]
    assert pooled["v_des_by_band"] == pytest.approx({"0-6": 5.0, "6-12": 10.0, "12-20": 15.0, "none": 23.75})
    assert pooled["v_des_clear"] == pytest.approx(23.75) and pooled["clear_frames"] == 2
    assert pooled["gate_rate"] == pytest.approx(0.8)
    assert pooled["answers_by_band"]["0-6"] == [["close", 1]] and pooled["answers_by_band"]["none"] == [
        ["far", 1]
    ]
    assert summary["a"]["auc_near_vs_none"] is None  # no frame without risk in scenario a


def test_theta_from_truth_puts_the_low_tail_at_zero_and_clear_road_at_full_speed() -> None:
    def frame(vru_m: float, score: float, clear: bool = True) -> ScoredFrame:
        return ScoredFrame("s", Truth(vru_m, math.isinf(vru_m) and clear), 0.5, 12.5, 0.0, "", score)

    near = [frame(d, s) for d, s in zip((2.0, 5.0, 8.0, 11.0), (-0.3, -0.2, -0.1, 0.0), strict=True)]
    clear = [frame(math.inf, s) for s in (0.1, 0.2, 0.3, 0.4, 0.5)]
    car_ahead = [frame(math.inf, -0.5, clear=False)]  # counts for θmin only
    theta = suggest_theta(near + clear + car_ahead, low_pct=0.0)
    assert theta is not None and theta["usable"]
    assert theta["theta_min"] == pytest.approx(-0.5) and theta["theta_max"] == pytest.approx(0.2)
    assert (theta["frames"], theta["clear_frames"]) == (10, 5)
    upside_down = suggest_theta([frame(3.0, 1.0), frame(math.inf, -1.0)], low_pct=0.0)
    assert upside_down is not None and not upside_down["usable"]
    assert suggest_theta(near) is None
    pooled = summarise(near + clear + car_ahead)[POOLED]
    assert pooled["auc_raw_near_vs_clear"] == 1.0  # lower raw scores near people, whatever θ does


def test_the_scripted_driver_varies_with_the_seed() -> None:
    drivers = [scripted_driver(seed) for seed in range(6)]
    assert len({round(d.target_speed_kmh, 3) for d in drivers}) == 6
    assert all(12.0 <= d.target_speed_kmh <= 30.0 for d in drivers)
    assert [d.cautious for d in drivers] == [True, False] * 3


def test_presets_are_scored_on_the_same_frames_and_the_oracle_orders_them() -> None:
    presets = {}
    for name in ("drivevlm_rl_oracle", "vlm_rl"):
        preset = load_preset(name)
        presets[name] = build_reward(preset.reward, preset.models)
    result = run_fidelity(
        presets, EnvConfig(rgb_size=96), 4, ["pedestrian_crossing"], seeds=2, stride=3, max_steps=240
    )
    oracle, static = result["presets"]["drivevlm_rl_oracle"][POOLED], result["presets"]["vlm_rl"][POOLED]
    assert oracle["frames"] == static["frames"] > 100  # an episode may end early (a collision)
    assert oracle["frames_by_band"] == static["frames_by_band"]
    assert oracle["frames_by_band"]["0-6"] + oracle["frames_by_band"]["6-12"] > 0, (
        "the person reached the path"
    )
    # Ground truth drives the oracle: slower the nearer the person, full speed on clear road.
    v_des = oracle["v_des_by_band"]
    near = [v_des[band] for band in BANDS if v_des[band] is not None]
    assert near == sorted(near)
    assert oracle["v_des_clear"] > 20.0 and oracle["auc_near_vs_none"] > 0.9
    assert static["gate_rate"] == 0.0 and 0.0 <= static["auc_near_vs_none"] <= 1.0
    with pytest.raises(ConfigError, match="seeds"):
        run_fidelity(presets, EnvConfig(), 4, ["random"], seeds=0)


def test_fidelity_command_prints_the_table_and_writes_json(tmp_path) -> None:
    out = tmp_path / "fidelity.json"
    presets = "drivevlm_rl_oracle,vlm_rl,vlm_rl+reward.theta_max=0.5"
    args = ["reward", "fidelity", "--presets", presets, "--scenarios", "slow_cyclist"]
    args += ["--seeds", "1", "--max-steps", "60", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "drivevlm_rl_oracle" in result.output and "AUC per scenario" in result.output
    written = json.loads(out.read_text())["presets"]
    assert written["drivevlm_rl_oracle"]["slow_cyclist"]["frames"] == 12
    # The same frames, one preset with its own θmax: a wider range asks for less speed everywhere.
    plain, wider = written["vlm_rl"][POOLED], written["vlm_rl+reward.theta_max=0.5"][POOLED]
    assert wider["frames"] == plain["frames"] and wider["v_des_clear"] < plain["v_des_clear"]
    assert "theta_from_truth" in plain  # None here: 60 steps bring no cyclist into the path
