"""Grid-GD: PCE + ν · an 8-grid Potts relaxation, by gradient descent (eq. 7/8: the bilinear
one, the default; the others of `rtrbench.methods.losses.relaxations` on request).

Fine-tunes from the PCE-GD run of the same length and seed (Algorithm 1, line 2).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, model_serializer

from rtrbench.methods.base import Batch, Method
from rtrbench.methods.losses.grid_potts import grid_potts_loss
from rtrbench.methods.losses.relaxations import Relaxation
from rtrbench.methods.pce import partial_cross_entropy


class GridGDParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    nu: float = Field(1.0, ge=0)  # weight of the grid Potts term
    relaxation: Relaxation = "bilinear"  # the paper's; the others as in soft self-labeling

    @model_serializer(mode="wrap")
    def _identity(self, handler):
        # The default is left out of the dump (the run's config and hash): runs made before
        # this option existed keep their identity and their row in the report.
        data = handler(self)
        if data.get("relaxation") == "bilinear":
            del data["relaxation"]
        return data


class GridGD(Method):
    name = "grid-gd"
    description = "PCE + 8-grid Potts relaxation (bilinear by default) with contrast weights, gradient descent (eq. 7/8)"
    Params = GridGDParams
    init_from = "pce-gd"

    def loss(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        probs = torch.softmax(logits, 1)
        return {
            "ce": self.batch_averaged(partial_cross_entropy(logits, batch.scribbles, batch.roi, self.ctx.world), batch),
            "reg": self.params.nu * grid_potts_loss(batch.image, probs, batch.roi, self.params.relaxation),
        }
