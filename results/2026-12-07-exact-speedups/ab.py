"""A/B of MTCNN's max-pools on channels-last copies (fersweep.data.mtcnn.ChannelsLastMaxPool)
against facenet-pytorch's own NCHW pools, alternated in one process on the same real images:
detections compared to the bit, images/s on 1 thread and on 2 decode threads of 1 torch thread
each (as the face step runs them). Run from the project root with its .venv."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import torch

from fersweep.data import mtcnn
from fersweep.data.mtcnn import ChannelsLastMaxPool, Mtcnn

ROUNDS, IMAGES = 4, 600
SETTING = (20, (0.6, 0.7, 0.7))


def set_pools(channels_last: bool) -> None:
    """Swap the pools of the first network (each new thread copies it) and this thread's."""
    for net in (mtcnn._first[SETTING], mtcnn.network(*SETTING)):
        for parent in list(net.modules()):
            for name, child in parent.named_children():
                if isinstance(child, ChannelsLastMaxPool) and not channels_last:
                    setattr(parent, name, child.pool)
                elif isinstance(child, torch.nn.MaxPool2d) and channels_last:
                    setattr(parent, name, ChannelsLastMaxPool(child))


def main(data: Path) -> None:
    torch.set_num_threads(1)
    files = sorted((data / "images").iterdir())[::13][:IMAGES]
    greys = [g for g in (cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files) if g is not None]
    detector = Mtcnn(160, 0.25, 20, (0.6, 0.7, 0.7), 0.9)
    found = {}
    for round_ in range(ROUNDS):
        for channels_last in (False, True):
            set_pools(channels_last)  # the pool's new threads copy the first network
            start = time.perf_counter()
            one = [detector.detect(g) for g in greys]
            serial = len(greys) / (time.perf_counter() - start)
            start = time.perf_counter()
            with ThreadPoolExecutor(2) as pool:
                two = list(pool.map(detector.detect, greys, chunksize=16))
            threaded = len(greys) / (time.perf_counter() - start)
            assert one == two
            found.setdefault(channels_last, one)
            assert found[channels_last] == one
            name = "channels-last pools" if channels_last else "NCHW pools (as shipped)"
            print(f"round {round_} {name}: 1 thread {serial:.1f} images/s, "
                  f"2 threads {threaded:.1f} images/s", flush=True)
    equal = found[True] == found[False]
    print(f"{len(greys)} images; detections equal to the bit: {equal}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
