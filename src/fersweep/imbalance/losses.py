"""Training losses for skewed classes (the `loss` config group, conf/loss/).

Every loss learns the training split's class counts (`fit`, once the data module is set up;
with balancing, the counts as trained) and may change with the epoch (`set_epoch`, for LDAM's
deferred re-weighting). Label smoothing works with each of them: it moves a share ε of each
target toward the distribution the loss's own adjustment implies (`smoothing_target`): uniform,
or for the prior-adjusted losses the adjusted prior, since smoothing those toward uniform targets
teaches the raw logits to favour the rarest class.
Class weights weigh each image by its own class, the smoothed share included.

- `CrossEntropy`: plain (or weighted by `balancing=class_weights`).
- `ClassWeighted`: weights by inverse frequency, or by Cui et al.'s effective number (β).
- `LogitAdjusted`: Menon et al.'s logit-adjusted loss, logits + τ·log(prior) while training.
- `BalancedSoftmax`: Ren et al.'s balanced softmax, logits + log(count).
- `LDAM`: Cao et al.'s label-distribution-aware margins, with deferred re-weighting (DRW).
- `Focal`: Lin et al.'s focal loss (γ).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fersweep.errors import ConfigError


def _in_range(key: str, value: float, low: float, high: float, closed_high: bool = False) -> None:
    inside = low <= value <= high if closed_high else low <= value < high
    if not inside:
        bracket = "]" if closed_high else ")"
        raise ConfigError(f"loss.{key}={value}: must be in [{low}, {high}{bracket}")


class ImbalanceLoss(nn.Module):
    """Cross-entropy on (possibly adjusted) logits, with per-class weights where given. What it
    learns from the data is not saved in checkpoints (`persistent=False`): the best checkpoint
    may come from before LDAM's re-weighting began, and the data sets it again anyway."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        _in_range("label_smoothing", label_smoothing, 0.0, 1.0)
        self.label_smoothing = label_smoothing
        self.register_buffer("counts", torch.ones(0), persistent=False)
        self.register_buffer("weight", torch.ones(0), persistent=False)
        self.epoch = 0

    def fit(self, counts: torch.Tensor, class_weights: torch.Tensor | None = None) -> None:
        """The training split's images per class; `class_weights` from `balancing=class_weights`."""
        self.counts = counts.float().to(self.counts.device)
        own = self.class_weights()
        if class_weights is not None and (own is not None or self.reweights_later):
            raise ConfigError(
                f"balancing=class_weights and loss={type(self).__name__} both weight the loss: "
                "choose one (balancing=none, or loss=cross_entropy)"
            )
        weight = class_weights if class_weights is not None else own
        self.weight = (
            weight.float().to(self.counts.device) if weight is not None else self.no_weight
        )

    reweights_later = False  # weights of its own from some epoch on (LDAM's DRW)

    @property
    def no_weight(self) -> torch.Tensor:
        return self.counts.new_ones(0)

    def class_weights(self) -> torch.Tensor | None:
        return None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def adjust(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The logits the loss is computed on (while training; predictions use the raw ones)."""
        return logits

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The weighted mean loss of a batch. `labels`: class indices (N), or a mixed batch's
        soft targets (N x C, from mixup or cutmix): each image's loss is then the target-weighted
        sum of its loss for each class (the mixup paper's λ·L(a) + (1 - λ)·L(b))."""
        if labels.ndim == 1:
            return self.per_sample(logits, labels).sum() / self.sample_weight(labels).sum()
        total = weights = logits.new_zeros(())
        for label in torch.nonzero(labels.sum(dim=0)).flatten().tolist():
            share = labels[:, label]
            target = torch.full_like(share, label, dtype=torch.long)
            total = total + (share * self.per_sample(logits, target)).sum()
            weights = weights + (share * self.sample_weight(target)).sum()
        return total / weights

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Each image's loss, multiplied by its own class's weight. Not cross_entropy's `weight`:
        with smoothed (probability) targets it weighs each class's share by that class's weight,
        so the smoothing share of the rarest class, weighted hundreds of times over, would pull
        every image toward it."""
        if self.training:
            logits = self.adjust(logits, labels)
        targets = self.smoothed(labels, logits.shape[1]).to(logits.dtype)
        return (targets * self.class_losses(logits)).sum(dim=1) * self.sample_weight(labels)

    def class_losses(self, logits: torch.Tensor) -> torch.Tensor:
        """Each image's loss if each class were its target (N x C): -log softmax here."""
        return -F.log_softmax(logits, dim=1)

    def smoothing_target(self, classes: int) -> torch.Tensor:
        """Where label smoothing moves its share of each target: uniform here."""
        return self.counts.new_full((classes,), 1.0 / classes)

    def smoothed(self, labels: torch.Tensor, classes: int) -> torch.Tensor:
        """One-hot targets with a share `label_smoothing` moved to `smoothing_target` (N x C)."""
        smooth = self.label_smoothing
        one_hot = F.one_hot(labels, classes).float()
        return one_hot * (1 - smooth) + smooth * self.smoothing_target(classes)

    def sample_weight(self, labels: torch.Tensor) -> torch.Tensor:
        """What the weighted mean divides by, per image: its class weight (1 unweighted)."""
        return self.weight[labels] if self.weight.numel() else torch.ones_like(labels).float()

    @property
    def prior(self) -> torch.Tensor:
        """Class frequencies; a class absent from training gets a tiny share, not log(0)."""
        counts = self.counts.clamp(min=1e-3)
        return counts / counts.sum()


class CrossEntropy(ImbalanceLoss):
    """Plain cross-entropy (weighted only by `balancing=class_weights`)."""


class ClassWeighted(ImbalanceLoss):
    """Cross-entropy weighted per class: by inverse frequency (`inverse`, as scikit-learn's
    "balanced"), or by the inverse effective number (1 - β^n) / (1 - β) (Cui et al., 2019);
    weights scaled to average 1 over the classes present."""

    def __init__(
        self, weighting: str = "inverse", beta: float = 0.999, label_smoothing: float = 0.0
    ) -> None:
        super().__init__(label_smoothing)
        if weighting not in ("inverse", "effective_number"):
            raise ConfigError(f"loss.weighting={weighting!r}: use inverse or effective_number")
        _in_range("beta", beta, 0.0, 1.0)
        self.weighting, self.beta = weighting, beta

    def class_weights(self) -> torch.Tensor:
        present = self.counts > 0
        if self.weighting == "inverse":
            raw = 1.0 / self.counts.clamp(min=1)
        else:
            raw = (1.0 - self.beta) / (1.0 - self.beta ** self.counts.clamp(min=1))
        raw = torch.where(present, raw, torch.zeros_like(raw))
        return raw * present.sum() / raw.sum()


class LogitAdjusted(ImbalanceLoss):
    """Menon et al. (2021): train on logits + τ·log(prior), so the raw logits come out adjusted
    for the skew; τ = 1 is the Bayes-consistent choice for balanced error."""

    def __init__(self, tau: float = 1.0, label_smoothing: float = 0.0) -> None:
        super().__init__(label_smoothing)
        _in_range("tau", tau, 0.0, 10.0, closed_high=True)
        self.tau = tau

    def adjust(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return logits + self.tau * self.prior.log()

    def smoothing_target(self, classes: int) -> torch.Tensor:
        # Toward prior^τ (normalised), the raw logits' optimum is log((1-ε)·p(k|x)/prior_k^τ + ε'):
        # still ranked by p(k|x)/prior^τ, as without smoothing.
        return torch.softmax(self.tau * self.prior.log(), dim=0)


class BalancedSoftmax(ImbalanceLoss):
    """Ren et al. (2020): the softmax of logits + log(count) while training."""

    def adjust(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return logits + self.counts.clamp(min=1e-3).log()

    def smoothing_target(self, classes: int) -> torch.Tensor:
        return self.prior  # as LogitAdjusted's with τ = 1


class LDAM(ImbalanceLoss):
    """Cao et al. (2019): the true class's logit lowered by a margin C / n^(1/4) (the rarest class
    gets `max_margin`), logits scaled by `scale`; from `drw_epoch` on, deferred re-weighting by
    the inverse effective number (β)."""

    def __init__(
        self,
        max_margin: float = 0.5,
        scale: float = 30.0,
        drw_epoch: int = 3,
        beta: float = 0.9999,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(label_smoothing)
        if max_margin <= 0 or scale <= 0:
            raise ConfigError(f"loss: max_margin={max_margin} and scale={scale} must be positive")
        if drw_epoch < 0:
            raise ConfigError(f"loss.drw_epoch={drw_epoch}: must be 0 or more")
        _in_range("beta", beta, 0.0, 1.0)
        self.max_margin, self.scale, self.drw_epoch, self.beta = max_margin, scale, drw_epoch, beta
        self.register_buffer("deferred_weight", torch.ones(0), persistent=False)

    reweights_later = True

    def fit(self, counts: torch.Tensor, class_weights: torch.Tensor | None = None) -> None:
        super().fit(counts, class_weights)
        weighted = ClassWeighted("effective_number", self.beta)
        weighted.fit(counts)
        self.deferred_weight = weighted.weight.to(self.counts.device)
        self.set_epoch(self.epoch)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.weight = self.deferred_weight if epoch >= self.drw_epoch else self.no_weight

    def margins(self) -> torch.Tensor:
        raw = self.counts.clamp(min=1) ** -0.25
        return raw * (self.max_margin / raw.max())

    def adjust(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        margin = F.one_hot(labels, logits.shape[1]) * self.margins().to(logits.dtype)
        return self.scale * (logits - margin)


class Focal(ImbalanceLoss):
    """Lin et al. (2017): cross-entropy scaled by (1 - p)^γ, so easy examples count less."""

    def __init__(self, gamma: float = 2.0, label_smoothing: float = 0.0) -> None:
        super().__init__(label_smoothing)
        _in_range("gamma", gamma, 0.0, 10.0, closed_high=True)
        self.gamma = gamma

    def class_losses(self, logits: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1)
        return -((1 - log_p.exp()) ** self.gamma) * log_p
