#!/bin/bash
# pair.yaml's two trials as `python sweep.py` (gate off, no trial time limit: another job shared
# the cores), in a clone of the project per memo setting (its conf/model/mini_xception.yaml
# sets frozen_memo_mb), the MTCNN cache linked in. usage: pair.sh 0 2048   then: python pair_values.py
here=$(cd "$(dirname "$0")" && pwd)
source "$here/memo_clone.sh"
for mb in "$@"; do
  memo_clone /work/pair$mb "$mb"
  cp "$here/pair.yaml" sweeps/pair.yaml
  PYTHONPATH=$PWD/src /work/main/.venv/bin/python sweep.py sweeps@sweep=pair sweep.gate.folds=null \
    sweep.trial_timeout_minutes=null sweep.storage=sqlite:////tmp/optuna-pair-$mb.db \
    tracking.experiment=pair-b-$mb trainer.enable_progress_bar=false
done
