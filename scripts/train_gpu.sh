#!/usr/bin/env bash
# Train the two shipped recipes (alpha 1.0 and 0.35) side by side on one CUDA GPU, from a data
# pack made by `python -m facelite.train.pack` (default: .devdata), within a wall-clock budget.
#
#   scripts/train_gpu.sh [BUDGET_SECONDS]   # env: OUT (results), PACK, ALPHAS ("1.0 0.35"), DEVICE, WORKERS, EXTRA
#
# Each run's schedule length is fitted to the budget (`facelite train --time-budget`); the runs'
# weights.pt (EMA weights, what `facelite export --checkpoint` takes), train.log, losses.csv and
# config.json are copied to $OUT every few seconds, so a run cut short still leaves its last epoch.
set -u
budget=${1:-440}
out=${OUT:-/tmp/facelite-gpu-out}
pack=${PACK:-.devdata}
runs=${RUNS:-/tmp/facelite-gpu-runs}
mkdir -p "$out" "$runs"
gunzip -kf "$pack/data/widerface/train/label.txt.gz"
export FACELITE_SHARED=$PWD/$pack PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
python3 -c "import torch, cv2, numpy; print('torch', torch.__version__, 'cv2', cv2.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"
sets=(--set data.train_labels=data/widerface/train/label.txt --set data.train_images=data/widerface/train/images
      --set data.landmark_crops=data/landmarks5/landmarks.txt --set data.landmark_crop_boxes=data/landmarks5/crop_boxes.npz
      --set "train.device=${DEVICE:-cuda}" --set "train.workers=${WORKERS:-7}" --set train.eval_every=0)
pids=()
for a in ${ALPHAS:-1.0 0.35}; do
  # shellcheck disable=SC2086
  python3 -m facelite.cli train --config "configs/mobilenetv2-$a.toml" --run-dir "$runs/a$a" "${sets[@]}" ${EXTRA:-} \
    --time-budget "$budget" > "$runs/a$a.out" 2>&1 &
  pids+=($!)
done
sync_out() {
  for a in ${ALPHAS:-1.0 0.35}; do
    for f in weights.pt train.log losses.csv config.json; do
      [ -f "$runs/a$a/$f" ] && cp "$runs/a$a/$f" "$out/tmp_copy" && mv "$out/tmp_copy" "$out/a${a}_$f"
    done
  done
}
t0=$(date +%s)
while :; do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  sync_out
  [ $alive = 0 ] && break
  sleep 10
  if (( ($(date +%s) - t0) % 60 < 10 )); then
    for a in ${ALPHAS:-1.0 0.35}; do echo "[a$a] $(grep -a 'INFO epoch\|schedule set\|Error\|error' "$runs/a$a.out" | tail -n 1)"; done
  fi
done
for p in "${pids[@]}"; do wait "$p"; echo "run $p exit $?"; done
for a in ${ALPHAS:-1.0 0.35}; do echo "== a$a"; grep -av '^epoch .*step/s' "$runs/a$a.out" | tail -n 8; done
ls -la "$out"
