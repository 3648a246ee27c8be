"""End-to-end training throughput: `drivevlm train` with the bundled reward models beside a model-free peer.

Each preset trains on the embedded SUMO default from scratch for `--steps` env steps with the same learner
settings (`--set` overrides, default: the quick start's laptop settings), one run at a time, and the trainer's
own steps/s (collection, annotation and learning; the model loading before the first step is not counted)
is printed with the ratio to the peer. DriveVLM-RL runs its real pathways in process: the bundled aligned
CLIP on every BEV frame, the bundled detector on every front frame, the bundled tiny Qwen3-VL on every
gated window. Chen-SAC's reward needs no model and no frames: the peer.

    python benchmarks/train_throughput.py [--steps 3000] [--presets drivevlm_rl chen_sac] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from drivevlm.cli.quickstart import RECIPE
from drivevlm.presets import load_preset
from drivevlm.train.trainer import train


def run(preset: str, steps: int, overrides: list[str], folder: Path, interval: int) -> dict[str, Any]:
    data = load_preset(
        preset, [*overrides, f"train.total_timesteps={steps}", f"train.checkpoint_interval={interval}"]
    )
    summary = train(data, folder / preset)
    annotator = summary["annotator"]
    return {
        "steps_per_s": summary["steps_per_s"],
        "elapsed_s": summary["elapsed_s"],
        "gate_rate": summary.get("gate_rate"),
        "lvlm_calls": annotator.get("reward_fn/lvlm_calls", 0.0),
        "lvlm_batches": annotator.get("reward_fn/lvlm_batches", 0.0),
        "collection_blocked_s": annotator["collection_blocked_s"],
        "checkpoint_share": summary["checkpoint_s"] / summary["elapsed_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--presets", nargs="+", default=["drivevlm_rl", "chen_sac"])
    parser.add_argument("--set", dest="overrides", action="append", default=None, help="as `drivevlm train`")
    parser.add_argument("--checkpoint-interval", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    laptop = ["train.sac.learning_starts=500", f"recipe={RECIPE}"]
    overrides = laptop if args.overrides is None else args.overrides
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="drivevlm-throughput-") as tmp:
        for preset in args.presets:
            rows[preset] = run(preset, args.steps, overrides, Path(tmp), args.checkpoint_interval)
    peer = rows.get(args.presets[-1], {}).get("steps_per_s")
    print(
        f"{args.steps} env steps each, a checkpoint every {args.checkpoint_interval}, "
        f"learner settings: {' '.join(overrides)}"
    )
    for preset, row in rows.items():
        row["ratio_to_peer"] = row["steps_per_s"] / peer if peer else None
        gate = "" if row["gate_rate"] is None else f", gate rate {row['gate_rate']:.2f}"
        print(
            f"  {preset:<28} {row['steps_per_s']:7.1f} steps/s ({row['ratio_to_peer']:.2f}x "
            f"{args.presets[-1]}){gate}, collection waited {row['collection_blocked_s']:.1f} s "
            f"on the annotator, checkpoints took {row['checkpoint_share']:.1%} of the time"
        )
    if args.json:
        print(json.dumps({"steps": args.steps, "overrides": overrides, "rows": rows}))


if __name__ == "__main__":
    main()
