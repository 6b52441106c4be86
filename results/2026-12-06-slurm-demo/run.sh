#!/usr/bin/env bash
# The demo sweep as a new user runs it on the one-node Slurm of scripts/slurm-local.sh, clean and
# then interrupted (both workers cancelled mid-sweep) and resumed with the same command.
# Run from the project root: bash results/2026-12-06-slurm-demo/run.sh; logs land beside it.
set -uo pipefail
here=results/2026-12-06-slurm-demo
export FERSWEEP_HOME=${FERSWEEP_HOME:-/tmp/slurmdemo}
export FERSWEEP_DATA=${FERSWEEP_DATA:-$(realpath ../shared/data/facial_expressions)}
db=fersweep_slurm_demo
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
storage=postgresql://postgres@127.0.0.1:5432/$db
mlflow_uri=sqlite:///$FERSWEEP_HOME/mlruns/mlflow.db
mkdir -p "$FERSWEEP_HOME"
state() { .venv/bin/python $here/sweep_state.py "$storage" "$1" "$mlflow_uri"; }
sweep() {  # $1: sweep name
  make sweep SWEEP=demo LAUNCHER=slurm_cpu JOBS=2 STORAGE=$storage \
    ARGS="sweep.name=$1 sweep.launcher.cpus_per_task=1 sweep.launcher.mem_gb=4 sweep.launcher.wait=true"
}

start=$(date +%s)
sweep demo-clean > $here/clean.log 2>&1; echo "rc=$? after $(( $(date +%s) - start )) s" >> $here/clean.log
state demo-clean > $here/clean-state.txt 2>&1

start=$(date +%s)
sweep demo-cut > $here/cut-launch.log 2>&1 &
launch=$!
# cancel both workers once the first trial of the balanced arm has started
for _ in $(seq 600); do
  sleep 1
  state demo-cut 2>/dev/null | grep "^balanced:" | grep -q RUNNING && break
done
{ date -u +%T; squeue -h -o "%i %j %T"; } > $here/cut-cancel.txt
for job in $(squeue -h -t RUNNING -o %i); do  # the workers; the finish waits (afterany)
  scancel "$job" && echo "scancel $job" >> $here/cut-cancel.txt
done
wait $launch; echo "rc=$? after $(( $(date +%s) - start )) s" >> $here/cut-launch.log
state demo-cut > $here/cut-state.txt 2>&1

start=$(date +%s)
sweep demo-cut > $here/cut-resume.log 2>&1; echo "rc=$? after $(( $(date +%s) - start )) s" >> $here/cut-resume.log
state demo-cut > $here/cut-resume-state.txt 2>&1
