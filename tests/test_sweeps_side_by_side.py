"""Three sweeps started at the same moment in three processes, on one new tracking store and
one runs folder, each fine-tuning a different method from the same PCE-GD run: the store is
created once (no migration race), the PCE-GD run is trained once, by one process, into one
MLflow run, while the others wait for it and then fine-tune from its checkpoint."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.cli_helpers import runs_of

pytestmark = pytest.mark.slow

# Imports everything, signals that it is ready, waits for the start signal, then runs the CLI:
# the three sweeps reach the new store within milliseconds of each other.
START_TOGETHER = """
import sys, time
from pathlib import Path
import mlflow.store.tracking.sqlalchemy_store
from rtrbench.cli import app
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.001)
app(sys.argv[3:], prog_name="rtrbench")
"""


def test_three_sweeps_share_a_new_store_and_their_starting_run(tmp_path):
    go, ready = tmp_path / "go", [tmp_path / f"ready-{m}" for m in ("grid-gd", "grid-tr", "dense-gd")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", START_TOGETHER, str(r), str(go), "run", "--preset", "smoke",
             "--methods", r.name.removeprefix("ready-"), "--lengths", "1", "--seeds", "0", "--epochs", "2", "--threads", "1", "--quiet"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for r in ready
    ]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a sweep did not start"
        time.sleep(0.01)
    go.touch()
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(outputs)

    _, runs = runs_of(tmp_path)
    names = sorted(r.info.run_name for r in runs)
    assert names == ["dense-gd/len1/seed0", "grid-gd/len1/seed0", "grid-tr/len1/seed0", "pce-gd/len1/seed0"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    [pce] = [r for r in runs if r.info.run_name.startswith("pce-gd")]
    assert {r.data.tags.get("init_run_id") for r in runs if r is not pce} == {pce.info.run_id}
    waited = [out for out in outputs if "waiting pce-gd/len1/seed0: pid" in out]
    assert len(waited) == 2, "\n".join(outputs)  # the two sweeps that did not train it said so
