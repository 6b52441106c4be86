#!/bin/bash
# The default sweep's trials and each arm's best run (`sweep.gate.folds=null`), the frozen memo
# on then off, back to back, each in a clone of the project whose conf/model/mini_xception.yaml
# sets frozen_memo_mb; the MTCNN cache linked in (no face step), the default Optuna storage (the
# sampler's seeds as a plain `make sweep`'s). usage: ab-sweep.sh 2048 0   → ab-sweep-times.txt
# then: python ../2026-12-06-sweep-default-parts/trials.py sqlite:////work/ab<mb>/mlruns/optuna.db default [earlier.csv]
export FERSWEEP_DATA=/work/shared/data/facial_expressions
here=$(cd "$(dirname "$0")" && pwd)
for mb in "$@"; do
  rm -rf /work/ab$mb && git clone -q /work/main /work/ab$mb && cd /work/ab$mb
  ln -s /work/main/.cache .cache
  sed -i "s/^  frozen_memo_mb: [0-9]*/  frozen_memo_mb: $mb/" conf/model/mini_xception.yaml
  echo "mb=$mb start $(date +%H:%M:%S)" >> "$here/ab-sweep-times.txt"
  s=$(date +%s)
  PYTHONPATH=$PWD/src /work/main/.venv/bin/python sweep.py sweep.gate.folds=null \
    tracking.experiment=ab-b-$mb trainer.enable_progress_bar=false > /tmp/ab-$mb.log 2>&1
  echo "mb=$mb rc=$? s=$(( $(date +%s)-s )) end $(date +%H:%M:%S)" >> "$here/ab-sweep-times.txt"
done
