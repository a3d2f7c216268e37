"""Shared fixtures: a tiny hand-made PASCAL-layout tree (independent of the synthetic generator)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rtrbench.datasets.labelio import write_label_png


def make_pascal_tree(root: Path, n_train: int = 6, n_val: int = 3, size: tuple[int, int] = (40, 48), classes: int = 3) -> Path:
    """Images with a bright square (class 1) and a dark bar (class 2) on grey; a scribble per region."""
    rng = np.random.default_rng(0)
    h, w = size
    (root / "ImageSets" / "SegmentationAug").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(["background", "square", "bar", "extra"][:classes]) + "\n")
    splits = {"train": [f"tr{i}" for i in range(n_train)], "val": [f"va{i}" for i in range(n_val)]}
    for split, ids in splits.items():
        (root / "ImageSets" / "SegmentationAug" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for image_id in ids:
            gt = np.zeros((h, w), np.uint8)
            top, left = rng.integers(2, h // 2), rng.integers(2, w // 2)
            gt[top : top + h // 3, left : left + w // 3] = 1
            gt[h - 8 : h - 4, 4 : w - 4] = 2
            image = np.stack([np.where(gt == 1, 220, np.where(gt == 2, 30, 128))] * 3, -1).astype(np.uint8)
            image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
            (root / "JPEGImages").mkdir(exist_ok=True)
            Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
            write_label_png(root / "SegmentationClassAug" / f"{image_id}.png", gt)
            if split == "val":
                write_label_png(root / "SegmentationClass" / f"{image_id}.png", gt)
            else:
                scribble = np.full((h, w), 255, np.uint8)
                scribble[top + h // 6, left + 1 : left + w // 3 - 1] = 1
                scribble[h - 6, 6 : w - 6] = 2
                scribble[1, 2 : w - 2] = 0
                for name in ("pascal_2012_scribble", "pascal_2012_scribble0", "pascal_2012_scribble0.3", "pascal_2012_scribble0.5", "pascal_2012_scribble0.8"):
                    write_label_png(root / name / f"{image_id}.png", scribble)
    return root


@pytest.fixture
def pascal_tree(tmp_path: Path) -> Path:
    return make_pascal_tree(tmp_path / "voc")


# Every method at two lengths and two seeds on the smoke preset: the one sweep that the
# command-line, report, resume and Ray tests share (training it once per test session), run
# as Ray tasks of one CPU on the session's cluster, two at a time. One thread per run: runs
# elsewhere can be compared with it bit for bit (the thread count changes the order of
# floating-point sums); the resume test does so with a run of the serial executor.
SMOKE_SWEEP = (
    "run", "--preset", "smoke", "--methods", "all", "--lengths", "0,1", "--seeds", "0,1",
    "--executor", "ray", "--cpus-per-run", "1", "--quiet",
)  # fmt: skip


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory, ray_cluster) -> Path:
    """The folder in which SMOKE_SWEEP ran (its mlflow.db, runs/ and data/)."""
    from tests.cli_helpers import rtrbench

    cwd = tmp_path_factory.mktemp("smoke-sweep")
    result = rtrbench(cwd, *SMOKE_SWEEP)
    assert result.returncode == 0, result.stdout + result.stderr
    return cwd


@dataclass(frozen=True)
class Server:
    uri: str
    artifacts: Path  # where it stores the artifacts logged through it


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on a free local port, with a SQLite backend and an artifact folder."""
    cwd = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{cwd / 'server.db'}",
        "--artifacts-destination", str(cwd / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=1)
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "the MLflow server did not start"
            time.sleep(0.2)
    yield Server(uri, cwd / "artifacts")
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster of 2 CPUs for the test session (the sweeps use it rather than
    starting their own)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
