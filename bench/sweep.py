"""A sweep: methods × scribble lengths × seeds, each run tracked, resumable and isolated.

Runs are ordered so that a method's `init_from` dependency (same length and seed) runs
first. A finished run with the same config hash is skipped; an interrupted one resumes
from its last checkpoint into the same MLflow run. A failing run is marked FAILED with
its one-line error and the sweep goes on. The runs a sweep trains are grouped under one
parent MLflow run. `RunJob` is one run as a process trains it; `Sweep` runs the jobs one
after another here, `rtrbench.ray_sweep.RaySweep` as Ray tasks.
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from rtrbench.config import Preset, RunConfig, resolve_run_config
from rtrbench.distributed import RankJob, train_distributed
from rtrbench.errors import ConfigError, RtrbenchError, one_line
from rtrbench.progress import ProgressView
from rtrbench.provenance import software_tags
from rtrbench.registry import get_method
from rtrbench.run_lock import owned_run
from rtrbench.tracking import PARENT_TAG, RunLogger, RunRecord, Tracking
from rtrbench.trainer import LAST_CHECKPOINT, RunContext, Trainer, resolve_device


FULL_GT_LENGTH = 1.0  # the one length at which methods that ignore scribbles are run


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: what a scheduler or `taskset` gave
    it), not every CPU of the machine."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class SweepSpec:
    preset: Preset
    methods: tuple[str, ...]
    lengths: tuple[float, ...]
    seeds: tuple[int, ...]
    overrides: dict[str, Any] = field(default_factory=dict)
    preset_name: str = ""

    def describe(self) -> dict[str, str]:
        """What the parent MLflow run records about the sweep."""
        return {
            "preset": self.preset_name,
            "methods": ",".join(self.methods),
            "lengths": ",".join(f"{x:g}" for x in self.lengths),
            "seeds": ",".join(map(str, self.seeds)),
            **{f"override.{k}": str(v) for k, v in self.overrides.items()},
        }


@dataclass(frozen=True)
class SweepRuntime:
    """How a sweep's runs execute (nothing here changes a result)."""

    device: str = "auto"
    runs_dir: Path = Path("runs")
    rerun: bool = False
    threads: int = 1  # CPUs each run may use
    # With `rerun`: MLflow runs started before this moment (ms since the epoch) are the ones
    # to train again; a later one is this sweep's own, resumed if its process died.
    started_ms: int = 0
    nproc: int = 1  # processes training each run together (DDP; `rtrbench.distributed`)


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # finished / skipped / failed
    run_id: str | None = None
    miou: float | None = None
    seconds: float = 0.0
    error: str = ""


def plan(spec: SweepSpec) -> list[RunConfig]:
    """Resolved configs in execution order (dependencies first), method params validated.

    A method that fine-tunes from another (`init_from`) pulls that method's run of the same
    length and seed into the sweep, unless the config says `init = "scratch"`. A method that
    does not use scribbles runs once per seed, at length 1, whatever the sweep's lengths.
    """
    configs: list[RunConfig] = []
    digests: dict[Path, str] = {}  # each data root and weights file is read once per sweep
    for seed in spec.seeds:
        for length in spec.lengths:
            for name in spec.methods:
                run_length = length if get_method(name).uses_scribbles else FULL_GT_LENGTH
                _add_with_dependencies(configs, spec, name, run_length, seed, (), digests)
    return configs


def _add_with_dependencies(
    configs: list[RunConfig], spec: SweepSpec, name: str, length: float, seed: int, chain: tuple[str, ...], digests: dict
) -> None:
    if name in chain:
        raise ConfigError(f"method dependency cycle: {' -> '.join(chain + (name,))}")
    cfg = _validate_params(resolve_run_config(spec.preset, name, length, seed, spec.overrides, digests))
    if get_method(name).init_from is None:
        cfg = cfg.model_copy(update={"init": "method"})  # `init` means nothing here: same run either way
    dep = dependency_of(cfg)
    if dep:
        _add_with_dependencies(configs, spec, dep, length, seed, chain + (name,), digests)
    if all(c.config_hash() != cfg.config_hash() for c in configs):
        configs.append(cfg)


def dependency_of(cfg: RunConfig) -> str | None:
    """The method whose checkpoint this run starts from, if any."""
    return None if cfg.init == "scratch" else get_method(cfg.method).init_from


def _validate_params(cfg: RunConfig) -> RunConfig:
    params_model = get_method(cfg.method).Params
    try:
        params = params_model.model_validate(cfg.params).model_dump(mode="json")
    except Exception as exc:
        raise ConfigError(f"{cfg.run_name}: invalid method parameters ({one_line(exc)})") from None
    return cfg.model_copy(update={"params": params})


class Sweep:
    """Runs a sweep's configs one after another in this process."""

    def __init__(self, tracking: Tracking, runtime: SweepRuntime, progress: ProgressView) -> None:
        self.tracking, self.runtime, self.progress = tracking, runtime, progress
        self.outcomes: dict[str, Outcome] = {}  # by config hash
        self._parent: RunLogger | None = None

    def run(self, configs: list[RunConfig], description: dict[str, str], data_roots: dict[str, Path]) -> list[Outcome]:
        """Train `configs` in order, reading the data roots `check_inputs` gave (by config hash);
        `description` goes to the parent run (made once one trains)."""
        self._planned, self._description = configs, description
        self.progress.start_sweep(len(configs))
        results: list[Outcome] = []
        try:
            for cfg in configs:
                job = RunJob(cfg, self.dependency(cfg), data_roots[cfg.config_hash()], self.runtime)
                outcome = job.run(self.tracking, self._parent_id, self.progress, self._dependency_outcome(job))
                self.record(cfg, outcome)
                results.append(outcome)
        except KeyboardInterrupt:
            self.finish_parent(results, "KILLED")
            raise
        self.finish_parent(results)
        return results

    def dependency(self, cfg: RunConfig) -> RunConfig | None:
        """The planned run whose checkpoint `cfg` starts from, if any (same length and seed)."""
        dep = dependency_of(cfg)
        if dep is None:
            return None
        for planned in self._planned:
            if planned.method == dep and planned.length == cfg.length and planned.seed == cfg.seed:
                return planned
        raise RtrbenchError(f"{cfg.run_name}: no {dep} run planned for it")

    def _dependency_outcome(self, job: RunJob) -> Outcome | None:
        return None if job.dependency is None else self.outcomes.get(job.dependency.config_hash())

    def record(self, cfg: RunConfig, outcome: Outcome) -> None:
        """Keep and print a run's outcome; skipped runs leave the bar's total, so the ETA
        reflects only the training left."""
        self.outcomes[cfg.config_hash()] = outcome
        self.progress.run_done(skipped=outcome.status == "skipped", failed=outcome.status == "failed")
        style = {"finished": "green", "skipped": "dim", "failed": "red"}[outcome.status]
        miou = f" val mIoU {outcome.miou:.4f}" if outcome.miou is not None else ""
        error = f": {escape(outcome.error)}" if outcome.error else ""
        self.progress.note(f"[{style}]{outcome.status:>8}[/] {escape(outcome.name)}{miou}{error}")

    def _parent_id(self) -> str:
        """The sweep's parent MLflow run, made when the first run trains."""
        if self._parent is None:
            self._parent = self.tracking.start_sweep(self._description)
        return self._parent.run_id

    def finish_parent(self, results: list[Outcome], status: str | None = None) -> None:
        """Close the parent run: `status`, or FAILED if a run failed, else FINISHED."""
        if status is None:
            status = "FAILED" if any(o.status == "failed" for o in results) else "FINISHED"
        if self._parent is not None:
            counts = {f"runs_{s}": sum(o.status == s for o in results) for s in ("finished", "skipped", "failed")}
            self._parent.log_metrics(counts, step=0)
            self._parent.finish(status)


@dataclass(frozen=True)
class RunJob:
    """One run of a sweep, as a process trains it (picklable: the Ray executor ships it)."""

    cfg: RunConfig
    dependency: RunConfig | None  # the run whose checkpoint it starts from
    data_root: Path
    runtime: SweepRuntime

    def run(self, tracking: Tracking, parent_id: Callable[[], str], progress: ProgressView, dependency: Outcome | None) -> Outcome:
        """Train the run or find it finished, owning its folder meanwhile: a run another process
        is training is waited for. `parent_id()` gives the sweep's parent MLflow run."""
        cfg = self.cfg

        def waiting(owner: str) -> None:
            progress.note(f"[yellow] waiting[/] {cfg.run_name}: {owner} is training it")

        with owned_run(self.runtime.runs_dir, cfg.config_hash(), waiting):
            return self._train_or_skip(tracking, parent_id, progress, dependency)

    def _train_or_skip(self, tracking: Tracking, parent_id: Callable[[], str], progress: ProgressView, dependency: Outcome | None) -> Outcome:
        cfg, runtime = self.cfg, self.runtime
        records = tracking.find(cfg.config_hash())
        if runtime.rerun:  # the runs before this sweep are history; a later one is its own
            for record in records:
                if record.start_time < runtime.started_ms and record.status == "RUNNING":
                    tracking.abandon(record, "")
            records = [r for r in records if r.start_time >= runtime.started_ms]
        finished = skipped_outcome(cfg, records)
        if finished:
            return finished
        run_dir = runtime.runs_dir / cfg.config_hash()
        if runtime.rerun and not records:  # the first attempt of this sweep: start over
            shutil.rmtree(run_dir, ignore_errors=True)
        started = time.perf_counter()
        logger = None
        try:
            device = resolve_device(runtime.device)
            init_checkpoint, init_tags = self._init_from(tracking, dependency)
            unfinished = [r for r in records if r.status != "FINISHED"]  # newest first
            if unfinished:  # one MLflow run per config: it goes on from its checkpoint, if any
                logger = tracking.reopen(unfinished[0], parent_id())
                for record in unfinished[1:]:  # left by older versions
                    tracking.abandon(record, parent_id())
            else:
                tags = {
                    **init_tags,
                    "device": device.type,
                    "threads": str(runtime.threads),
                    "world_size": str(runtime.nproc),
                    **software_tags(),
                    "supervision": "scribbles" if get_method(cfg.method).uses_scribbles else "full",
                    PARENT_TAG: parent_id(),
                }
                logger = tracking.start(cfg, tags)
            if runtime.nproc > 1:
                job = RankJob(
                    cfg, cfg.method, self.data_root, run_dir, device.type, tracking.uri, tracking.experiment, logger.run_id,
                    init_checkpoint, max(1, runtime.threads // runtime.nproc),
                )  # fmt: skip
                result = train_distributed(job, runtime.nproc)
            else:
                ctx = RunContext(
                    cfg, get_method(cfg.method), self.data_root, run_dir, device, logger, progress, init_checkpoint, runtime.threads
                )
                result = Trainer(ctx).run()
            logger.finish("FINISHED")
            return Outcome(cfg.run_name, "finished", logger.run_id, result.miou, time.perf_counter() - started)
        except KeyboardInterrupt:
            if logger:
                logger.finish("KILLED", "interrupted by the user")
            raise
        except Exception as exc:
            message = _failure_line(exc)
            if not isinstance(exc, RtrbenchError):  # a bug, not bad input: keep the traceback for the report
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "error.log").write_text(traceback.format_exc())
                message += f" (traceback in {run_dir / 'error.log'})"
            if logger:
                logger.finish("FAILED", message)
            progress.end_run()
            return Outcome(cfg.run_name, "failed", logger.run_id if logger else None, None, time.perf_counter() - started, message)

    def _init_from(self, tracking: Tracking, outcome: Outcome | None) -> tuple[Path | None, dict[str, str]]:
        """The checkpoint of the dependency run, when the method has one."""
        dep = self.dependency
        if dep is None:
            return None, {}
        if outcome is None or outcome.status == "failed":
            raise RtrbenchError(f"{self.cfg.run_name}: its {dep.method} run {dep.run_name} did not finish")
        path = self.runtime.runs_dir / dep.config_hash() / "final" / "model.pt"
        if not path.is_file():  # finished elsewhere (another machine): fetch the logged checkpoint
            from mlflow.artifacts import download_artifacts

            path = Path(download_artifacts(run_id=outcome.run_id, artifact_path="checkpoint/model.pt", tracking_uri=tracking.uri))
        return path, {"init_run_id": outcome.run_id}


def skipped_outcome(cfg: RunConfig, records: list[RunRecord]) -> Outcome | None:
    """The outcome of a config already FINISHED among `records` (its MLflow runs), if one is."""
    finished = next((r for r in records if r.status == "FINISHED"), None)
    return finished and Outcome(cfg.run_name, "skipped", finished.run_id, finished.metrics.get("val_miou"))


def _failure_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if "Original Traceback" in text:  # DataLoader workers wrap errors with their traceback
        text = text.splitlines()[-1].split(": ", 1)[-1]
    text = one_line(text)
    return text if isinstance(exc, RtrbenchError) else f"{type(exc).__name__}: {text}"
