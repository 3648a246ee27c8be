#!/usr/bin/env bash
# The project's one entry point: creates .venv on first use (or when pyproject.toml changed), then runs a job.
#   ./run.sh demo         set up and run the main job on the embedded default simulator
#   ./run.sh test [ARGS]  set up and run the test suite (what CI runs)
#   ./run.sh ARGS         any `drivevlm` command
set -euo pipefail
cd "$(dirname "$0")"

# Offline by default: no model hub, no ultralytics asset downloads.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$PWD/.cache/ultralytics}"
export MPLBACKEND=Agg

extras="${DRIVEVLM_EXTRAS:-hf,deploy,dev,carla,ray}"
constraints=constraints/default.txt
case ",$extras," in *,vision,*) constraints=constraints/vision.txt ;; esac
stamp=.venv/.installed-"${extras//,/_}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$constraints" -nt "$stamp" ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q -c "$constraints" -e ".[${extras}]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

case "${1:-demo}" in
  demo) shift || true; exec .venv/bin/drivevlm quickstart "$@" ;;
  test) shift; exec .venv/bin/python -m pytest "$@" ;;
  *) exec .venv/bin/drivevlm "$@" ;;
esac
