"""Validation during training: each checkpoint's policy drives fixed episodes of the training distribution
in a background process, and the best one is kept as the run's `best` policy.

On a laptop budget SAC's policy moves a lot between checkpoints a few thousand steps apart (DriveVLM-RL
seed 3 of the laptop recipe: route completion 0.37 at 35k steps, 0.73 at 40k), so where a run happens to
stop decides much of its result. Choosing the checkpoint by a validation score, as SB3's `EvalCallback`
does, takes that chance out. The validation episodes are the training town's random routes, regular
traffic, seeds from `train.validation.seed` on: never the evaluation suites' fixed routes and seeds, so
what a run is measured on stays unseen.

The score of a checkpoint is its mean route completion with an episode that collided counting zero: it
rises with distance driven and falls with every crash. Each validation runs in its own process (libsumo
allows one simulation per process), one at a time, while training goes on.
"""

from __future__ import annotations

import argparse
import json
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drivevlm.atomic import atomic_output, write_atomic
from drivevlm.eval.episode_log import EpisodeLog
from drivevlm.eval.runs import BEST_DIR, BEST_RECORD

VALIDATION_DIR = "validation"
RESULTS = "results.jsonl"


def validation_score(logs: Sequence[EpisodeLog]) -> float:
    """Mean route completion over the episodes, an episode with a collision counting 0."""
    if not logs:
        return 0.0
    return sum(0.0 if log.collided else log.routes_completed for log in logs) / len(logs)


def read_results(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / VALIDATION_DIR / RESULTS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def validate(
    run_dir: str | Path, policy_zip: str | Path, step: int, episodes: int, seed: int
) -> dict[str, Any]:
    """Drive `policy_zip` through the validation episodes in the run's env; record the result and, if it
    beats every earlier checkpoint's, make it the run's best policy. Returns the record."""
    from drivevlm.eval.evaluate import evaluate_suite, evaluation_config
    from drivevlm.eval.metrics import testing_metrics
    from drivevlm.eval.runs import env_config_from, load_policy_file, load_run_config, sb3_act
    from drivevlm.eval.suites import Suite, SuiteEpisode

    run_dir = Path(run_dir)
    config = evaluation_config(env_config_from(load_run_config(run_dir)))
    suite = Suite(
        "validation",
        f"random routes of {config.town}, regular traffic, seeds {seed}-{seed + episodes - 1}",
        config.simulator,
        tuple(SuiteEpisode(config.town, "random", "regular", None, seed + i) for i in range(episodes)),
    )
    result = evaluate_suite(sb3_act(load_policy_file(policy_zip)), config, suite)
    record = {
        "step": step,
        "score": validation_score(result.logs),
        "metrics": testing_metrics(result.logs),
        "seconds": result.seconds,
    }
    earlier = [r["score"] for r in read_results(run_dir)]
    folder = run_dir / VALIDATION_DIR
    with (folder / RESULTS).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=float) + "\n")
    # Ties go to the later checkpoint: as good on validation, and trained for longer.
    if not earlier or record["score"] >= max(earlier):
        _make_best(run_dir / BEST_DIR, Path(policy_zip), record)
    return record


def _make_best(folder: Path, policy_zip: Path, record: dict[str, Any]) -> None:
    """Copy the policy in under its step's name, then point the record at it (written atomically, so a
    reader sees the old best or the new one, never half of either), then drop the old policy."""
    name = f"step-{record['step']:010d}.zip"
    with atomic_output(folder / name) as staged:
        shutil.copyfile(policy_zip, staged)
    write_atomic(folder / BEST_RECORD, json.dumps({**record, "policy": name}, indent=2, default=float) + "\n")
    for old in folder.glob("step-*.zip"):
        if old.name != name:
            old.unlink()


class Validator:
    """Validates each checkpoint it is handed in a background process, one at a time and in order, so that
    training never waits for a validation (only `finish` does)."""

    def __init__(self, run_dir: Path, episodes: int, seed: int) -> None:
        self.run_dir, self.episodes, self.seed = run_dir, episodes, seed
        self.folder = run_dir / VALIDATION_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.failures = 0
        self._queue: queue.Queue[tuple[Path, int] | None] = queue.Queue()
        self._process: subprocess.Popen[bytes] | None = None
        self._closing = False
        self._worker = threading.Thread(target=self._work, name="validator", daemon=True)
        self._worker.start()

    def submit(self, checkpoint: Path, step: int) -> None:
        """Queue the policy of `checkpoint` (a copy of its model.zip: the checkpoint itself may be pruned
        before its turn); a step already validated (a resumed run that was complete) is not validated
        twice."""
        if any(r["step"] == step for r in read_results(self.run_dir)):
            return
        policy = self.folder / f"step-{step:010d}.zip"
        with atomic_output(policy) as staged:
            shutil.copyfile(checkpoint / "model.zip", staged)
        self._queue.put((policy, step))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            policy, step = item
            if not self._closing:
                self._run(policy, step)
            policy.unlink(missing_ok=True)

    def _run(self, policy: Path, step: int) -> None:
        args = [sys.executable, "-m", "drivevlm.train.validation", str(self.run_dir), str(policy), str(step)]
        args += ["--episodes", str(self.episodes), "--seed", str(self.seed)]
        log = policy.with_suffix(".log")
        with log.open("wb") as handle:
            self._process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT)
            failed = self._process.wait() != 0
        # A failed validation is counted (its log stays), never raised: it must not end the run.
        if failed:
            self.failures += 1
        else:
            log.unlink(missing_ok=True)

    def finish(self) -> dict[str, Any]:
        """Wait for every queued validation; the number run, failed, and the best record."""
        self._queue.put(None)
        self._worker.join()
        best = self.run_dir / BEST_DIR / BEST_RECORD
        record = json.loads(best.read_text(encoding="utf-8")) if best.is_file() else None
        return {"validations": len(read_results(self.run_dir)), "failures": self.failures, "best": record}

    def close(self) -> None:
        """Stop now: the running validation is killed, the queued ones dropped."""
        self._closing = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self._queue.put(None)
        self._worker.join(timeout=30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate one checkpoint's policy of a training run.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("policy", type=Path, help="the checkpoint's model.zip (or a copy of it)")
    parser.add_argument("step", type=int)
    parser.add_argument("--episodes", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # one observation at a time: a second thread would only take the trainer's core
    record = validate(args.run_dir, args.policy, args.step, args.episodes, args.seed)
    print(json.dumps(record, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
