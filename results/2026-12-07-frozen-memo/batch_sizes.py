"""Does an image's output of the frozen stages depend on the batch it is computed in? For each
depth the memo keeps (stem and first block, one block more, the whole backbone): a batch of 64
random images computed whole, with gradients on (as a training step), without them and in
inference mode (as validation), then each last m images alone as a batch, m = 1..63.
usage: FERSWEEP_WEIGHTS=... python batch_sizes.py"""
import os

import torch

from fersweep.models.mini_xception import MiniXception

net = MiniXception(1, 64, 8, "fer2013", os.environ["FERSWEEP_WEIGHTS"], "conv", True, "backbone", 1e-4, 1, 0.0, 2)
net.train()
x = torch.randint(0, 256, (64, 1, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def prefix(images, depth):
    z = ((images.float() / 255 - 0.5) * 2).contiguous(memory_format=torch.channels_last)
    for stage in net.stages()[:depth]:
        z = stage(z)
    return z


for depth in (2, 3, 5):
    whole = prefix(x, depth)
    with torch.no_grad():
        no_grad = prefix(x, depth)
    with torch.inference_mode():
        inference = prefix(x, depth)
    differ = []
    for m in range(1, 64):
        with torch.no_grad():
            if not torch.equal(whole[64 - m :], prefix(x[64 - m :], depth)):
                differ.append(m)
    print(
        f"depth {depth}: no_grad equal {torch.equal(whole, no_grad)}, inference_mode equal "
        f"{torch.equal(whole, inference)}, batch sizes m whose outputs differ: {differ}"
    )
