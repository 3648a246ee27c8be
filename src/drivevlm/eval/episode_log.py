"""Typed per-episode logs built from the env's step info dicts, shared by the trainer and the evaluator.

The trainer and the evaluator feed every step's `info` to an `EpisodeRecorder`; when the env reports
`episode_metrics` (or the caller ends the episode itself) the recorder hands back an `EpisodeLog`.
Metrics (`drivevlm.eval.metrics`) are pure functions of these logs, so both sides compute them the same way.
"""

from __future__ import annotations

import csv
import json
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drivevlm.atomic import write_atomic

LOG_FORMAT_VERSION = 1


@dataclass(frozen=True)
class EpisodeLog:
    """One episode, step by step. Arrays have one entry per env step (reset is not a step)."""

    speed_kmh: np.ndarray
    # Cumulative distance driven since reset, m (the env's `metrics["distance_m"]`).
    distance_m: np.ndarray
    collision: np.ndarray
    # Kind of the actor hit at each step ("car", "pedestrian", ...; "static" for scenery; "" when none).
    collision_kind: tuple[str, ...]
    # Ego speed at impact, km/h; 0 on steps without a collision.
    collision_speed_kmh: np.ndarray
    # Routes completed so far: fraction of the current route, plus 1 per finished route when routes chain.
    route_completion: np.ndarray
    lane_invasion: np.ndarray
    success: bool
    termination_reason: str
    rewards: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Steps on which the ego ran a red signal (logs written before this column: none recorded).
    red_light: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        n = len(self.speed_kmh)
        for name in ("distance_m", "collision", "collision_kind", "collision_speed_kmh", "route_completion"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"EpisodeLog.{name}: expected {n} entries (one per step), got {len(getattr(self, name))}"
                )
        if len(self.lane_invasion) != n:
            raise ValueError(f"EpisodeLog.lane_invasion: expected {n} entries, got {len(self.lane_invasion)}")
        if len(self.rewards) not in (0, n):
            raise ValueError(f"EpisodeLog.rewards: expected 0 or {n} entries, got {len(self.rewards)}")
        if len(self.red_light) not in (0, n):
            raise ValueError(f"EpisodeLog.red_light: expected 0 or {n} entries, got {len(self.red_light)}")

    @property
    def steps(self) -> int:
        return len(self.speed_kmh)

    @property
    def distance_total_m(self) -> float:
        return float(self.distance_m[-1]) if self.steps else 0.0

    @property
    def routes_completed(self) -> float:
        return float(self.route_completion[-1]) if self.steps else 0.0

    @property
    def collision_count(self) -> int:
        return int(np.count_nonzero(self.collision))

    @property
    def collided(self) -> bool:
        return self.collision_count > 0

    @property
    def collision_steps(self) -> np.ndarray:
        """Indices (0-based, within the episode) of the steps with a collision."""
        return np.flatnonzero(self.collision)

    @property
    def lane_invasion_count(self) -> int:
        """Lane invasions counted as events: a run of consecutive flagged steps is one invasion."""
        flags = np.asarray(self.lane_invasion, dtype=bool)
        return int(np.count_nonzero(flags & ~np.concatenate([[False], flags[:-1]])))

    @property
    def red_light_count(self) -> int:
        return int(np.count_nonzero(self.red_light))

    @property
    def episode_reward(self) -> float:
        """The return, or NaN when no rewards were recorded (training: the annotator scores steps later)."""
        return float(np.sum(self.rewards)) if len(self.rewards) else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "speed_kmh": self.speed_kmh.tolist(),
            "distance_m": self.distance_m.tolist(),
            "collision": self.collision.astype(bool).tolist(),
            "collision_kind": list(self.collision_kind),
            "collision_speed_kmh": self.collision_speed_kmh.tolist(),
            "route_completion": self.route_completion.tolist(),
            "lane_invasion": self.lane_invasion.astype(bool).tolist(),
            "success": self.success,
            "termination_reason": self.termination_reason,
            "rewards": self.rewards.tolist(),
            "red_light": self.red_light.astype(bool).tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpisodeLog:
        missing = [k for k in _LOG_KEYS if k not in data]
        if missing:
            raise ValueError(f"episode log: missing keys {missing}")
        return cls(
            speed_kmh=np.asarray(data["speed_kmh"], dtype=np.float64),
            distance_m=np.asarray(data["distance_m"], dtype=np.float64),
            collision=np.asarray(data["collision"], dtype=bool),
            collision_kind=tuple(str(k) for k in data["collision_kind"]),
            collision_speed_kmh=np.asarray(data["collision_speed_kmh"], dtype=np.float64),
            route_completion=np.asarray(data["route_completion"], dtype=np.float64),
            lane_invasion=np.asarray(data["lane_invasion"], dtype=bool),
            success=bool(data["success"]),
            termination_reason=str(data["termination_reason"]),
            rewards=np.asarray(data.get("rewards", []), dtype=np.float64),
            red_light=np.asarray(data.get("red_light", []), dtype=bool),
        )

    @classmethod
    def from_steps(
        cls,
        speed_kmh: Sequence[float],
        distance_m: Sequence[float],
        collision: Sequence[bool] | None = None,
        collision_kind: Sequence[str] | None = None,
        collision_speed_kmh: Sequence[float] | None = None,
        route_completion: Sequence[float] | None = None,
        lane_invasion: Sequence[bool] | None = None,
        success: bool = False,
        termination_reason: str = "step_limit",
        rewards: Sequence[float] = (),
        red_light: Sequence[bool] = (),
    ) -> EpisodeLog:
        """Build a log by hand (tests, imports from other tools); omitted per-step columns are all zero."""
        n = len(speed_kmh)
        return cls(
            speed_kmh=np.asarray(speed_kmh, dtype=np.float64),
            distance_m=np.asarray(distance_m, dtype=np.float64),
            collision=np.asarray(collision if collision is not None else [False] * n, dtype=bool),
            collision_kind=tuple(collision_kind) if collision_kind is not None else ("",) * n,
            collision_speed_kmh=np.asarray(
                collision_speed_kmh if collision_speed_kmh is not None else [0.0] * n, dtype=np.float64
            ),
            route_completion=np.asarray(route_completion if route_completion is not None else [0.0] * n),
            lane_invasion=np.asarray(lane_invasion if lane_invasion is not None else [False] * n, dtype=bool),
            success=success,
            termination_reason=termination_reason,
            rewards=np.asarray(rewards, dtype=np.float64),
            red_light=np.asarray(red_light, dtype=bool),
        )


_LOG_KEYS = (
    "speed_kmh",
    "distance_m",
    "collision",
    "collision_kind",
    "collision_speed_kmh",
    "route_completion",
    "lane_invasion",
    "success",
    "termination_reason",
)


class EpisodeRecorder:
    """Collects one episode from the env's step infos; `record` returns the finished `EpisodeLog`.

    Works from `info["metrics"]`, `info["collision_kind"]` and, at the end, `info["episode_metrics"]`,
    so it needs no simulator. Reset infos carry no metrics and must not be recorded.
    """

    def __init__(self) -> None:
        self._rows: dict[str, list[Any]] = {}
        self._clear()

    def _clear(self) -> None:
        self._rows = {key: [] for key in _LOG_KEYS[:7]}
        self._rows["rewards"] = []
        self._rows["red_light"] = []

    @property
    def steps(self) -> int:
        return len(self._rows["speed_kmh"])

    def record(self, info: Mapping[str, Any], reward: float | None = None) -> EpisodeLog | None:
        """Add one step; returns the episode's log when `info` ends it, else None."""
        metrics = info.get("metrics")
        if not isinstance(metrics, Mapping):
            raise ValueError("info: no 'metrics' dict; record step infos from env.step(), not reset()")
        for key in ("speed_kmh", "distance_m", "collision", "collision_speed_kmh", "route_completion"):
            if key not in metrics:
                raise ValueError(f"info['metrics']: missing {key!r}")
        collided = bool(metrics["collision"])
        rows = self._rows
        rows["speed_kmh"].append(float(metrics["speed_kmh"]))
        rows["distance_m"].append(float(metrics["distance_m"]))
        rows["collision"].append(collided)
        kind = info.get("collision_kind")
        rows["collision_kind"].append(("static" if kind is None else str(kind)) if collided else "")
        rows["collision_speed_kmh"].append(float(metrics["collision_speed_kmh"]) if collided else 0.0)
        rows["route_completion"].append(float(metrics["route_completion"]))
        rows["lane_invasion"].append(bool(metrics.get("lane_invasion", 0.0)))
        rows["red_light"].append(bool(metrics.get("red_light", 0.0)))
        if reward is not None:
            rows["rewards"].append(float(reward))
        episode = info.get("episode_metrics")
        if episode is None:
            return None
        return self.finish(str(episode.get("reason", "unknown")), success=bool(episode.get("success", False)))

    def finish(self, reason: str, success: bool = False) -> EpisodeLog:
        """End the episode now (e.g. an evaluation rule that stops a stuck ego) and return its log."""
        if self.steps == 0:
            raise ValueError("EpisodeRecorder.finish: no steps recorded in this episode")
        rows = self._rows
        rewards = rows["rewards"] if len(rows["rewards"]) == self.steps else []
        log = EpisodeLog.from_steps(
            speed_kmh=rows["speed_kmh"],
            distance_m=rows["distance_m"],
            collision=rows["collision"],
            collision_kind=rows["collision_kind"],
            collision_speed_kmh=rows["collision_speed_kmh"],
            route_completion=rows["route_completion"],
            lane_invasion=rows["lane_invasion"],
            success=success,
            termination_reason=reason,
            rewards=rewards,
            red_light=rows["red_light"],
        )
        self._clear()
        return log


def save_episode_logs(path: str | Path, logs: Iterable[EpisodeLog]) -> Path:
    """Write logs as JSON lines (one episode per line), atomically."""
    path = Path(path)
    lines = [json.dumps({"format_version": LOG_FORMAT_VERSION, **log.to_dict()}) for log in logs]
    write_atomic(path, "".join(line + "\n" for line in lines))
    return path


def load_episode_logs(path: str | Path) -> list[EpisodeLog]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"episode log file not found: {path}")
    logs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from err
        version = data.get("format_version")
        if version != LOG_FORMAT_VERSION:
            raise ValueError(f"{path}:{number}: format_version {version!r}, expected {LOG_FORMAT_VERSION}")
        logs.append(EpisodeLog.from_dict(data))
    return logs


TRAINING_LOG_COLUMNS = (
    "step",
    "episode",
    "episode_reward",
    "episode_length",
    "distance_m",
    "average_speed_kmh",
    "routes_completed",
    "collided",
    "collision_speed_kmh",
    "collision_rate",
)


class TrainingCurveLog:
    """The per-episode CSV a training run writes (one row per finished episode), read by the curve plots.

    Rows are appended and flushed as episodes end, so a crash loses at most the row being written;
    `read_training_log` skips a torn last line. `collision_rate` is over the last `window` episodes.
    """

    def __init__(self, path: str | Path, window: int = 100) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._recent: deque[bool] = deque(maxlen=window)
        self._episode = 0
        if self.path.is_file() and self.path.stat().st_size > 0:
            for row in read_training_log(self.path):
                self._recent.append(bool(row["collided"]))
                self._episode = int(row["episode"]) + 1
        else:
            write_atomic(self.path, ",".join(TRAINING_LOG_COLUMNS) + "\n")

    def append(self, step: int, log: EpisodeLog) -> dict[str, float]:
        self._recent.append(log.collided)
        speeds = log.speed_kmh
        row = {
            "step": int(step),
            "episode": self._episode,
            "episode_reward": log.episode_reward,
            "episode_length": log.steps,
            "distance_m": log.distance_total_m,
            "average_speed_kmh": float(np.mean(speeds)) if len(speeds) else 0.0,
            "routes_completed": log.routes_completed,
            "collided": int(log.collided),
            "collision_speed_kmh": float(log.collision_speed_kmh.max()) if log.collided else 0.0,
            "collision_rate": sum(self._recent) / len(self._recent),
        }
        self._episode += 1
        with self.path.open("a", encoding="utf-8", newline="") as handle:
            handle.write(",".join(_format_cell(row[c]) for c in TRAINING_LOG_COLUMNS) + "\n")
            handle.flush()
        return row


def _format_cell(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def read_training_log(path: str | Path) -> list[dict[str, float]]:
    """Rows of a training CSV as floats; a torn (incomplete) last line is skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training log not found: {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "step" not in reader.fieldnames:
            raise ValueError(f"{path}: not a training log (no 'step' column in the header)")
        rows = []
        for row in reader:
            try:
                rows.append({k: float(v) for k, v in row.items() if k is not None and v not in (None, "")})
            except ValueError:
                continue
            if len(rows[-1]) != len(reader.fieldnames):
                rows.pop()
    return rows
