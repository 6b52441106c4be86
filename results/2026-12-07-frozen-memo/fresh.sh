#!/bin/bash
# The default sweep's original-arm trial 1 (never thawed: the head trains on the frozen
# backbone) as one `python train.py` in a fresh process, once per argument: a checkout and the
# frozen memo's MB (empty: a commit before the setting existed). The MTCNN cache is present.
# usage: fresh.sh /work/main:0 /work/main:2048 /work/old:    then: python fresh_values.py
export FERSWEEP_DATA=/work/shared/data/facial_expressions
O="data.split.seed=42 experiment=photos face=mtcnn data.preprocess.size=64 optimizer=adam trainer.max_epochs=10 callbacks.early_stopping.patience=5 balancing=none model=mini_xception optimizer.lr=0.0016185092900010678 loss=focal loss.label_smoothing=0.1416145155592091 posthoc=prior model.net.freeze=backbone model.net.unfreeze_at_epoch=null model.net.frozen_after_thaw=2 model.net.backbone_lr=3.8234752246751835e-05 model.net.head=conv model.net.dropout=0.14607232426760908 loss.gamma=1.4159046082342293 seed=42 eval_split=val tracking.log_model=false trainer.enable_progress_bar=false"
for run in "$@"; do
  checkout=${run%%:*} mb=${run#*:}
  cd "$checkout"
  PYTHONPATH="$checkout/src" /work/main/.venv/bin/python train.py $O ${mb:+model.net.frozen_memo_mb=$mb} tracking.experiment=memo-check
done
