"""Table 1: final val mIoU, rows (method and config) × scribble lengths, mean ± std over seeds.

`miou_table` computes it from a runs frame (`reports.mlflow_runs.runs_frame`); the writers render
it as Markdown, CSV (separate mean / std / n columns), LaTeX (booktabs) and a rich Table.
The leaders per length (`reports.pairwise.leaders`) are marked: the best row in bold where its
lead over the runner-up is significant (paired over seeds), otherwise every tied leader with
a dagger. The full-supervision row is a reference, never marked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rich.markup import escape
from rich.table import Table

from rtrbench.reports.rows import FULL_ROW, finished_runs, row_order

MISSING = "—"
STATS = ("mean", "std", "n")
TIE = "†"
# Per length: the leading rows, and whether the lead is clear (see `reports.pairwise.leaders`).
Marks = dict[float, tuple[set[str], bool]]
LEGEND = (
    "val mIoU, mean ± sample std over seeds (number of seeds). Bold: best at that length, its paired "
    f"95 % interval against the runner-up excluding 0; {TIE}: tied for best (the intervals include 0, "
    "or fewer than two seeds pair up); see pairwise.md."
)


def miou_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof=1, NaN for one seed) and seed count of final val mIoU.

    Index: row labels (method, with the differing params where a method has several
    configs; "full supervision" last). Columns: MultiIndex (length, stat) with stat in
    mean / std / n; NaN mean and n = 0 where no finished run exists. The full-supervision
    row holds its one value in every length column (it does not depend on the length).
    Empty frame when there is no finished run.
    """
    done = finished_runs(runs)
    if done.empty:
        return pd.DataFrame()
    scribbled = done[~done["reference"]]
    lengths = sorted((scribbled if not scribbled.empty else done)["length"].unique())
    rows = row_order(done)
    columns = pd.MultiIndex.from_product([lengths, STATS], names=["length", "stat"])
    table = pd.DataFrame(np.nan, index=pd.Index(rows, name="method"), columns=columns)
    table.loc[:, (slice(None), "n")] = 0
    for row, runs_of_row in done.groupby("row"):
        reference = bool(runs_of_row["reference"].iloc[0])
        cells = [(length, runs_of_row) for length in lengths] if reference else runs_of_row.groupby("length")
        for length, cell in cells:
            values = cell["val_miou"].to_numpy(float)
            std = values.std(ddof=1) if len(values) > 1 else np.nan
            table.loc[row, [(length, "mean"), (length, "std"), (length, "n")]] = [values.mean(), std, len(values)]
    return table.astype({column: int for column in table.columns if column[1] == "n"})


def lengths_of(table: pd.DataFrame) -> list[float]:
    return list(table.columns.get_level_values("length").unique())


def mark_of(marks: Marks, row: str, length: float) -> str | None:
    """"best" (a clear leader), "tied" (one of tied leaders) or None."""
    rows, clear = marks.get(length, (set(), False))
    if row not in rows:
        return None
    return "best" if clear else "tied"


def cell_text(table: pd.DataFrame, row: str, length: float, digits: int = 4) -> str:
    """`mean ± std (n)`; `mean ± — (1)` for one seed; `—` for a missing cell."""
    mean, std, n = (table.loc[row, (length, stat)] for stat in STATS)
    if pd.isna(mean):
        return MISSING
    spread = MISSING if pd.isna(std) else f"{std:.{digits}f}"
    return f"{mean:.{digits}f} ± {spread} ({int(n)})"


def length_label(length: float) -> str:
    return f"{length:g}"


def to_markdown(table: pd.DataFrame, marks: Marks) -> str:
    header = ["method", *(f"len {length_label(x)}" for x in lengths_of(table))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in table.index:
        cells = [marked(cell_text(table, row, x), mark_of(marks, row, x), "**{}**") for x in lengths_of(table)]
        lines.append("| " + " | ".join([row, *cells]) + " |")
    return "\n".join(lines) + f"\n\n{LEGEND}\n"


def to_csv_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Flat columns `<length> mean`, `<length> std`, `<length> n`."""
    flat = table.copy()
    flat.columns = [f"{length_label(length)} {stat}" for length, stat in table.columns]
    return flat


def to_latex(table: pd.DataFrame, marks: Marks) -> str:
    lengths = lengths_of(table)
    lines = [
        r"\begin{tabular}{l" + "r" * len(lengths) + "}",
        r"\toprule",
        "method & " + " & ".join(f"len {length_label(x)}" for x in lengths) + r" \\",
        r"\midrule",
    ]
    for row in table.index:
        if row == FULL_ROW:
            lines.append(r"\midrule")
        cells = [marked(_latex_cell(table, row, x), mark_of(marks, row, x), r"\textbf{{{}}}", r"$^\dagger$") for x in lengths]
        lines.append(_latex_escape(row) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, marks: Marks, out: Path, header: str = "") -> list[Path]:
    """table.md, table.csv, table.tex; `header` (how the runs were made) opens the Markdown and,
    as comments, the LaTeX file (the CSV stays plain for spreadsheets; provenance.json has it)."""
    out.mkdir(parents=True, exist_ok=True)
    csv, md, tex = out / "table.csv", out / "table.md", out / "table.tex"
    to_csv_frame(table).to_csv(csv, float_format="%.6f")
    md.write_text((header + "\n\n" if header else "") + to_markdown(table, marks))
    comments = "".join(f"% {line}\n" for line in header.splitlines())
    tex.write_text(comments + to_latex(table, marks))
    return [md, csv, tex]


def rich_table(table: pd.DataFrame, marks: Marks, title: str) -> Table:
    """Table 1 for the terminal: `mean ± std (n)` per length, leaders marked as in the files."""
    view = Table(title=title, caption=f"bold: clear best; {TIE}: tied for best (paired 95 % intervals over seeds)")
    view.add_column("method")
    for length in lengths_of(table):
        view.add_column(f"len {length_label(length)}", justify="right")
    for row in table.index:
        cells = [marked(cell_text(table, row, x), mark_of(marks, row, x), "[bold]{}[/]") for x in lengths_of(table)]
        # Row labels hold `[key=value]`, which rich would take for markup.
        view.add_row(escape(row), *cells)
    return view


def marked(text: str, mark: str | None, bold: str, tie: str = TIE) -> str:
    """The cell text in `bold` (a format string) for a clear best, followed by the tie mark for a tied leader."""
    if mark == "best":
        return bold.format(text)
    return f"{text} {tie}" if mark == "tied" else text


def _latex_cell(table: pd.DataFrame, row: str, length: float) -> str:
    mean, std, n = (table.loc[row, (length, stat)] for stat in STATS)
    if pd.isna(mean):
        return "---"
    spread = "" if pd.isna(std) else rf" $\pm$ {std:.3f}"
    return f"{mean:.3f}{spread} ({int(n)})"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$")):
        text = text.replace(char, escaped)
    return text
