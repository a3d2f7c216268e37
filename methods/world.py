"""The processes that train one run together (DistributedDataParallel), as the losses see them.

DDP averages the processes' gradients. With equal shares of every global batch, a term that
is a mean over images needs nothing more; a mean over pixels (seed pixels, proposal pixels)
must divide each process's sum by the *global* count over the number of processes, so that
the averaged gradient is the one-process gradient of the global batch (`share_divisor`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1  # one process: every method below is the identity

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def total(self, value: torch.Tensor) -> torch.Tensor:
        """`value` summed over the processes (no gradient)."""
        if self.size == 1:
            return value
        import torch.distributed as dist

        value = value.detach().clone()
        dist.all_reduce(value)
        return value

    def share_divisor(self, count: torch.Tensor) -> torch.Tensor:
        """What a process divides its sum by for a mean over the global batch's `count` items:
        max(global count, 1) / processes (one process: max(count, 1))."""
        if self.size == 1:
            return count.clamp(min=1)
        return self.total(count).clamp(min=1) / self.size

    def broadcast(self, value):
        """Process 0's `value` (any picklable object), on every process."""
        if self.size == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()
