"""Partial cross-entropy on scribbles (PCE-GD, eq. 6) and cross-entropy on full GT (upper bound)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rtrbench.datasets.labelio import IGNORE
from rtrbench.methods.base import Batch, Method
from rtrbench.methods.world import World


def partial_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, roi: torch.Tensor, world: World = World()) -> torch.Tensor:
    """Mean of −log q_i(y_i) over labelled ROI pixels; 0 (with a gradient) when there are none.
    The sum over the count, without asking the device whether there are any (a host sync);
    bit-identical to cross_entropy's mean where there are. Under DDP, this process's share of
    the mean over the global batch's labelled pixels (`World.share_divisor`)."""
    labels = labels.masked_fill(~roi, IGNORE)
    total = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")
    return total / world.share_divisor((labels != IGNORE).sum())


class PCEGD(Method):
    name = "pce-gd"
    description = "partial cross-entropy on scribbles, gradient descent (eq. 6)"

    def loss(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        return {"ce": self.batch_averaged(partial_cross_entropy(logits, batch.scribbles, batch.roi, self.ctx.world), batch)}


class FullSupervision(Method):
    name = "full"
    description = "cross-entropy on every ground-truth pixel (full-supervision upper bound)"
    uses_scribbles = False

    def loss(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        return {"ce": self.batch_averaged(partial_cross_entropy(logits, batch.gt, batch.roi, self.ctx.world), batch)}
