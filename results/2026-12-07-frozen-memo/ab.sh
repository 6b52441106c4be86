#!/bin/bash
# the default sweep's original-arm warm-start trial, trained four times: memo off, on, off, on
cd "$(dirname "$0")/../.."  # the project
export FERSWEEP_DATA=/work/shared/data/facial_expressions
ARGS="data.split.seed=42 experiment=photos face=mtcnn data.preprocess.size=64 optimizer=adam trainer.max_epochs=10 callbacks.early_stopping.patience=5 balancing=none model=mini_xception optimizer.lr=1e-3 model.net.freeze=backbone model.net.unfreeze_at_epoch=2 model.net.frozen_after_thaw=2 model.net.backbone_lr=1e-4 model.net.head=conv model.net.dropout=0.0 loss=cross_entropy loss.label_smoothing=0.0 posthoc=flip_prior trainer.enable_progress_bar=false"
for mb in 0 1024 0 1024; do
  s=$(date +%s.%N)
  .venv/bin/python train.py $ARGS model.net.frozen_memo_mb=$mb tracking.experiment=memo-ab > /tmp/run-$mb-$(date +%H%M%S).log 2>&1
  echo "memo_mb=$mb rc=$? seconds=$(echo "$(date +%s.%N) - $s" | bc)" >> results/2026-12-07-frozen-memo/ab-times.txt
done
