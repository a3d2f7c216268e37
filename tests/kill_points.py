"""Run a Grid-TR training in this process and SIGKILL it at a chosen point (see
tests/test_stage_a_kills.py): ``python -m tests.kill_points ROOT WORKDIR POINT``.

POINT ``pass<E>-partial``: while the stage-A pass of epoch E is being written, after a torn
(0-byte) proposal file; ``pass<E>-committed``: right after that pass is published, before
the epoch's checkpoint."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import rtrbench.methods.grid_tr as grid_tr
from rtrbench.methods.solvers.proposal_passes import ProposalPasses


def arm(point: str) -> None:
    name, _, when = point.partition("-")
    epoch = int(name.removeprefix("pass"))
    if when == "partial":
        write, written = grid_tr.write_label_png, []

        def torn_write(path: Path, labels) -> None:
            if path.parent.name.startswith(f".pass-{epoch:04d}"):
                if len(written) == 3:
                    path.write_bytes(b"")  # what a kill inside the PNG writer leaves
                    os.kill(os.getpid(), signal.SIGKILL)
                written.append(path)
            write(path, labels)

        grid_tr.write_label_png = torn_write
    else:
        commit = ProposalPasses.commit

        def commit_then_die(self, folder, pass_epoch, metrics) -> None:
            commit(self, folder, pass_epoch, metrics)
            if pass_epoch == epoch:
                os.kill(os.getpid(), signal.SIGKILL)

        ProposalPasses.commit = commit_then_die


if __name__ == "__main__":
    from tests.test_stage_a_kills import train

    root, workdir, point = sys.argv[1:]
    arm(point)
    train(Path(root), Path(workdir))
    sys.exit("the kill point was never reached")
