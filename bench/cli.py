"""The `rtrbench` command line: run sweeps, report results, prepare data, list methods."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from rtrbench.config import SCRIBBLE_LENGTHS, load_preset, parse_set_option, preset_names
from rtrbench.datasets.specs import PrepareConfig, SynthConfig
from rtrbench.errors import ConfigError, RtrbenchError

app = typer.Typer(help="Benchmark optimizers of regularized losses for scribble-supervised segmentation.", no_args_is_help=True)
data_app = typer.Typer(help="Write or check data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

err_console = Console(stderr=True)
console = Console()


def _fail(exc: RtrbenchError) -> None:
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _split_list(text: str, option: str, cast) -> tuple:
    try:
        return tuple(cast(item.strip()) for item in text.split(",") if item.strip())
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected a comma-separated list") from None


def _methods(text: str) -> tuple[str, ...]:
    from rtrbench.registry import discover, get_method

    if text.strip() == "all":
        return tuple(discover().methods)
    names = _split_list(text, "--methods", str)
    for name in names:
        get_method(name)  # unknown names fail here, before any work
    return names


def _options(model, **values):
    """Build a pydantic options model; its validation errors name the command-line options."""
    from pydantic import ValidationError

    try:
        return model(**values)
    except ValidationError as exc:
        raise ConfigError(" ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors())) from None


def _ray_options(executor: str, address: str | None, cpus_per_run: float, gpus_per_run: float, device: str, threads: int | None, nproc: int = 1):
    """The Ray executor's options (Ray checked to be installed), or None for the local one.

    "auto" is Ray with --address or --gpus-per-run, and for a CPU sweep with more than one CPU
    and no --threads or --nproc-per-run: runs side by side with one thread each train ~1.5× faster than one run
    after another with all threads (small convolutions use threads poorly), and a run's
    arithmetic, hence its result, is then the same on every machine. On a GPU, on one CPU or
    with --threads, runs go one after another in this process."""
    if executor == "auto":
        from rtrbench.sweep import available_cpus
        from rtrbench.trainer import resolve_device

        side_by_side = (
            resolve_device(device).type == "cpu" and threads is None and nproc == 1 and available_cpus() > 1
            and importlib.util.find_spec("ray") is not None
        )  # fmt: skip
        executor = "ray" if address is not None or gpus_per_run > 0 or side_by_side else "local"
    if executor == "local":
        if address is not None:
            raise ConfigError("--address: only with --executor ray")
        return None
    if executor != "ray":
        raise ConfigError(f"--executor {executor}: expected auto, local or ray")
    if cpus_per_run <= 0 or gpus_per_run < 0:
        raise ConfigError("--cpus-per-run must be > 0 and --gpus-per-run ≥ 0")
    if threads is not None:
        raise ConfigError("--threads: with --executor ray each run has --cpus-per-run threads")
    if device == "cuda" and gpus_per_run <= 0:
        raise ConfigError("--device cuda with --executor ray: give each run a GPU share with --gpus-per-run")
    from rtrbench.ray_sweep import RayOptions, import_ray

    import_ray()
    return RayOptions(address, cpus_per_run, gpus_per_run)


def _seeds(text: str) -> tuple[int, ...]:
    seeds = _split_list(text, "--seeds", int)
    bad = [str(s) for s in seeds if s < 0]
    if bad:
        raise ConfigError(f"--seeds: {', '.join(bad)} negative (seeds are integers ≥ 0)")
    return seeds


def _lengths(text: str) -> tuple[float, ...]:
    lengths = _split_list(text, "--lengths", float)
    bad = [f"{x:g}" for x in lengths if not 0 <= x <= 1]
    if bad:
        raise ConfigError(f"--lengths: {', '.join(bad)} outside 0..1 (expected e.g. {','.join(f'{x:g}' for x in SCRIBBLE_LENGTHS)})")
    return lengths


@app.command()
def run(
    preset: Annotated[str, typer.Option(help=f"Built-in preset name ({', '.join(preset_names())}) or a .toml file.")] = "synth",
    methods: Annotated[str, typer.Option(help="Comma-separated method names, or 'all'.")] = "all",
    lengths: Annotated[str, typer.Option(help="Comma-separated scribble lengths in 0..1.")] = "0,0.3,0.5,0.8,1",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds (integers ≥ 0); runs of one seed carry no error bars.")] = "0,1,2",
    data: Annotated[Optional[Path], typer.Option(help="PASCAL-layout data root; default: the preset's synthetic set.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override train.epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override train.batch_size.")] = None,
    crop_size: Annotated[Optional[int], typer.Option(help="Override data.crop_size.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Override train.lr (backbone; head ×10).")] = None,
    backbone_weights: Annotated[Optional[Path], typer.Option(help="torchvision ImageNet MobileNetV2 state dict (local file).")] = None,
    init: Annotated[Optional[str], typer.Option(help="method: fine-tune regularized methods from their PCE-GD run; scratch: from the backbone.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override any config key, e.g. --set train.eval_every=2.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads per run (torch, stage-A workers); default: the CPUs this process may use. (Ray: --cpus-per-run.)")] = None,
    nproc_per_run: Annotated[int, typer.Option(help="Processes training each run together (DistributedDataParallel; one GPU each on CUDA); train.batch_size stays the global batch.")] = 1,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI; default: sqlite mlflow.db here.")] = None,
    experiment: Annotated[Optional[str], typer.Option(help="MLflow experiment; default: rtrbench-<preset>.")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Checkpoints and run files.")] = Path("runs"),
    data_dir: Annotated[Path, typer.Option(help="Where the synthetic set is generated.")] = Path("data"),
    rerun: Annotated[bool, typer.Option(help="Train again even if a finished run with the same config exists.")] = False,
    executor: Annotated[str, typer.Option(help="local: one run after another in this process; ray: each run a Ray task; auto: ray for a CPU sweep on several CPUs without --threads (one thread per run, runs side by side), else local.")] = "auto",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to use (with --executor ray); default: a local one for the sweep.")] = None,
    cpus_per_run: Annotated[float, typer.Option(help="CPUs Ray reserves per run (its threads).")] = 1.0,
    gpus_per_run: Annotated[float, typer.Option(help="GPUs Ray reserves per run; fractions share a GPU.")] = 0.0,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train every (method, length, seed) of a sweep, tracked in MLflow."""
    from rtrbench.preflight import check_inputs
    from rtrbench.progress import ProgressView
    from rtrbench.sweep import Sweep, SweepRuntime, SweepSpec, available_cpus, plan
    from rtrbench.tracking import Tracking
    from rtrbench.trainer import resolve_device

    try:
        overrides = dict(parse_set_option(item) for item in set_ or [])
        named = {
            "data.root": data, "train.epochs": epochs, "train.batch_size": batch_size, "data.crop_size": crop_size,
            "train.lr": lr, "model.backbone_weights": backbone_weights, "init": init,
        }  # fmt: skip
        overrides.update({k: str(v) if isinstance(v, Path) else v for k, v in named.items() if v is not None})
        if data is not None:
            overrides.setdefault("data.name", data.resolve().name)
            overrides["data.root"] = str(data.resolve())
        if threads is not None and threads < 1:
            raise ConfigError(f"--threads {threads}: expected at least 1")
        if nproc_per_run < 1:
            raise ConfigError(f"--nproc-per-run {nproc_per_run}: expected at least 1")
        preset_obj = load_preset(preset)
        spec = SweepSpec(preset_obj, _methods(methods), _lengths(lengths), _seeds(seeds), overrides, preset)
        configs = plan(spec)
        resolve_device(device)  # a device that is not there fails here, not in every run
        runtime = SweepRuntime(device, runs_dir.resolve(), rerun, threads or available_cpus(), int(time.time() * 1000), nproc_per_run)
        ray_options = _ray_options(executor, address, cpus_per_run, gpus_per_run, device, threads, nproc_per_run)
        with ProgressView(console, enabled=not quiet) as progress:
            data_roots = check_inputs(configs, data_dir.resolve(), progress.counter)  # before anything is tracked
            tracking = Tracking(tracking_uri, experiment or f"rtrbench-{Path(preset).stem}")
            if ray_options is None:
                sweep = Sweep(tracking, runtime, progress)
            else:
                from rtrbench.ray_sweep import RaySweep

                sweep = RaySweep(tracking, runtime, progress, ray_options)
            console.print(f"sweep: {len(configs)} runs, experiment '{tracking.experiment}' at {tracking.uri}")
            outcomes = sweep.run(configs, spec.describe(), data_roots)
    except RtrbenchError as exc:
        _fail(exc)
    _print_table1(tracking)
    _print_summary(outcomes)  # last, so a failure is the last thing on screen


def _print_table1(tracking) -> None:
    """The experiment's Table-1 view (all its finished runs, this sweep's and earlier ones)."""
    from rtrbench.reports.build import ONE_SEED_NOTE
    from rtrbench.reports.mlflow_runs import runs_frame
    from rtrbench.reports.pairwise import leaders
    from rtrbench.reports.rows import finished_runs
    from rtrbench.reports.table import miou_table, rich_table

    runs = runs_frame(tracking)
    table = miou_table(runs)
    if table.empty:
        return
    done = finished_runs(runs)
    console.print(rich_table(table, leaders(done), f"val mIoU — {tracking.experiment} (`rtrbench report` writes the figures)"))
    if done["seed"].nunique() < 2:
        console.print(f"[yellow]note:[/] {ONE_SEED_NOTE}", highlight=False)


def _print_summary(outcomes) -> None:
    """The sweep's runs, then its counts; after a failed sweep, its failures close the output
    and the command exits with 1."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="sweep summary")
    for column in ("run", "status", "val mIoU", "seconds"):
        table.add_column(column, justify="right" if column in ("val mIoU", "seconds") else "left")
    for o in outcomes:
        miou = "—" if o.miou is None else f"{o.miou:.4f}"
        table.add_row(o.name, o.status, miou, f"{o.seconds:.1f}" if o.status != "skipped" else "—")
    console.print(table)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("finished", "skipped", "failed")}
    if counts["skipped"] == len(outcomes):
        console.print("nothing to train: every run of this sweep already finished (use --rerun to train again)")
    else:
        console.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        console.print(f"[bold red]failed:[/] {escape(o.name)}: {escape(o.error)}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command()
def report(
    experiment: Annotated[Optional[str], typer.Option(help="MLflow experiment; default: the one with the newest rtrbench run.")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI; default: sqlite mlflow.db here.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder; default reports/<experiment>.")] = None,
    length: Annotated[float, typer.Option(help="Scribble length of Fig. 6 and the qualitative grid.")] = 1.0,
) -> None:
    """Write Table 1, Fig. 5/6, a qualitative grid, a timing table and index.html from finished runs."""
    from rich.markup import escape

    from rtrbench.progress import ProgressView
    from rtrbench.reports.build import make_report
    from rtrbench.reports.mlflow_runs import latest_experiment, open_experiment
    from rtrbench.reports.table import rich_table

    try:
        if tracking_uri is None and not Path("mlflow.db").is_file():
            raise ConfigError(f"{Path.cwd() / 'mlflow.db'}: no tracking store here (run `rtrbench run` first, or pass --tracking-uri)")
        if not 0 <= length <= 1:
            raise ConfigError(f"--length {length:g}: outside 0..1")
        name = experiment or latest_experiment(tracking_uri)
        with ProgressView(console) as progress:
            result = make_report(open_experiment(tracking_uri, name), out or Path("reports") / name, length, progress)
    except RtrbenchError as exc:
        _fail(exc)
    console.print(rich_table(result.table, result.marks, f"val mIoU — {name}"))
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    for path in result.files:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


@app.command("methods")
def list_methods() -> None:
    """List the registered training methods."""
    from rich.table import Table

    from rtrbench.registry import discover

    found = discover()
    table = Table(title="registered methods")
    table.add_column("name")
    table.add_column("fine-tunes from")
    table.add_column("description")
    for name, cls in found.methods.items():
        table.add_row(name, cls.init_from or "—", cls.description)
    console.print(table)
    for name, reason in found.broken.items():
        err_console.print(f"[red]{name}[/]: failed to load ({reason})", highlight=False)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Output folder (must not exist unless --force).")],
    seed: int = 0,
    n_train: Annotated[int, typer.Option(help="Training images.")] = SynthConfig().n_train,
    n_val: Annotated[int, typer.Option(help="Validation images.")] = SynthConfig().n_val,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = SynthConfig().size,
    classes: Annotated[int, typer.Option(help="Classes including background.")] = SynthConfig().classes,
    force: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
) -> None:
    """Write the synthetic scribble data set in the PASCAL layout."""
    import shutil

    from rtrbench.datasets.synth_cache import write_synthetic_atomic
    from rtrbench.progress import ProgressView

    try:
        cfg = _options(SynthConfig, seed=seed, n_train=n_train, n_val=n_val, size=size, classes=classes)
        if out.exists():
            if not force:
                raise ConfigError(f"{out}: already exists (use --force to replace it)")
            shutil.rmtree(out)
        with ProgressView(console) as progress:
            write_synthetic_atomic(out, cfg, progress.counter(f"writing {out}"))
    except RtrbenchError as exc:
        _fail(exc)
    console.print(f"wrote {n_train} train + {n_val} val synthetic images to {out}")


@data_app.command("prepare")
def data_prepare(
    root: Annotated[Path, typer.Option(help="PASCAL VOC2012 folder (holds JPEGImages/, ImageSets/).")],
    scribbles: Annotated[Optional[Path], typer.Option(help="ScribbleSup XML annotations: a folder or a .zip.")] = None,
    sbd: Annotated[Optional[Path], typer.Option(help="SBD's benchmark_RELEASE/dataset folder (holds cls/*.mat).")] = None,
    class_map: Annotated[Optional[Path], typer.Option(help="Text file of 'name_in_xml = class_name' lines for other XML class names.")] = None,
    lengths: Annotated[str, typer.Option(help="Shortened scribble lengths to write, comma-separated.")] = "0,0.3,0.5,0.8",
    stroke_width: Annotated[int, typer.Option(help="Scribble line width in pixels.")] = PrepareConfig.model_fields["stroke_width"].default,
    click_radius: Annotated[float, typer.Option(help="Radius in pixels of the disk a length-0 stroke leaves.")] = PrepareConfig.model_fields["click_radius"].default,
    force: Annotated[bool, typer.Option(help="Rewrite files that already exist.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Build SegmentationClassAug and the (shortened) scribble PNGs, then check the layout."""
    from rtrbench.data_views import layout_table, outcome_line, stray_line
    from rtrbench.datasets.prepare import prepare
    from rtrbench.datasets.voc_layout import check_readable, summarize_layout
    from rtrbench.progress import ProgressView

    try:
        cfg = _options(
            PrepareConfig, root=root, scribbles=scribbles, sbd=sbd, class_map=class_map, lengths=_lengths(lengths),
            stroke_width=stroke_width, click_radius=click_radius, force=force,
        )  # fmt: skip
        with ProgressView(console, enabled=not quiet) as progress:
            outcome = prepare(cfg, progress.counter(f"preparing {root}"))
        console.print(outcome_line(outcome), highlight=False)
        summary = summarize_layout(root, cfg.lengths)
        console.print(layout_table(summary))
        if summary.stray:
            console.print(stray_line(summary.stray, root), highlight=False)
        problem = summary.problem()
        if problem is not None:
            raise problem
        check_readable(root, cfg.lengths)
    except RtrbenchError as exc:
        _fail(exc)
    console.print(f"{root}: ready for training (rtrbench run --preset pascal --data {root})", highlight=False)


@data_app.command("stats")
def data_stats(
    root: Annotated[Path, typer.Option(help="PASCAL-layout data root.")],
    out: Annotated[Optional[Path], typer.Option(help="CSV file; default scribble-stats-<root name>.csv here.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Labelled-pixel fraction and strokes per image per scribble length; class shares vs GT."""
    from rtrbench.data_views import stats_tables
    from rtrbench.datasets.scribble_stats import scribble_stats, write_stats_csv
    from rtrbench.progress import ProgressView

    out = out or Path(f"scribble-stats-{root.resolve().name}.csv")
    try:
        with ProgressView(console, enabled=not quiet) as progress:
            stats = scribble_stats(root, progress.counter(f"reading {root}"))
        write_stats_csv(stats, out)
    except RtrbenchError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(RtrbenchError(f"{out}: cannot write ({exc.strerror})"))
    for table in stats_tables(stats):
        console.print(table)
    console.print(f"wrote {out}", highlight=False)


def main() -> None:  # pragma: no cover - console-script entry
    app(prog_name="rtrbench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
