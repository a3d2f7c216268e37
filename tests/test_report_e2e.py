"""End to end: the shared smoke sweep (every method, two lengths, two seeds), then
`rtrbench report` from another folder through the tracking URI alone (no local run folders)."""

from __future__ import annotations

import base64
import json
from importlib import metadata
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from rtrbench.cli import app

pytestmark = pytest.mark.slow

METHODS = ("pce-gd", "dense-gd", "grid-gd", "grid-tr", "soft-sl")


@pytest.fixture(scope="module")
def sweep(smoke_sweep) -> str:
    return f"sqlite:///{smoke_sweep / 'mlflow.db'}"


def report(cwd: Path, uri: str, *args: str):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        return CliRunner().invoke(app, ["report", "--tracking-uri", uri, *args])


@pytest.fixture(scope="module")
def reported(sweep, tmp_path_factory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("elsewhere")  # no mlflow.db, no runs/ here
    result = report(cwd, sweep)
    assert result.exit_code == 0, result.output
    return cwd / "reports" / "rtrbench-smoke", result.output


def test_every_run_logs_the_preview_artifacts(sweep):
    client = MlflowClient(tracking_uri=sweep)
    runs = client.search_runs([client.get_experiment_by_name("rtrbench-smoke").experiment_id])
    runs = [r for r in runs if "config_hash" in r.data.tags]  # not the sweep's parent run
    names = {r.info.run_id: {a.path for a in client.list_artifacts(r.info.run_id, "preview")} for r in runs}
    ids = sorted({Path(p).name.removesuffix("_pred.png") for p in next(iter(names.values())) if p.endswith("_pred.png")})
    assert len(ids) == 4
    for files in names.values():  # the same images for every run
        assert files == {f"preview/{i}_{s}" for i in ids for s in ("image.jpg", "gt.png", "pred.png")}


def test_all_files_are_written(reported):
    out, _ = reported
    stems = ["fig5_miou_vs_length", "fig6_trimap", "fig6_trimap_panels", "qualitative"]
    expected = {"table.md", "table.csv", "table.tex", "timing.md", "timing.csv", "index.html"}
    expected |= {"pairwise.csv", "pairwise.md", "provenance.json"}
    expected |= {f"{stem}.{fmt}" for stem in stems for fmt in ("png", "svg")}
    assert expected <= {p.name for p in out.iterdir()}
    assert all((out / name).stat().st_size > 0 for name in expected)


def test_table_covers_every_method_with_two_seeds(reported):
    out, stdout = reported
    table = pd.read_csv(out / "table.csv", index_col=0)
    assert list(table.index) == [*METHODS, "full supervision"]
    assert (table[["0 n", "1 n"]] == 2).all().all()
    assert table.filter(like="mean").stack().between(0, 1).all()
    assert table.filter(like="std").notna().all().all()
    assert all(method in stdout for method in METHODS)
    tex = (out / "table.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex
    assert tex.count(r"\textbf") + tex.count(r"$^\dagger$") >= 2  # a leader (or tied leaders) per length


def test_the_report_says_how_its_runs_were_made(reported):
    out, _ = reported
    info = json.loads((out / "provenance.json").read_text())
    assert info["preset"] == "smoke" and info["seeds"] == "0, 1" and info["device"] == "cpu"
    assert info["rtrbench"].startswith(metadata.version("rtrbench"))
    assert info["data"].startswith("synth (synthetic, seed=0 n_train=24 n_val=8 size=64 classes=4")
    for name in ("table.md", "pairwise.md"):  # the header opens the tables' files
        assert (out / name).read_text().startswith("- **preset**: smoke")
    assert "<b>preset</b>: smoke" in (out / "index.html").read_text()
    pairs = pd.read_csv(out / "pairwise.csv")
    assert set(pairs["method"]) == set(METHODS) and (pairs["n"] == 2).all()


def test_timing_compares_with_pce_and_gives_the_stage_a_share(reported):
    out, _ = reported
    timing = pd.read_csv(out / "timing.csv")
    assert set(timing["method"]) == {*METHODS, "full supervision"}
    pce = timing[timing["method"] == "pce-gd"]
    assert pce["× pce-gd"].tolist() == pytest.approx([1.0, 1.0]) and (pce["seeds"] == 2).all()
    tr = timing[timing["method"] == "grid-tr"]
    assert len(tr) == 2 and tr["stage-A share"].between(0, 1, inclusive="neither").all()
    assert timing.loc[timing["method"] != "grid-tr", "stage-A share"].isna().all()


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        self.refs += [value for name, value in attrs if name in ("src", "href") and value]


def test_index_html_references_only_existing_files_or_valid_data(reported):
    out, _ = reported
    parser = _References()
    parser.feed((out / "index.html").read_text(encoding="utf-8"))
    assert parser.scripts == 0
    assert sum(ref.startswith("data:image/png;base64,") for ref in parser.refs) == 4  # fig 5, fig 6 ×2, the grid
    for ref in parser.refs:
        assert not ref.startswith(("http:", "https:", "//")), ref
        if ref.startswith("data:"):
            data = base64.b64decode(ref.split(",", 1)[1], validate=True)  # raises on a corrupt URI
            assert data.startswith(b"\x89PNG"), ref[:40]
        else:
            assert (out / ref).is_file(), ref
    assert any(ref.endswith(".svg") for ref in parser.refs) and "table.tex" in parser.refs


def test_missing_length_falls_back_with_a_note(sweep, tmp_path):
    result = report(tmp_path, sweep, "--length", "0.5", "--out", "other")
    assert result.exit_code == 0, result.output
    assert "no finished runs at scribble length 0.5" in result.output and "use 1" in result.output
    assert "length 1" in (tmp_path / "other" / "index.html").read_text()


def test_unknown_experiment_is_one_line_and_creates_nothing(sweep, tmp_path):
    result = report(tmp_path, sweep, "--experiment", "nope")
    assert result.exit_code == 2 and "experiment 'nope' not found" in result.output
    client = MlflowClient(tracking_uri=sweep)
    assert client.get_experiment_by_name("nope") is None

