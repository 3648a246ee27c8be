"""Scale-out on Ray: env steps/s with 1 and 2 runner actors, annotations/s of annotator actors, and a
simulated sweep of 1..64 annotator actors with a fixed per-call latency.

Real parts: the embedded SUMO env in runner actors (random actions), the chen reward in annotator actors,
the `RayAnnotator` dispatcher and `PendingRewards` backlog of training. The sweep's annotators sleep a
fixed latency per batch (a stand-in for an LVLM call), each actor asking for 0.01 CPU, so 64 of them fit
on this 2-core machine; its ideal is actors x batch / latency. Writes a PNG of the sweep.
Memory: every actor is a Python process; the 64-actor point held ~14 GB of RAM here.

    .venv/bin/python benchmarks/scaling.py [--steps 300] [--latency-s 0.5] [--max-actors 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


class LatencyReward:
    """A reward function that takes `latency_s` per call whatever the batch size (like one LVLM call)."""

    needs_frames = False

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s

    def __call__(self, requests: Sequence[Any]) -> list[Any]:
        from drivevlm.rewards.base import RewardTerms

        time.sleep(self.latency_s)
        return [RewardTerms(final=0.0) for _ in requests]


def _records(requests: Sequence[Any], first_id: int = 0) -> list[Any]:
    from drivevlm.annotation.queue import PendingTransition

    return [PendingTransition(first_id + i, request, 0.0) for i, request in enumerate(requests)]


def annotate_all(reward_fn: Any, requests: Sequence[Any], actors: int, batch: int, in_flight: int) -> float:
    """Annotations/s of `actors` annotator actors over `requests` (actor start-up not counted)."""
    from drivevlm.annotation.config import AnnotatorConfig
    from drivevlm.annotation.queue import PendingRewards
    from drivevlm.distributed.config import RayConfig
    from drivevlm.distributed.ray_annotator import RayAnnotator

    pending = PendingRewards(limit=len(requests) + 1)
    written: list[int] = []
    pending.attach(lambda records, terms, fell_back: written.extend(r.transition_id for r in records) or 0)
    cfg = RayConfig(num_annotators=actors, annotator={"num_cpus": 0.01}, annotator_max_in_flight=in_flight)
    annotator = RayAnnotator(pending, reward_fn, AnnotatorConfig(batch_size=batch), cfg)
    try:
        # Wait until every actor is up, so the figure is throughput, not process start-up.
        annotator.pool.ray.get([actor.counters.remote() for actor in annotator.pool.actors])
        pending.put(_records(requests))
        start = time.monotonic()
        annotator.drain()
        elapsed = time.monotonic() - start
    finally:
        annotator.close()
    if sorted(written) != list(range(len(requests))):
        raise RuntimeError("annotation lost or duplicated transitions")
    return len(requests) / elapsed


def env_steps(runners: int, steps: int) -> tuple[float, list[Any]]:
    """Env steps/s of `runners` SUMO runner actors (random actions); returns the steps' reward requests."""
    import numpy as np

    from drivevlm.annotation.windows import RequestBuilder
    from drivevlm.config import EnvConfig
    from drivevlm.distributed.config import RayConfig
    from drivevlm.distributed.ray_envs import RayVecEnv
    from drivevlm.train.trainer import _default_env_factory, _MonitoredFactory

    factory = _default_env_factory(EnvConfig(density="empty", seed=11), False, 0)
    cfg = RayConfig(runner={"num_cpus": 0.5})
    env = RayVecEnv([_MonitoredFactory(factory, rank) for rank in range(runners)], cfg)
    builder = RequestBuilder(runners, 4)
    requests: list[Any] = []
    try:
        env.reset()
        rng = np.random.default_rng(0)
        env.step(rng.uniform(-1, 1, size=(runners, 2)).astype(np.float32))  # simulators warm
        rounds = max(1, steps // runners)
        start = time.monotonic()
        for _ in range(rounds):
            actions = np.stack([[rng.uniform(-0.2, 0.2), rng.uniform(0.2, 1.0)] for _ in range(runners)])
            _, _, dones, infos = env.step(actions.astype(np.float32))
            requests += builder.build(infos, dones, env.reset_infos)
        elapsed = time.monotonic() - start
    finally:
        env.close()
    return rounds * runners / elapsed, requests


def plot(sweep: list[dict[str, float]], latency_s: float, batch: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    actors = [p["actors"] for p in sweep]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(actors, [p["annotations_per_s"] for p in sweep], "o-", label="measured")
    ax.plot(
        actors,
        [a * batch / latency_s for a in actors],
        "--",
        color="grey",
        label="ideal (actors·batch/latency)",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("annotator actors (0.01 CPU each)")
    ax.set_ylabel("annotations / s")
    ax.set_title(f"Simulated annotators: {latency_s:g} s per call, batch {batch}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="env steps per runner count")
    parser.add_argument("--latency-s", type=float, default=0.5, help="simulated annotator call latency")
    parser.add_argument("--batch", type=int, default=8, help="transitions per simulated call")
    parser.add_argument("--calls-per-actor", type=int, default=6, help="simulated calls per actor")
    parser.add_argument("--max-actors", type=int, default=64)
    parser.add_argument("--png", type=Path, default=Path("benchmarks/scaling.png"))
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    for name in ("steps", "batch", "calls_per_actor", "max_actors"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: must be >= 1")
    if args.latency_s <= 0:
        parser.error("--latency-s: must be > 0")

    import ray

    from drivevlm.rewards.base import RewardRequest
    from drivevlm.train.trainer import _default_reward

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 2**20)
    result: dict[str, Any] = {"machine_cpus": os.cpu_count()}
    try:
        runners: dict[str, float] = {}
        requests: list[RewardRequest] = []
        for n in (1, 2):
            rate, requests = env_steps(n, args.steps)
            runners[str(n)] = rate
            print(f"env steps/s with {n} runner actor(s): {rate:8.1f}", flush=True)
        result["env_steps_per_s"] = runners
        result["env_runner_ratio_2_vs_1"] = runners["2"] / runners["1"]
        chen, _ = _default_reward({"reward": {"preset": "chen"}})
        chen_rates = {}
        for n in (1, 2):
            chen_rates[str(n)] = annotate_all(chen, requests, n, batch=64, in_flight=2)
            print(f"chen annotations/s with {n} annotator actor(s): {chen_rates[str(n)]:8.1f}", flush=True)
        result["chen_annotations_per_s"] = chen_rates
        sweep = []
        actors = 1
        while actors <= args.max_actors:
            n_requests = actors * args.calls_per_actor * args.batch
            fake = [requests[i % len(requests)] for i in range(n_requests)]
            rate = annotate_all(LatencyReward(args.latency_s), fake, actors, batch=args.batch, in_flight=1)
            ideal = actors * args.batch / args.latency_s
            sweep.append(
                {"actors": actors, "annotations_per_s": rate, "ideal": ideal, "efficiency": rate / ideal}
            )
            print(
                f"simulated {actors:3d} actor(s): {rate:8.1f} annotations/s ({rate / ideal:.0%} of ideal)",
                flush=True,
            )
            actors *= 2
        result["sweep"] = {"latency_s": args.latency_s, "batch": args.batch, "points": sweep}
        result["sweep_ratio_max_vs_1"] = sweep[-1]["annotations_per_s"] / sweep[0]["annotations_per_s"]
    finally:
        ray.shutdown()
    plot(result["sweep"]["points"], args.latency_s, args.batch, args.png)
    result["png"] = str(args.png)
    print(f"sweep curve: {args.png}")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
