#!/usr/bin/env bash
# Train recipes side by side on one CUDA GPU, from a data pack made by `python -m facelite.train.pack`
# (default: .devdata), within a wall-clock budget.
#
#   scripts/train_gpu.sh [BUDGET_SECONDS] [RECIPE.toml ...]
#   env: OUT (results), PACK (a folder, or a .tgz of one: unpacked beside it), RUNS (run folders),
#        DEVICE (cuda), WORKERS (loader workers per run), EXTRA (more `facelite train` options)
#
# Default recipes: the two stage-1 recipes, configs/mobilenetv2-1.0.toml and configs/mobilenetv2-0.35.toml.
# Each run's schedule length is fitted to the budget (`facelite train --time-budget`); each run's
# weights.pt (EMA weights, what `facelite export --checkpoint` takes), train.log, losses.csv and
# config.json are copied to $OUT as <recipe>_<file> every few seconds, so a run cut short still
# leaves its last epoch. At most 8 files come back from a lent machine: two recipes at most.
set -u
budget=${1:-440}
shift || true
recipes=("$@")
[ ${#recipes[@]} = 0 ] && recipes=(configs/mobilenetv2-1.0.toml configs/mobilenetv2-0.35.toml)
out=${OUT:-/tmp/facelite-gpu-out}
pack=${PACK:-.devdata}
runs=${RUNS:-/tmp/facelite-gpu-runs}
mkdir -p "$out" "$runs"
if [[ $pack == *.tgz ]]; then  # one archive travels to a size-limited machine better than thousands of files
  mkdir -p "${pack%.tgz}" && tar xzf "$pack" -C "${pack%.tgz}" || exit 1
  pack=${pack%.tgz}
fi
pack=$(cd "$pack" && pwd) || exit 1
gunzip -kf "$pack/data/widerface/train/label.txt.gz"
export FACELITE_SHARED=$pack PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
python3 -c "import torch, cv2, numpy, onnxruntime; print('torch', torch.__version__, 'cv2', cv2.__version__, 'numpy', numpy.__version__, 'onnxruntime', onnxruntime.__version__, 'cuda', torch.cuda.is_available())"
nproc
sets=(--set data.train_labels=data/widerface/train/label.txt --set data.train_images=data/widerface/train/images
      --set data.landmark_crops=data/landmarks5/landmarks.txt --set data.landmark_crop_boxes=data/landmarks5/crop_boxes.npz
      --set "train.device=${DEVICE:-cuda}" --set "train.workers=${WORKERS:-7}" --set train.eval_every=0)
names=()
pids=()
for r in "${recipes[@]}"; do
  name=$(basename "$r" .toml)
  names+=("$name")
  # shellcheck disable=SC2086
  python3 -m facelite.cli train --config "$r" --run-dir "$runs/$name" "${sets[@]}" ${EXTRA:-} \
    --time-budget "$budget" > "$runs/$name.out" 2>&1 &
  pids+=($!)
done
sync_out() {
  for name in "${names[@]}"; do
    for f in weights.pt train.log losses.csv config.json; do
      [ -f "$runs/$name/$f" ] && cp "$runs/$name/$f" "$out/tmp_copy" && mv "$out/tmp_copy" "$out/${name}_$f"
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
    for name in "${names[@]}"; do
      echo "[$name] $(grep -a 'INFO epoch\|schedule set\|Error\|error' "$runs/$name.out" | tail -n 1)"
    done
  fi
done
for p in "${pids[@]}"; do wait "$p"; echo "run $p exit $?"; done
for name in "${names[@]}"; do echo "== $name"; grep -av '^epoch .*step/s' "$runs/$name.out" | tail -n 8; done
ls -la "$out"
