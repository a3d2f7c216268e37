"""Files written atomically: written under a hidden temporary name in the target's folder, then
renamed over the target, so a killed process never leaves a torn file (checkpoints, prepared
label maps, image lists)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], None], fsync: bool = False) -> None:
    """Call ``write(tmp)``, then rename ``tmp`` to ``path``; ``fsync``: flush the data to disk
    first, so the rename cannot expose an empty file after a power loss (costs a disk sync)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # same folder: rename is atomic
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        if fsync:
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
