"""The face step's preprocessing speed on the real data (make bench's face section alone):
    .venv/bin/python results/2026-11-25-face-step-speed/measure.py > results/.../output.json
"""

import json

from fersweep.tasks.bench.measure import bench_preprocessing, face_box_agreement
from fersweep.config.compose import compose_config

cfg = compose_config("conf", ["balancing=balanced", "face=haar"])
print(json.dumps({**bench_preprocessing(cfg), **face_box_agreement(cfg, 500)}, indent=2))
