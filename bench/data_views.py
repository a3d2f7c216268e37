"""Rich tables for the `rtrbench data` commands: layout summary, prepare outcome, scribble stats."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from rtrbench.datasets.prepare import PrepareOutcome
from rtrbench.datasets.scribble_stats import ScribbleStats
from rtrbench.datasets.voc_layout import SHOWN_MISSING, LayoutSummary


def layout_table(summary: LayoutSummary) -> Table:
    sizes = ", ".join(f"{split} {n}" for split, n in summary.split_sizes.items())
    table = Table(title=f"{summary.root} ({sizes} images)")
    for column in ("split", "folder", "found", "missing", "first missing"):
        table.add_column(column, justify="right" if column in ("found", "missing") else "left")
    for part in summary.parts:
        first = ", ".join(part.missing[:SHOWN_MISSING]) + (" …" if len(part.missing) > SHOWN_MISSING else "")
        style = "red" if part.missing else None
        table.add_row(part.split, part.folder, str(part.found), str(len(part.missing)), first, style=style)
    return table


def stray_line(stray: list[Path], root: Path) -> str:
    shown = ", ".join(str(p.relative_to(root)) for p in stray[:SHOWN_MISSING])
    return f"{len(stray)} stray files in layout folders (ignored by training): {shown}{' …' if len(stray) > SHOWN_MISSING else ''}"


def outcome_line(outcome: PrepareOutcome) -> str:
    if not outcome.written:
        return f"nothing to do: all {sum(outcome.kept.values())} files are already there (use --force to rewrite them)"
    written = ", ".join(f"{folder} {n}" for folder, n in sorted(outcome.written.items()))
    kept = f"; kept {sum(outcome.kept.values())} existing files" if outcome.kept else ""
    return f"wrote {sum(outcome.written.values())} files ({written}){kept}"


def stats_tables(stats: ScribbleStats) -> list[Table]:
    lengths = Table(title="scribbles per length (train split)")
    for column in ("length", "images", "labelled pixels", "strokes / image", "images without scribbles"):
        lengths.add_column(column, justify="right")
    for s in stats.lengths:
        lengths.add_row(f"{s.length:g}", str(s.images), f"{100 * s.labelled_fraction:.3f} %", f"{s.strokes_per_image:.2f}", str(s.images_without_scribbles))
    classes = Table(title="class shares: full-length scribble pixels vs GT pixels (train split)")
    for column in ("class", "scribbles", "GT"):
        classes.add_column(column, justify="left" if column == "class" else "right")
    for c in stats.classes:
        classes.add_row(c.name, f"{100 * c.scribble_share:.2f} %", f"{100 * c.gt_share:.2f} %")
    return [lengths, classes]
