"""One SAC gradient step with the shipped default policy: ours beside stock SB3 SAC, in the same run.

Both learners use the same network (VLM-RL's BEV CNN over the env's 12 x 96 x 96 masks + a state MLP,
SAC heads [500, 300], gSDE) and the same batch size (the paper's 256), on the same observation space as
`DriveEnv`, with replay buffers filled with random 0/255 masks (a step's cost does not depend on what the
masks show). Rows:
- `stock`: SB3's SAC as VLM-RL ran it: an encoder each for actor and critic, NCHW convolutions, SB3's
  `DictReplayBuffer` (uint8 masks). The peer.
- `stock_channels_last`: the same with channels-last convolutions (what that lever alone buys).
- `ours`: our learner (`train.sac.encoder: shared`, float32, the presets' default): one encoder pass per
  batch whose features the actor, critic and target reuse, channels-last, masks unpacked from the
  bit-packed buffer into reused float tensors.
- `ours_bf16`: the same with `train.sac.encoder_precision: bfloat16` (what the laptop recipe's `auto` picks
  on a CPU with native bfloat16): the encoder under bfloat16 autocast, masks unpacked straight into
  bfloat16, weights and optimiser state float32.

Prints ms per gradient step (median of `--steps` after a warm-up) and ratios to the peer; `--json` prints one
JSON object as the last line. Timings are never asserted by a test.

    python benchmarks/learner_step.py [--batch-size 256] [--steps 10] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import DictReplayBuffer
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv

from drivevlm.env import DriveEnv
from drivevlm.presets.training import SacConfig, TrainConfig
from drivevlm.train.buffer import PendingRewardReplayBuffer
from drivevlm.train.policy import BevStateExtractor
from drivevlm.train.sac import SharedEncoderSACPolicy, train_shared_encoder


class SpacesOnly(gym.Env):  # type: ignore[type-arg]
    """The env's spaces without a simulator: SB3 needs an env to build a model; it is never stepped."""

    def __init__(self, observation_space: gym.spaces.Dict, action_space: gym.spaces.Box) -> None:
        self.observation_space, self.action_space = observation_space, action_space


def build(kind: str, spaces: tuple[gym.spaces.Dict, gym.spaces.Box], batch_size: int) -> SAC:
    cfg = TrainConfig()
    policy, sac = cfg.policy, SacConfig()
    extractor = {
        "cnn_channels": policy.cnn_channels,
        "cnn_kernels": policy.cnn_kernels,
        "cnn_strides": policy.cnn_strides,
        "bev_features": policy.bev_features,
        "state_hidden": policy.state_hidden,
        "channels_last": kind != "stock",
    }
    ours = kind.startswith("ours")
    model = SAC(
        SharedEncoderSACPolicy if ours else "MultiInputPolicy",
        DummyVecEnv([lambda: SpacesOnly(*spaces)]),
        buffer_size=4096,
        learning_starts=0,
        batch_size=batch_size,
        use_sde=sac.use_sde,
        replay_buffer_class=PendingRewardReplayBuffer if ours else DictReplayBuffer,
        replay_buffer_kwargs={"backlog_limit": 1 << 20} if ours else None,
        policy_kwargs={
            "net_arch": list(sac.net_arch),
            "log_std_init": sac.log_std_init,
            "features_extractor_class": BevStateExtractor,
            "features_extractor_kwargs": extractor,
        },
        device="cpu",
        seed=0,
    )
    model.set_logger(Logger(None, []))
    fill(model, spaces[0], 2048)
    return model


def fill(model: SAC, space: gym.spaces.Dict, count: int) -> None:
    rng = np.random.default_rng(0)
    buffer = model.replay_buffer
    assert buffer is not None

    def observation() -> dict[str, np.ndarray]:
        bev = (rng.random((1, *space["bev"].shape)) < 0.1).astype(np.uint8) * 255
        return {"bev": bev, "state": rng.normal(size=(1, *space["state"].shape)).astype(np.float32)}

    obs = observation()
    for _ in range(count):
        nxt = observation()
        infos = [{"signals": None}]
        buffer.add(obs, nxt, rng.uniform(-1, 1, (1, 2)), np.zeros(1), np.zeros(1), infos)  # type: ignore[arg-type]
        obs = nxt
    if isinstance(buffer, PendingRewardReplayBuffer):
        buffer.annotated[:] = buffer.ids >= 0  # as if the annotator had scored every transition


def time_steps(model: SAC, kind: str, steps: int, batch_size: int) -> list[float]:
    def one() -> None:
        if kind.startswith("ours"):
            train_shared_encoder(model, 1, batch_size, th.bfloat16 if kind == "ours_bf16" else None)
        else:
            SAC.train(model, 1, batch_size)

    one()  # warm-up: oneDNN picks its kernels on the first call
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        one()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bev-size", type=int, default=None, help="env.bev_size (default: the env's)")
    parser.add_argument("--kinds", nargs="+", default=["stock", "stock_channels_last", "ours", "ours_bf16"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    env = DriveEnv({"bev_size": args.bev_size} if args.bev_size else None)
    spaces = (env.observation_space, env.action_space)
    rows: dict[str, Any] = {}
    for kind in args.kinds:
        model = build(kind, spaces, args.batch_size)
        times = time_steps(model, kind, args.steps, args.batch_size)
        rows[kind] = {"ms_median": 1000 * statistics.median(times), "ms_min": 1000 * min(times)}
        del model
    peer = rows.get("stock", {}).get("ms_median")
    print(f"SAC gradient step, batch {args.batch_size}, {args.threads} threads, torch {th.__version__}")
    for kind, row in rows.items():
        if peer:
            row["speedup_vs_stock"] = peer / row["ms_median"]
        ratio = f"  {row['speedup_vs_stock']:.1f}x stock" if peer else ""
        print(f"  {kind:<22} {row['ms_median']:8.1f} ms (min {row['ms_min']:.1f}){ratio}")
    if args.json:
        print(json.dumps({"batch_size": args.batch_size, "threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    main()
