"""The default sweep's network, the FER2013 mini-Xception, in each phase of its fine-tune: the
backbone frozen (the head's warm-up), then thawed but for its first stages. Lightning's epochs
against a bare PyTorch loop over the same images in memory, phase by phase."""

from __future__ import annotations

import copy
from typing import Any

import lightning.pytorch as pl
import numpy as np

from fersweep.config.compose import build
from fersweep.data.datamodule import EmotionDataModule
from fersweep.models.finetuning import StagedThaw, thaw
from fersweep.tasks.bench.measure import EpochTimer, in_memory, steps_rate, train_device
from fersweep.tasks.fitting import build_trainer, quiet_library

PHASES = ("frozen", "thawed")


def bench_finetune(cfg, bare_batches: int) -> dict[str, Any]:
    """Images/s of each phase: Lightning (every epoch of the phase but its first, which warms
    up; `model.net.unfreeze_at_epoch` epochs a phase) and the bare loop (the same network,
    optimizer and phase, `bare_batches` steps, before and after the Lightning epochs so a drift
    in the shared CPU's speed is shared), both computing the frozen stages every step; then
    Lightning as configured, the frozen stages' outputs of the training images kept
    (`model.net.frozen_memo_mb`), which the bare loop has no counterpart of."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: EmotionDataModule = build(cfg.data)
    datamodule.setup()
    # Lightning against the bare loop with the same work each step: the frozen memo off.
    plain_cfg = copy.deepcopy(cfg)
    plain_cfg.model.net.frozen_memo_mb = 0
    bare = [bare_phase_rates(plain_cfg, datamodule, bare_batches)]
    lightning = lightning_phase_rates(plain_cfg, datamodule)
    with_memo = lightning_phase_rates(cfg, datamodule)
    bare.append(bare_phase_rates(plain_cfg, datamodule, bare_batches))
    results: dict[str, Any] = {
        "train_images_per_epoch": len(datamodule.train_dataset()),
        "frozen_memo_mb": cfg.model.net.frozen_memo_mb,
    }
    for phase in PHASES:
        bare_rate = float(np.mean([rates[phase] for rates in bare]))
        results[phase] = {
            "lightning_images_per_s": lightning[phase],
            "bare_loop_images_per_s": bare_rate,
            "bare_loop_before_after": [rates[phase] for rates in bare],
            "lightning_over_bare": lightning[phase] / bare_rate,
            # The configured run: the frozen stages' outputs read back after each phase's first epoch.
            "lightning_memo_images_per_s": with_memo[phase],
            "memo_speed_up": with_memo[phase] / lightning[phase],
        }
    return results


def lightning_phase_rates(cfg, datamodule: EmotionDataModule) -> dict[str, float]:
    """Lightning's training epochs (validation off): as many thawed as frozen."""
    epochs = cfg.model.net.unfreeze_at_epoch
    module = build(cfg.model)
    timer = EpochTimer()
    with quiet_library():  # the notices fit_network does not pass on either
        trainer = build_trainer(
            cfg.trainer,
            callbacks=[timer, StagedThaw()],
            logger=False,
            max_epochs=2 * epochs,
            enable_checkpointing=False,
            limit_val_batches=0,
            enable_progress_bar=False,
        )
        trainer.fit(module, datamodule=datamodule)
    per_epoch = len(datamodule.train_dataset())
    seconds = {"frozen": timer.seconds[1:epochs], "thawed": timer.seconds[epochs + 1 :]}
    return {phase: per_epoch / float(np.mean(spent)) for phase, spent in seconds.items()}


def bare_phase_rates(cfg, datamodule: EmotionDataModule, batches: int) -> dict[str, float]:
    """The network stepped over preloaded tensors, frozen as configured, then thawed as its
    schedule thaws it: each phase's ceiling."""
    device = train_device(cfg)
    net = build(cfg.model.net).to(device)
    optimizer = build(cfg.optimizer)(net.parameter_groups())
    images, labels = in_memory(datamodule, device)
    rates = {}
    for phase in PHASES:
        if phase == "thawed":
            thaw(net, net.unfreeze_at_epoch)
        net.train()
        rates[phase] = steps_rate(
            net, optimizer, images, labels, datamodule.batch_size, batches, cfg, warmup=3
        )
    return rates
