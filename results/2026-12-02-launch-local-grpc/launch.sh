#!/bin/bash
cd /work/runs/launch
export FERSWEEP_DATA=/work/shared/data/facial_expressions PYTHONPATH=/work/runs/launch/src
echo "start $(date -u +%FT%T) $(git log --oneline | head -1)"
psql -h 127.0.0.1 -U postgres -c 'DROP DATABASE IF EXISTS fersweep_launch_real' -c 'CREATE DATABASE fersweep_launch_real'
.venv/bin/fersweep grpc-proxy proxy.storage=postgresql://postgres@127.0.0.1:5432/fersweep_launch_real proxy.heartbeat_seconds=30 > proxy.log 2>&1 &
PROXY=$!
sleep 20; cat proxy.log
.venv/bin/python sweep.py sweeps@sweep=tiny launcher@sweep.launcher=local sweep.launcher.jobs=2 sweep.launcher.timeout_min=60 sweep.storage=grpc://127.0.0.1:13000 sweep.heartbeat_seconds=30 sweep.trials=4 data.subset.max_images=3000 trainer.enable_progress_bar=false
echo "rc $? end $(date -u +%FT%T)"
kill $PROXY
