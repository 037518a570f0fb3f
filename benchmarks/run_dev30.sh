#!/usr/bin/env bash
# Regenerate the 30-sample dev set and evaluate one config on it with box and point prompts,
# then (when the folder exists) the matting stage on the real photos with GT mattes.
# Every figure of docs/benchmarks.md comes from these commands. Run from the repository root:
#
#   bash benchmarks/run_dev30.sh                    # classical config
#   CONFIG=classical+hfa bash benchmarks/run_dev30.sh
#
# Environment: DEV (dev folder, default ../shared/data/dev), DATA (generated set, default
# /tmp/dev30), OUT (reports, default /tmp/layerkit_bench), CONFIG (config spec, default
# classical), PYTHON (default .venv/bin/python, else python3), EXTRA (extra eval options,
# e.g. "--set trimapper.band_ratio=0.05"). Reports of real_alpha embed nothing (no --html):
# those photos are not redistributable, keep their outputs out of the repository.
set -euo pipefail

DEV=${DEV:-../shared/data/dev}
DATA=${DATA:-/tmp/dev30}
OUT=${OUT:-/tmp/layerkit_bench}
CONFIG=${CONFIG:-classical}
EXTRA=${EXTRA:-}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
TAG=${CONFIG//[^A-Za-z0-9_.+-]/_}

if [[ ! -f "$DEV/make_composites.py" ]]; then
  echo "run_dev30.sh: $DEV/make_composites.py not found; set DEV=/path/to/dev (with fg/, bg/, real_alpha/)" >&2
  exit 2
fi
mkdir -p "$OUT"

# 1. the dev set: 30 composites, seed 0 (deterministic for a given folder content)
"$PYTHON" "$DEV/make_composites.py" "$DEV" --out "$DATA" --n 30 --seed 0 >/dev/null

# 2. composites with exact ground truth, box then point prompts (results.json, table.md, report.html)
# shellcheck disable=SC2086
"$PYTHON" -m layerkit eval "$DATA" --config "$CONFIG" --prompt box --html --overwrite -o "$OUT/dev30_${TAG}_box" $EXTRA
# shellcheck disable=SC2086
"$PYTHON" -m layerkit eval "$DATA" --config "$CONFIG" --prompt point --html --overwrite -o "$OUT/dev30_${TAG}_point" $EXTRA

# 3. matting on real photos (alphamatting.com-style folder), both trimaps
if [[ -d "$DEV/real_alpha" ]]; then
  # shellcheck disable=SC2086
  "$PYTHON" -m layerkit eval-matting "$DEV/real_alpha" --config "$CONFIG" --overwrite -o "$OUT/real_alpha_${TAG}" $EXTRA
fi

echo "reports in $OUT:" >&2
ls -d "$OUT"/*"${TAG}"* >&2
