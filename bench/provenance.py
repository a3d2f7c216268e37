"""What software trained a run: rtrbench's version and, in a git checkout, its commit."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

VERSION_TAG, COMMIT_TAG = "rtrbench.version", "rtrbench.git_commit"


@functools.cache
def software_tags() -> dict[str, str]:
    """Tags for every run; the commit only where the package runs from a git checkout
    (with "-dirty" when it has uncommitted changes)."""
    try:
        tags = {VERSION_TAG: metadata.version("rtrbench")}
    except metadata.PackageNotFoundError:
        tags = {VERSION_TAG: "unknown"}
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return tags
    if commit.returncode == 0:
        tags[COMMIT_TAG] = commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    return tags
