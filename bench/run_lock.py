"""One process at a time per run: a lock file beside the run folder, held while the run is
looked up, trained and marked in MLflow.

A second sweep (another terminal, another Ray task) that needs the run waits for the lock and
then finds the run finished, so each config is trained once and has one MLflow run. The lock
is an OS file lock (``filelock``): it is released when its process dies, however it dies, so
a dead owner's lock is taken over at once. A sidecar file names the owner, for the message of
whoever waits.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


@contextmanager
def owned_run(runs_dir: Path, config_hash: str, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold the run's lock; if another process holds it, call `on_wait(owner)` and wait."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(runs_dir / f"{config_hash}.lock")
    owner_file = runs_dir / f"{config_hash}.owner"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        on_wait(_describe(owner_file))
        lock.acquire()
    try:
        owner_file.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        yield
    finally:
        owner_file.unlink(missing_ok=True)
        lock.release()


def _describe(owner_file: Path) -> str:
    try:
        owner = json.loads(owner_file.read_text())
        return f"pid {owner['pid']} on {owner['host']}"
    except (OSError, ValueError, KeyError):
        return "another process"  # it took the lock a moment ago and has not written its name yet
