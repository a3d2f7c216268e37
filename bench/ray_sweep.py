"""The Ray executor: every run of a sweep is one Ray task, on one machine or a cluster.

A run's `init_from` dependency is passed to its task as an argument, so Ray starts a
fine-tuning run once the run it starts from has ended, and independent runs at once. Each
task logs to the tracking URI itself; the driver keeps the parent MLflow run, the progress
display and the summary. A task whose process dies (SIGKILL, out of memory) is retried by
Ray and resumes from its last checkpoint into the same MLflow run; a run that fails for a data
or config reason returns a FAILED outcome and is not retried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from rtrbench.config import RunConfig
from rtrbench.errors import ConfigError, one_line
from rtrbench.progress import ProgressView
from rtrbench.sweep import Outcome, RunJob, Sweep, available_cpus, skipped_outcome
from rtrbench.tracking import RunLogger, Tracking

INSTALL_HINT = 'pip install "ray>=2.9"'


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # an existing cluster; None: a local one for this sweep
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0  # fractions let several runs share a GPU
    max_retries: int = 3  # times a task whose process died is started again


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray: Ray is not installed (install it with {INSTALL_HINT})") from None
    return ray


def check_tracking_for_cluster(uri: str, nodes: int) -> None:
    """A store on the local disk is not shared by the machines of a cluster: refuse it."""
    if nodes > 1 and (uri.startswith(("sqlite:", "file:")) or "://" not in uri):
        raise ConfigError(
            f"--tracking-uri {uri}: a local store cannot be reached by the {nodes} machines of the Ray cluster; "
            "start `mlflow server` with a database backend and pass its http:// URI (see docs/tracking.md)"
        )


class RaySweep(Sweep):
    """Runs a sweep's configs as Ray tasks; results, parent run and display as the serial sweep."""

    def __init__(self, tracking: Tracking, runtime, progress: ProgressView, options: RayOptions) -> None:
        super().__init__(tracking, runtime, progress)
        self.options = options
        device = runtime.device
        if device == "auto":
            device = "cuda" if options.gpus_per_run > 0 else "cpu"
        # what each task gets: its device, and as many threads as CPUs Ray reserves for it
        self.task_runtime = replace(runtime, device=device, threads=max(1, math.floor(options.cpus_per_run)))

    def run(self, configs: list[RunConfig], description: dict[str, str], data_roots: dict[str, Path]) -> list[Outcome]:
        if not self.runtime.rerun and all(self._finished(cfg) is not None for cfg in configs):
            return super().run(configs, description, data_roots)  # nothing to train: no cluster to start
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            # a local cluster gets the CPUs this process may use (its affinity mask), not the machine's
            cpus = None if self.options.address is not None else available_cpus()
            ray.init(address=self.options.address, num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            check_tracking_for_cluster(self.tracking.uri, sum(node["Alive"] for node in ray.nodes()))
            return self._run_tasks(ray, configs, description, data_roots)
        finally:
            if started_here:
                ray.shutdown()

    def _run_tasks(self, ray, configs, description, data_roots) -> list[Outcome]:
        self._planned, self._description = configs, description
        self.progress.start_sweep(len(configs))
        task = ray.remote(_train_task).options(
            num_cpus=self.options.cpus_per_run, num_gpus=self.options.gpus_per_run,
            max_retries=self.options.max_retries, retry_exceptions=False,
        )  # fmt: skip
        refs: dict[str, object] = {}  # config hash -> the task's result, for the runs that depend on it
        by_ref: dict[object, RunConfig] = {}
        for cfg in configs:
            finished = self._finished(cfg)
            if finished is not None:  # nothing to schedule
                self.record(cfg, finished)
                continue
            job = RunJob(cfg, self.dependency(cfg), data_roots[cfg.config_hash()], self.task_runtime)
            dependency = None
            if job.dependency is not None:  # a task's result, or the outcome of a finished run
                dep = job.dependency.config_hash()
                dependency = refs[dep] if dep in refs else self.outcomes[dep]
            ref = task.remote(job, dependency, self.tracking.uri, self.tracking.experiment, self._parent_id())
            refs[cfg.config_hash()], by_ref[ref] = ref, cfg
        pending = list(by_ref)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in done:
                    self.record(by_ref[ref], self._result(ray, ref, by_ref[ref]))
                self.progress.runs_running(self._running([by_ref[r] for r in pending]))
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)  # raises KeyboardInterrupt in the task: its run is marked KILLED
            self.finish_parent(list(self.outcomes.values()), "KILLED")
            raise
        results = [self.outcomes[cfg.config_hash()] for cfg in configs]
        self.finish_parent(results)
        return results

    def _finished(self, cfg: RunConfig) -> Outcome | None:
        return None if self.runtime.rerun else skipped_outcome(cfg, self.tracking.find(cfg.config_hash()))

    def _result(self, ray, ref, cfg: RunConfig) -> Outcome:
        """The task's outcome; a task that could not finish (its process died more often than
        Ray retries, or its dependency's did) is a failed run, never left RUNNING in MLflow."""
        try:
            return ray.get(ref)
        except Exception as exc:
            message = f"its Ray task did not finish ({one_line(getattr(exc, 'cause', None) or exc, 300)})"
            for record in self.tracking.find(cfg.config_hash()):
                if record.status == "RUNNING":
                    RunLogger(self.tracking.client, record.run_id).finish("FAILED", message)
            return Outcome(cfg.run_name, "failed", error=message)

    def _running(self, pending: list[RunConfig]) -> int:
        """Runs whose lock a process holds now (the run lock's owner file exists)."""
        return sum((self.runtime.runs_dir / f"{cfg.config_hash()}.owner").exists() for cfg in pending)


def _train_task(job: RunJob, dependency: Outcome | None, uri: str, experiment: str, parent_id: str) -> Outcome:
    """One run, in a Ray worker process (Ray resolves `dependency` to the outcome first)."""
    tracking = Tracking(uri, experiment)
    with ProgressView(enabled=False) as progress:
        return job.run(tracking, lambda: parent_id, progress, dependency)
