"""Table 1: final val mIoU, methods × scribble lengths (mean over seeds of finished runs)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.table import Table

MISSING = "—"


def miou_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean val mIoU over seeds per (method, length); NaN where no finished run exists.

    Where one (method, length, seed) has several finished runs (the config changed
    between sweeps), only the newest counts: older configs are never averaged in.
    """
    done = runs[(runs["status"] == "FINISHED") & runs["val_miou"].notna()]
    if done.empty:
        return pd.DataFrame()
    done = done.sort_values("start_time").drop_duplicates(["method", "length", "seed"], keep="last")
    table = done.pivot_table(index="method", columns="length", values="val_miou", aggfunc="mean")
    table.columns = [f"{c:g}" for c in table.columns]
    return table


def write_table(table: pd.DataFrame, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / "table.csv", out / "table.md"
    table.to_csv(csv, float_format="%.4f")
    md.write_text(table.to_markdown(floatfmt=".4f", missingval=MISSING) + "\n")
    return [csv, md]


def rich_table(table: pd.DataFrame, title: str) -> Table:
    view = Table(title=title)
    view.add_column("method")
    for column in table.columns:
        view.add_column(f"len {column}", justify="right")
    for method, row in table.iterrows():
        view.add_row(str(method), *(MISSING if pd.isna(v) else f"{v:.4f}" for v in row))
    return view
