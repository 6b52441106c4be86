#!/usr/bin/env bash
# The CPU a fine-tuning run uses on the 2-core machine: the default sweep's first-trial recipe
# (balanced, 8 copies, frozen backbone then thawed at epoch 2) on the face step's 2,048-image
# subset (cached), sampled from /proc every 5 s once training runs. 100% = one core.
# Run from the project root: bash results/2026-12-07-sweep-exact-speedups/cpu_share.sh
set -euo pipefail
.venv/bin/python train.py experiment=photos face=mtcnn data.preprocess.size=64 \
  data.subset.max_images=2048 model=mini_xception optimizer=adam balancing=balanced \
  balancing.factor=8 model.net.freeze=backbone model.net.unfreeze_at_epoch=2 \
  model.net.frozen_after_thaw=2 model.net.backbone_lr=1.0e-4 optimizer.lr=1.0e-3 \
  trainer.max_epochs=8 tracking.log_model=false hydra.run.dir=/tmp/cpu-share > /tmp/cpu-share.log 2>&1 &
pid=$!
sleep 20  # imports, data set-up
ticks=$(getconf CLK_TCK)
for _ in 1 2 3 4 5 6; do
  kill -0 "$pid" 2>/dev/null || break
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  sleep 5
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || break
  echo "CPU over 5 s: $(( (after - before) * 100 / (5 * ticks) ))%"
done
wait "$pid"
echo "run exit status $?"
