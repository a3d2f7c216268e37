"""Grid-GD: PCE + ν · bilinear 8-grid Potts relaxation, by gradient descent (eq. 7/8).

Fine-tunes from the PCE-GD run of the same length and seed (Algorithm 1, line 2).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from rtrbench.methods.base import Batch, Method
from rtrbench.methods.losses.grid_potts import grid_potts_loss
from rtrbench.methods.pce import partial_cross_entropy


class GridGDParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    nu: float = Field(1.0, ge=0)  # weight of the grid Potts term


class GridGD(Method):
    name = "grid-gd"
    description = "PCE + bilinear 8-grid Potts relaxation with contrast weights, gradient descent (eq. 7/8)"
    Params = GridGDParams
    init_from = "pce-gd"

    def loss(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        probs = torch.softmax(logits, 1)
        return {
            "ce": self.batch_averaged(partial_cross_entropy(logits, batch.scribbles, batch.roi), batch),
            "reg": self.params.nu * grid_potts_loss(batch.image, probs, batch.roi),
        }
