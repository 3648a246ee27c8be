"""Pretrained policies shipped inside the package, each a folder: `policy.onnx`, its observation spec, the
env it was trained in (`policy.onnx.env.yaml`) and a `POLICY_CARD.md` with the exact command, budget,
commit and figures. `--policy NAME` in `drivevlm drive` and `drivevlm evaluate` takes one by name."""

from __future__ import annotations

from pathlib import Path

POLICIES_DIR = Path(__file__).resolve().parent
POLICY_FILE = "policy.onnx"


def policy_names() -> list[str]:
    return sorted(p.parent.name for p in POLICIES_DIR.glob(f"*/{POLICY_FILE}"))


def resolve_policy_file(value: str | Path) -> Path:
    """An existing policy file as given, else the shipped policy of that name (the path as given when it is
    neither, for the caller's not-found error)."""
    path = Path(value)
    if path.is_file() or path.suffix:
        return path
    shipped = POLICIES_DIR / path.as_posix() / POLICY_FILE
    return shipped if shipped.is_file() else path
