"""Training throughput (env steps/s including learning): async vs dynamic pathway off vs sync.

An LVLM stand-in HTTP server on 127.0.0.1 answers each call after `--lvlm-latency` seconds. The reward
function here is built for this bench (the real pathways need model weights): its gate opens on about
`--gate-rate` of the steps (a deterministic hash of the step's signals), gated requests call the server
concurrently (one thread per gated request, as an LVLM client with concurrency would), and the reward
is the real shaping synthesis. "off" is the same run with the gate never open.

Env: `--env toy` (the tests' toy env, no simulator) or `--env drivevlm` (the SUMO DriveEnv).
Usage: python benchmarks/async_pipeline.py [--steps 2000] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from drivevlm.rewards.base import RewardRequest, RewardTerms
from drivevlm.rewards.synthesis import final_reward, shaping_terms

ROOT = Path(__file__).resolve().parents[1]


def start_lvlm_server(latency_s: float) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(latency_s)
            body = json.dumps({"goal": "a pedestrian is crossing the road ahead"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1/goal"


class GatedLatencyReward:
    """Gate open on ~gate_rate of steps; gated requests wait on the LVLM stand-in concurrently."""

    needs_frames = False

    def __init__(self, url: str, gate_rate: float) -> None:
        self.url, self.gate_rate = url, gate_rate
        self.pool = ThreadPoolExecutor(max_workers=32)
        self.lvlm_calls = 0

    @property
    def counters(self) -> dict[str, int]:
        return {"lvlm_calls": self.lvlm_calls}

    def _gate(self, request: RewardRequest) -> bool:
        s = request.signals
        key = f"{s.center_offset_m:.6f}/{s.speed_kmh:.6f}/{s.center_offset_std_m:.6f}".encode()
        return int(hashlib.sha1(key).hexdigest()[:8], 16) / 0xFFFFFFFF < self.gate_rate

    def _call(self, _: RewardRequest) -> float:
        with urllib.request.urlopen(urllib.request.Request(self.url, data=b"{}"), timeout=30) as response:
            json.loads(response.read())
        return -0.01

    def __call__(self, requests: Sequence[RewardRequest]) -> list[RewardTerms]:
        gated = [i for i, r in enumerate(requests) if self._gate(r)]
        self.lvlm_calls += len(gated)
        dynamic = np.zeros(len(requests))
        for i, value in zip(gated, self.pool.map(self._call, [requests[i] for i in gated]), strict=True):
            dynamic[i] = value
        s = [r.signals for r in requests]
        r_norm = np.clip((dynamic + 0.03) / 0.03, 0, 1)
        terms = shaping_terms(
            r_norm,
            [x.speed_kmh for x in s],
            [x.center_offset_m for x in s],
            [x.heading_error_deg for x in s],
            [x.center_offset_std_m for x in s],
        )
        final = final_reward(terms["r_shaping"], [x.collided for x in s], -10.0)
        return [
            RewardTerms(final=float(f), terms={"r_dynamic": float(d)})
            for f, d in zip(final, dynamic, strict=True)
        ]


def _env_factory(kind: str) -> Any:
    if kind == "toy":
        sys.path.insert(0, str(ROOT / "tests" / "train"))
        from toy_env import ToyDriveEnv

        return lambda rank: ToyDriveEnv(size=96, max_steps=300)
    return None


def bundled_preset(base_url: str, gate_open: bool) -> dict[str, Any]:
    """DriveVLM-RL's preset with the bundled models and the LVLM behind an OpenAI-compatible server."""
    import yaml

    data: dict[str, Any] = yaml.safe_load((ROOT / "configs" / "drivevlm_rl.yaml").read_text())
    data["env"].update({"rgb_size": 96})
    # "off": a gate threshold (confidence 1.0) no score reaches: the detector runs, the LVLM is never called.
    data["reward"]["gate"]["threshold"] = 0.25 if gate_open else 1.0
    data["models"] = {
        "clip": {"backend": "aligned", "model": "bundled"},
        "detector": {"backend": "tiny", "model": "bundled", "threshold": 0.25},
        "lvlm": {"backend": "openai", "base_url": base_url, "model": "stand-in", "timeout_s": 30},
        "cache": {"enabled": False},
    }
    return data


def run(mode: str, gate_rate: float, url: str, args: argparse.Namespace) -> dict[str, Any]:
    from drivevlm.train.trainer import train

    reward_fn: Any = None
    config: dict[str, Any] = {}
    if args.reward == "bundled":
        config = bundled_preset(url, gate_rate > 0)
    else:
        reward_fn = GatedLatencyReward(url, gate_rate)
    config = {
        **config,
        "env": {**config.get("env", {}), "seed": 0, "density": args.density},
        "train": {
            "total_timesteps": args.steps,
            "n_envs": 1,
            "vec_env": "dummy",
            "mode": mode,
            "log_interval": args.steps,
            "checkpoint_interval": 10 * args.steps,
            "checkpoint_replay_buffer": False,
            "annotator": {"batch_size": args.annotator_batch},
            "sac": {
                "learning_starts": args.learning_starts,
                "buffer_size": 20_000,
                "batch_size": args.batch_size,
                "gradient_steps": args.gradient_steps,
            },
        },
    }
    with tempfile.TemporaryDirectory() as folder:
        summary = train(
            config,
            Path(folder) / "run",
            reward_fn=reward_fn,
            env_factory=_env_factory(args.env),
        )
    annotator = summary["annotator"]
    return {
        "steps_per_s": summary["steps_per_s"],
        "lvlm_calls": annotator.get("reward_fn/lvlm_calls", 0.0),
        "gate_open_share": annotator.get("reward_fn/gate_open", 0.0) / max(annotator["annotated"], 1),
        "mean_annotator_batch": annotator["annotated"] / max(annotator["batches"], 1),
        "collection_blocked_s": summary["annotator"]["collection_blocked_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--learning-starts", type=int, default=500)
    # VLM-RL's 256 / 64 make a CPU run take hours; smaller defaults keep the bench minutes long.
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--gradient-steps", type=int, default=8)
    parser.add_argument("--lvlm-latency", type=float, default=1.0)
    parser.add_argument("--gate-rate", type=float, default=0.1)
    parser.add_argument("--env", choices=["toy", "drivevlm"], default="toy")
    # bundled: the real DriveVLM-RL pathways (bundled models, OpenAI client); gated: the synthetic reward.
    parser.add_argument("--reward", choices=["gated", "bundled"], default="gated")
    parser.add_argument("--density", default="regular")
    parser.add_argument("--annotator-batch", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.reward == "bundled":
        sys.path.insert(0, str(ROOT / "tests"))
        from support.chat_server import ChatServer, Reply

        chat = ChatServer([Reply(delay_s=args.lvlm_latency)], lifetime_s=3600).start()
        stop, url = chat.stop, chat.base_url
    else:
        server, url = start_lvlm_server(args.lvlm_latency)
        stop = server.shutdown
    try:
        off = run("async", 0.0, url, args)
        on = run("async", args.gate_rate, url, args)
        sync = run("sync", args.gate_rate, url, args)
    finally:
        stop()
    result = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "gradient_steps_per_64": args.gradient_steps,
        "env": args.env,
        "lvlm_latency_s": args.lvlm_latency,
        "gate_rate": args.gate_rate,
        "dynamic_off_steps_per_s": off["steps_per_s"],
        "async_steps_per_s": on["steps_per_s"],
        "sync_steps_per_s": sync["steps_per_s"],
        "async_over_off": on["steps_per_s"] / off["steps_per_s"],
        "sync_over_off": sync["steps_per_s"] / off["steps_per_s"],
        "lvlm_calls_async": on["lvlm_calls"],
        "lvlm_calls_sync": sync["lvlm_calls"],
        "async_collection_blocked_s": on["collection_blocked_s"],
        "reward": args.reward,
        "gate_open_share_async": on["gate_open_share"],
        "mean_annotator_batch_off": off["mean_annotator_batch"],
        "mean_annotator_batch_async": on["mean_annotator_batch"],
    }
    for key, value in result.items():
        print(f"{key:>28}: {value:.3f}" if isinstance(value, float) else f"{key:>28}: {value}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
