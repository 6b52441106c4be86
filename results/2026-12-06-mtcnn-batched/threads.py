import sys, time, torch, numpy as np
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from fersweep.data.legend import read_legend
root = Path("/work/shared/data/facial_expressions")
with initialize_config_dir(str(Path("conf").resolve()), version_base=None):
    cfg = compose("train", ["face=mtcnn", "experiment=photos", "data.preprocess.size=64"])
prep = instantiate(cfg.data.preprocess, _convert_="all")
records = read_legend(root / "legend.csv", root / "images")[0][:1500]
out = {}
for t in (1, 2):
    torch.set_num_threads(t)
    s = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        out[t] = list(pool.map(lambda r: prep.load(root / "images" / r.file), records))
    print(t, len(records) / (time.perf_counter() - s), "img/s")
print("identical arrays", sum(np.array_equal(a.array, b.array) for a, b in zip(out[1], out[2])),
      "boxes", sum(a.box == b.box for a, b in zip(out[1], out[2])))
