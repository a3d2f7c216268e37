"""What a PASCAL-layout root holds: files found and missing per split, stray files.

``summarize_layout`` counts files by name only (fast, complete, for the summary table);
``check_readable`` then runs the reader's own up-front check (sizes, unreadable files), so
"the layout is fine" means exactly "training can read it".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rtrbench.datasets.voc import ScribbleDataset, Split, gt_dir, missing_files_error, read_ids, scribble_dir
from rtrbench.errors import DataError

SPLITS: tuple[Split, ...] = ("train", "val")
SHOWN_MISSING = 3  # names listed per part; the rest is a count


@dataclass(frozen=True)
class PartCount:
    """One folder's files for one split: which listed ids have a file there."""

    split: Split
    folder: str
    suffix: str
    expected: int
    missing: tuple[str, ...]  # image ids without a file

    @property
    def found(self) -> int:
        return self.expected - len(self.missing)

    def path(self, root: Path, image_id: str) -> Path:
        return root / self.folder / f"{image_id}{self.suffix}"


@dataclass(frozen=True)
class LayoutSummary:
    root: Path
    split_sizes: dict[str, int]
    parts: list[PartCount]
    stray: list[Path]  # files in layout folders that are not <name><expected suffix>

    def problem(self) -> DataError | None:
        """The first missing file, with a count of all missing ones; None when nothing is missing."""
        missing = [part.path(self.root, image_id) for part in self.parts for image_id in part.missing]
        return missing_files_error(missing) if missing else None


def layout_parts(lengths: Iterable[float]) -> dict[Split, list[tuple[str, str]]]:
    """(folder, suffix) of every file an image of each split needs; train needs full + shortened scribbles."""
    scribbles = [scribble_dir(r) for r in sorted({1.0, *map(float, lengths)}, reverse=True)]
    image = ("JPEGImages", ".jpg")
    return {
        "train": [image, (gt_dir("train"), ".png"), *((folder, ".png") for folder in scribbles)],
        "val": [image, (gt_dir("val"), ".png")],
    }


def summarize_layout(root: Path, lengths: Iterable[float]) -> LayoutSummary:
    """Count the files of the layout by name (no file is opened)."""
    parts_of = layout_parts(lengths)
    listing: dict[str, set[str]] = {}  # folder -> file names, read once per folder
    parts, sizes = [], {}
    for split in SPLITS:
        ids = read_ids(root, split)
        sizes[split] = len(ids)
        for folder, suffix in parts_of[split]:
            names = listing.setdefault(folder, _file_names(root / folder))
            missing = tuple(i for i in ids if f"{i}{suffix}" not in names)
            parts.append(PartCount(split, folder, suffix, len(ids), missing))
    suffix_of = {folder: suffix for split_parts in parts_of.values() for folder, suffix in split_parts}
    stray = sorted(
        root / folder / name
        for folder, names in listing.items()
        for name in names
        if name.startswith(".") or not name.endswith(suffix_of[folder])
    )
    return LayoutSummary(root, sizes, parts, stray)


def check_readable(root: Path, lengths: Iterable[float]) -> None:
    """Open every split and length with the training reader (raises its one-line DataError)."""
    for length in sorted({1.0, *map(float, lengths)}):
        ScribbleDataset(root, "train", length=length)
    ScribbleDataset(root, "val")


def _file_names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file()} if folder.is_dir() else set()
