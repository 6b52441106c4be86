"""The LightningModule: trains a network (models.nets) on macro F1 with the loss group's loss, and
keeps the evaluated split's predictions after the post-hoc steps."""

from __future__ import annotations

from collections.abc import Callable

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassF1Score

from fersweep.evaluation.metrics import SplitPredictions
from fersweep.imbalance.augment import BatchMix
from fersweep.imbalance.losses import ImbalanceLoss
from fersweep.imbalance.posthoc import (
    PostHoc,
    apply_offsets,
    flip_averaged,
    probabilities,
    settings,
)


class EmotionModule(pl.LightningModule):
    """Training of `net` with the loss group's loss (weighted when the balancing says so), macro F1
    per epoch, and the evaluated split's truth and probabilities kept by `test_step`, after the
    post-hoc steps (`posthoc`: flip test-time augmentation, offsets fitted on the validation
    split when the test starts); `plain_outputs` keeps the network's own probabilities."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        loss: ImbalanceLoss,
        posthoc: PostHoc,
        mix: BatchMix,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.net, self.optimizer_factory, self.loss = net, optimizer, loss
        self.posthoc, self.mix = posthoc, mix
        self.offsets: np.ndarray | None = None  # fitted when the test starts
        self.prior_tau: float | None = None
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.train_f1 = MulticlassF1Score(num_classes, average="macro")
        self.val_f1 = MulticlassF1Score(num_classes, average="macro")
        self.val_f1_best = MaxMetric()
        # The evaluated split's predictions, and with the framing check its images' framed
        # each way, by direction (the data module's `framings`).
        self.test_outputs: SplitPredictions | None = None
        self.reframed_outputs: dict[str, SplitPredictions] = {}
        self.plain_outputs: SplitPredictions | None = None
        self._test_batches: dict[int, list[tuple[torch.Tensor, ...]]] = {}

    def setup(self, stage: str) -> None:
        # The loss learns the training split's class counts (as trained, copies included) and
        # the balancing's class weights, known once the data module is set up.
        datamodule = self.trainer.datamodule
        if stage == "fit" and datamodule:
            counts = torch.tensor(list(datamodule.balanced_train_counts().values()))
            self.loss.fit(counts, datamodule.loss_weights())
            # A network with frozen stages keeps their outputs for the images seen each epoch.
            remember = getattr(self.net, "remember", None)
            if remember is not None:
                remember(datamodule.recurring_images())

    def teardown(self, stage: str) -> None:
        forget = getattr(self.net, "forget", None)
        if stage == "fit" and forget is not None:
            forget()

    def on_train_epoch_start(self) -> None:
        self.loss.set_epoch(self.current_epoch)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and the predictions; `labels` may be a mixed batch's soft targets."""
        images, labels = batch
        logits = self(images)
        loss = self.loss(logits.float(), labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} (try a lower optimizer.lr)")
        return loss, logits.argmax(dim=1)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = self.mix(*batch)
        loss, predictions = self._step((images, labels))
        self.train_loss(loss)
        self.train_f1(predictions, labels if labels.ndim == 1 else labels.argmax(dim=1))
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/macro_f1", self.train_f1, on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_epoch_as_step()

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, predictions = self._step(batch)
        self.val_loss(loss)
        self.val_f1(predictions, batch[1])
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/macro_f1", self.val_f1, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_f1_best(self.val_f1.compute())
        self.log("val/macro_f1_best", self.val_f1_best.compute(), prog_bar=False)
        self._log_epoch_as_step()

    def _log_epoch_as_step(self) -> None:
        # Lightning uses a logged "step" as the loggers' x-axis: epochs, not batches.
        self.log("step", float(self.current_epoch), on_step=False, on_epoch=True)

    def on_test_start(self) -> None:
        self.offsets, self.prior_tau = None, None
        if self.posthoc.fits_on_validation:
            datamodule = self.trainer.datamodule
            validation = self.predict_split(datamodule.val_dataloader())
            # The prior as trained: balanced copies make it flatter than the data's.
            counts = np.array(list(datamodule.balanced_train_counts().values()))
            self.offsets, self.prior_tau = self.posthoc.fit(
                validation.truth, validation.probabilities, counts
            )

    def predict_split(self, loader) -> SplitPredictions:
        """Truth and probabilities (flip test-time augmentation included) for a whole loader."""
        labels, scores = [], []
        with torch.no_grad():
            for images, batch_labels in loader:
                scores.append(probabilities(self, images.to(self.device), self.posthoc.flip).cpu())
                labels.append(batch_labels)
        return SplitPredictions(torch.cat(labels).numpy(), torch.cat(scores).numpy())

    def posthoc_settings(self) -> dict[str, object]:
        """What the logged classifier needs to answer as the evaluation did."""
        return settings(self.posthoc.flip, self.offsets, self.prior_tau)

    def on_test_epoch_start(self) -> None:
        self._test_batches = {}

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        plain = torch.softmax(self(images).float(), dim=1)
        scored = flip_averaged(self, images, plain) if self.posthoc.flip else plain
        self._test_batches.setdefault(dataloader_idx, []).append(
            (labels.cpu(), scored.cpu(), plain.cpu())
        )

    def on_test_epoch_end(self) -> None:
        outputs = {}
        for loader, batches in self._test_batches.items():
            labels, scored, plain = (torch.cat(column).numpy() for column in zip(*batches))
            outputs[loader] = SplitPredictions(labels, apply_offsets(scored, self.offsets))
            if loader == 0:
                self.plain_outputs = SplitPredictions(labels, plain)
        directions = getattr(self.trainer.datamodule, "framings", {})
        self.test_outputs = outputs[0]
        self.reframed_outputs = {name: outputs[i] for i, name in enumerate(directions, start=1)}
        self._test_batches = {}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The optimizer partial over the network's parameter groups where it has them (a
        backbone and a head at their own learning rates), else over every parameter."""
        groups = getattr(self.net, "parameter_groups", None)
        return self.optimizer_factory(groups() if groups else self.parameters())
