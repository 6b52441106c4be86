#!/bin/bash
# The default sweep's trials and each arm's best run (`sweep.gate.folds=null`), the frozen memo
# on then off, back to back, each in a clone of the project whose conf/model/mini_xception.yaml
# sets frozen_memo_mb; the MTCNN cache linked in (no face step), the default Optuna storage (the
# sampler's seeds as a plain `make sweep`'s). usage: ab-sweep.sh 2048 0   → ab-sweep-times.txt
# then: python ../2026-12-06-sweep-default-parts/trials.py sqlite:////work/ab<mb>/mlruns/optuna.db default [earlier.csv]
here=$(cd "$(dirname "$0")" && pwd)
source "$here/memo_clone.sh"
for mb in "$@"; do
  memo_clone /work/ab$mb "$mb"
  echo "mb=$mb start $(date +%H:%M:%S)" >> "$here/ab-sweep-times.txt"
  s=$(date +%s)
  PYTHONPATH=$PWD/src /work/main/.venv/bin/python sweep.py sweep.gate.folds=null \
    tracking.experiment=ab-b-$mb trainer.enable_progress_bar=false > /tmp/ab-$mb.log 2>&1
  echo "mb=$mb rc=$? s=$(( $(date +%s)-s )) end $(date +%H:%M:%S)" >> "$here/ab-sweep-times.txt"
done
