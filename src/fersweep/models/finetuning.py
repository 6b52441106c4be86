"""The staged thaw of a pretrained network, as a Lightning callback (`BaseFinetuning`): the
schedule is applied from outside the network, as Lightning's fine-tuning example does.

A network takes part by having `stages()` (its stages in order, the first at full resolution),
`set_frozen(stages)`, and the two settings of its schedule, `unfreeze_at_epoch` and
`after_thaw` (how many first stages stay frozen then); what is frozen before training is the
network's own setting (`freeze`), applied when it is built so that it holds outside Lightning
too (the linear probe, the benchmark's bare loop). Every parameter is in the optimizer from the
start (a frozen one gets no gradient, so it has no optimizer state until thawed): the thaw adds
no parameter group, and a frozen stage's batch norms keep their running statistics (eval mode),
which `BaseFinetuning.freeze` would not."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn
from torch.optim import Optimizer


class StagedThaw(BaseFinetuning):
    """From `unfreeze_at_epoch` on, only the network's first `after_thaw` stages stay frozen; a
    network without a schedule (`unfreeze_at_epoch` null, or no stages) is left as it is."""

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        """Nothing more: the network froze what its `freeze` setting says when it was built."""

    def finetune_function(self, pl_module: pl.LightningModule, epoch: int, optimizer: Optimizer):
        thaw(pl_module.net, epoch)


def thaw(net: nn.Module, epoch: int) -> None:
    """The network's schedule at `epoch`: thawed all but its first `after_thaw` stages once
    `epoch` reaches `unfreeze_at_epoch` (and left so after)."""
    when = getattr(net, "unfreeze_at_epoch", None)
    if when is None or epoch < when:
        return
    kept = net.stages()[: net.after_thaw]
    if len(net.frozen) != len(kept):
        net.set_frozen(kept)
