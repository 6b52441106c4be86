#!/bin/bash
# one warm-start trial config (original arm) trained by the code in $1, logged to $1/mlruns
cd "$1"
export FERSWEEP_DATA=/work/shared/data/facial_expressions PYTHONPATH="$1/src"
start=$(date +%s.%N)
/work/main/.venv/bin/python train.py data.split.seed=42 experiment=photos face=mtcnn data.preprocess.size=64 \
  optimizer=adam trainer.max_epochs=10 callbacks.early_stopping.patience=5 balancing=none \
  model=mini_xception optimizer.lr=1.0e-3 model.net.freeze=backbone model.net.unfreeze_at_epoch=2 \
  model.net.frozen_after_thaw=2 model.net.backbone_lr=1.0e-4 model.net.head=conv model.net.dropout=0.0 \
  loss=cross_entropy loss.label_smoothing=0.0 posthoc=flip_prior trainer.enable_progress_bar=false "${@:2}"
echo "$1 rc=$? seconds=$(echo "$(date +%s.%N) - $start" | bc)"
