"""The bench's bare loop (the default sweep's first trial, mini-Xception, 2,048 face-step images,
40 timed steps a phase) with torch's deterministic algorithms off and on, as the trainer's
`deterministic: warn` turns them on (torch's NaN fill of new tensors left on, its default),
alternated; then 8 thawed steps from one start in each
mode, the weights compared to the bit. usage: ab.py <rounds> <first: on|off>"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.utils.deterministic

import fersweep.tasks.bench.measure as measure
from fersweep.config.compose import build, compose_config
from fersweep.models.finetuning import thaw
from fersweep.tasks.bench.finetune import bare_phase_rates
from fersweep.tasks.bench.measure import in_memory

OVERRIDES = [
    "experiment=photos", "face=mtcnn", "data.preprocess.size=64", "data.subset.max_images=2048",
    "model=mini_xception", "optimizer=adam", "balancing=none", "model.net.freeze=backbone",
    "model.net.unfreeze_at_epoch=3", "model.net.frozen_after_thaw=2",
    "model.net.backbone_lr=1.0e-4", "model.net.head=conv", "optimizer.lr=1.0e-3",
    "model.net.frozen_memo_mb=0",
]


def trained(cfg, images, labels, deterministic: bool) -> list[torch.Tensor]:
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.manual_seed(0)
    net = build(cfg.model.net)
    optimizer = build(cfg.optimizer)(net.parameter_groups())
    thaw(net, net.unfreeze_at_epoch)
    net.train()
    draw = torch.Generator().manual_seed(1)
    for _ in range(8):
        index = torch.randint(0, len(labels), (64,), generator=draw)
        loss = torch.nn.functional.cross_entropy(net(images[index]).float(), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return [t.detach().clone() for t in [*net.parameters(), *net.buffers()]]


def main() -> None:
    rounds, first = int(sys.argv[1]), sys.argv[2]
    # the bare loop steps under its config's trainer.deterministic (make bench's, since 553e809)
    configs = {
        mode: compose_config(Path("conf"), [*OVERRIDES, f"trainer.deterministic={setting}"])
        for mode, setting in ((True, "warn"), (False, "false"))
    }
    cfg = configs[False]
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data)
    datamodule.setup()
    order = (True, False) if first == "on" else (False, True)
    for round_ in range(rounds):
        for deterministic in order:
            torch.use_deterministic_algorithms(deterministic, warn_only=True)
            torch.utils.deterministic.fill_uninitialized_memory = True  # torch's default
            measure.without_nan_fill = lambda: None  # noqa: E731
            rates = bare_phase_rates(configs[deterministic], datamodule, 40)
            print(round_, "on " if deterministic else "off", {k: round(v) for k, v in rates.items()})
    images, labels = in_memory(datamodule, torch.device("cpu"))
    off, on = (trained(cfg, images, labels, mode) for mode in (False, True))
    print("8 thawed steps, weights and buffers equal to the bit:",
          all(torch.equal(a, b) for a, b in zip(off, on, strict=True)))


if __name__ == "__main__":
    main()
