"""Checkpoints written atomically (temp file + rename) so a killed run never leaves a torn file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rtrbench.atomic import write_atomic
from rtrbench.errors import DataError, one_line


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    write_atomic(path, lambda tmp: torch.save(state, tmp), fsync=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{path}: cannot read checkpoint ({one_line(exc, 200)})") from None
