"""Generating the synthetic set once, atomically, in a folder named after its spec."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


from rtrbench.datasets.specs import SynthConfig
from rtrbench.datasets.synth import write_synthetic
from rtrbench.errors import DataError


def write_synthetic_atomic(out: Path, cfg: SynthConfig, progress: Callable[[int, int], None] | None = None) -> None:
    """Write into a temporary sibling folder, then rename: a cut-off write never looks finished.
    Raises FileExistsError if `out` appeared meanwhile (another process wrote it first)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_synthetic(tmp, cfg, progress=progress)
        (tmp / "synth.json").write_text(json.dumps(cfg.model_dump(), sort_keys=True))
        try:
            tmp.rename(out)
        except OSError:
            if out.is_dir():
                raise FileExistsError(out) from None
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_synthetic(cfg: SynthConfig, data_dir: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """The folder holding the synthetic set of this spec, generated on first use."""
    digest = hashlib.sha256(json.dumps(cfg.model_dump(), sort_keys=True).encode()).hexdigest()[:8]
    out = data_dir / f"synth-{digest}"
    if out.is_dir():
        return out
    try:
        write_synthetic_atomic(out, cfg, progress)
    except FileExistsError:
        pass  # another sweep generated the same set at the same time: use theirs
    except OSError as exc:
        raise DataError(f"{out}: cannot write the synthetic data set ({exc})") from None
    return out
