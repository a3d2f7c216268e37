"""How a report's runs were made: preset, data, seeds, software, devices, dates; and which
methods have failed or missing runs, so that none silently drops out of the tables."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from rtrbench.provenance import COMMIT_TAG, VERSION_TAG
from rtrbench.reports.table import length_label


def provenance(runs: pd.DataFrame, done: pd.DataFrame, sweeps: list[dict[str, str]]) -> dict[str, str]:
    """One line of text per item, from the finished runs shown (`done`) and their sweeps' params."""
    tags = pd.DataFrame(list(done["tags"])) if len(done) else pd.DataFrame()
    params = pd.DataFrame(list(done["params"])) if len(done) else pd.DataFrame()

    def values(frame: pd.DataFrame, key: str) -> str:
        found = sorted({str(v) for v in frame.get(key, pd.Series(dtype=str)).dropna() if str(v)})
        return ", ".join(found) or "not recorded"

    digest = values(params, "data.digest")
    if digest == "not recorded":  # the synthetic set: identified by its spec
        spec = sorted({_synth_spec(p) for p in done["params"]})
        digest = "synthetic, " + "; ".join(spec)
    started = pd.to_datetime(done["start_time"], unit="ms", utc=True) if len(done) else pd.Series(dtype="datetime64[ns, UTC]")
    return {
        "preset": ", ".join(sorted({s.get("preset", "") for s in sweeps} - {""})) or "not recorded",
        "data": f"{values(tags, 'dataset')} ({digest})",
        "seeds": ", ".join(map(str, sorted(done["seed"].unique()))) if len(done) else "none",
        "rtrbench": f"{values(tags, VERSION_TAG)} (commit {values(tags, COMMIT_TAG)})",
        "device": values(tags, "device"),
        "trained": f"{started.min():%Y-%m-%d} to {started.max():%Y-%m-%d}" if len(done) else "—",
        "report made": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
    }


def provenance_markdown(info: dict[str, str]) -> str:
    return "\n".join(f"- **{key}**: {value}" for key, value in info.items())


def absent_runs(runs: pd.DataFrame, done: pd.DataFrame) -> list[str]:
    """A line per method with failed runs or with lengths where others have results and it has none."""
    notes = []
    scribbled = done[~done["reference"]]
    lengths = sorted(scribbled["length"].unique())
    for method, of_method in runs.groupby("method"):
        failed = of_method[of_method["status"] == "FAILED"]
        if len(failed):
            where = ", ".join(f"len {length_label(l)} seed {s}" for l, s in sorted(zip(failed["length"], failed["seed"])))
            notes.append(f"{method}: {len(failed)} failed run(s) not in the tables ({where})")
        if method == "full" or (of_method["supervision"] == "full").all():
            continue
        have = set(done.loc[done["method"] == method, "length"])
        missing = [length_label(x) for x in lengths if x not in have]
        if missing:
            notes.append(f"{method}: no finished run at length {', '.join(missing)}")
    return notes


def _synth_spec(params: dict[str, str]) -> str:
    keys = ("seed", "n_train", "n_val", "size", "classes")
    return " ".join(f"{k}={params.get(f'data.synth.{k}', '?')}" for k in keys)
