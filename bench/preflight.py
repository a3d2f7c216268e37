"""What a sweep checks before its first run starts, once: every data root it reads (generating
the synthetic set if needed), with its image lists and a scribble folder per requested length,
each listed file present. A problem is one line and no run, MLflow included, has started."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rtrbench.config import RunConfig
from rtrbench.datasets.synth_cache import ensure_synthetic
from rtrbench.datasets.voc import scribble_dir
from rtrbench.datasets.voc_layout import summarize_layout
from rtrbench.errors import DataError
from rtrbench.registry import get_method

SCRIBBLE_PREFIX = scribble_dir(0.5).removesuffix("0.5")


def check_inputs(
    configs: list[RunConfig], data_dir: Path, progress: Callable[[str], Callable[[int, int], None]]
) -> dict[str, Path]:
    """The data root of each run (by config hash), checked; `progress(description)` gives a
    counter for generating a synthetic set."""
    roots: dict[str, Path] = {}
    lengths: dict[Path, set[float]] = {}
    for cfg in configs:
        root = cfg.data.root
        if root is None:
            root = ensure_synthetic(cfg.data.synth, data_dir, progress("generating synthetic data"))
        roots[cfg.config_hash()] = root
        wanted = lengths.setdefault(root, set())
        if get_method(cfg.method).uses_scribbles:
            wanted.add(cfg.length)
    for root, wanted in lengths.items():
        _check_root(root, wanted)
    return roots


def _check_root(root: Path, lengths: set[float]) -> None:
    for length in sorted(lengths):
        if not (root / scribble_dir(length)).is_dir():
            found = sorted(p.name.removeprefix(SCRIBBLE_PREFIX) or "1" for p in root.glob(f"{SCRIBBLE_PREFIX}*") if p.is_dir())
            raise DataError(
                f"{root / scribble_dir(length)}: no scribbles of length {length:g} in this data set "
                f"(it has lengths {', '.join(found) or 'none'}; `rtrbench data prepare` writes others)"
            )
    problem = summarize_layout(root, lengths).problem()
    if problem is not None:
        raise problem
