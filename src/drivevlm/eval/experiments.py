"""The paper's experiments as one command: train every preset x seed, evaluate each, write Tables 1-4.

Layout of a benchmark folder:
    <out>/runs/<method>/seed-<n>/   one training run each (trainer layout) plus
        job.json                    what the job trains and evaluates (written before it starts)
        job.log                     the job's stdout and stderr
        training/episodes-rank<r>.jsonl   every training episode (EpisodeLog + the step it ended at)
        training/episodes.csv       the same as a per-episode curve log (TrainingCurveLog columns)
        eval/<suite>.json           the testing metrics
    <out>/table1_training.md/.csv, table2_testing.md/.csv (or table3/table4 for no_collision_penalty),
    <out>/training_curves.png, <out>/benchmark.json

Each job runs in its own process (libsumo allows one simulation per process) and is resumable: a job
with a finished evaluation is skipped, one with a checkpoint is resumed from it, one without starts over.

The trainer itself logs aggregated episode statistics only (SB3 CSV/TensorBoard per log interval), so
Table 1 is computed from the per-episode logs this module records with an env wrapper. Those logs hold
the env's own measurements (speed, distance, collisions, route completion), not the annotated reward;
the training curves therefore show collision rate, speed, route completion and distance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from drivevlm.atomic import atomic_output, write_atomic
from drivevlm.config import ConfigError, apply_overrides, read_yaml
from drivevlm.eval.episode_log import (
    LOG_FORMAT_VERSION,
    EpisodeLog,
    EpisodeRecorder,
    TrainingCurveLog,
)
from drivevlm.presets import PRESETS_DIR, compose

EXPERIMENTS: dict[str, str] = {"main": "", "no_collision_penalty": "_no_collision_penalty"}
DEFAULT_METHODS: tuple[str, ...] = ("drivevlm_rl", "vlm_rl", "chen_sac", "tirl_sac")
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
EPISODES_FILE = "episodes.csv"


def preset_path(method: str, experiment: str = "main", configs: Path | None = None) -> Path:
    if experiment not in EXPERIMENTS:
        raise ConfigError(f"experiment: unknown value {experiment!r}; allowed: {', '.join(EXPERIMENTS)}")
    folder = configs or PRESETS_DIR
    suffix = EXPERIMENTS[experiment]
    path = folder / f"{method}{suffix}.yaml"
    if not path.is_file():
        available = sorted(
            p.stem.removesuffix(suffix)
            for p in folder.glob(f"*{suffix}.yaml")
            if suffix or not any(p.stem.endswith(s) for s in EXPERIMENTS.values() if s)
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
    suite: str
    eval_episodes: int
    eval_max_steps: int | None = None

    @property
    def steps(self) -> int:
        return int(self.config["train"]["total_timesteps"])


# ---------------------------------------------------------------- per-episode training logs


class EpisodeLogWrapper(gym.Wrapper):  # type: ignore[type-arg]
    """Appends every finished episode, with the global step it ended at, to a JSON-lines file."""

    def __init__(self, env: gym.Env, path: Path, start_step: int, n_envs: int) -> None:  # type: ignore[type-arg]
        super().__init__(env)
        self.path = path
        self.global_step = start_step
        self.n_envs = n_envs
        self.recorder = EpisodeRecorder()
        path.parent.mkdir(parents=True, exist_ok=True)

    def reset(self, **kwargs: Any) -> Any:
        self.recorder = EpisodeRecorder()
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        # With n_envs parallel envs each of our steps is one of n_envs global steps.
        self.global_step += self.n_envs
        log = self.recorder.record(info)
        if log is None and (terminated or truncated):
            log = self.recorder.finish("unknown")
        if log is not None:
            line = {"format_version": LOG_FORMAT_VERSION, "end_step": self.global_step, **log.to_dict()}
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")
                handle.flush()
        return obs, reward, terminated, truncated, info


class RecordingEnvFactory:
    """Picklable env factory (SubprocVecEnv) making the trainer's default env, wrapped to log episodes."""

    def __init__(
        self,
        env_section: dict[str, Any],
        render_frames: bool,
        seed_offset: int,
        log_dir: Path,
        start_step: int,
        n_envs: int,
    ) -> None:
        self.env_section = env_section
        self.render_frames = render_frames
        self.seed_offset = seed_offset
        self.log_dir = log_dir
        self.start_step = start_step
        self.n_envs = n_envs

    def __call__(self, rank: int) -> gym.Env:  # type: ignore[type-arg]
        from drivevlm.config import EnvConfig, build
        from drivevlm.env import make_env

        cfg = build(EnvConfig, self.env_section, "env")
        cfg = cfg.model_copy(
            update={"seed": cfg.seed + rank + self.seed_offset, "render_frames": self.render_frames}
        )
        path = self.log_dir / f"episodes-rank{rank}.jsonl"
        return EpisodeLogWrapper(make_env(cfg), path, self.start_step + rank, self.n_envs)


def read_training_episodes(
    run_dir: str | Path, up_to_step: int | None = None
) -> list[tuple[int, EpisodeLog]]:
    """(end step, log) of every recorded training episode, all ranks, in the order they ended."""
    folder = Path(run_dir) / "training"
    out: list[tuple[int, EpisodeLog]] = []
    for path in sorted(folder.glob("episodes-rank*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
            step = int(data["end_step"])
            if up_to_step is None or step <= up_to_step:
                out.append((step, EpisodeLog.from_dict(data)))
    out.sort(key=lambda item: item[0])
    return out


def _truncate_episode_logs(run_dir: Path, up_to_step: int) -> None:
    """After a kill, keep the episodes up to the checkpoint the run resumes from (later ones are redone)."""
    for path in sorted((run_dir / "training").glob("episodes-rank*.jsonl")):
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if int(json.loads(line)["end_step"]) <= up_to_step:
                    kept.append(line + "\n")
            except (json.JSONDecodeError, KeyError, ValueError):
                continue
        write_atomic(path, "".join(kept))


def write_episode_curve(run_dir: Path) -> Path:
    """`training/episodes.csv` (TrainingCurveLog layout) from the recorded episodes, rewritten whole."""
    target = run_dir / "training" / EPISODES_FILE
    with atomic_output(target) as tmp:
        tmp.unlink()  # the curve log writes its header into a new file
        curve = TrainingCurveLog(tmp)
        for step, log in read_training_episodes(run_dir):
            curve.append(step, log)
    return target


# ---------------------------------------------------------------- one job (runs in its own process)


def _eval_path(job: Job) -> Path:
    return Path(job.run_dir) / "eval" / f"{job.suite}.json"


def job_finished(job: Job) -> bool:
    """Trained to the target and evaluated on the suite with the wanted episode count."""
    run = Path(job.run_dir)
    summary, evaluation = run / "summary.json", _eval_path(job)
    if not summary.is_file() or not evaluation.is_file():
        return False
    trained = json.loads(summary.read_text()).get("steps", 0) >= job.steps
    return bool(trained and json.loads(evaluation.read_text()).get("episodes") == job.eval_episodes)


def run_job(job: Job) -> dict[str, Any]:
    """Train (fresh or resumed) and evaluate one (method, seed); returns the evaluation summary."""
    from drivevlm.eval.evaluate import evaluate_run
    from drivevlm.rewards.build import build_reward
    from drivevlm.rewards.config import reward_sections
    from drivevlm.train import checkpoint as ckpt
    from drivevlm.train.config import train_section
    from drivevlm.train.trainer import train

    run = Path(job.run_dir)
    summary_file = run / "summary.json"
    done_steps = json.loads(summary_file.read_text()).get("steps", 0) if summary_file.is_file() else 0
    if done_steps < job.steps:
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
            _truncate_episode_logs(run, start_step)
        else:
            shutil.rmtree(run / "training", ignore_errors=True)
            start_step, session = 0, 0
        reward_cfg, models_cfg = reward_sections(job.config)
        reward_fn = build_reward(reward_cfg, models_cfg)
        n_envs = train_section(job.config).n_envs
        factory = RecordingEnvFactory(
            dict(job.config.get("env") or {}),
            bool(reward_fn.needs_frames),
            1000 * session,
            run / "training",
            start_step,
            n_envs,
        )
        train(
            None if resume else job.config,
            run,
            resume=resume,
            reward_fn=reward_fn,
            window_frames=reward_cfg.window_frames,
            env_factory=factory,
        )
    write_episode_curve(run)
    evaluation = _eval_path(job)
    if evaluation.is_file() and json.loads(evaluation.read_text()).get("episodes") == job.eval_episodes:
        return dict(json.loads(evaluation.read_text()))
    return evaluate_run(run, job.suite, job.eval_episodes, max_episode_steps=job.eval_max_steps)


def run_config_steps(run: Path) -> int:
    import yaml

    data = yaml.safe_load((run / "config.yaml").read_text()) or {}
    return int((data.get("train") or {}).get("total_timesteps", 0))


# ---------------------------------------------------------------- the benchmark


@dataclass
class BenchmarkResult:
    out: Path
    experiment: str
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    curves: str | None = None
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def plan_jobs(
    out: Path,
    methods: Sequence[str],
    seeds: int,
    steps: int,
    suite: str,
    eval_episodes: int,
    overrides: Sequence[str] = (),
    experiment: str = "main",
    configs: Path | None = None,
    eval_max_steps: int | None = None,
) -> list[Job]:
    from drivevlm.eval.suites import SUITE_NAMES, SuiteError

    if suite not in SUITE_NAMES:
        raise SuiteError(f"suite: unknown value {suite!r}; allowed: {', '.join(SUITE_NAMES)}")
    if not methods:
        raise ConfigError("methods: give at least one preset name")
    if seeds < 1:
        raise ConfigError(f"seeds: must be >= 1, got {seeds}")
    if steps < 1:
        raise ConfigError(f"steps: must be >= 1, got {steps}")
    jobs = []
    for method in methods:
        for seed in range(seeds):
            config = job_config(method, seed, steps, overrides, experiment, configs)
            run_dir = out / "runs" / method / f"seed-{seed}"
            jobs.append(Job(method, seed, str(run_dir), config, suite, eval_episodes, eval_max_steps))
    return jobs


def _launch(job: Job) -> subprocess.Popen[bytes]:
    run = Path(job.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    job_file = write_atomic(run / "job.json", json.dumps(asdict(job), indent=2, default=str))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    log = (run / "job.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "drivevlm.eval.experiments", str(job_file)],
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
            else:
                failed.append(job.run_dir)
                say(f"FAILED {job.method} seed {job.seed} (exit {code}); see {Path(job.run_dir) / 'job.log'}")
    return failed


def collect_tables(jobs: Sequence[Job], out: Path, experiment: str) -> BenchmarkResult:
    """Tables (training and testing, mean ± std over seeds), curves and benchmark.json from finished jobs."""
    from drivevlm.eval.metrics import training_metrics
    from drivevlm.eval.report import TABLE1_COLUMNS as T1
    from drivevlm.eval.report import TABLE2_COLUMNS, TABLE3_COLUMNS, plot_training_curves, write_table

    result = BenchmarkResult(out, experiment)
    training: dict[str, list[dict[str, float]]] = {}
    testing: dict[str, list[dict[str, float]]] = {}
    curves: dict[str, list[Path]] = {}
    for job in jobs:
        run = Path(job.run_dir)
        name = DISPLAY_NAMES.get(job.method, job.method)
        evaluation = _eval_path(job)
        episodes = [log for _, log in read_training_episodes(run)]
        if not evaluation.is_file():
            result.failed.append(job.run_dir)
            continue
        tested = json.loads(evaluation.read_text())["metrics"]
        trained = training_metrics(episodes) if episodes else None
        testing.setdefault(name, []).append(tested)
        if trained is not None:
            training.setdefault(name, []).append(trained)
            curves.setdefault(name, []).append(run / "training" / EPISODES_FILE)
        result.runs[f"{job.method}/seed-{job.seed}"] = {
            "run_dir": job.run_dir,
            "training": trained,
            "training_episodes": len(episodes),
            "testing": tested,
        }
    if experiment == "no_collision_penalty":
        specs = [("table3_training", training, TABLE3_COLUMNS, "Training, no reward after collision")]
        specs.append(("table4_testing", testing, TABLE2_COLUMNS, "Testing, no reward after collision"))
    else:
        specs = [
            ("table1_training", training, T1, "Training"),
            ("table2_testing", testing, TABLE2_COLUMNS, "Testing"),
        ]
    for name, results, columns, title in specs:
        if results:
            md, csv_path = write_table(results, columns, out / f"{name}.md", out / f"{name}.csv", title)
            result.tables[name] = str(md)
            result.tables[f"{name}_csv"] = str(csv_path)
    if curves:
        result.curves = str(plot_training_curves(curves, out / "training_curves.png"))
    return result


def run_benchmark(
    out: str | Path,
    methods: Sequence[str] = DEFAULT_METHODS,
    seeds: int = 3,
    steps: int = 100_000,
    suite: str = "unseen_routes",
    eval_episodes: int = 10,
    overrides: Sequence[str] = (),
    experiment: str = "main",
    parallel: int = 1,
    configs: Path | None = None,
    eval_max_steps: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchmarkResult:
    """Train and evaluate every method x seed (resumable, `parallel` processes), then write the tables."""
    started = time.monotonic()
    out = Path(out)
    jobs = plan_jobs(
        out, methods, seeds, steps, suite, eval_episodes, overrides, experiment, configs, eval_max_steps
    )
    failed = run_jobs(jobs, parallel, progress)
    result = collect_tables(jobs, out, experiment)
    result.failed = sorted(set(result.failed) | set(failed))
    result.seconds = time.monotonic() - started
    summary = {
        "experiment": experiment,
        "methods": list(methods),
        "seeds": seeds,
        "steps": steps,
        "suite": suite,
        "eval_episodes": eval_episodes,
        "overrides": list(overrides),
        "runs": result.runs,
        "tables": result.tables,
        "curves": result.curves,
        "failed": result.failed,
        "seconds": result.seconds,
    }
    from drivevlm.eval.evaluate import write_json_atomic

    write_json_atomic(out / "benchmark.json", summary)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of one job process: `python -m drivevlm.eval.experiments RUN_DIR/job.json`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m drivevlm.eval.experiments JOB_JSON", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data = json.loads(Path(args[0]).read_text())
    job = Job(**data)
    summary = run_job(job)
    metrics: Mapping[str, Any] = summary.get("metrics", {})
    print(json.dumps({"run_dir": job.run_dir, "metrics": metrics}, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# ---------------------------------------------------------------- HTML report

REPORT_SCENARIOS = ("pedestrian_crossing", "cyclist_merge", "slow_cyclist", "occluded_pedestrian")


def _record_videos(runs: Sequence[tuple[str, Path]], folder: Path, count: int, steps: int) -> list[Path]:
    """One short episode video per (label, run folder), cycling over the VRU scenarios."""
    from drivevlm.eval.runs import load_driver
    from drivevlm.eval.suites import SuiteEpisode
    from drivevlm.eval.video import drive_video
    from drivevlm.sim.scenarios import SCENARIOS

    written = []
    for index, (label, run) in enumerate(runs[:count]):
        driver = load_driver(run)
        scenario = REPORT_SCENARIOS[index % len(REPORT_SCENARIOS)]
        town = SCENARIOS[scenario].default_town or driver.env_config.town
        episode = SuiteEpisode(town, scenario, "regular", 0, 0)
        result = drive_video(
            driver.act, driver.env_config, episode, folder / f"{label}-{scenario}.webm", steps
        )
        written.append(result.video)
    return written


def write_report(
    folder: str | Path, out: str | Path | None = None, videos: int = 2, video_steps: int = 300
) -> dict[str, Any]:
    """One HTML page for a benchmark folder (benchmark.json) or a single run folder (config.yaml).

    Videos already under FOLDER/videos are linked; when there are none, `videos` are recorded first.
    """
    from drivevlm.eval.metrics import training_metrics
    from drivevlm.eval.report import (
        REWARD_PANELS,
        TABLE1_COLUMNS,
        TABLE2_COLUMNS,
        TABLE3_COLUMNS,
        TRAINING_PANELS,
        plot_progress,
        plot_training_curves,
        read_progress,
        write_html_report,
    )
    from drivevlm.eval.runs import RunError, load_run_config
    from drivevlm.train.config import train_section

    folder = Path(folder)
    target = Path(out) if out is not None else folder / "report.html"
    video_dir = folder / "videos"
    tables: dict[str, tuple[Any, Sequence[str]]] = {}
    images: list[Path] = []
    runs_for_video: list[tuple[str, Path]] = []
    bench_file = folder / "benchmark.json"
    if bench_file.is_file():
        bench = json.loads(bench_file.read_text())
        training: dict[str, list[dict[str, float]]] = {}
        testing: dict[str, list[dict[str, float]]] = {}
        for key, run in bench["runs"].items():
            method = key.split("/")[0]
            name = DISPLAY_NAMES.get(method, method)
            testing.setdefault(name, []).append(run["testing"])
            if run.get("training"):
                training.setdefault(name, []).append(run["training"])
            if key.endswith("seed-0"):
                runs_for_video.append((method, Path(run["run_dir"])))
        extreme = bench.get("experiment") == "no_collision_penalty"
        if training:
            tables["Training" + (" (no reward after collision)" if extreme else "")] = (
                training,
                TABLE3_COLUMNS if extreme else TABLE1_COLUMNS,
            )
        tables[f"Testing on {bench['suite']}"] = (testing, (*TABLE2_COLUMNS, "DS", "IPK"))
        if bench.get("curves") and Path(bench["curves"]).is_file():
            images.append(Path(bench["curves"]))
        methods = ", ".join(bench["methods"])
        title = f"DriveVLM benchmark: {methods}, {bench['seeds']} seed(s), {bench['steps']} steps"
    else:
        try:
            run_config = load_run_config(folder)
        except RunError as err:
            raise RunError(
                f"report: {folder} is neither a benchmark folder (benchmark.json) nor a run ({err})"
            ) from err
        suites = {
            p.stem: json.loads(p.read_text())["metrics"] for p in sorted((folder / "eval").glob("*.json"))
        }
        if suites:
            tables["Testing (one row per suite)"] = (
                {s: [m] for s, m in suites.items()},
                (*TABLE2_COLUMNS, "DS", "IPK"),
            )
        episodes = [log for _, log in read_training_episodes(folder)]
        if episodes:
            tables["Training"] = ({folder.name: [training_metrics(episodes)]}, TABLE1_COLUMNS)
            curve = write_episode_curve(folder)
            images.append(plot_training_curves({folder.name: [curve]}, folder / "training_curves.png"))
        progress = read_progress(folder, train_section(run_config).log_interval)
        if progress:
            if not episodes:
                images.append(plot_progress(progress, TRAINING_PANELS, folder / "training_progress.png"))
            images.append(plot_progress(progress, REWARD_PANELS, folder / "reward_terms.png"))
        runs_for_video.append((folder.name, folder))
        title = f"DriveVLM run {folder.name}"
    found = sorted(p for p in video_dir.glob("*") if p.suffix in (".webm", ".mp4", ".gif"))
    if not found and videos > 0:
        found = _record_videos(runs_for_video, video_dir, videos, video_steps)
    if not tables:
        raise RunError(f"report: {folder} has no evaluation results yet; run `drivevlm evaluate` first")
    notes = "Tables: mean ± std over seeds (sample std); best mean per column in bold."
    path = write_html_report(target, title, tables, images, found, notes)
    return {"path": path, "tables": list(tables), "videos": [str(v) for v in found]}
