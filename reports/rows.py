"""Which finished runs count, and under which table row: runs of different configs are never averaged.

A row is a method together with one config without the seed. When one (method, length) has
runs of several configs, each becomes its own row, labelled by the params that differ
between them (`grid-tr [train.lr=0.0003]`). Runs that ignore the scribbles (tag
supervision = "full", or method `full` for runs logged before the tag existed) form the
full-supervision reference, whose config is compared without the length.
"""

from __future__ import annotations

import json

import pandas as pd

from rtrbench.config import RUNTIME_KEYS

FULL_ROW = "full supervision"
METHOD_ORDER = ("pce-gd", "dense-gd", "grid-gd", "grid-tr", "soft-sl")  # the paper's order, then its successor; others by name
# Runtime-only keys (data path, workers, ...) never split a row: they do not change results.
_SEED_KEYS = frozenset({"seed"}) | RUNTIME_KEYS
_REFERENCE_FREE_KEYS = _SEED_KEYS | {"length"}  # the reference does not depend on the length


def is_reference(runs: pd.DataFrame) -> pd.Series:
    return (runs["supervision"].fillna("") == "full") | (runs["method"] == "full")


def finished_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Finished runs with a final val mIoU, the newest per config, each with its `row` label and `reference` flag."""
    done = runs[(runs["status"] == "FINISHED") & runs["val_miou"].notna()].copy()
    if done.empty:
        return done.assign(reference=pd.Series(dtype=bool), config_key=pd.Series(dtype=str), row=pd.Series(dtype=str))
    done = done.sort_values("start_time").drop_duplicates("config_hash", keep="last")  # a rerun replaces the old run
    done["reference"] = is_reference(done)
    done["config_key"] = [
        _config_key(params, _REFERENCE_FREE_KEYS if ref else _SEED_KEYS) for params, ref in zip(done["params"], done["reference"])
    ]
    done["row"] = _row_labels(done)
    # One run per row, length and seed (the reference: per row and seed), the newest.
    per_seed = done["length"].where(~done["reference"], -1.0)
    keep = ~done.assign(_length=per_seed).duplicated(["row", "_length", "seed"], keep="last")
    return done[keep].reset_index(drop=True)


def row_order(rows: pd.DataFrame) -> list[str]:
    """Row labels in display order: the paper's methods first, others by name, the reference last."""
    firsts = rows.drop_duplicates("row")
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    key = [(ref, rank.get(m, len(rank)), m, r) for r, m, ref in zip(firsts["row"], firsts["method"], firsts["reference"])]
    return [k[-1] for k in sorted(key)]


def _config_key(params: dict[str, str] | float, ignored: frozenset[str]) -> str:
    params = params if isinstance(params, dict) else {}
    return json.dumps({k: v for k, v in params.items() if k not in ignored}, sort_keys=True)


def _row_labels(done: pd.DataFrame) -> pd.Series:
    labels = pd.Series(index=done.index, dtype=object)
    base = done["method"].where(~done["reference"], FULL_ROW)
    for name, runs in done.groupby(base, sort=False):
        cells = [runs] if name == FULL_ROW else [cell for _, cell in runs.groupby("length")]
        keys = sorted(set().union(*(_differing_keys(cell) for cell in cells)))
        for index, params in runs["params"].items():
            labels[index] = _label(name, keys, params if isinstance(params, dict) else {})
    return labels


def _differing_keys(cell: pd.DataFrame) -> set[str]:
    """Params whose values differ between the configs of one table cell."""
    configs = [json.loads(k) for k in cell["config_key"].unique()]
    if len(configs) < 2:
        return set()
    keys = set().union(*configs)
    return {k for k in keys if len({c.get(k) for c in configs}) > 1}


def _label(name: str, keys: list[str], params: dict[str, str]) -> str:
    if not keys:
        return name
    differing = ", ".join(f"{k}={params.get(k, 'unset')}" for k in keys)
    return f"{name} [{differing}]"
