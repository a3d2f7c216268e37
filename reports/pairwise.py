"""Paired comparisons of table rows over seeds: which differences in Table 1 are real.

Runs of one seed share their data order, their initialisation and, for the fine-tuned
methods, their PCE-GD checkpoint, so two rows are compared seed by seed: the mean of the
per-seed differences, its two-sided 95 % t-interval and the paired t-test's p-value (SciPy).
Each row is compared with PCE-GD and with the best other row (highest mean) at each length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from rtrbench.reports.table import length_label

PAIRWISE_COLUMNS = ["length", "method", "baseline", "mean_diff", "ci_low", "ci_high", "p_value", "n"]
BASELINE = "pce-gd"
CONFIDENCE = 0.95


def paired_difference(a: pd.Series, b: pd.Series) -> dict[str, float]:
    """`a − b` over the seeds both have (Series indexed by seed): mean, t-interval, p, n.
    NaN statistics where fewer than two seeds pair up."""
    both = a.index.intersection(b.index)
    diffs = (a[both] - b[both]).to_numpy(float)
    n = len(diffs)
    out = {"mean_diff": diffs.mean() if n else np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n": n}
    if n >= 2:
        sem = diffs.std(ddof=1) / np.sqrt(n)
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sem
        out.update(ci_low=out["mean_diff"] - half, ci_high=out["mean_diff"] + half)
        # the paired t-test; from t itself, since scipy.stats.ttest_rel warns when every seed
        # differs by the same amount (sem 0: t infinite, p = 0)
        t = out["mean_diff"] / sem if sem > 0 else np.copysign(np.inf, out["mean_diff"]) if out["mean_diff"] else np.nan
        out["p_value"] = 2 * stats.t.sf(abs(t), n - 1)
    return out


def per_seed(done: pd.DataFrame) -> dict[float, dict[str, pd.Series]]:
    """Final val mIoU per length, row and seed, the full-supervision reference left out."""
    compared = done[~done["reference"]]
    return {
        length: {row: cell.set_index("seed")["val_miou"] for row, cell in at_length.groupby("row")}
        for length, at_length in compared.groupby("length")
    }


def pairwise_table(done: pd.DataFrame) -> pd.DataFrame:
    """For each length, each row against PCE-GD and against the best other row (once where
    they are the same row); columns PAIRWISE_COLUMNS."""
    records = []
    for length, rows in per_seed(done).items():
        means = {row: values.mean() for row, values in rows.items()}
        for row, values in rows.items():
            others = {r: m for r, m in means.items() if r != row}
            baselines = [BASELINE] if BASELINE in others else []
            if others:
                best = max(others, key=others.get)
                baselines += [best] if best not in baselines else []
            for baseline in baselines:
                records.append({"length": length, "method": row, "baseline": baseline, **paired_difference(values, rows[baseline])})
    return pd.DataFrame.from_records(records, columns=PAIRWISE_COLUMNS)


def leaders(done: pd.DataFrame) -> dict[float, tuple[set[str], bool]]:
    """Per length, the leading rows and whether the lead is clear.

    Clear: the paired interval of the best row (highest mean) against the runner-up (second
    highest) excludes 0; the best row then leads alone. Otherwise the best row and every row
    whose interval against it includes 0, or that pairs up with it on fewer than two seeds,
    are tied leaders.
    """
    out = {}
    for length, rows in per_seed(done).items():
        ranked = sorted(rows, key=lambda row: rows[row].mean(), reverse=True)
        best = ranked[0]
        if len(ranked) > 1 and paired_difference(rows[best], rows[ranked[1]])["ci_low"] > 0:
            out[length] = ({best}, True)
            continue
        tied = {row for row in ranked[1:] if not paired_difference(rows[best], rows[row])["ci_low"] > 0}
        out[length] = ({best, *tied}, False)
    return out


def write_pairwise(frame: pd.DataFrame, out: Path, header: str = "") -> list[Path]:
    csv, md = out / "pairwise.csv", out / "pairwise.md"
    frame.to_csv(csv, index=False, float_format="%.6f")
    md.write_text((header + "\n\n" if header else "") + pairwise_markdown(frame))
    return [csv, md]


def pairwise_markdown(frame: pd.DataFrame) -> str:
    header = "| length | method | baseline | mean diff | 95 % CI | p | n |\n|---:|---|---|---:|---:|---:|---:|\n"
    lines = [
        f"| {length_label(r.length)} | {r.method} | {r.baseline} | {_num(r.mean_diff, '+.4f')} | "
        f"{_interval(r.ci_low, r.ci_high)} | {_num(r.p_value, '.3g')} | {int(r.n)} |"
        for r in frame.itertuples()
    ]
    legend = (
        "\nval mIoU of `method` minus `baseline`, paired by seed: mean of the per-seed differences, "
        "two-sided 95 % t-interval and paired t-test p-value; — where fewer than two seeds pair up.\n"
    )
    return header + "\n".join(lines) + "\n" + legend


def _num(value: float, spec: str) -> str:
    return "—" if pd.isna(value) else format(value, spec)


def _interval(low: float, high: float) -> str:
    return "—" if pd.isna(low) else f"[{low:+.4f}, {high:+.4f}]"

