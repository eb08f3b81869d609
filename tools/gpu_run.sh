#!/usr/bin/env bash
# The one prepared GPU run (issues 14 and 15), for a session that is lent a GPU machine (H100/H200,
# Python 3.12, torch 2.11 there). Everything in one command, within 9 minutes, results under $OUT:
#   1. install the stack from the carried wheels (.whl/), link the carried data (data/consep256);
#   2. speed table at batch 8, 256x256, bf16 and float32: A2B-IS-T, SOLOv2, Mask R-CNN
#      (tools/benchmark_speed.py: train step and predict per batch, ratios against Mask R-CNN);
#   3. the equal-budget comparison of docs/benchmarks.md (consep256 train -> val), the three models
#      trained side by side on the GPU with the same number of image-steps per epoch, up to 50 epochs
#      (the configs' full budget) or until the deadline; validation every VAL epochs, so the table is
#      read at the last epoch all three validated (equal image-steps);
#   4. collect: speed.md/.json, equal_budget.md, curves.png, A2B-IS-T fp16 weights, logs.tar.gz.
#
# Prepare here (CPU machine, once; .whl/ and data/ are git-ignored, 60 MB of the 64 MiB a call carries):
#   mkdir -p .whl data/consep256 && cp ../shared/wheels/gpu/*.whl .whl/
#   cp -r ../shared/data/consep256/{images,train.json,val.json} data/consep256/
# Run there (device tool): command 'bash tools/gpu_run.sh', carry ['.whl', 'data/consep256'],
#   timeout_s 600. Test the CPU path here first: bash tools/gpu_run.sh --dry-run (tiny budgets).
# Knobs (environment): GPU_RUN_SECONDS (540: whole run), SPEED_S (200: the speed table), EPOCHS (50),
# VAL (5), BATCH (8), STEPS ('speed train summary': which of steps 2-4 to run).
set -uo pipefail

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 1
T0=$(date +%s)
TOTAL=${GPU_RUN_SECONDS:-540}
OUT=${OUT:-$REPO/work_dirs/gpu_run_out}
WORK=$REPO/work_dirs/gpu_run
mkdir -p "$OUT" "$WORK"
log() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/gpu_run.log"; }
left() { echo $(( TOTAL - ($(date +%s) - T0) )); }

CONFIGS=(configs/a2bis/a2bis-t_a2b_50e_consep-256.py
         configs/baselines/solov2_r50_fpn_50e_consep-256.py
         configs/baselines/mask-rcnn_r50_fpn_50e_consep-256.py)
if (( DRY )); then
  # CPU path: the same steps on 8 training / 2 validation images, one epoch each
  PY=${PY:-$REPO/.venv/bin/python}
  export PYTHONPATH=$REPO
  EPOCHS=${EPOCHS:-1}; VAL=${VAL:-1}; BATCH=${BATCH:-2}; WORKERS=1; SPEED_S=${SPEED_S:-1200}
  SPEED=(--device cpu --threads 2 --train-batch 2 --predict-batch 1 --train-steps 2 --warmup 1 --runs 1)
  SUBSET=(train_dataloader.dataset.indices=8 val_dataloader.dataset.indices=2)
else
  log "installing the wheels from .whl/"
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    >>"$OUT/gpu_run.log" 2>&1 || { log "pip install failed"; exit 1; }
  PY=python3
  export PYTHONPATH=/tmp/site:$REPO
  EPOCHS=${EPOCHS:-50}; VAL=${VAL:-5}; BATCH=${BATCH:-8}; WORKERS=4; SPEED_S=${SPEED_S:-200}
  SPEED=(--device cuda --train-batch 8 --predict-batch 8 --train-steps 12 --warmup 2 --runs 10)
  SUBSET=()
fi
export PYTHONUNBUFFERED=1
STEPS=${STEPS:-speed train summary}

# the configs read ../shared/data/consep256/ (relative to the repo root)
if [[ ! -e ../shared/data/consep256/train.json ]]; then
  if [[ ! -e data/consep256/train.json ]]; then
    log "no consep256: copy it into data/consep256 (see the header) and carry it"; exit 1
  fi
  mkdir -p ../shared/data && ln -sfn "$REPO/data/consep256" ../shared/data/consep256
fi

$PY - >"$OUT/env.txt" 2>&1 <<'EOF'
import platform, torch, mmcv, mmdet, mmengine
print('python', platform.python_version(), '| torch', torch.__version__, '| cuda', torch.version.cuda,
      '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__, '| mmengine', mmengine.__version__)
print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')
from mmcv.ops import nms_rotated  # noqa: F401  the compiled ops load
EOF
log "$(tr '\n' ' ' <"$OUT/env.txt")"

# ---- 2. speed table -------------------------------------------------------------------------
if [[ $STEPS == *speed* ]]; then
  log "speed table"
  timeout $(( $(left) > SPEED_S ? SPEED_S : $(left) )) $PY tools/benchmark_speed.py \
    --configs "${CONFIGS[@]}" "${SPEED[@]}" --doc "$OUT/speed.md" --json "$OUT/speed.json" \
    >"$WORK/speed.log" 2>&1 || log "benchmark_speed failed or timed out (see logs.tar.gz: speed.log)"
fi

# ---- 3. equal-budget trainings, side by side -------------------------------------------------
# Every model trains at BATCH images per step with its config's learning rate scaled linearly
# (lr x BATCH / config batch), in bf16 autocast (MixedPrecisionOptimWrapper: AMP on CUDA), so an
# epoch is the same number of image-steps for all three.
DEADLINE=$(( $(left) - 50 ))  # keep 50 s for the summary and the copies
TRAIN_CONFIGS=("${CONFIGS[@]}")
[[ $STEPS == *train* ]] || TRAIN_CONFIGS=()
log "training ${#TRAIN_CONFIGS[@]} models side by side, up to $EPOCHS epochs, for at most $DEADLINE s"
PIDS=()
for cfg in "${TRAIN_CONFIGS[@]}"; do
  name=$(basename "$cfg" .py)
  lr=$($PY - "$cfg" "$BATCH" 2>/dev/null <<'EOF'
import sys
from mmengine.config import Config
cfg = Config.fromfile(sys.argv[1])
print(cfg.optim_wrapper.optimizer.lr * int(sys.argv[2]) / cfg.train_dataloader.batch_size)
EOF
)
  rm -rf "${WORK:?}/$name"
  timeout --signal=INT --kill-after=20 "$DEADLINE" $PY tools/train.py "$cfg" --work-dir "$WORK/$name" \
    --cfg-options train_cfg.max_epochs="$EPOCHS" train_cfg.val_interval="$VAL" \
    train_dataloader.batch_size="$BATCH" train_dataloader.num_workers="$WORKERS" \
    val_dataloader.num_workers="$WORKERS" optim_wrapper.optimizer.lr="$lr" \
    optim_wrapper.type=MixedPrecisionOptimWrapper optim_wrapper.dtype=bfloat16 \
    default_hooks.checkpoint.interval="$VAL" default_hooks.checkpoint.max_keep_ckpts=1 \
    default_hooks.logger.interval=20 "${SUBSET[@]}" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  log "  $name: batch $BATCH, lr $lr (pid $!)"
done
for pid in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$pid"; done
log "trainings ended"

# ---- 4. summary and copies ------------------------------------------------------------------
$PY - "$WORK" "$OUT/equal_budget.md" "$BATCH" "$VAL" >>"$OUT/gpu_run.log" 2>&1 <<'EOF'
import glob, json, os.path as osp, sys
work, out, batch, val = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
keys = ['pq/mPQ', 'pq/bPQ', 'ap50/mask_mAP50', 'ap50/rbox_mAP50']
runs = {}
for log in sorted(glob.glob(osp.join(work, '*', '*', 'vis_data', 'scalars.json'))):
    name = log.split('/')[-4]
    for line in open(log):
        entry = json.loads(line)
        if 'pq/mPQ' in entry:
            runs.setdefault(name, {})[int(entry['step'])] = entry
common = set.intersection(*(set(r) for r in runs.values())) if len(runs) == 3 else set()
lines = ['# Equal-budget comparison on the GPU (tools/gpu_run.sh)', '',
         f'consep256 train -> val, batch {batch} for every model, bf16 autocast, validation every '
         f'{val} epochs; the table is read at the last epoch that all three models reached.', '']
if common:
    epoch = max(common)
    lines += [f'Epoch {epoch} (every model has seen the same images).', '',
              '| config | epoch | ' + ' | '.join(keys) + ' |', '|---|---|' + '---|' * len(keys)]
    for name, r in sorted(runs.items()):
        lines.append(f'| {name} | {epoch} | ' + ' | '.join(f'{r[epoch].get(k, float("nan")):.4f}'
                                                            for k in keys) + ' |')
lines += ['', 'Every validation of every run:', '', '| config | epoch | ' + ' | '.join(keys) + ' |',
          '|---|---|' + '---|' * len(keys)]
for name, r in sorted(runs.items()):
    for e in sorted(r):
        lines.append(f'| {name} | {e} | ' + ' | '.join(f'{r[e].get(k, float("nan")):.4f}' for k in keys)
                     + ' |')
open(out, 'w').write('\n'.join(lines) + '\n')
print('\n'.join(lines))
EOF
RUN_DIRS=()
for cfg in "${CONFIGS[@]}"; do RUN_DIRS+=("$WORK/$(basename "$cfg" .py)"); done
$PY tools/analysis_tools/plot_curves.py "${RUN_DIRS[@]}" --metrics pq/bPQ pq/mPQ \
  --out "$OUT/curves.png" >>"$OUT/gpu_run.log" 2>&1 || log "no curves (no validation finished?)"
a2bis_ckpt=$(ls -t "$WORK"/a2bis-t_a2b_50e_consep-256/epoch_*.pth 2>/dev/null | head -1)
if [[ -n "$a2bis_ckpt" ]]; then
  $PY tools/model_converters/publish_model.py "$a2bis_ckpt" \
    "$OUT/a2bis-t_gpu_$(basename "$a2bis_ckpt" .pth)_consep-256.pth" >>"$OUT/gpu_run.log" 2>&1 \
    || log "publish_model failed"
fi
tar -czf "$OUT/logs.tar.gz" -C "$WORK" --exclude='*.pth' . 2>/dev/null
log "done: $(ls "$OUT" | tr '\n' ' ')"
