"""`drivevlm sim ...` and `drivevlm quickstart`: drive scripted episodes, write images, measure throughput."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from drivevlm.cli.common import JsonFlag, clean_errors, emit, env_config, save_png

app = typer.Typer(help="The embedded simulator: render episodes, measure throughput.", no_args_is_help=True)


def masks_to_rgb(masks: np.ndarray, channels: list[str]) -> np.ndarray:
    """A viewable picture of the semantic masks (the latest history frame of each dynamic channel)."""
    from drivevlm.render import palette

    colours = {
        "road": palette.ROAD,
        "lane_markings": palette.LANE_MARKING,
        "route": palette.ROUTE,
        "vehicles_t0": palette.CAR,
        "cyclists_t0": palette.BICYCLE,
        "pedestrians_t0": palette.PEDESTRIAN,
    }
    image = np.zeros((*masks.shape[1:], 3), dtype=np.uint8)
    for name, colour in colours.items():
        if name in channels:
            image[masks[channels.index(name)] > 0] = colour
    return image


def run_episode_with_images(config: Any, out: Path, steps: int, every: int, seed: int) -> dict[str, Any]:
    """Drive one episode with the scripted route follower, saving the three images every `every` steps."""
    from drivevlm.env import DriveEnv
    from drivevlm.scripted_policy import RouteFollower

    out.mkdir(parents=True, exist_ok=True)
    env = DriveEnv(config.model_copy(update={"render_frames": True}))
    policy = RouteFollower(seed=seed, env_config=config)
    obs, info = env.reset(seed=seed)
    signals = None
    summary: dict[str, Any] = {"scenario": config.scenario, "town": config.town, "frames_written": 0}
    triggered: list[str] = []
    try:
        for step in range(steps):
            if step % every == 0:
                frames = info["frames"]
                save_png(out / f"{step:05d}_front.png", frames["front"])
                save_png(out / f"{step:05d}_bev_rgb.png", frames["bev_rgb"])
                save_png(out / f"{step:05d}_bev_masks.png", masks_to_rgb(obs["bev"], env.mask_channels))
                summary["frames_written"] += 3
            obs, _, terminated, truncated, info = env.step(policy.act(obs, signals))
            signals = info["signals"]
            triggered.extend(info["triggered"])
            if terminated or truncated:
                summary.update(info["episode_metrics"])
                break
        else:
            summary["steps"] = steps
            summary["reason"] = "demo_step_limit"
    finally:
        env.close()
    summary["triggered"] = sorted(set(triggered))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


@app.command("render")
@clean_errors
def sim_render(
    out: Annotated[Path, typer.Option(help="Folder for the PNGs and summary.json.")],
    scenario: str = "pedestrian_crossing",
    town: str = "grid",
    density: str = "regular",
    seed: int = 0,
    steps: int = 300,
    every: int = 10,
    as_json: JsonFlag = False,
) -> None:
    """Drive one episode with a scripted driver and write the front, BEV RGB and BEV mask images."""
    config = env_config(town, scenario, density, seed)
    emit(run_episode_with_images(config, out, steps, every, seed), as_json)


@app.command("bench")
@clean_errors
def sim_bench(
    steps: int = 2000,
    town: str = "grid",
    density: str = "regular",
    seed: int = 0,
    as_json: JsonFlag = False,
) -> None:
    """Measure env steps/s: bare simulator, with policy masks, and with all three images."""
    from drivevlm.bench import measure_env

    emit(measure_env(env_config(town, "random", density, seed), steps=steps, seed=seed), as_json)
