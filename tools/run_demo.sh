#!/usr/bin/env bash
# The main job on a fresh machine: install (idempotent), generate the embedded synthetic set (128x128
# images), train the tiny A2B-IS briefly, evaluate it (bPQ/mPQ/AP50 printed at the end) and save
# overlay pictures. Time and metrics: docs/model.md.
# Extra arguments go to tools/train.py (e.g. --cfg-options train_cfg.max_iters=50).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CONFIG=${CONFIG:-configs/a2bis/a2bis-tiny_a2b_1000i_synthetic.py}
WORK_DIR=${WORK_DIR:-work_dirs/demo}

bash tools/install.sh
.venv/bin/python tools/dataset_converters/make_synthetic.py --out data/synthetic --size 128
.venv/bin/python tools/train.py "$CONFIG" --work-dir "$WORK_DIR" "$@"
CKPT="$(cat "$WORK_DIR/last_checkpoint")"
.venv/bin/python tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR" --show-dir vis
echo "[demo] checkpoint: $CKPT"
echo "[demo] overlays:   $WORK_DIR/*/vis/"
