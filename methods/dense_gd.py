"""Dense-GD (Tang et al., ECCV 2018): PCE + dense bilinear Potts through a permutohedral
bilateral filter, by gradient descent. Fine-tunes from the PCE-GD run (same length, seed)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from rtrbench.methods.base import Batch, Method
from rtrbench.methods.losses.dense_crf import dense_crf_loss
from rtrbench.methods.pce import partial_cross_entropy


class DenseGDParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    weight: float = Field(2e-9, ge=0)  # weight of the dense term (Tang et al.'s reference value)
    sigma_rgb: float = Field(15.0, gt=0)  # RGB in 0..255
    sigma_xy: float = Field(100.0, gt=0)  # pixels at full resolution; scaled with `scale`
    scale: float = Field(0.5, gt=0, le=1)  # resolution at which the dense term is computed
    filter_backend: Literal["torch", "pydensecrf"] = "torch"


class DenseGD(Method):
    name = "dense-gd"
    description = "PCE + dense bilinear Potts (permutohedral filter), gradient descent (Tang et al. 2018)"
    Params = DenseGDParams
    init_from = "pce-gd"

    def loss(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        p = self.params
        probs = torch.softmax(logits, 1)
        reg = dense_crf_loss(batch.image, probs, batch.roi, p.weight, p.sigma_rgb, p.sigma_xy, p.scale, p.filter_backend)
        ce = self.batch_averaged(partial_cross_entropy(logits, batch.scribbles, batch.roi, self.ctx.world), batch)
        return {"ce": ce, "reg": reg}
