"""Table 1 from MLflow runs written by hand (same tags/params schema as the trainer), checked
against numpy computed here: mean, sample std, seed counts, bold best, missing cells,
separate rows for differing configs, the full-supervision row, reruns and parent runs."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from rtrbench.reports.rows import FULL_ROW
from rtrbench.reports.mlflow_runs import runs_frame
from rtrbench.reports.pairwise import leaders
from rtrbench.reports.rows import finished_runs
from rtrbench.reports.table import miou_table, rich_table, to_csv_frame, to_latex, to_markdown, write_table
from rtrbench.tracking import Tracking

EXPERIMENT = "hand-made"


def base_params(method: str, length: float, seed: int) -> dict[str, str]:
    return {
        "method": method, "length": f"{length:g}", "seed": str(seed), "train.lr": "0.01", "train.epochs": "2",
        "params.nu": "1.0" if method != "pce-gd" else "0.0", "data.name": "synth",
    }  # fmt: skip


def log_run(client, experiment_id, method, length, seed, miou, *, status="FINISHED", tags=None, **overrides) -> str:
    params = {**base_params(method, length, seed), **overrides}
    config_hash = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    run = client.create_run(experiment_id, run_name=f"{method}/len{length:g}/seed{seed}")
    run_id = run.info.run_id
    for key, value in {"method": method, "length": f"{length:g}", "seed": str(seed), "dataset": "synth", "config_hash": config_hash, **(tags or {})}.items():
        client.set_tag(run_id, key, value)
    for key, value in params.items():
        client.log_param(run_id, key, value)
    client.log_metric(run_id, "val_miou", miou - 0.2, step=1)  # an earlier evaluation: must not count
    client.log_metric(run_id, "val_miou", miou, step=2)
    client.set_terminated(run_id, status=status)
    time.sleep(0.002)  # distinct start times: "newest" is well defined
    return run_id


# method -> length -> per-seed final mIoU
KNOWN = {
    "pce-gd": {0.0: [0.50, 0.52, 0.47], 1.0: [0.60, 0.63, 0.61]},
    "grid-tr": {0.0: [0.55, 0.58, 0.56], 1.0: [0.66, 0.64]},  # length 1 has two seeds only
    "dense-gd": {0.0: [0.53]},  # one seed; length 1 missing
}
LR_VARIANT = [0.70, 0.68]  # grid-tr at length 1 with another learning rate
FULL = [0.72, 0.74]


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    tracking = Tracking(uri, EXPERIMENT)
    client, eid = tracking.client, tracking.experiment_id
    parent = client.create_run(eid, run_name="sweep", tags={"rtrbench.sweep": "1"})  # no config hash
    client.log_metric(parent.info.run_id, "val_miou", 0.99)
    client.set_terminated(parent.info.run_id)
    child = {"mlflow.parentRunId": parent.info.run_id}
    for method, by_length in KNOWN.items():
        for length, values in by_length.items():
            for seed, miou in enumerate(values):
                log_run(client, eid, method, length, seed, miou, tags=child)
    for seed, miou in enumerate(LR_VARIANT):
        log_run(client, eid, "grid-tr", 1.0, seed, miou, **{"train.lr": "0.0003"})
    # A rerun of pce-gd len 0 seed 0 (same config hash, newer) replaces the first value.
    log_run(client, eid, "pce-gd", 0.0, 0, 0.49)
    # Not finished: never counted.
    log_run(client, eid, "pce-gd", 1.0, 3, 0.10, status="FAILED")
    log_run(client, eid, "dense-gd", 1.0, 0, 0.11, status="RUNNING")
    # Full supervision: one new-style run per seed (tagged), and an old untagged run at another
    # length with the same seed as a newer one (the newer counts).
    log_run(client, eid, "full", 0.0, 0, 0.10)
    for seed, miou in enumerate(FULL):
        log_run(client, eid, "full", 1.0, seed, miou, tags={"supervision": "full"})
    return tracking


@pytest.fixture(scope="module")
def table(tracking):
    return miou_table(runs_frame(tracking))


@pytest.fixture(scope="module")
def marks(tracking):
    return leaders(finished_runs(runs_frame(tracking)))


def expected(values):
    values = np.array(values)
    return values.mean(), (values.std(ddof=1) if len(values) > 1 else np.nan), len(values)


def cell(table, row, length):
    return tuple(table.loc[row, (length, stat)] for stat in ("mean", "std", "n"))


def test_mean_std_and_seed_count_match_numpy(table):
    pce0 = [0.49, *KNOWN["pce-gd"][0.0][1:]]  # the rerun replaced seed 0
    checks = {
        ("pce-gd", 0.0): pce0, ("pce-gd", 1.0): KNOWN["pce-gd"][1.0],
        ("grid-tr [train.lr=0.01]", 0.0): KNOWN["grid-tr"][0.0], ("grid-tr [train.lr=0.01]", 1.0): KNOWN["grid-tr"][1.0],
        ("grid-tr [train.lr=0.0003]", 1.0): LR_VARIANT, ("dense-gd", 0.0): KNOWN["dense-gd"][0.0],
    }  # fmt: skip
    for (row, length), values in checks.items():
        mean, std, n = cell(table, row, length)
        want_mean, want_std, want_n = expected(values)
        assert mean == pytest.approx(want_mean, abs=1e-12), (row, length)
        assert n == want_n
        assert (np.isnan(std) and np.isnan(want_std)) or std == pytest.approx(want_std, abs=1e-12), (row, length)


def test_differing_configs_are_separate_rows_named_by_the_differing_param(table):
    assert list(table.index) == ["pce-gd", "dense-gd", "grid-tr [train.lr=0.0003]", "grid-tr [train.lr=0.01]", FULL_ROW]
    assert cell(table, "grid-tr [train.lr=0.0003]", 0.0)[2] == 0  # that config never ran at length 0


def test_missing_cells_and_single_seeds_are_marked(table, marks):
    md = to_markdown(table, marks)
    dense = next(line for line in md.splitlines() if line.startswith("| dense-gd"))
    assert dense.split("|")[2].strip() == "0.5300 ± — (1) †"  # one seed: no interval, tied for best
    assert dense.split("|")[3].strip() == "—"  # only a RUNNING run at length 1
    assert np.isnan(cell(table, "dense-gd", 1.0)[0])


def test_a_clear_best_is_bold_tied_leaders_marked_and_the_reference_never(table, marks):
    md = to_markdown(table, marks).splitlines()
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]] for line in md if line.startswith("| ")}
    # length 1: 0.69 (lr 0.0003) against the runner-up 0.65 (lr 0.01), seeds 0 and 1 differ by
    # 0.04 both: an interval of one point that excludes 0: bold
    assert cells["grid-tr [train.lr=0.0003]"][1].startswith("**")
    # length 0: the best 0.563 (lr 0.01) against the runner-up dense-gd, which has one seed:
    # no interval, a tie; pce-gd is below it on every seed (interval excludes 0): not a leader
    assert cells["grid-tr [train.lr=0.01]"][0].endswith(" †") and cells["dense-gd"][0].endswith(" †")
    assert "†" not in cells["pce-gd"][0] and "**" not in "".join(cells["pce-gd"] + cells[FULL_ROW])  # the reference (0.73) is higher, yet unmarked
    assert sum(c.count("**") for row in cells.values() for c in row) == 2
    tex = to_latex(table, marks)
    assert tex.count(r"\textbf") == 1 and tex.count(r"$^\dagger$") == 2
    assert r"\toprule" in tex and r"\bottomrule" in tex and tex.count(r"\midrule") == 2
    assert r"\textbf{0.690 $\pm$ 0.014 (2)}" in tex


def test_full_supervision_row_holds_its_one_value_at_every_length(table):
    want_mean, want_std, want_n = expected(FULL)  # the older untagged run of seed 0 is replaced
    for length in (0.0, 1.0):
        mean, std, n = cell(table, FULL_ROW, length)
        assert (mean, n) == (pytest.approx(want_mean), want_n) and std == pytest.approx(want_std)


def test_csv_has_separate_mean_std_n_columns(table, marks, tmp_path):
    write_table(table, marks, tmp_path)
    csv = pd.read_csv(tmp_path / "table.csv", index_col=0)
    assert list(csv.columns) == ["0 mean", "0 std", "0 n", "1 mean", "1 std", "1 n"]
    assert csv.loc["pce-gd", "1 mean"] == pytest.approx(np.mean(KNOWN["pce-gd"][1.0]), abs=1e-6)
    assert csv.loc["dense-gd", "1 n"] == 0 and np.isnan(csv.loc["dense-gd", "1 mean"])
    assert to_csv_frame(table).shape == csv.shape
    assert {p.name for p in tmp_path.iterdir()} == {"table.csv", "table.md", "table.tex"}


def test_rich_table_shows_every_row(table, marks):
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(rich_table(table, marks, "t"))
    text = console.export_text()
    assert all(row in text for row in table.index) and "—" in text


def test_no_finished_runs_give_an_empty_table():
    frame = pd.DataFrame(
        [{"method": "pce-gd", "length": 1.0, "seed": 0, "config_hash": "a", "status": "FAILED", "val_miou": 0.5,
          "run_id": "r", "start_time": 0, "supervision": "", "params": {}}]
    )  # fmt: skip
    assert miou_table(frame).empty


def test_sweep_parent_runs_are_left_out_and_children_name_them(tracking):
    frame = runs_frame(tracking)
    parent = tracking.client.search_runs([tracking.experiment_id], filter_string="tags.`rtrbench.sweep` = '1'")[0]
    assert parent.info.run_id not in set(frame["run_id"])
    children = frame[frame["parent_run_id"] == parent.info.run_id]
    assert len(children) == sum(len(v) for by_length in KNOWN.values() for v in by_length.values())


def test_report_of_runs_without_previews_or_trimap_notes_what_it_left_out(tracking, tmp_path):
    from rich.console import Console

    from rtrbench.progress import ProgressView
    from rtrbench.reports.build import make_report

    report = make_report(tracking, tmp_path, 0.5, ProgressView(Console(quiet=True), enabled=False))
    assert any("left out of the qualitative grid (no preview artifacts): pce-gd" in note for note in report.notes)
    assert any("no qualitative grid" in note for note in report.notes)
    assert any("scribble length 0.5" in note for note in report.notes)
    names = {p.name for p in report.files}
    assert {"table.md", "fig5_miou_vs_length.png", "timing.csv", "index.html"} <= names
    assert not {"qualitative.png", "fig6_trimap.png"} & names  # nothing to draw, nothing written
    assert "no preview artifacts" in (tmp_path / "index.html").read_text()
