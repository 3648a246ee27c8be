"""The paper's driving metrics, as pure functions of `EpisodeLog`s (paper-spec §5-6).

Definitions follow the DriveVLM-RL tables and VLM-RL's logging code (facts, not code):

- AS  average speed, km/h: the mean over episodes of each episode's mean per-step speed.
- RC  routes completed: the mean over episodes of the final route completion (whole routes plus the
      fraction of the current one); at test time each episode's value is clipped to 1 first.
- TD  total distance, m: the mean over episodes of the distance driven in the episode.
- CS  collision speed, km/h, two definitions that are NOT comparable:
      training `collision_speed_per_step`: every step logged, 0 on steps without a collision, averaged;
      testing `collision_speed_per_event`: averaged over collision events only (0 when there were none).
- CR  collision rate: the share of the last 100 episodes that ended in a collision.
- ICT inter-collision time, steps: gaps between consecutive collisions on the run's global step counter,
      the first gap measured from step 0; NaN when no collision happened.
- DCF collisions per km and TCF collisions per 1000 steps: as VLM-RL logs them, per collision episode
      (collisions x 1000 / episode distance in m, collisions x 1000 / episode steps), averaged over the
      episodes that had a collision; 0 when none had. Pooled rates over all episodes are given too.
- SR  success rate; AC average collisions per episode.
- VCR / VCS: collisions with vulnerable road users (a pedestrian, or a rider of a bicycle or motorcycle):
      the share of episodes with at least one, and the ego speed at those impacts averaged over them
      (0 when none, as CS). Not in the paper's tables; its VRU claims are what they measure.
- ExtCR / ExtCol: under the no-reward-after-collision setting, the collision rate over the whole run
      (collision episodes / episodes) and the cumulative collision count. The paper body was not
      readable, so this reading of the two columns is an assumption (documented in the README table).

Driving score (CARLA-leaderboard style): per episode, min(RC, 1) x the product of one penalty
coefficient per infraction, averaged over episodes. Coefficients (`DEFAULT_PENALTIES`) follow the CARLA
leaderboard for collisions (pedestrian 0.50, vehicle 0.60, static/other 0.65); riders (bicycle,
motorcycle) count as pedestrians, being vulnerable road users; a lane invasion event costs 0.95 (our
choice: the leaderboard does not score it; a run of consecutive invading steps is one event).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from drivevlm.eval.episode_log import EpisodeLog

COLLISION_RATE_WINDOW = 100

VRU_KINDS = frozenset({"pedestrian", "bicycle", "motorcycle"})

DEFAULT_PENALTIES: dict[str, float] = {
    "collision_pedestrian": 0.50,
    "collision_bicycle": 0.50,
    "collision_motorcycle": 0.50,
    "collision_car": 0.60,
    "collision_other": 0.65,
    "lane_invasion": 0.95,
}


def _check(episodes: Sequence[EpisodeLog]) -> Sequence[EpisodeLog]:
    if len(episodes) == 0:
        raise ValueError("episodes: need at least one EpisodeLog, got none")
    for i, ep in enumerate(episodes):
        if not isinstance(ep, EpisodeLog):
            raise TypeError(f"episodes[{i}]: expected EpisodeLog, got {type(ep).__name__}")
    return episodes


def _mean_speed(ep: EpisodeLog) -> float:
    return float(np.mean(ep.speed_kmh)) if ep.steps else 0.0


def average_speed(episodes: Sequence[EpisodeLog]) -> float:
    """AS: mean over episodes of the per-episode mean speed, km/h."""
    return float(np.mean([_mean_speed(ep) for ep in _check(episodes)]))


def routes_completed(episodes: Sequence[EpisodeLog], clip_to_one: bool = False) -> float:
    """RC: mean final route completion; `clip_to_one` for the testing table."""
    values = np.array([ep.routes_completed for ep in _check(episodes)])
    return float(np.mean(np.minimum(values, 1.0) if clip_to_one else values))


def total_distance(episodes: Sequence[EpisodeLog]) -> float:
    """TD: mean distance driven per episode, m."""
    return float(np.mean([ep.distance_total_m for ep in _check(episodes)]))


def collision_speed_per_step(episodes: Sequence[EpisodeLog]) -> float:
    """Training CS: every step's collision speed (0 without a collision) averaged over all steps, km/h."""
    _check(episodes)
    steps = sum(ep.steps for ep in episodes)
    return float(sum(ep.collision_speed_kmh.sum() for ep in episodes) / steps) if steps else 0.0


def collision_speed_per_event(episodes: Sequence[EpisodeLog]) -> float:
    """Testing CS: ego speed at impact averaged over collision events only, km/h (0 when none)."""
    speeds = np.concatenate([ep.collision_speed_kmh[ep.collision] for ep in _check(episodes)])
    return float(speeds.mean()) if speeds.size else 0.0


def _vru_steps(ep: EpisodeLog) -> list[int]:
    return [int(step) for step in ep.collision_steps if ep.collision_kind[step] in VRU_KINDS]


def vru_collision_rate(episodes: Sequence[EpisodeLog]) -> float:
    """VCR: share of episodes with at least one collision with a pedestrian or a rider."""
    return float(np.mean([bool(_vru_steps(ep)) for ep in _check(episodes)]))


def vru_collision_speed(episodes: Sequence[EpisodeLog]) -> float:
    """VCS: ego speed at impacts with pedestrians and riders, mean over those events, km/h (0 when none)."""
    speeds = [float(ep.collision_speed_kmh[step]) for ep in _check(episodes) for step in _vru_steps(ep)]
    return float(np.mean(speeds)) if speeds else 0.0


def collision_rate(episodes: Sequence[EpisodeLog], window: int = COLLISION_RATE_WINDOW) -> float:
    """CR: the share of the last `window` episodes that ended in a collision."""
    if window < 1:
        raise ValueError(f"window: must be >= 1, got {window}")
    recent = _check(episodes)[-window:]
    return float(np.mean([ep.collided for ep in recent]))


def collision_global_steps(episodes: Sequence[EpisodeLog]) -> np.ndarray:
    """The run's step counter (1-based, counting every env step) at each collision, in order."""
    offsets = np.cumsum([0] + [ep.steps for ep in _check(episodes)[:-1]])
    return np.concatenate([off + ep.collision_steps + 1 for off, ep in zip(offsets, episodes, strict=True)])


def inter_collision_time(episodes: Sequence[EpisodeLog]) -> float:
    """ICT: mean steps between consecutive collisions (first gap from step 0); NaN without collisions."""
    at = collision_global_steps(episodes)
    return float(np.mean(np.diff(np.concatenate([[0], at])))) if at.size else math.nan


def collisions_per_km(episodes: Sequence[EpisodeLog]) -> float:
    """DCF as VLM-RL logs it: per collision episode, collisions per km of that episode, averaged.

    Episodes that collided without moving (0 m) have no finite rate and are left out.
    """
    rates = [
        ep.collision_count * 1000.0 / ep.distance_total_m
        for ep in _check(episodes)
        if ep.collided and ep.distance_total_m > 0
    ]
    return float(np.mean(rates)) if rates else 0.0


def collisions_per_1000_steps(episodes: Sequence[EpisodeLog]) -> float:
    """TCF as VLM-RL logs it: per collision episode, collisions per 1000 steps of that episode, averaged."""
    rates = [ep.collision_count * 1000.0 / ep.steps for ep in _check(episodes) if ep.collided]
    return float(np.mean(rates)) if rates else 0.0


def pooled_collisions_per_km(episodes: Sequence[EpisodeLog]) -> float:
    """All collisions over all kilometres driven (inf when collisions happened over 0 m)."""
    collisions = sum(ep.collision_count for ep in _check(episodes))
    km = sum(ep.distance_total_m for ep in episodes) / 1000.0
    return _rate(collisions, km)


def pooled_collisions_per_1000_steps(episodes: Sequence[EpisodeLog]) -> float:
    collisions = sum(ep.collision_count for ep in _check(episodes))
    return _rate(collisions, sum(ep.steps for ep in episodes) / 1000.0)


def _rate(count: float, per: float) -> float:
    if per > 0:
        return count / per
    return 0.0 if count == 0 else math.inf


def success_rate(episodes: Sequence[EpisodeLog]) -> float:
    """SR: share of episodes that ended in success."""
    return float(np.mean([ep.success for ep in _check(episodes)]))


def average_collisions(episodes: Sequence[EpisodeLog]) -> float:
    """AC: mean number of collisions per episode."""
    return float(np.mean([ep.collision_count for ep in _check(episodes)]))


def extreme_collision_rate(episodes: Sequence[EpisodeLog]) -> float:
    """ExtCR: collision episodes over all episodes of the run (no-reward-after-collision setting)."""
    return float(np.mean([ep.collided for ep in _check(episodes)]))


def extreme_collision_count(episodes: Sequence[EpisodeLog]) -> int:
    """ExtCol: cumulative number of collisions over the run."""
    return int(sum(ep.collision_count for ep in _check(episodes)))


def _penalty_key(kind: str) -> str:
    key = f"collision_{kind}"
    return key if key in DEFAULT_PENALTIES and kind != "other" else "collision_other"


def infraction_counts(ep: EpisodeLog) -> dict[str, int]:
    """Infractions of one episode by penalty key (collisions by the kind of actor hit, lane invasions)."""
    counts: dict[str, int] = {}
    for step in ep.collision_steps:
        key = _penalty_key(ep.collision_kind[step])
        counts[key] = counts.get(key, 0) + 1
    if ep.lane_invasion_count:
        counts["lane_invasion"] = ep.lane_invasion_count
    return counts


def infraction_penalty(ep: EpisodeLog, penalties: Mapping[str, float] = DEFAULT_PENALTIES) -> float:
    """The product of one coefficient per infraction (1.0 for a clean episode)."""
    value = 1.0
    for key, count in infraction_counts(ep).items():
        if key not in penalties:
            raise KeyError(f"penalties: no coefficient for infraction {key!r}; have {sorted(penalties)}")
        value *= penalties[key] ** count
    return value


def driving_score(
    episodes: Sequence[EpisodeLog], penalties: Mapping[str, float] = DEFAULT_PENALTIES
) -> float:
    """DS: per episode min(RC, 1) x infraction penalty, averaged over episodes (0..1)."""
    for key, value in penalties.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"penalties[{key!r}]: must lie in [0, 1], got {value}")
    scores = [min(ep.routes_completed, 1.0) * infraction_penalty(ep, penalties) for ep in _check(episodes)]
    return float(np.mean(scores))


def infractions_per_km(episodes: Sequence[EpisodeLog]) -> float:
    """All infractions (collisions and lane invasion events) per km driven over all episodes."""
    count = sum(sum(infraction_counts(ep).values()) for ep in _check(episodes))
    return _rate(count, sum(ep.distance_total_m for ep in episodes) / 1000.0)


def training_metrics(
    episodes: Sequence[EpisodeLog], collision_rate_window: int = COLLISION_RATE_WINDOW
) -> dict[str, float]:
    """Table 1 (training) and Table 3 columns from a run's episodes in the order they were driven.

    Pass the whole run: ICT and ExtCol need the full history; CR uses the last `collision_rate_window`.
    """
    _check(episodes)
    return {
        "AS": average_speed(episodes),
        "RC": routes_completed(episodes),
        "TD": total_distance(episodes),
        "CS": collision_speed_per_step(episodes),
        "CR": collision_rate(episodes, collision_rate_window),
        "ICT": inter_collision_time(episodes),
        "DCF": collisions_per_km(episodes),
        "TCF": collisions_per_1000_steps(episodes),
        "ExtCR": extreme_collision_rate(episodes),
        "ExtCol": float(extreme_collision_count(episodes)),
        "DCF_pooled": pooled_collisions_per_km(episodes),
        "TCF_pooled": pooled_collisions_per_1000_steps(episodes),
        "DS": driving_score(episodes),
        "IPK": infractions_per_km(episodes),
        "episodes": float(len(episodes)),
        "steps": float(sum(ep.steps for ep in episodes)),
    }


def testing_metrics(episodes: Sequence[EpisodeLog]) -> dict[str, float]:
    """Table 2 (testing) columns, plus driving score, infractions per km and the VRU collisions."""
    _check(episodes)
    return {
        "AS": average_speed(episodes),
        "RC": routes_completed(episodes, clip_to_one=True),
        "TD": total_distance(episodes),
        "CS": collision_speed_per_event(episodes),
        "SR": success_rate(episodes),
        "AC": average_collisions(episodes),
        "DS": driving_score(episodes),
        "IPK": infractions_per_km(episodes),
        "VCR": vru_collision_rate(episodes),
        "VCS": vru_collision_speed(episodes),
        "episodes": float(len(episodes)),
    }


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
