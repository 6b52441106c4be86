#!/bin/bash
cd /work/runs/launch
export FERSWEEP_DATA=/work/shared/data/facial_expressions PYTHONPATH=/work/runs/launch/src
echo "start $(date -u +%FT%T) $(git log --oneline | head -1)"
.venv/bin/python sweep.py sweeps@sweep=tiny sweep.name=tiny-warm sweep.trials=5 sweep.stop_when_stalled.trials=2 'sweep.warm_start.enqueue=[{optimizer.lr: 0.003, model.net.filters: 4}]' data.subset.max_images=3000 trainer.enable_progress_bar=false
echo "rc $? end $(date -u +%FT%T)"
