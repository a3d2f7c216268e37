"""One self-contained `index.html`: tables inline, PNG figures embedded as data: URIs, links to
the SVG / CSV / Markdown / LaTeX files next to it (relative paths). No JavaScript, no CDN."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rtrbench.reports.table import LEGEND, Marks, marked, cell_text, length_label, lengths_of, mark_of

STYLE = """
body { font-family: sans-serif; max-width: 72em; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ccc; padding: 0.3em 0.8em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
.note { color: #8a5a00; }
"""


@dataclass
class Section:
    title: str
    body: str  # HTML
    files: list[Path] = field(default_factory=list)  # linked below the section


def table1_html(table: pd.DataFrame, marks: Marks) -> str:
    """Table 1 as an HTML table, leaders marked (the same cells as the Markdown)."""
    head = "".join(f"<th>len {length_label(x)}</th>" for x in lengths_of(table))
    rows = []
    for row in table.index:
        cells = "".join(
            f"<td>{marked(html.escape(cell_text(table, row, x)), mark_of(marks, row, x), '<b>{}</b>')}</td>" for x in lengths_of(table)
        )
        rows.append(f"<tr><td>{html.escape(row)}</td>{cells}</tr>")
    return f"<table><tr><th>method</th>{head}</tr>{''.join(rows)}</table><p>{html.escape(LEGEND)}</p>"


def frame_html(frame: pd.DataFrame) -> str:
    """A frame of display text as an HTML table (cells escaped)."""
    return frame.to_html(index=False, border=0)


def figure_html(paths: list[Path]) -> str:
    """The PNG embedded (the page works on its own); the other formats are linked files."""
    png = next((p for p in paths if p.suffix == ".png"), None)
    if png is None:
        return '<p class="note">nothing to draw (see the notes above)</p>'
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}"></p>'


def markdown_table_html(text: str) -> str:
    """A Markdown table (header, rule, rows; then a legend paragraph) as HTML."""
    lines = [line for line in text.splitlines() if line.strip()]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    legend = [line for line in lines if not line.startswith("|")]
    head, body = rows[0], rows[2:]
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    table = "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + f"</tr>{cells}</table>"
    return table + "".join(f"<p>{html.escape(line)}</p>" for line in legend)


def write_index(out: Path, title: str, sections: list[Section], notes: list[str], provenance: dict[str, str]) -> Path:
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts.append("<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in provenance.items()) + "</ul>")
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in notes]
    for section in sections:
        links = " · ".join(f'<a href="{html.escape(_relative(p, out))}">{html.escape(p.name)}</a>' for p in section.files)
        parts.append(f"<h2>{html.escape(section.title)}</h2>{section.body}" + (f"<p>files: {links}</p>" if links else ""))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _relative(path: Path, out: Path) -> str:
    return path.relative_to(out).as_posix()
