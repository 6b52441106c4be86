"""MTCNN's face step (face=mtcnn, the default sweep's), one picture at a time as before against
the batched path (Preprocessor.load_all): images/s, and whether every image comes out the same.
python compare.py <data root> [images] [torch threads]"""

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from fersweep.data.cache import _decode_all
from fersweep.data.legend import read_legend
from fersweep.data.preprocess import read_file

root = Path(sys.argv[1])
count = int(sys.argv[2]) if len(sys.argv) > 2 else None
if len(sys.argv) > 3:
    torch.set_num_threads(int(sys.argv[3]))
with initialize_config_dir(str(Path("conf").resolve()), version_base=None):
    cfg = compose("train", ["face=mtcnn"])
preprocessor = instantiate(cfg.data.preprocess, _convert_="all")
workers = cfg.data.decode_workers
records = read_legend(root / "legend.csv", root / "images")[0][:count]
print(f"{len(records)} images, {workers} decode threads, torch threads {torch.get_num_threads()}")


def one_at_a_time():  # the path before: each thread runs the whole preprocessing of one picture
    def load(record):
        try:
            return preprocessor.load(root / "images" / record.file)
        except Exception as error:  # noqa: BLE001
            return error

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(load, records, chunksize=64))


def batched():
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sources = [(r.file, partial(read_file, root / "images" / r.file)) for r in records]
        out = []
        for start in range(0, len(sources), 256):
            out += preprocessor.load_all(sources[start : start + 256], pool)
        return out


results, seconds = {}, {}
for name, run in (("batched", batched), ("one_at_a_time", one_at_a_time)):
    start = time.perf_counter()
    results[name] = run()
    seconds[name] = time.perf_counter() - start
    print(f"{name}: {seconds[name]:.1f} s, {len(records) / seconds[name]:.1f} images/s", flush=True)

same_array = same_box = same_outcome = errors_alike = 0
box_moves = []
for a, b in zip(results["one_at_a_time"], results["batched"]):
    if isinstance(a, Exception) or isinstance(b, Exception):
        errors_alike += type(a) is type(b) and str(a) == str(b)
        continue
    same_array += np.array_equal(a.array, b.array)
    same_box += a.box == b.box
    same_outcome += a.outcome == b.outcome
    if a.box != b.box:
        box_moves.append(max(abs(p - q) for p, q in zip(a.box.xywh, b.box.xywh)))
summary = {
    "images": len(records),
    "decode_threads": workers,
    "torch_threads": torch.get_num_threads(),
    "seconds": seconds,
    "images_per_s": {k: len(records) / v for k, v in seconds.items()},
    "speed_up": seconds["one_at_a_time"] / seconds["batched"],
    "identical_arrays": same_array,
    "identical_boxes": same_box,
    "identical_outcomes": same_outcome,
    "unreadable_alike": errors_alike,
    "largest_box_move_px": max(box_moves, default=0),
}
print(json.dumps(summary, indent=2))
