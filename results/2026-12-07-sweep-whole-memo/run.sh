#!/bin/bash
# The whole default sweep (gate included) from a fresh clone of this commit, alone on the
# machine, its time split by part (`make bench`'s sweep_parts section, the whole sweep), then the
# speed check of the earlier runs (face_step, finetune). usage: run.sh <name> [sweep override ...]
# e.g. run.sh memo-on (what ran), or run.sh memo-off model.net.frozen_memo_mb=0 → times.txt, <name>-bench/
here=$(cd "$(dirname "$0")" && pwd)
name=$1; shift
overrides=$(IFS=,; echo "[$*]")
export FERSWEEP_DATA=/work/shared/data/facial_expressions
export FERSWEEP_WEIGHTS=/work/main/.cache/fersweep/weights/fer2013_mini_xception.hdf5
clone=/work/whole-$name
rm -rf "$clone" && git clone -q /work/main "$clone" && cd "$clone" || exit 1
py="env PYTHONPATH=$clone/src /work/main/.venv/bin/python"
echo "$name commit $(git rev-parse --short HEAD) start $(date +%H:%M:%S)" >> "$here/times.txt"
s=$(date +%s)
$py bench.py 'bench.sections=[sweep_parts]' "bench.sweep_parts.overrides=$overrides" > "/tmp/whole-$name.log" 2>&1
echo "$name rc=$? s=$(( $(date +%s)-s )) end $(date +%H:%M:%S)" >> "$here/times.txt"
$py bench.py 'bench.sections=[face_step,finetune]' > "/tmp/whole-$name-check.log" 2>&1
echo "$name check rc=$? end $(date +%H:%M:%S)" >> "$here/times.txt"
mkdir -p "$here/$name-bench" && cp bench/results/*.json "$here/$name-bench/"
