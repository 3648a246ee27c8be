"""Decision latency of the exported (VLM-free) policy on one CPU core, beside an LVLM call's round trip.

The policy is the default network (VLM-RL's BEV CNN + state MLP, SAC actor [500, 300]) for the env's
default observation (BEV masks and state vector), randomly initialised (latency does not depend on the
weights), exported to ONNX and run with `drivevlm.deploy.runtime` (numpy + onnxruntime, one thread,
spec check included in every decision). The LVLM side is measured against a stand-in OpenAI-compatible
chat server on 127.0.0.1 that answers at once: that is only the client/transport floor (PNG encoding
of the frames, HTTP, JSON). A real LVLM's latency is NOT measured here; `--assumed-lvlm-ms` is printed
separately and labelled as an assumption. Prints ratios; `--json` prints one JSON object as the last line.

    python benchmarks/policy_latency.py [--decisions 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

CONTROL_RATE_HZ = 20.0  # the paper's control rate; the goal is 50x that (1,000 decisions/s)
GOAL_DECISIONS_PER_S = 1000.0


def pin_to_one_core() -> int | None:
    """Run on a single CPU core (the first one this process may use) and keep libraries single-threaded."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return core
    return None


class _SpacesOnlyEnv:
    """Just enough of a gymnasium env for SB3 to build a model from the spaces (never stepped)."""

    def __init__(self, observation_space: Any, action_space: Any) -> None:
        import gymnasium as gym

        class SpacesEnv(gym.Env):
            def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
                super().reset(seed=seed)
                return self.observation_space.sample(), {}

            def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
                return self.observation_space.sample(), 0.0, False, False, {}

        env = SpacesEnv()
        env.observation_space = observation_space
        env.action_space = action_space
        self.env = env


def build_default_model() -> tuple[Any, Any, dict[str, Any]]:
    """The default SAC policy over the env's default observation space, and a note on what it is."""
    import torch
    from stable_baselines3 import SAC

    from drivevlm.env import DriveEnv

    torch.set_num_threads(1)
    env = DriveEnv()  # builds spaces only; the simulator starts on reset()
    kwargs: dict[str, Any] = {"net_arch": [500, 300], "log_std_init": -3.0}
    try:
        from drivevlm.train.policy import BevStateExtractor

        kwargs["features_extractor_class"] = BevStateExtractor
        network = (
            "drivevlm.train.policy.BevStateExtractor (VLM-RL CNN 8..256 + state MLP) + SAC actor [500, 300]"
        )
    except ImportError:
        network = "SB3 MultiInputPolicy default CombinedExtractor (NatureCNN) + SAC actor [500, 300]"
    spaces_env = _SpacesOnlyEnv(env.observation_space, env.action_space).env
    model = SAC(
        "MultiInputPolicy", spaces_env, policy_kwargs=kwargs, use_sde=True, buffer_size=1, device="cpu"
    )
    params = sum(p.numel() for p in model.policy.actor.parameters())
    info = {
        "network": network,
        "actor_parameters": int(params),
        "observation": {k: [list(s.shape), str(s.dtype)] for k, s in env.observation_space.spaces.items()},
    }
    return model, env, info


def random_observation(space: Any, rng: np.random.Generator) -> dict[str, np.ndarray]:
    obs = {}
    for key, sub in space.spaces.items():
        if sub.dtype == np.uint8:
            obs[key] = (rng.random(sub.shape) < 0.2).astype(np.uint8) * 255
        else:
            obs[key] = rng.normal(0.0, 5.0, sub.shape).astype(sub.dtype)
    return obs


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "calls": len(ms),
    }


def time_calls(fn: Any, arg: Any, n: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn(arg)
    seconds = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        fn(arg)
        seconds.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    out = _summary(seconds)
    out["per_second"] = n / wall
    return out


class _StandInChatServer(BaseHTTPRequestHandler):
    """Answers every chat-completions POST at once with a fixed risk description."""

    ANSWER = json.dumps(
        {
            "id": "stand-in",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "A pedestrian is crossing the road ahead"},
                    "finish_reason": "stop",
                }
            ],
        }
    ).encode()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.ANSWER)))
        self.end_headers()
        self.wfile.write(self.ANSWER)

    def log_message(self, format: str, *args: Any) -> None:
        return


def measure_lvlm_floor(calls: int, frames: int, size: int) -> dict[str, Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandInChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    rng = np.random.default_rng(0)
    window = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(frames)]
    prompt = "Describe the most safety-critical road user ahead in one sentence."
    try:
        try:
            from drivevlm.models.lvlm.openai_server import OpenAIChatVLM

            client = OpenAIChatVLM(base_url=base_url, model="stand-in", retries=0)
            call = lambda w: client.generate(w, prompt)  # noqa: E731
            how = "drivevlm.models.lvlm.openai_server.OpenAIChatVLM (PNG-encodes the frames each call)"
        except ImportError:
            import http.client

            body = json.dumps(
                {"model": "stand-in", "messages": [{"role": "user", "content": prompt}]}
            ).encode()

            def call(_w: Any) -> bytes:
                conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
                conn.request(
                    "POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"}
                )
                data = conn.getresponse().read()
                conn.close()
                return data

            how = "plain HTTP POST (no frames)"
        result = time_calls(call, window, calls, warmup=3)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    result.update({"client": how, "frames_per_call": frames, "frame_size": size})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--lvlm-calls", type=int, default=100)
    parser.add_argument("--lvlm-frames", type=int, default=4, help="front frames per LVLM call (K+1)")
    parser.add_argument("--lvlm-frame-size", type=int, default=224)
    parser.add_argument(
        "--assumed-lvlm-ms",
        type=float,
        default=1000.0,
        help="an assumed real LVLM latency (not measured; summaries of the paper cite >1 s per VLM decision)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    core = pin_to_one_core()
    from drivevlm.deploy.export import export_policy
    from drivevlm.deploy.runtime import load_policy

    model, env, info = build_default_model()
    rng = np.random.default_rng(0)
    obs = random_observation(env.observation_space, rng)
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        path = export_policy(
            model, env.observation_space, Path(folder) / "policy.onnx", "onnx",
            env.mask_channels, env.config.route_waypoints,
        )  # fmt: skip
        export_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        policy = load_policy(path, threads=1)
        onnx_stats = time_calls(policy.act, obs, args.decisions, args.warmup)
    torch_stats = time_calls(
        lambda o: model.predict(o, deterministic=True), obs, max(args.decisions // 5, 100), args.warmup // 4
    )
    lvlm = measure_lvlm_floor(args.lvlm_calls, args.lvlm_frames, args.lvlm_frame_size)

    p50 = onnx_stats["p50_ms"]
    result = {
        "cpu_core": core,
        **info,
        "export_seconds": export_s,
        "policy_file_mb": size_mb,
        "onnx_runtime_policy": onnx_stats,
        "torch_sb3_predict": torch_stats,
        "lvlm_stand_in_round_trip": lvlm,
        "assumed_lvlm_ms_not_measured": args.assumed_lvlm_ms,
        "goal_decisions_per_s": GOAL_DECISIONS_PER_S,
        "meets_goal": onnx_stats["per_second"] >= GOAL_DECISIONS_PER_S,
        "ratios": {
            "decisions_per_s_over_control_rate": onnx_stats["per_second"] / CONTROL_RATE_HZ,
            "lvlm_floor_p50_over_policy_p50": lvlm["p50_ms"] / p50,
            "assumed_lvlm_over_policy_p50": args.assumed_lvlm_ms / p50,
            "torch_p50_over_onnx_p50": torch_stats["p50_ms"] / p50,
        },
    }
    obs_text = ", ".join(f"{k} {tuple(s)} {d}" for k, (s, d) in info["observation"].items())
    print(f"network: {info['network']} ({info['actor_parameters']:,} actor parameters)")
    print(f"observation: {obs_text}; CPU core {core}; policy file {size_mb:.2f} MB")
    for name, stats in (("ONNX runtime policy", onnx_stats), ("torch SB3 predict", torch_stats)):
        print(
            f"{name:22s} p50 {stats['p50_ms']:.3f} ms  p99 {stats['p99_ms']:.3f} ms  "
            f"{stats['per_second']:,.0f} decisions/s"
        )
    print(
        f"LVLM stand-in round trip ({lvlm['frames_per_call']} x {lvlm['frame_size']} px frames, "
        "server answers at once): "
        f"p50 {lvlm['p50_ms']:.2f} ms  p99 {lvlm['p99_ms']:.2f} ms"
    )
    print(f"assumed real LVLM latency (NOT measured): {args.assumed_lvlm_ms:.0f} ms")
    r = result["ratios"]
    print(
        f"ratios: {r['decisions_per_s_over_control_rate']:.0f}x the {CONTROL_RATE_HZ:.0f} Hz control rate "
        f"(goal 50x: {'met' if result['meets_goal'] else 'NOT met'}); LVLM floor / policy "
        f"{r['lvlm_floor_p50_over_policy_p50']:.1f}x; "
        f"assumed LVLM / policy {r['assumed_lvlm_over_policy_p50']:.0f}x; "
        f"torch / ONNX {r['torch_p50_over_onnx_p50']:.1f}x"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
