"""Table 1: final val mIoU, rows (method and config) × scribble lengths, mean ± std over seeds.

`miou_table` computes it from a runs frame (`reports.mlflow_runs.runs_frame`); the writers render
it as Markdown, CSV (separate mean / std / n columns), LaTeX (booktabs) and a rich Table.
The best mean per length is bold; the full-supervision row is a reference, never bold.
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


def best_rows(table: pd.DataFrame) -> dict[float, set[str]]:
    """Per length, the rows with the highest mean (ties all count), the reference left out."""
    compared = table.drop(index=FULL_ROW, errors="ignore")
    best = {}
    for length in lengths_of(table):
        means = compared[(length, "mean")]
        best[length] = set(means.index[means == means.max()]) if means.notna().any() else set()
    return best


def cell_text(table: pd.DataFrame, row: str, length: float, digits: int = 4) -> str:
    """`mean ± std (n)`; `mean ± — (1)` for one seed; `—` for a missing cell."""
    mean, std, n = (table.loc[row, (length, stat)] for stat in STATS)
    if pd.isna(mean):
        return MISSING
    spread = MISSING if pd.isna(std) else f"{std:.{digits}f}"
    return f"{mean:.{digits}f} ± {spread} ({int(n)})"


def length_label(length: float) -> str:
    return f"{length:g}"


def to_markdown(table: pd.DataFrame) -> str:
    best = best_rows(table)
    header = ["method", *(f"len {length_label(x)}" for x in lengths_of(table))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in table.index:
        cells = [_bold_md(cell_text(table, row, x)) if row in best[x] else cell_text(table, row, x) for x in lengths_of(table)]
        lines.append("| " + " | ".join([row, *cells]) + " |")
    return "\n".join(lines) + "\n\nval mIoU, mean ± sample std over seeds (number of seeds); best per length in bold.\n"


def to_csv_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Flat columns `<length> mean`, `<length> std`, `<length> n`."""
    flat = table.copy()
    flat.columns = [f"{length_label(length)} {stat}" for length, stat in table.columns]
    return flat


def to_latex(table: pd.DataFrame) -> str:
    best = best_rows(table)
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
        cells = []
        for x in lengths:
            text = _latex_cell(table, row, x)
            cells.append(rf"\textbf{{{text}}}" if row in best[x] else text)
        lines.append(_latex_escape(row) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv, md, tex = out / "table.csv", out / "table.md", out / "table.tex"
    to_csv_frame(table).to_csv(csv, float_format="%.6f")
    md.write_text(to_markdown(table))
    tex.write_text(to_latex(table))
    return [md, csv, tex]


def rich_table(table: pd.DataFrame, title: str) -> Table:
    """Table 1 for the terminal: `mean ± std (n)` per length, best per length in bold."""
    best = best_rows(table)
    view = Table(title=title)
    view.add_column("method")
    for length in lengths_of(table):
        view.add_column(f"len {length_label(length)}", justify="right")
    for row in table.index:
        cells = [cell_text(table, row, x) for x in lengths_of(table)]
        # Row labels hold `[key=value]`, which rich would take for markup.
        view.add_row(escape(row), *(f"[bold]{c}[/]" if row in best[x] else c for c, x in zip(cells, lengths_of(table))))
    return view


def _bold_md(text: str) -> str:
    return f"**{text}**"


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
