"""Training throughput (env steps/s including learning): async vs dynamic pathway off vs sync.

An LVLM stand-in HTTP server on 127.0.0.1, in its own process so that its CPU does not compete for the
trainer's GIL, answers each chat completion after `--lvlm-latency` seconds. The gate opens on about
`--gate-rate` of the steps, decided by a deterministic hash; "off" is the same run with the gate never open.

Rewards: `--reward gated` is a synthetic reward (hash of the step's signals, concurrent calls to the
stand-in, the real shaping synthesis); `--reward bundled` is the real DriveVLM-RL reward (bundled CLIP and
detector, OpenAI client) whose detector runs on every frame but reports a critical detection on the hashed
~gate-rate share of frames (the bundled detector alone opens the gate on ~97% of SUMO frames).
Every mode uses the same learning settings; each runs `--repeats` times, interleaved, and every run is
printed. `steps_per_s` is the trainer's (collection + learning); `*_wall` also counts setup and the final
wait for the backlog.

Env: `--env toy` (the tests' toy env, no simulator) or `--env drivevlm` (the SUMO DriveEnv).
Usage: python benchmarks/async_pipeline.py --env drivevlm --reward bundled [--steps 2000] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
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

from drivevlm.driving_factors import shaping_terms
from drivevlm.models.base import Detection
from drivevlm.presets import PRESETS_DIR
from drivevlm.rewards.base import RewardRequest, RewardTerms
from drivevlm.rewards.synthesis import final_reward

ROOT = Path(__file__).resolve().parents[1]


def _serve_lvlm(latency_s: float, port_out: Any) -> None:
    """The stand-in LVLM: answers every POST with a chat completion after `latency_s` (own process)."""
    body = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "model": "stand-in",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "A pedestrian is crossing the road ahead"},
                    "finish_reason": "stop",
                }
            ],
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(latency_s)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.put(server.server_address[1])
    server.serve_forever()


def start_lvlm_server(latency_s: float) -> tuple[mp.Process, str]:
    """The stand-in in a separate process, so that its CPU does not compete for the trainer's GIL."""
    ctx = mp.get_context("spawn")
    port_out = ctx.Queue()
    process = ctx.Process(target=_serve_lvlm, args=(latency_s, port_out), daemon=True)
    process.start()
    port = port_out.get(timeout=60)
    return process, f"http://127.0.0.1:{port}/v1"


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


def _step_hash_share(index: int) -> float:
    return int(hashlib.sha1(str(index).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


class StepHashGateDetector:
    """The real bundled detector runs on every frame (its cost is paid), but the critical detection that
    opens the gate is reported on a deterministic ~`gate_rate` share of frames (by frame count).

    The bundled detector fires on nearly every frame of SUMO's random scenario (97% measured), while the
    issue's target is a gate open on about 10% of steps; this keeps the real pathway and sets the rate.
    """

    def __init__(self, detector: Any, gate_rate: float) -> None:
        self.detector, self.gate_rate = detector, gate_rate
        self.name = f"{detector.name}+hash-gate"
        self.frames = 0
        self._lock = threading.Lock()

    def detect(self, images: Any) -> list[list[Detection]]:
        self.detector.detect(images)
        with self._lock:
            first, self.frames = self.frames, self.frames + len(images)
        size = float(np.asarray(images).shape[-2])
        return [
            [Detection("person", 0.9, (0.0, 0.0, size / 4, size / 4))]
            if _step_hash_share(first + k) < self.gate_rate
            else []
            for k in range(len(images))
        ]


def bundled_reward(base_url: str, gate_rate: float) -> tuple[Any, int]:
    """DriveVLM-RL's preset with the bundled models and the LVLM behind an OpenAI-compatible server."""
    import yaml

    from drivevlm.rewards.build import RegistryModelFactory, build_reward
    from drivevlm.rewards.config import reward_sections

    class Factory(RegistryModelFactory):
        def make_detector(self, cfg: Any) -> Any:
            return StepHashGateDetector(super().make_detector(cfg), gate_rate)

    data: dict[str, Any] = yaml.safe_load((PRESETS_DIR / "drivevlm_rl.yaml").read_text())
    data["models"] = {
        "clip": {"backend": "aligned", "model": "bundled"},
        "detector": {"backend": "tiny", "model": "bundled", "threshold": 0.25},
        "lvlm": {"backend": "openai", "base_url": base_url, "model": "stand-in", "timeout_s": 30},
        "cache": {"enabled": False},
    }
    reward_cfg, models_cfg = reward_sections(data)
    return build_reward(reward_cfg, models_cfg, Factory()), reward_cfg.window_frames


def run(mode: str, gate_rate: float, url: str, args: argparse.Namespace) -> dict[str, Any]:
    from drivevlm.train.trainer import train

    window_frames = None
    if args.reward == "bundled":
        reward_fn, window_frames = bundled_reward(url, gate_rate)
    else:
        reward_fn = GatedLatencyReward(url + "/chat/completions", gate_rate)
    config = {
        "env": {"seed": 0, "density": args.density, "rgb_size": 96},
        "train": {
            "total_timesteps": args.steps,
            "n_envs": 1,
            "vec_env": "dummy",
            "mode": mode,
            "log_interval": args.steps,
            "checkpoint_interval": 10 * args.steps,
            "checkpoint_replay_buffer": False,
            "annotator": {"batch_size": args.annotator_batch, "workers": args.annotator_workers},
            "sac": {
                "learning_starts": args.learning_starts,
                "buffer_size": 20_000,
                "batch_size": args.batch_size,
                "gradient_steps": args.gradient_steps,
            },
        },
    }
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        summary = train(
            config,
            Path(folder) / "run",
            reward_fn=reward_fn,
            window_frames=window_frames,
            env_factory=_env_factory(args.env),
        )
        # Includes setup and the final wait for the backlog: deferred annotation is not free.
        wall_s = time.monotonic() - started
    annotator = summary["annotator"]
    return {
        "mode": mode,
        "gate_rate": gate_rate,
        "steps_per_s": summary["steps_per_s"],
        "steps_per_s_wall": args.steps / wall_s,
        "lvlm_calls": annotator.get("reward_fn/lvlm_calls", 0.0),
        "gate_open_share": annotator.get("reward_fn/gate_open", annotator.get("reward_fn/lvlm_calls", 0.0))
        / max(annotator["annotated"], 1),
        "mean_annotator_batch": annotator["annotated"] / max(annotator["batches"], 1),
        "collection_blocked_s": annotator["collection_blocked_s"],
        "fallbacks": annotator["fallbacks"],
    }


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else 0.0


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
    parser.add_argument("--annotator-workers", type=int, default=1)
    # Each mode runs this many times, interleaved (off, async, sync, off, ...), on a shared machine.
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    server, url = start_lvlm_server(args.lvlm_latency)
    runs: list[dict[str, Any]] = []
    try:
        for repeat in range(args.repeats):
            for mode, rate in (("off", 0.0), ("async", args.gate_rate), ("sync", args.gate_rate)):
                result = run("sync" if mode == "sync" else "async", rate, url, args)
                runs.append({"label": mode, "repeat": repeat, **result})
                print(json.dumps(runs[-1]), flush=True)
    finally:
        server.terminate()
        server.join(timeout=10)
    rates = {
        label: [r["steps_per_s"] for r in runs if r["label"] == label] for label in ("off", "async", "sync")
    }
    walls = {
        label: [r["steps_per_s_wall"] for r in runs if r["label"] == label]
        for label in ("off", "async", "sync")
    }
    result = {
        "steps": args.steps,
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "gradient_steps_per_64": args.gradient_steps,
        "env": args.env,
        "reward": args.reward,
        "lvlm_latency_s": args.lvlm_latency,
        "gate_rate_target": args.gate_rate,
        "gate_open_share_async": _median([r["gate_open_share"] for r in runs if r["label"] == "async"]),
        "dynamic_off_steps_per_s": _median(rates["off"]),
        "async_steps_per_s": _median(rates["async"]),
        "sync_steps_per_s": _median(rates["sync"]),
        "async_over_off": _median(rates["async"]) / _median(rates["off"]),
        "sync_over_off": _median(rates["sync"]) / _median(rates["off"]),
        "async_over_off_wall": _median(walls["async"]) / _median(walls["off"]),
        "sync_over_off_wall": _median(walls["sync"]) / _median(walls["off"]),
        "mean_annotator_batch_off": _median([r["mean_annotator_batch"] for r in runs if r["label"] == "off"]),
        "mean_annotator_batch_async": _median(
            [r["mean_annotator_batch"] for r in runs if r["label"] == "async"]
        ),
    }
    for key, value in result.items():
        print(f"{key:>28}: {value:.3f}" if isinstance(value, float) else f"{key:>28}: {value}")
    if args.json:
        print(json.dumps({"summary": result, "runs": runs}))


if __name__ == "__main__":
    main()
