"""What a training method is: a named object that turns logits and a batch into loss terms.

The trainer owns the loop, data and tracking; a method owns its loss. Methods never
read files or talk to MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from pydantic import BaseModel, ConfigDict

from rtrbench.methods.world import World

if TYPE_CHECKING:
    from rtrbench.datasets.voc import MapSource, ScribbleDataset


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class Batch:
    """One training batch on the training device. Label maps use 255 for 'unlabelled'."""

    image: torch.Tensor  # B×3×H×W float, RGB in 0..255 (the network normalises itself)
    scribbles: torch.Tensor  # B×H×W int64 seed labels, 255 = unlabelled
    gt: torch.Tensor  # B×H×W int64 full ground truth, 255 = void (diagnostics and full supervision only)
    roi: torch.Tensor  # B×H×W bool, False on crop padding
    ids: list[str]
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # further label maps (e.g. proposals)


@dataclass(frozen=True)
class MethodContext:
    num_classes: int
    class_names: tuple[str, ...]
    device: torch.device
    run_dir: Path
    batch_average: bool = False  # see `Method.batch_averaged`
    threads: int = 1  # CPUs the run may use (e.g. the size of a worker pool); not part of its result
    world: World = World()  # the processes training the run together (DDP); see `rtrbench.methods.world`


class Method:
    """Base class of training methods; subclass, set the class attributes, implement `loss`.

    Register a third-party method through the entry-point group ``rtrbench.methods``
    (``my-method = "my_pkg.module:MyMethod"``); its ``name`` must equal the entry point's.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = NoParams
    init_from: ClassVar[str | None] = None  # method whose checkpoint (same length, seed) this one fine-tunes
    # False for methods trained on the full GT: their result does not depend on the scribble
    # length, so a sweep runs them once per seed (at length 1) and reports them as a reference.
    uses_scribbles: ClassVar[bool] = True

    def __init__(self, params: BaseModel, ctx: MethodContext) -> None:
        self.params = params
        self.ctx = ctx

    def loss(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """Named scalar loss terms (already weighted); the trainer minimises their sum."""
        raise NotImplementedError

    def batch_averaged(self, term: torch.Tensor, batch: Batch) -> torch.Tensor:
        """A pixel-averaged term (PCE, full CE, robust CE), divided by the batch size N when the
        run follows the reference code's convention (`train.batch_average`; its
        `SegmentationLosses(batch_average=True)` and Grid-TR loss divide by N). Per-image means
        (the Potts and dense terms) are not passed through this. N is the global batch's size."""
        return term / (batch.image.shape[0] * self.ctx.world.size) if self.ctx.batch_average else term

    def extra_maps(self) -> Mapping[str, MapSource]:
        """Per-image label maps the loader should add to each batch (in `Batch.extra`), e.g.
        stored proposals; they go through the same random crop/flip as the image."""
        return {}

    def close(self) -> None:
        """Release what the method holds (worker pools); called when its run ends, however it ends."""

    def epoch_metrics(self) -> dict[str, float]:
        """Metrics the method gathered over the epoch just trained (e.g. the mean energy of an
        inner solver), logged at that epoch; called once at the end of each epoch."""
        return {}

    def on_epoch_start(self, epoch: int, model: torch.nn.Module, train_set: ScribbleDataset) -> dict[str, float]:
        """Hook for methods with an outer loop (e.g. trust-region proposals over the un-augmented
        training set, `train_set.load(i)`); returns metrics to log at this epoch."""
        return {}
