#!/bin/bash
# The same runs by the code before issue 39's second pass ($1, a checkout) and after ($2):
# a network's training run and the HOG reference's, each on the real data (a 2,000-image
# subset, one split), each in its own folder; then compare.py's records of both compared.
set -e
for tree in "$1" "$2"; do
  out="$tree/house-equal"; rm -rf "$out"; mkdir -p "$out"
  for model in cnn hog_svm; do
    extra=(); [ "$model" = cnn ] && extra=(trainer.max_epochs=3 posthoc=flip_offsets)
    (cd "$tree" && FERSWEEP_DATA=/work/shared/data/facial_expressions PYTHONPATH="$tree/src" \
      /work/main/.venv/bin/python train.py "paths.root_dir=$out" data.subset.max_images=2000 \
      model=$model balancing=balanced seed=42 trainer.enable_progress_bar=false "${extra[@]}" \
      > "$out/$model.log" 2>&1)
  done
done
/work/main/.venv/bin/python "$(dirname "$0")/compare_records.py" "$1/house-equal" "$2/house-equal"
