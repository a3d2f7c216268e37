"""Stage A's proposals on disk, one folder per pass, published only when complete.

A pass is written into a hidden folder (``.pass-0003-x1y2/``) and renamed to ``pass-0003/``
once every proposal and its ``metrics.json`` are in it; a rename is atomic, so a process
killed at any moment leaves either the previous pass or the new one, never a mix of the two
or a torn file. Readers always see the newest complete pass.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from rtrbench.datasets.labelio import read_label_png

PREFIX = "pass-"
METRICS = "metrics.json"


class ProposalPasses:
    """The passes of one run folder. Picklable (a path): it is also the data loader's source of
    the ``proposal`` map, called with an image id."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def latest(self) -> int | None:
        """The epoch of the newest complete pass, if any."""
        epochs = self._epochs()
        return max(epochs) if epochs else None

    def __call__(self, image_id: str) -> np.ndarray | None:
        """The image's proposal in the newest complete pass; None before the first pass."""
        epoch = self.latest()
        if epoch is None:
            return None
        return read_label_png(self._folder(epoch) / f"{image_id}.png")

    def metrics(self, epoch: int) -> dict[str, float]:
        return json.loads((self._folder(epoch) / METRICS).read_text())

    def begin(self, epoch: int) -> Path:
        """A fresh private folder to write the pass of `epoch` into."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{PREFIX}{epoch:04d}-", dir=self.root))

    def commit(self, folder: Path, epoch: int, metrics: dict[str, float]) -> None:
        """Publish a fully written pass, then drop every other pass and abandoned partial folders."""
        (folder / METRICS).write_text(json.dumps(metrics))
        os.rename(folder, self._folder(epoch))
        self.keep_only(epoch)

    def keep_only(self, epoch: int | None) -> None:
        """Remove every pass but `epoch`'s (None: all), and partial folders of killed passes."""
        if not self.root.is_dir():
            return
        keep = None if epoch is None else self._folder(epoch).name
        for entry in self.root.iterdir():
            if entry.name != keep and entry.name.lstrip(".").startswith(PREFIX):
                shutil.rmtree(entry, ignore_errors=True)

    def _folder(self, epoch: int) -> Path:
        return self.root / f"{PREFIX}{epoch:04d}"

    def _epochs(self) -> list[int]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return [int(n[len(PREFIX) :]) for n in names if n.startswith(PREFIX) and n[len(PREFIX) :].isdigit()]
