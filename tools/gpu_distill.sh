#!/usr/bin/env bash
# The SST-5 distillation pipeline (the bundled recipe) on a lent GPU, from what
# tools/gpu_distill_prep.py packed. Three calls of the device tool, back to back on a warm machine:
#   bash tools/gpu_distill.sh stash a     (carry .gpu/a)
#   bash tools/gpu_distill.sh stash b     (carry .gpu/b)
#   bash tools/gpu_distill.sh run         (carry .gpu/c): the pipeline; log and results under $OUT
set -u
STASH=/root/reviewlstm-stash
case "$1" in
stash)
  mkdir -p "$STASH" && cp ".gpu/$2/weights.part" "$STASH/$2.part" && ls -l "$STASH"
  nvidia-smi -L
  python3 -c "import torch, transformers, triton; print(torch.__version__, transformers.__version__, triton.__version__, torch.cuda.get_device_name())"
  ;;
run)
  mkdir -p /tmp/minilm && cp -r .gpu/c/minilm/. /tmp/minilm/ &&
  cat "$STASH/a.part" "$STASH/b.part" .gpu/c/weights.part > /tmp/minilm/model.safetensors &&
  echo "$(cat .gpu/c/minilm.sha256)  /tmp/minilm/model.safetensors" | sha256sum -c - || exit 3
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  export PYTHONUNBUFFERED=1 PYTHONPATH=src:.gpu/c/site REVIEWLSTM_KERNEL=off
  start=$(date +%s)
  REVIEWLSTM_SHARED_DATA=.gpu/c timeout "${LIMIT:-540}" python3 bench/distill.py --data sst-phrases --seeds 0 --work /tmp/dw \
    --teacher /tmp/minilm --teacher-epochs 2 --augment 16 --event-dropout 0.3 --threads 8 2>&1 | tee "$OUT/log.txt"
  echo "pipeline wall $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"
  cp /tmp/dw/bench.json /tmp/dw/teacher/teacher.json /tmp/dw/student-seed0/metadata.json "$OUT/" 2>/dev/null
  ls /tmp/dw /tmp/dw/student-seed0 >> "$OUT/log.txt" 2>&1
  ;;
esac
