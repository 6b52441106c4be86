#!/bin/bash
# The default sweep's first trial (trial0-overrides.txt: the original arm's trial 0 of the Xeon
# whole sweep, ../2026-12-07-sweep-whole-memo) trained alone in that sweep's clone (its MTCNN
# cache warm), with ef4de7f's code (the NaN fill on) and with this commit's (off), one after the
# other; compare_runs.py then sets their MLflow runs side by side.
clone=/work/whole-memo-on-xeon
cd "$clone" || exit 1
export FERSWEEP_DATA=/work/shared/data/facial_expressions
export FERSWEEP_WEIGHTS=/work/main/.cache/fersweep/weights/fer2013_mini_xception.hdf5
for side in on off; do
    if [ $side = on ]; then src=$clone/src; else src=/work/main/src; fi
    s=$(date +%s)
    env PYTHONPATH=$src /work/main/.venv/bin/python train.py $(head -1 "/work/main/results/2026-12-07-deterministic-cpu/trial0-overrides.txt") \
        eval_split=val tracking.log_model=false tracking.experiment=fill-$side-check > /tmp/t0-$side.log 2>&1
    echo "fill-$side rc=$? s=$(( $(date +%s)-s ))"
done
