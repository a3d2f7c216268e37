"""Paired statistics over seeds (against SciPy on hand-made runs), the report's provenance
header, and the notes for methods with failed or missing runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rtrbench.provenance import COMMIT_TAG, VERSION_TAG
from rtrbench.reports.pairwise import pairwise_table, paired_difference
from rtrbench.reports.provenance import absent_runs, provenance, provenance_markdown
from rtrbench.reports.rows import finished_runs

# method -> length -> per-seed val mIoU (seed = position; None = no finished run)
VALUES = {
    "pce-gd": {0.0: [0.50, 0.55, 0.45, 0.52], 1.0: [0.60, 0.62, 0.58]},
    "grid-tr": {0.0: [0.56, 0.60, 0.50, 0.55], 1.0: [0.61, 0.60, 0.64]},
    "dense-gd": {0.0: [0.58, 0.57, None, 0.60], 1.0: [0.66]},
}


def frame(values=VALUES, failed=()) -> pd.DataFrame:
    rows = []
    for method, by_length in values.items():
        for length, seeds in by_length.items():
            for seed, miou in enumerate(seeds):
                if miou is None:
                    continue
                status = "FAILED" if (method, length, seed) in failed else "FINISHED"
                rows.append({
                    "method": method, "length": length, "seed": seed, "config_hash": f"{method}{length}{seed}",
                    "status": status, "val_miou": miou, "run_id": f"r-{method}-{length}-{seed}", "start_time": 1_767_225_600_000 + seed,
                    "supervision": "scribbles", "init_run_id": "", "parent_run_id": "p",
                    "params": {"method": method, "seed": str(seed), "length": str(length), "data.synth.seed": "0"},
                    "tags": {"device": "cpu", "dataset": "synth", VERSION_TAG: "0.1.0", COMMIT_TAG: "abc123"},
                })  # fmt: skip
    return pd.DataFrame(rows)


def test_paired_differences_match_scipy():
    table = pairwise_table(finished_runs(frame()))
    assert list(table.columns) == ["length", "method", "baseline", "mean_diff", "ci_low", "ci_high", "p_value", "n"]
    got = table.set_index(["length", "method", "baseline"])
    for length, method, baseline in [(0.0, "grid-tr", "pce-gd"), (0.0, "dense-gd", "pce-gd"), (1.0, "grid-tr", "pce-gd")]:
        a, b = VALUES[method][length], VALUES[baseline][length]
        pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
        x, y = np.array(pairs).T
        d = x - y
        low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        row = got.loc[(length, method, baseline)]
        assert row["n"] == len(d)
        assert row["mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
        assert row["p_value"] == pytest.approx(stats.ttest_rel(x, y).pvalue, rel=1e-9)


def test_each_row_meets_pce_and_the_best_other_row_once():
    table = pairwise_table(finished_runs(frame()))
    pairs = set(zip(table["length"], table["method"], table["baseline"]))
    # length 0, means: dense 0.583 > grid-tr 0.553 > pce 0.505
    assert {(m, b) for x, m, b in pairs if x == 0.0} == {
        ("pce-gd", "dense-gd"), ("grid-tr", "pce-gd"), ("grid-tr", "dense-gd"), ("dense-gd", "pce-gd"), ("dense-gd", "grid-tr"),
    }
    assert len(pairs) == len(table)
    # with two methods, PCE-GD is also grid-tr's best other row: compared once
    two = pairwise_table(finished_runs(frame({m: VALUES[m] for m in ("pce-gd", "grid-tr")})))
    assert sorted(zip(two["length"], two["method"], two["baseline"])) == [
        (0.0, "grid-tr", "pce-gd"), (0.0, "pce-gd", "grid-tr"), (1.0, "grid-tr", "pce-gd"), (1.0, "pce-gd", "grid-tr"),
    ]


def test_fewer_than_two_paired_seeds_give_nan_statistics():
    one = paired_difference(pd.Series({0: 0.7}), pd.Series({0: 0.6, 1: 0.5}))
    assert one["n"] == 1 and one["mean_diff"] == pytest.approx(0.1)
    assert all(np.isnan(one[k]) for k in ("ci_low", "ci_high", "p_value"))
    table = pairwise_table(finished_runs(frame()))
    dense1 = table[(table["length"] == 1.0) & (table["method"] == "dense-gd")]
    assert (dense1["n"] == 1).all() and dense1["ci_low"].isna().all()


def test_provenance_says_how_the_runs_were_made():
    runs = frame()
    info = provenance(runs, finished_runs(runs), [{"preset": "synth"}])
    assert info["preset"] == "synth" and info["seeds"] == "0, 1, 2, 3" and info["device"] == "cpu"
    assert info["rtrbench"] == "0.1.0 (commit abc123)"
    assert info["data"] == "synth (synthetic, seed=0 n_train=? n_val=? size=? classes=?)"
    assert info["trained"] == "2026-01-01 to 2026-01-01"
    text = provenance_markdown(info)
    assert text.splitlines()[0] == "- **preset**: synth" and len(text.splitlines()) == len(info)


def test_methods_with_failed_or_missing_runs_get_a_line():
    values = {**VALUES, "grid-gd": {0.0: [0.5, 0.51]}}
    runs = frame(values, failed={("grid-gd", 0.0, 1)})
    notes = absent_runs(runs, finished_runs(runs))
    assert "grid-gd: 1 failed run(s) not in the tables (len 0 seed 1)" in notes
    assert "grid-gd: no finished run at length 1" in notes
    assert not any(n.startswith(("pce-gd", "grid-tr", "dense-gd")) for n in notes)
