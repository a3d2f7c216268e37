"""Rich progress display: sweep (runs done / total), epochs and iterations of the current run."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressView:
    """Context manager; the sweep and trainer report into it. `enabled=False` shows nothing."""

    def __init__(self, console: Console | None = None, enabled: bool = True) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self._sweep = self._epochs = self._iters = None
        self._sweep_total = 0

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    @property
    def console(self) -> Console:
        return self.progress.console

    def start_sweep(self, total: int) -> None:
        self._sweep_total, self._running, self._failed = total, 0, 0
        self._sweep = self.progress.add_task("sweep", total=total, info="")

    def runs_running(self, count: int) -> None:
        """How many runs train at once (the Ray executor); shown beside the sweep's bar."""
        self._running = count
        self._sweep_info()

    def run_done(self, skipped: bool = False, failed: bool = False) -> None:
        if self._sweep is None:
            return
        if skipped:  # nothing was trained: shrink the total instead, so the ETA stays honest
            self._sweep_total -= 1
            self.progress.update(self._sweep, total=self._sweep_total)
        else:
            self.progress.advance(self._sweep)
        self._failed += failed
        self._sweep_info()

    def _sweep_info(self) -> None:
        parts = [f"{self._running} running"] if self._running else []
        parts += [f"{self._failed} failed"] if self._failed else []
        self.progress.update(self._sweep, info=", ".join(parts))

    def counter(self, description: str) -> Callable[[int, int], None]:
        """A `progress(done, total)` callback showing a bar, for work outside runs (data generation).
        The bar appears at the first call and goes when done == total: only live work is shown."""
        task = None

        def update(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = self.progress.add_task(description, total=total, info="")
            self.progress.update(task, completed=done, total=total)
            if done == total:
                self.progress.remove_task(task)
                task = None

        return update

    def note(self, text: str) -> None:
        """A line above the bars (e.g. what the sweep waits for)."""
        self.console.print(text, highlight=False, soft_wrap=True)

    def start_run(self, name: str, epochs: int, first_epoch: int = 0) -> None:
        self.end_run()
        self._epochs = self.progress.add_task(f"  {name}", total=epochs, completed=first_epoch, info="")

    def start_epoch(self, epoch: int, iterations: int) -> None:
        if self._iters is not None:
            self.progress.remove_task(self._iters)
        self._iters = self.progress.add_task(f"    epoch {epoch}", total=iterations, info="")

    def iterations_done(self, count: int, loss: float) -> None:
        """`count` more training steps; `loss` is the last one's."""
        self.progress.update(self._iters, advance=count, info=f"loss {loss:.4f}")

    def epoch_done(self, info: str) -> None:
        self.progress.update(self._epochs, advance=1, info=info)

    def end_run(self) -> None:
        for task in (self._iters, self._epochs):
            if task is not None:
                self.progress.remove_task(task)
        self._iters = self._epochs = None
