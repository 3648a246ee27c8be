"""Training and evaluation windows for the small vision-language model, generated fresh from the env.

A window is K+1 consecutive front-camera frames (oldest first) and the ground-truth risk of the last
frame's world state (`describe_risk`), chosen among the actors the camera shows: one hidden behind a
nearer actor is never the answer, as no model could see it. In use the dynamic pathway asks the VLM only
about *gated* frames, where a pedestrian, bicycle or motorcycle is in view, so sampling is biased towards
such windows; a few ungated ones keep "clear road" and vehicle-only answers in the model's repertoire.
A motorway hazard scenario is staged on its own town (the highway), driven at that town's speeds, and its
gate is the highway preset's: any road user or object on the road in or entering the ego's path.

Frames are stored once and windows index into them: consecutive windows share most of their frames,
so ten thousand windows of four 128 px frames fit in well under a gigabyte.
"""

from __future__ import annotations

import zipfile
from collections import Counter, deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from drivevlm.atomic import atomic_output
from drivevlm.data.boxes import seen_actor_ids
from drivevlm.data.risk import (
    FAR_M,
    HALF_FOV_DEG,
    PATH_HALF_WIDTH_M,
    RISK_CATEGORIES,
    describe_risk,
    in_or_entering_path,
)
from drivevlm.env import DriveEnv
from drivevlm.render import FrontCameraRenderer
from drivevlm.scripted_policy import RouteFollower
from drivevlm.sim.geometry import world_to_ego
from drivevlm.sim.scenarios import SCENARIOS, TOWNS, TRAINING_TOWN, URBAN_SCENARIOS, Density, town_speed_scale
from drivevlm.sim.world import WorldState

DEFAULT_FRAMES_PER_WINDOW = 4
# The env renders 224 px frames by default; the model's image processor shrinks them to this size.
DEFAULT_RENDER_SIZE = 224
DEFAULT_FRAME_SIZE = 128
LABEL_KINDS = ("camera", "field_of_view", "path")
HELD_OUT_TOWNS = tuple(name for name, town in TOWNS.items() if town.unseen)
TRAIN_TOWNS = (TRAINING_TOWN,)
# Seeds of held-out windows start here, so train and held-out episodes never share a seed.
HELD_OUT_SEED_OFFSET = 1_000_000


def is_gated(
    state: WorldState,
    max_distance_m: float = FAR_M,
    seen: Collection[str] | None = None,
    motorway: bool = False,
) -> bool:
    """A vulnerable road user is in the camera's field of view within `max_distance_m`.

    This is the ground-truth stand-in for the detector gate: the frames on which the LVLM is asked.
    `seen` (ids of the actors the camera shows) leaves out those hidden behind others; None keeps all.
    `motorway`: the highway preset's gate instead, any actor (cars and objects on the road included) in or
    entering the ego's path.
    """
    ego = state.ego.pose
    in_path = in_or_entering_path(state, PATH_HALF_WIDTH_M) if motorway else None
    candidates = [
        a
        for i, a in enumerate(state.actors)
        if (seen is None or a.id in seen) and (a.kind.is_vulnerable if in_path is None else in_path[i])
    ]
    if not candidates:
        return False
    local = world_to_ego(np.array([(a.pose.x, a.pose.y) for a in candidates]), ego.x, ego.y, ego.yaw)
    distance = np.hypot(local[:, 0], local[:, 1])
    bearing = np.degrees(np.arctan2(local[:, 1], local[:, 0]))
    return bool(np.any((local[:, 0] > 1.0) & (np.abs(bearing) < HALF_FOV_DEG) & (distance < max_distance_m)))


def shrink_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize to size x size, the resampling the Qwen2-VL image processor applies itself."""
    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


@dataclass
class VlmWindows:
    """Windows of K+1 front frames with their ground-truth risk; frames are shared between windows."""

    frames: np.ndarray  # (F, H, W, 3) uint8, every distinct frame once
    index: np.ndarray  # (N, K+1) int, rows of `frames` per window, oldest first
    descriptions: list[str]
    categories: list[str]
    gated: np.ndarray  # (N,) bool
    towns: list[str]
    seeds: np.ndarray  # (N,) int, the episode seed each window came from

    def __post_init__(self) -> None:
        n = len(self.index)
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(
                f"frames: expected (F, H, W, 3) uint8, got {self.frames.shape} {self.frames.dtype}"
            )
        if self.index.ndim != 2:
            raise ValueError(f"index: expected (N, K+1), got shape {self.index.shape}")
        for name in ("descriptions", "categories", "gated", "towns", "seeds"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"{name}: expected {n} entries (one per window), got {len(getattr(self, name))}"
                )

    def __len__(self) -> int:
        return len(self.index)

    @property
    def frames_per_window(self) -> int:
        return int(self.index.shape[1])

    def window(self, i: int) -> np.ndarray:
        """(K+1, H, W, 3) uint8 frames of window i, oldest first."""
        return self.frames[self.index[i]]

    def subset(self, rows: Sequence[int] | np.ndarray) -> VlmWindows:
        rows = np.asarray(rows, dtype=np.int64)
        return VlmWindows(
            self.frames,
            self.index[rows],
            [self.descriptions[i] for i in rows],
            [self.categories[i] for i in rows],
            self.gated[rows],
            [self.towns[i] for i in rows],
            self.seeds[rows],
        )

    @classmethod
    def concatenate(cls, parts: Sequence[VlmWindows]) -> VlmWindows:
        """One set of several (e.g. a general set and one rich in a rare category), frames renumbered."""
        if not parts:
            raise ValueError("windows: expected at least one set to concatenate")
        _check_joinable([(part.frames_per_window, *part.frames.shape[1:]) for part in parts])
        return cls._joined(parts, np.concatenate([part.frames for part in parts]))

    @classmethod
    def _joined(cls, parts: Sequence[VlmWindows], frames: np.ndarray) -> VlmWindows:
        """`parts` as one set whose frames, already joined in order, are `frames`."""
        offsets = np.cumsum([0, *(len(part.frames) for part in parts[:-1])])
        return cls(
            frames,
            np.concatenate([part.index + offset for part, offset in zip(parts, offsets, strict=True)]),
            [d for part in parts for d in part.descriptions],
            [c for part in parts for c in part.categories],
            np.concatenate([part.gated for part in parts]),
            [t for part in parts for t in part.towns],
            np.concatenate([part.seeds for part in parts]),
        )

    def category_counts(self, gated_only: bool = False) -> dict[str, int]:
        return dict(
            Counter(c for c, g in zip(self.categories, self.gated, strict=True) if g or not gated_only)
        )

    def save(self, path: str | Path) -> Path:
        """One .npz file, written atomically."""
        path = Path(path)
        with atomic_output(path) as temp, temp.open("wb") as handle:
            np.savez(
                handle,
                frames=self.frames,
                index=self.index,
                descriptions=np.array(self.descriptions, dtype=str),
                categories=np.array(self.categories, dtype=str),
                gated=self.gated,
                towns=np.array(self.towns, dtype=str),
                seeds=self.seeds,
            )
        return path

    @classmethod
    def load(cls, path: str | Path, frames: np.ndarray | None = None) -> VlmWindows:
        """A saved set; `frames` (when given) is the array its frames are read into, of their shape."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"windows: no such file {path}")
        if frames is not None:
            _read_frames_into(path, frames)
        with np.load(path) as data:
            return cls(
                data["frames"] if frames is None else frames,
                data["index"],
                [str(s) for s in data["descriptions"]],
                [str(s) for s in data["categories"]],
                data["gated"].astype(bool),
                [str(s) for s in data["towns"]],
                data["seeds"],
            )

    @classmethod
    def load_many(cls, paths: Sequence[str | Path]) -> VlmWindows:
        """Several saved sets as one, their frames read straight into the joined array.

        Same result as `concatenate` of each `load`, at half the peak memory: no set's frames are held
        twice (tens of thousands of windows take gigabytes).
        """
        paths = [Path(path) for path in paths]
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(f"windows: no such file {path}")
        layouts = [_saved_layout(path) for path in paths]
        _check_joinable([layout[1:] for layout in layouts])
        frames = np.empty((sum(layout[0] for layout in layouts), *layouts[0][1:4]), np.uint8)
        starts = np.cumsum([0, *(layout[0] for layout in layouts)])
        parts = [
            cls.load(path, frames[start:end])
            for path, start, end in zip(paths, starts[:-1], starts[1:], strict=True)
        ]
        return cls._joined(parts, frames)


def _check_joinable(layouts: Sequence[tuple[int, ...]]) -> None:
    if len(set(layouts)) > 1:
        raise ValueError("windows: sets to concatenate differ in frames per window or frame size")


_FRAMES_MEMBER = "frames.npy"


def _npy_shape(handle: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from the .npy header at the start of `handle`."""
    version = np.lib.format.read_magic(handle)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(handle)
    return tuple(shape), fortran_order, dtype


def _frames_header(handle: IO[bytes]) -> tuple[int, ...]:
    """Read the .npy header of a saved set's frames from `handle`; their shape (uint8 checked)."""
    shape, fortran_order, dtype = _npy_shape(handle)
    if dtype != np.uint8 or fortran_order:
        raise ValueError(f"windows: frames must be C-ordered uint8, got {dtype} (fortran={fortran_order})")
    return shape


def _saved_layout(path: Path) -> tuple[int, ...]:
    """(frames, height, width, channels, frames per window) of a saved set, read from its headers alone."""
    with zipfile.ZipFile(path) as archive:
        with archive.open(_FRAMES_MEMBER) as handle:
            frames = _frames_header(handle)
        with archive.open("index.npy") as handle:
            index = _npy_shape(handle)[0]
    return (*frames, index[1])


def _read_frames_into(path: Path, out: np.ndarray) -> None:
    """Copy a saved set's frames into `out` (their shape) without a second in-memory copy."""
    with zipfile.ZipFile(path) as archive, archive.open(_FRAMES_MEMBER) as handle:
        shape = _frames_header(handle)
        if shape != out.shape or not out.flags.c_contiguous:
            raise ValueError(f"windows: {path} holds frames of shape {shape}, expected {out.shape}")
        view = memoryview(out.reshape(-1))
        filled = 0
        while filled < len(view):
            got = handle.readinto(view[filled:])
            if not got:
                raise ValueError(f"windows: {path} ends before its frames do")
            filled += got


def _check_names(field: str, values: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    if not values:
        raise ValueError(f"{field}: expected at least one name; allowed: {', '.join(sorted(allowed))}")
    for value in values:
        if value not in allowed:
            raise ValueError(f"{field}: unknown value {value!r}; allowed: {', '.join(sorted(allowed))}")
    return tuple(values)


def generate_windows(
    count: int,
    *,
    towns: Sequence[str] = TRAIN_TOWNS,
    scenarios: Sequence[str] | None = None,
    densities: Sequence[str] = (Density.REGULAR.value, Density.DENSE.value),
    seed: int = 0,
    frames_per_window: int = DEFAULT_FRAMES_PER_WINDOW,
    frame_size: int = DEFAULT_FRAME_SIZE,
    render_size: int = DEFAULT_RENDER_SIZE,
    gated_fraction: float = 0.85,
    accept_probability: float = 0.35,
    max_episode_steps: int = 400,
    max_windows_per_episode: int = 24,
    max_episodes: int | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    labels: str = "camera",
    keep_categories: Collection[str] = (),
) -> VlmWindows:
    """Drive the scripted follower through random towns/scenarios/seeds and cut `count` windows.

    Windows are taken from random steps (each step kept with `accept_probability`, so neighbouring
    windows are not all near-duplicates) until `round(count * gated_fraction)` gated windows and the
    rest ungated ones are collected, at most `max_windows_per_episode` per episode.
    Episode i uses seed `seed * 100_000 + i`. `labels`: "camera" counts only the actors the camera shows
    (gate and risk); "path" as camera, but the risk only of actors in or entering the ego's path (a person
    on the sidewalk is clear road); "field_of_view" any actor in the field of view, hidden or not (labels
    before these were restricted, kept to reproduce models trained on them). Windows of a category in
    `keep_categories` are kept at every step (while that kind of window is still wanted): rare moments,
    such as a pedestrian in the path, then make up more of the set.
    """
    if count < 1:
        raise ValueError(f"count: expected at least 1 window, got {count}")
    if frames_per_window < 1:
        raise ValueError(f"frames_per_window: expected >= 1 (K+1 frames), got {frames_per_window}")
    if not 0.0 <= gated_fraction <= 1.0:
        raise ValueError(f"gated_fraction: expected a fraction in [0, 1], got {gated_fraction}")
    if not 0.0 < accept_probability <= 1.0:
        raise ValueError(f"accept_probability: expected a probability in (0, 1], got {accept_probability}")
    if max_windows_per_episode < 1:
        raise ValueError(f"max_windows_per_episode: expected >= 1, got {max_windows_per_episode}")
    if frame_size < 16 or render_size < frame_size:
        raise ValueError(
            f"frame_size, render_size: need 16 <= frame_size <= render_size, got {frame_size}, {render_size}"
        )
    if labels not in LABEL_KINDS:
        raise ValueError(f"labels: expected one of {LABEL_KINDS}, got {labels!r}")
    for category in keep_categories:
        if category not in RISK_CATEGORIES:
            raise ValueError(
                f"keep_categories: unknown category {category!r}; allowed: {', '.join(RISK_CATEGORIES)}"
            )
    towns = _check_names("towns", towns, list(TOWNS))
    scenarios = _check_names("scenarios", scenarios or list(URBAN_SCENARIOS), list(SCENARIOS))
    densities = _check_names("densities", densities, [d.value for d in Density])
    need_gated = round(count * gated_fraction)
    need_other = count - need_gated
    max_episodes = max_episodes if max_episodes is not None else max(50, 4 * count)
    rng = np.random.default_rng(seed)
    renderer = FrontCameraRenderer(width=render_size, height=render_size)

    frames: list[np.ndarray] = []
    index: list[list[int]] = []
    descriptions: list[str] = []
    categories: list[str] = []
    gated: list[bool] = []
    window_towns: list[str] = []
    seeds: list[int] = []
    have_gated = have_other = 0

    env = DriveEnv({"cache_dir": cache_dir, "max_episode_steps": max_episode_steps, "training": False})
    try:
        for episode in range(max_episodes):
            if have_gated >= need_gated and have_other >= need_other:
                break
            episode_seed = seed * 100_000 + episode
            town = towns[int(rng.integers(len(towns)))]
            scenario = SCENARIOS[scenarios[int(rng.integers(len(scenarios)))]]
            motorway = scenario.highway
            if motorway:
                town = str(scenario.default_town)
            options = {
                "town": town,
                "scenario": scenario.name,
                "density": densities[int(rng.integers(len(densities)))],
            }
            obs, info = env.reset(seed=episode_seed, options=options)
            driver = RouteFollower(
                target_speed_kmh=town_speed_scale(town) * float(rng.uniform(12.0, 32.0)),
                cautious=bool(rng.random() < 0.7),
                noise=float(rng.uniform(0.0, 0.15)),
                seed=episode_seed,
            )
            states: deque[WorldState] = deque(maxlen=frames_per_window)
            rendered: dict[int, int] = {}  # sim step -> row in `frames`
            state = env.world_state
            signals = None
            taken = 0
            while state is not None and taken < max_windows_per_episode:
                states.append(state)
                if len(states) == frames_per_window:
                    seen = seen_actor_ids(renderer, state) if labels != "field_of_view" else None
                    gate = is_gated(state, seen=seen, motorway=motorway)
                    wanted = have_gated < need_gated if gate else have_other < need_other
                    take = False
                    if wanted:
                        path = PATH_HALF_WIDTH_M if labels == "path" else None
                        risk = describe_risk(state, seen=seen, path_half_width_m=path)
                        # Drawn only for windows not kept anyway: sets without keep_categories reproduce.
                        take = risk.category in keep_categories or rng.random() < accept_probability
                    if take:
                        rows = []
                        for past in states:
                            if past.step not in rendered:
                                rendered[past.step] = len(frames)
                                frames.append(shrink_frame(renderer.render(past), frame_size))
                            rows.append(rendered[past.step])
                        index.append(rows)
                        descriptions.append(risk.description)
                        categories.append(risk.category)
                        gated.append(gate)
                        window_towns.append(town)
                        seeds.append(episode_seed)
                        have_gated += gate
                        have_other += not gate
                        taken += 1
                        if progress is not None:
                            progress(len(index), count)
                        if have_gated >= need_gated and have_other >= need_other:
                            break
                obs, _, terminated, truncated, info = env.step(driver.act(obs, signals))
                signals = info["signals"]
                state = None if terminated or truncated else env.world_state
        else:
            raise RuntimeError(
                f"generate_windows: only {have_gated}/{need_gated} gated and {have_other}/{need_other} "
                f"other windows after max_episodes={max_episodes}; raise max_episodes or lower gated_fraction"
            )
    finally:
        env.close()
    return VlmWindows(
        np.stack(frames),
        np.asarray(index, dtype=np.int64),
        descriptions,
        categories,
        np.asarray(gated, dtype=bool),
        window_towns,
        np.asarray(seeds, dtype=np.int64),
    )


def held_out_windows(count: int, *, seed: int = 1, **kwargs: object) -> VlmWindows:
    """Windows from the towns never used in training, with seeds disjoint from any training seed."""
    return generate_windows(count, towns=HELD_OUT_TOWNS, seed=HELD_OUT_SEED_OFFSET + seed, **kwargs)  # type: ignore[arg-type]
