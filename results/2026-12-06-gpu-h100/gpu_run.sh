#!/bin/bash
# The GPU check: make bench with trainer=gpu (bf16), then a short default sweep, on a 2,330-image
# sample of the real data (the whole set does not fit the device tool's 64 MiB transfer).
export PYTHONUNBUFFERED=1 LOG=$OUT/log.txt
exec > >(tee -a $LOG) 2>&1
start=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src:$PWD FERSWEEP_DATA=$PWD/.device/data/facial_expressions \
  FERSWEEP_WEIGHTS=$PWD/.device/weights/fer2013_mini_xception.hdf5 MPLBACKEND=Agg
python3 -c "import torch, lightning, mlflow, optuna, hydra, facenet_pytorch, fersweep; print('torch', torch.__version__, 'lightning', lightning.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))" || exit 1
echo "== install+import $(( $(date +%s)-start )) s"
git rev-parse HEAD
timeout 220 python3 bench.py trainer=gpu face=mtcnn data.preprocess.size=64 \
  'bench.sections=[preprocessing,training,end_to_end]' 'bench.models=[cnn,mini_xception]' \
  bench.epochs=3 bench.bare_batches=300
echo "== bench rc=$? at $(( $(date +%s)-start )) s"
timeout 200 python3 sweep.py sweeps@sweep=default sweep.trials=2 trainer=gpu \
  sweep.gate.folds=null trainer.enable_progress_bar=false
echo "== sweep rc=$? at $(( $(date +%s)-start )) s"
tar czf $OUT/results.tgz bench/results outputs/sweep 2>/dev/null
ls -la $OUT
