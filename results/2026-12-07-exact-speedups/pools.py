"""torch's CPU max-pool on the map shapes of MTCNN's three stages, NCHW against channels-last
(µs a call, one thread, equal outputs), and the share of a detection spent in max-pools with
facenet-pytorch's own NCHW pools (cProfile, 300 real images). python pools.py <data folder>"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path

import cv2
import torch
import torch.nn.functional as F

from fersweep.data import mtcnn
from fersweep.data.mtcnn import ChannelsLastMaxPool, Mtcnn

SHAPES = [((1, 10, 94, 94), 2), ((1, 10, 46, 46), 2), ((30, 28, 22, 22), 3), ((30, 48, 9, 9), 3),
          ((5, 32, 46, 46), 3), ((5, 64, 21, 21), 3), ((5, 64, 8, 8), 2)]


def micro_seconds(pool, x: torch.Tensor, calls: int = 200) -> float:
    pool(x)
    start = time.perf_counter()
    for _ in range(calls):
        pool(x)
    return (time.perf_counter() - start) / calls * 1e6


def pool_share(data: Path) -> float:
    """The share of detect's time in max_pool2d, with the pools as facenet ships them."""
    network = mtcnn.network(20, (0.6, 0.7, 0.7))
    for parent in list(network.modules()):
        for name, child in parent.named_children():
            if isinstance(child, ChannelsLastMaxPool):
                setattr(parent, name, child.pool)
    detector = Mtcnn(160, 0.25, 20, (0.6, 0.7, 0.7), 0.9)
    greys = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in sorted((data / "images").iterdir())[::40][:300]]
    profile = cProfile.Profile()
    profile.runcall(lambda: [detector.detect(g) for g in greys if g is not None])
    stats = pstats.Stats(profile).stats
    total = sum(row[2] for row in stats.values())  # every function's own time
    pools = sum(row[2] for key, row in stats.items() if "max_pool2d" in key[2])
    return pools / total


if __name__ == "__main__":
    torch.set_num_threads(1)
    for shape, kernel in SHAPES:
        x = torch.randn(shape)
        pool = lambda t: F.max_pool2d(t, kernel, 2, ceil_mode=True)  # noqa: E731
        last = x.contiguous(memory_format=torch.channels_last)
        equal = torch.equal(pool(x), pool(last))
        print(f"{shape} kernel {kernel}: NCHW {micro_seconds(pool, x):.0f} µs, "
              f"channels-last {micro_seconds(pool, last):.0f} µs, equal {equal}")
    print(f"share of a detection in max-pools (NCHW, as shipped): {pool_share(Path(sys.argv[1])):.0%}")
