"""SBD (Hariharan et al. 2011) class masks: ``cls/<id>.mat`` holding a struct ``GTcls`` whose
field ``Segmentation`` is the H×W class-index map (0 = background, no void label)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from rtrbench.errors import DataError


def sbd_mask_path(sbd: Path, image_id: str) -> Path:
    return sbd / "cls" / f"{image_id}.mat"


def sbd_ids(sbd: Path) -> list[str]:
    """Image ids with a class mask under ``sbd/cls``."""
    if not (sbd / "cls").is_dir():
        raise DataError(f"{sbd / 'cls'}: SBD class-mask folder not found (--sbd is the folder holding cls/)")
    return sorted(p.stem for p in (sbd / "cls").glob("*.mat"))


def read_sbd_mask(path: Path) -> np.ndarray:
    """The class map of one SBD .mat file as H×W uint8."""
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (MatReadError, ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot read MATLAB file ({exc})") from None
    seg = getattr(mat.get("GTcls"), "Segmentation", None)
    if seg is None:
        raise DataError(f"{path}: no GTcls.Segmentation field (not an SBD class mask)")
    seg = np.asarray(seg)
    if seg.ndim != 2 or not np.issubdtype(seg.dtype, np.integer) or seg.size == 0 or seg.min() < 0 or seg.max() > 255:
        raise DataError(f"{path}: GTcls.Segmentation must be a 2-D map of class indices, got {seg.dtype} {seg.shape}")
    return seg.astype(np.uint8)
