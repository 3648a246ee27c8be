"""One benchmark job per (method, seed): its config, its folder, and the process that trains and evaluates it.

Each job runs in its own process (libsumo allows one simulation per process) and is resumable: a job
with a finished evaluation is skipped, one with a checkpoint is resumed from it, one without starts over.
`python -m drivevlm.eval.jobs RUN_DIR/job.json` is that process. It holds a lock on RUN_DIR/job.lock while
it runs, so a second benchmark call on the same folder leaves that job to it instead of running it twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from drivevlm.atomic import write_atomic
from drivevlm.config import ConfigError, apply_overrides, read_yaml
from drivevlm.eval.training_episodes import RecordingEnvFactory, truncate_episode_logs, write_episode_curve
from drivevlm.presets import PRESETS_DIR, compose


@dataclass(frozen=True)
class Experiment:
    """A family of presets (`<method><suffix>.yaml`) with the methods and suites it is run with by default."""

    suffix: str
    methods: tuple[str, ...]
    # Comma-separated, groups allowed (`vru`, `highway_hazards`); the first suite fills the testing table.
    suites: str
    # Names of the training and first-suite testing tables (the paper's numbering where it has one).
    tables: tuple[str, str]


URBAN_SUITES = "unseen_routes,unseen_towns,vru"
EXPERIMENTS: dict[str, Experiment] = {
    "main": Experiment(
        "", ("drivevlm_rl", "vlm_rl", "chen_sac", "tirl_sac"), URBAN_SUITES,
        ("table1_training", "table2_testing"),
    ),
    "no_collision_penalty": Experiment(
        "_no_collision_penalty", ("drivevlm_rl", "vlm_rl"), URBAN_SUITES,
        ("table3_training", "table4_testing"),
    ),
    # Beyond the paper: its open problem, the motorway's long-tail hazards, on the highway town.
    "highway": Experiment(
        "_highway", ("drivevlm_rl", "vlm_rl", "chen_sac"), "highway,highway_hazards",
        ("highway_training", "highway_testing"),
    ),
}  # fmt: skip
DEFAULT_METHODS: tuple[str, ...] = EXPERIMENTS["main"].methods
DISPLAY_NAMES: dict[str, str] = {
    "drivevlm_rl": "DriveVLM-RL",
    "vlm_rl": "VLM-RL",
    "chen_sac": "Chen-SAC",
    "tirl_sac": "TIRL-SAC",
    "asap_ppo": "ASAP-PPO",
    "chatscene_ppo": "ChatScene-PPO",
    "chatscene_sac": "ChatScene-SAC",
    "revolve": "Revolve",
    "revolve_auto": "Revolve-auto",
    "vlm_sr": "VLM-SR",
    "roboclip": "RoboCLIP",
    "vlm_rm": "VLM-RM",
    "lord": "LORD",
    "lord_speed": "LORD-Speed",
}


def experiment_spec(experiment: str) -> Experiment:
    if experiment not in EXPERIMENTS:
        raise ConfigError(f"experiment: unknown value {experiment!r}; allowed: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[experiment]


def preset_path(method: str, experiment: str = "main", configs: Path | None = None) -> Path:
    folder = configs or PRESETS_DIR
    suffix = experiment_spec(experiment).suffix
    path = folder / f"{method}{suffix}.yaml"
    if not path.is_file():
        available = sorted(
            p.stem.removesuffix(suffix)
            for p in folder.glob(f"*{suffix}.yaml")
            if suffix or not any(p.stem.endswith(e.suffix) for e in EXPERIMENTS.values() if e.suffix)
        )
        raise ConfigError(
            f"methods: unknown value {method!r} for experiment {experiment!r} (no {path}); "
            f"allowed: {', '.join(available)}"
        )
    return path


def job_config(
    method: str,
    seed: int,
    steps: int,
    overrides: Sequence[str] = (),
    experiment: str = "main",
    configs: Path | None = None,
) -> dict[str, Any]:
    """The preset of `method` with the overrides, `train.total_timesteps=steps` and the seed applied."""
    data = compose(read_yaml(preset_path(method, experiment, configs)), list(overrides))
    data = apply_overrides(data, [f"train.total_timesteps={steps}", f"train.seed={seed}", f"env.seed={seed}"])
    return data


@dataclass
class Job:
    method: str
    seed: int
    run_dir: str
    config: dict[str, Any]
    # Every suite the policy is evaluated on; the first is the testing table's (Table 2 / 4).
    suites: tuple[str, ...]
    eval_episodes: int
    eval_max_steps: int | None = None

    @property
    def steps(self) -> int:
        return int(self.config["train"]["total_timesteps"])


def eval_path(job: Job, suite: str) -> Path:
    return Path(job.run_dir) / "eval" / f"{suite}.json"


def evaluated(job: Job, suite: str) -> bool:
    """Evaluated on `suite` with the wanted episode count."""
    path = eval_path(job, suite)
    return path.is_file() and json.loads(path.read_text()).get("episodes") == job.eval_episodes


def trained_steps(run: Path) -> int:
    """Steps a run folder holds: its summary's after a finished session, else its latest checkpoint's."""
    summary, latest = run / "summary.json", run / "checkpoints" / "latest.json"
    if summary.is_file():
        return int(json.loads(summary.read_text()).get("steps", 0))
    return int(json.loads(latest.read_text()).get("num_timesteps", 0)) if latest.is_file() else 0


def job_finished(job: Job) -> bool:
    """Trained to the target and evaluated on every suite with the wanted episode count."""
    if trained_steps(Path(job.run_dir)) < job.steps:
        return False
    return all(evaluated(job, suite) for suite in job.suites)


def run_job(job: Job) -> dict[str, dict[str, Any]]:
    """Train (fresh or resumed) and evaluate one (method, seed) on each suite not yet evaluated; returns
    the evaluation summaries by suite."""
    from drivevlm.eval.evaluate import evaluate_run
    from drivevlm.presets import Preset
    from drivevlm.rewards.build import build_reward
    from drivevlm.train import checkpoint as ckpt
    from drivevlm.train.trainer import train

    run = Path(job.run_dir)
    preset = Preset.parse(job.config)
    if trained_steps(run) < job.steps:
        start = ckpt.latest_checkpoint(run / "checkpoints")
        resume = start is not None
        if resume:
            assert start is not None
            saved = run_config_steps(run)
            if saved != job.steps:
                raise ConfigError(
                    f"steps: {run} was started with {saved} steps, asked for {job.steps}; use another --out"
                )
            state = ckpt.load_trainer_state(start)
            start_step = int(state["num_timesteps"])
            session = int(state.get("session", -1)) + 1
            truncate_episode_logs(run, start_step)
        else:
            shutil.rmtree(run / "training", ignore_errors=True)
            start_step, session = 0, 0
        reward_fn = build_reward(preset.reward, preset.models)
        factory = RecordingEnvFactory(
            preset.env,
            bool(reward_fn.needs_frames),
            1000 * session,
            run / "training",
            start_step,
            preset.train.n_envs,
        )
        train(
            None if resume else preset,
            run,
            resume=resume,
            reward_fn=reward_fn,
            window_frames=preset.reward.window_frames,
            env_factory=factory,
        )
    write_episode_curve(run)
    summaries = {}
    for suite in job.suites:
        if evaluated(job, suite):
            summaries[suite] = dict(json.loads(eval_path(job, suite).read_text()))
        else:
            limit = job.eval_max_steps
            summaries[suite] = evaluate_run(run, suite, job.eval_episodes, max_episode_steps=limit)
    return summaries


def run_config_steps(run: Path) -> int:
    import yaml

    data = yaml.safe_load((run / "config.yaml").read_text()) or {}
    return int((data.get("train") or {}).get("total_timesteps", 0))


def plan_jobs(
    out: Path,
    methods: Sequence[str],
    seeds: int,
    steps: int,
    suites: Sequence[str],
    eval_episodes: int,
    overrides: Sequence[str] = (),
    experiment: str = "main",
    configs: Path | None = None,
    eval_max_steps: int | None = None,
) -> list[Job]:
    from drivevlm.eval.suites import suite_list

    suites = suite_list(",".join(suites))
    if not methods:
        raise ConfigError("methods: give at least one preset name")
    if seeds < 1:
        raise ConfigError(f"seeds: must be >= 1, got {seeds}")
    if steps < 1:
        raise ConfigError(f"steps: must be >= 1, got {steps}")
    # Seed by seed, so that a benchmark stopped halfway has every method on its first seeds.
    jobs = []
    for seed in range(seeds):
        for method in methods:
            config = job_config(method, seed, steps, overrides, experiment, configs)
            run_dir = out / "runs" / method / f"seed-{seed}"
            jobs.append(Job(method, seed, str(run_dir), config, suites, eval_episodes, eval_max_steps))
    return jobs


LOCK_FILE = "job.lock"
# The exit status of a job process that found its job already running in another process.
LOCKED_EXIT = 3


def _try_lock(run_dir: Path) -> int | None:
    """An exclusive lock on the run's lock file (its descriptor), or None while another process holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None
    return handle


def running_elsewhere(job: Job) -> bool:
    """True while another process runs this job (it holds the run's lock)."""
    handle = _try_lock(Path(job.run_dir))
    if handle is None:
        return True
    os.close(handle)
    return False


def _launch(job: Job) -> subprocess.Popen[bytes]:
    run = Path(job.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    job_file = write_atomic(run / "job.json", json.dumps(asdict(job), indent=2, default=str))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    log = (run / "job.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "drivevlm.eval.jobs", str(job_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    finally:
        log.close()


def run_jobs(
    jobs: Sequence[Job], parallel: int = 1, progress: Callable[[str], None] | None = None
) -> list[str]:
    """Run the unfinished jobs, `parallel` processes at a time; returns the run folders that failed."""
    if parallel < 1:
        raise ConfigError(f"jobs: must be >= 1, got {parallel}")
    say = progress or (lambda _text: None)
    pending = [job for job in jobs if not job_finished(job)]
    for job in jobs:
        if job not in pending:
            say(f"skip {job.method} seed {job.seed}: finished")
    for job in [job for job in pending if running_elsewhere(job)]:
        pending.remove(job)
        say(f"skip {job.method} seed {job.seed}: another process is running it ({job.run_dir})")
    running: list[tuple[Job, subprocess.Popen[bytes]]] = []
    failed: list[str] = []
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            say(f"start {job.method} seed {job.seed} -> {job.run_dir}")
            running.append((job, _launch(job)))
        time.sleep(0.2)
        for item in list(running):
            job, process = item
            code = process.poll()
            if code is None:
                continue
            running.remove(item)
            if code == 0:
                say(f"done {job.method} seed {job.seed}")
            elif code == LOCKED_EXIT:
                say(f"skip {job.method} seed {job.seed}: another process is running it ({job.run_dir})")
            else:
                failed.append(job.run_dir)
                say(f"FAILED {job.method} seed {job.seed} (exit {code}); see {Path(job.run_dir) / 'job.log'}")
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of one job process: `python -m drivevlm.eval.jobs RUN_DIR/job.json`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m drivevlm.eval.jobs JOB_JSON", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data = json.loads(Path(args[0]).read_text())
    job = Job(**{**data, "suites": tuple(data["suites"])})
    lock = _try_lock(Path(job.run_dir))
    if lock is None:
        print(f"{job.run_dir}: another process is running this job", file=sys.stderr)
        return LOCKED_EXIT
    try:
        summaries = run_job(job)
    finally:
        os.close(lock)
    metrics: Mapping[str, Any] = {suite: summary.get("metrics", {}) for suite, summary in summaries.items()}
    print(json.dumps({"run_dir": job.run_dir, "metrics": metrics}, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
