"""Reward throughput: frames/s of the static pathway per backend and batch size, and of the dual pathway.

Peers measured in the same run:
- static pathway batched vs the naive per-frame loop (one encode call per frame);
- the bundled in-process Qwen3-VL answering padded batches of windows vs one window per generate() call;
- dual pathway with concurrent LVLM calls vs the same pathway with concurrency 1, against a local stand-in
  chat server (tests/support/chat_server.py) that answers after a fixed delay.

Models: a tiny randomly initialised transformers CLIP and RT-DETR built on the fly (no weights exist here), or
real ones with --clip-model / --detector-model. `--json` prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

from drivevlm.models.detectors.coco import COCO_CLASSES  # noqa: E402
from drivevlm.models.lvlm.openai_server import OpenAIChatVLM  # noqa: E402
from drivevlm.models.registry import make_detector, make_encoder  # noqa: E402
from drivevlm.rewards.dynamic import AttentionGate, DynamicPathway  # noqa: E402
from drivevlm.rewards.static import StaticPathway  # noqa: E402
from support.chat_server import ChatServer, Reply  # noqa: E402


def frames_per_second(run: object, n_frames: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return n_frames / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--backends", nargs="+", default=["transformers"])
    parser.add_argument("--clip-model", default=None, help="model id or folder; default: a tiny random CLIP")
    parser.add_argument("--detector-model", default=None, help="RT-DETR id or folder; default: tiny random")
    parser.add_argument("--lvlm-delay", type=float, default=0.2, help="stand-in server latency per call, s")
    parser.add_argument("--dual-frames", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--lvlm-windows", type=int, default=128, help="in-process Qwen3-VL windows")
    parser.add_argument("--lvlm-batch", type=int, default=32)
    parser.add_argument("--lvlm-threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from support.tiny_models import build_tiny_clip, build_tiny_rtdetr

    tmp = Path(tempfile.mkdtemp(prefix="reward-bench-"))
    clip_model = args.clip_model or str(build_tiny_clip(tmp / "clip"))
    detector_model = args.detector_model or str(build_tiny_rtdetr(tmp / "rtdetr"))
    rng = np.random.default_rng(0)
    bev = rng.integers(0, 256, (args.frames, args.size, args.size, 3), dtype=np.uint8)
    result: dict[str, object] = {
        "clip_model": "tiny-random" if args.clip_model is None else clip_model,
        "frames": args.frames,
        "size": args.size,
        "static": [],
    }

    for backend in args.backends:
        encoder = make_encoder(backend, clip_model, "cpu", batch_size=max(args.batch_sizes))
        for batch_size in args.batch_sizes:
            pathway = StaticPathway(encoder, batch_size=batch_size)
            pathway(bev[:2])
            batched = frames_per_second(lambda p=pathway: p(bev), args.frames, args.repeats)
            naive = frames_per_second(
                lambda p=pathway: [p(bev[i : i + 1]) for i in range(len(bev))], args.frames, 1
            )
            row = {"backend": backend, "batch_size": batch_size, "fps": batched, "naive_fps": naive}
            row["speedup_vs_naive"] = batched / naive
            result["static"].append(row)  # type: ignore[attr-defined]
            print(
                f"static {backend} batch {batch_size}: {batched:.1f} frames/s "
                f"({batched / naive:.2f}x naive loop)"
            )

    encoder = make_encoder(args.backends[0], clip_model, "cpu")
    detector = make_detector("rtdetr", detector_model, "cpu", threshold=0.0)
    windows = [
        tuple(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(4))
        for _ in range(args.dual_frames)
    ]
    with ChatServer([Reply("A pedestrian is crossing the road ahead", delay_s=args.lvlm_delay)]) as server:
        dual = {}
        for concurrency in (1, args.concurrency):
            vlm = OpenAIChatVLM(server.base_url, timeout_s=30, retries=0, concurrency=concurrency)
            # Random detector weights: all COCO classes are critical, so the gate opens as on busy streets.
            gate = AttentionGate(detector, COCO_CLASSES, threshold=0.0)
            pathway = DynamicPathway(encoder, gate, vlm, concurrency=concurrency)
            static = StaticPathway(encoder, batch_size=32)

            def run(p: DynamicPathway = pathway, s: StaticPathway = static) -> None:
                s(bev[: args.dual_frames])
                p(windows)

            dual[concurrency] = frames_per_second(run, args.dual_frames, 1)
            gate_rate = pathway.stats["gate_open"] / max(pathway.stats["frames"], 1)
    result["dual"] = {
        "lvlm_delay_s": args.lvlm_delay,
        "gate_rate": gate_rate,
        "fps_concurrent": dual[args.concurrency],
        "fps_sequential": dual[1],
        "concurrency": args.concurrency,
        "speedup_vs_sequential": dual[args.concurrency] / dual[1],
    }
    print(
        f"dual pathway (LVLM {args.lvlm_delay}s/call, gate rate {gate_rate:.2f}): "
        f"{dual[args.concurrency]:.1f} frames/s with concurrency {args.concurrency}, "
        f"{dual[1]:.1f} frames/s sequential ({dual[args.concurrency] / dual[1]:.2f}x)"
    )
    result["lvlm_inprocess"] = lvlm_inprocess(args)
    if args.json:
        print(json.dumps(result))


def lvlm_inprocess(args: argparse.Namespace) -> dict[str, object]:
    """The bundled tiny Qwen3-VL in process: one window per generate() call beside padded batches.

    Windows are those the trainer builds (the last K+1 = 4 front frames, consecutive steps of a scripted
    `random` episode, so consecutive windows share frames); `shuffled` batches windows of far-apart steps,
    where only the padding and batching help.
    """
    import torch

    from drivevlm.config import EnvConfig
    from drivevlm.inspection.frames import drive_episode, scenario_env_config
    from drivevlm.models.lvlm.prompts import load_prompt
    from drivevlm.models.registry import make_vlm

    torch.set_num_threads(args.lvlm_threads)
    config = scenario_env_config(EnvConfig(), "random", 0, True)
    windows = [list(item.request.front_window) for item in drive_episode(config, args.lvlm_windows, 4, 0)]
    vlm = make_vlm("qwen3vl", "bundled", max_new_tokens=24)
    prompt = load_prompt("dynamic_goal_v1").render(num_frames=4, max_words=24)
    vlm.generate(windows[0], prompt)
    count = min(32, len(windows))
    single = frames_per_second(lambda: [vlm.generate(w, prompt) for w in windows[:count]], count, 1)
    order = np.random.default_rng(0).permutation(len(windows))
    shuffled = [windows[i] for i in order]
    rates: dict[str, float] = {}
    for name, batch in (("consecutive", windows), ("shuffled", shuffled)):
        size = args.lvlm_batch

        def run(batch: list = batch, size: int = size) -> None:  # type: ignore[type-arg]
            for start in range(0, len(batch), size):
                vlm.generate_batch(batch[start : start + size], prompt)  # type: ignore[attr-defined]

        rates[name] = frames_per_second(run, len(batch), args.repeats)
    print(
        f"in-process bundled Qwen3-VL, {args.lvlm_threads} threads: {single:.1f} windows/s one per call; "
        f"batches of {args.lvlm_batch}: {rates['consecutive']:.1f} windows/s consecutive "
        f"({rates['consecutive'] / single:.1f}x), {rates['shuffled']:.1f} shuffled "
        f"({rates['shuffled'] / single:.1f}x)"
    )
    return {
        "threads": args.lvlm_threads,
        "batch": args.lvlm_batch,
        "windows": len(windows),
        "windows_per_s_single": single,
        "windows_per_s_batched_consecutive": rates["consecutive"],
        "windows_per_s_batched_shuffled": rates["shuffled"],
    }


if __name__ == "__main__":
    main()
