"""`rtrbench data prepare`: build the derived files of a PASCAL VOC root (docs/data.md).

- image lists ``ImageSets/SegmentationAug/{train,val}.txt`` when missing: VOC's segmentation
  val list, and VOC's train list joined with every SBD image (the usual "train_aug" set);
- ``SegmentationClassAug/<id>.png``: VOC's own ``SegmentationClass`` mask where there is one
  (it marks object boundaries void), else SBD's ``cls/<id>.mat``;
- ``pascal_2012_scribble/<id>.png`` rasterised from ScribbleSup's XML polylines (class tags: the
  data set's names, their usual aliases, or the names of ``cfg.class_map``);
- ``pascal_2012_scribble<r>/<id>.png`` shortened with the synthetic set's ``shorten_polyline``:
  exactly along the XML polylines when there are some, else along the skeletons of the PNG
  strokes. r = 0 leaves one disk per stroke at its middle.

Existing files are kept unless ``force``; every file is written to a temporary name and renamed,
so an interrupted run loses nothing and a second run picks up where it stopped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from rtrbench.atomic import write_atomic
from rtrbench.datasets.labelio import read_label_png, write_label_png_atomic
from rtrbench.datasets.sbd import read_sbd_mask, sbd_ids, sbd_mask_path
from rtrbench.datasets.scribbles import Stroke, rasterize_strokes, shorten_strokes, strokes_from_labels
from rtrbench.datasets.scribblesup_xml import ClassLookup, XmlSource, class_lookup, parse_scribble_xml
from rtrbench.datasets.specs import PrepareConfig
from rtrbench.datasets.classes import read_class_names
from rtrbench.datasets.voc import gt_dir, read_id_list, scribble_dir
from rtrbench.errors import DataError

Progress = Callable[[int, int], None]




@dataclass
class PrepareOutcome:
    """Files written and existing files left alone, counted per folder."""

    written: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)


def prepare(cfg: PrepareConfig, progress: Progress | None = None) -> PrepareOutcome:
    """Build every missing derived file under ``cfg.root``; the layout check is separate."""
    root = cfg.root
    if not root.is_dir():
        raise DataError(f"{root}: data root not found")
    outcome = PrepareOutcome()
    listed = write_missing_lists(cfg, outcome)
    with XmlSource(cfg.scribbles) if cfg.scribbles else nullcontext() as xml:
        ids = list(dict.fromkeys([*listed, *(xml.ids() if xml else [])]))  # lists' order, then XML-only ids
        in_lists = set(listed)
        builder = ImageBuilder(cfg, xml, class_lookup(read_class_names(root), cfg.class_map), outcome)
        for done, image_id in enumerate(ids, start=1):
            builder.build(image_id, image_id in in_lists)
            if progress is not None:
                progress(done, len(ids))
    return outcome


# ---------------------------------------------------------------------------------------------
# Image lists


def write_missing_lists(cfg: PrepareConfig, outcome: PrepareOutcome) -> list[str]:
    """Write the SegmentationAug lists that are missing; return the ids of both lists (train first)."""
    lists = cfg.root / "ImageSets" / "SegmentationAug"
    voc = cfg.root / "ImageSets" / "Segmentation"
    ids: dict[str, list[str]] = {}
    for split in ("val", "train"):  # val first: train_aug leaves out every val image
        path = lists / f"{split}.txt"
        if path.is_file() and not cfg.force:
            ids[split] = read_id_list(path)
            outcome.kept[str(path.relative_to(cfg.root))] += 1
            continue
        if not (voc / f"{split}.txt").is_file():
            if path.is_file():  # --force, but nothing to rebuild it from: keep the user's list
                ids[split] = read_id_list(path)
                continue
            raise DataError(f"{path}: image list not found, and no {voc / f'{split}.txt'} to build it from")
        ids[split] = read_id_list(voc / f"{split}.txt")
        if split == "train" and cfg.sbd is not None:
            val = set(ids["val"])
            ids[split] = list(dict.fromkeys(ids[split] + [i for i in sbd_ids(cfg.sbd) if i not in val]))
        write_atomic(path, lambda tmp, names=ids[split]: tmp.write_text("".join(f"{i}\n" for i in names)))
        outcome.written[str(path.relative_to(cfg.root))] += 1
    return list(dict.fromkeys(ids["train"] + ids["val"]))


# ---------------------------------------------------------------------------------------------
# Per-image files


class ImageBuilder:
    """Writes one image's GT and scribble files, each only when missing (or with ``force``)."""

    def __init__(self, cfg: PrepareConfig, xml: XmlSource | None, classes: ClassLookup, outcome: PrepareOutcome) -> None:
        self.cfg, self.xml, self.classes, self.outcome = cfg, xml, classes, outcome
        self.lengths = sorted({float(r) for r in cfg.lengths} - {1.0})  # 1 is the full set itself

    def build(self, image_id: str, listed: bool) -> None:
        image = ImageFiles(self.cfg.root, image_id)
        if listed:
            self._write_gt(image)
        source = StrokeSource(image, self.xml, self.classes)
        if source.has_xml:
            self._write(image.scribbles(1.0), lambda: self._raster(source.from_xml, 1.0))
        if source.available():
            for r in self.lengths:
                self._write(image.scribbles(r), lambda r=r: self._raster(source.best(), r))

    def _write_gt(self, image: ImageFiles) -> None:
        voc, sbd = image.voc_gt, sbd_mask_path(self.cfg.sbd, image.id) if self.cfg.sbd else None
        if voc.is_file():
            self._write(image.gt_aug, lambda: read_label_png(voc))
        elif sbd is not None and sbd.is_file():
            self._write(image.gt_aug, lambda: image.checked(read_sbd_mask(sbd), sbd))
        # neither: the layout summary reports the missing mask

    def _raster(self, strokes: Strokes, r: float) -> np.ndarray:
        return rasterize_strokes(shorten_strokes(strokes.strokes, r), strokes.shape, self.cfg.stroke_width, self.cfg.click_radius)

    def _write(self, path: Path, labels: Callable[[], np.ndarray]) -> None:
        """Write ``labels()`` to ``path`` unless it exists; computed only when written."""
        folder = path.parent.name
        if path.exists() and not self.cfg.force:
            self.outcome.kept[folder] += 1
            return
        write_label_png_atomic(path, labels())
        self.outcome.written[folder] += 1


@dataclass(frozen=True)
class ImageFiles:
    """Paths of one image's files in the root."""

    root: Path
    id: str

    @property
    def jpeg(self) -> Path:
        return self.root / "JPEGImages" / f"{self.id}.jpg"

    @property
    def voc_gt(self) -> Path:
        return self.root / gt_dir("val") / f"{self.id}.png"

    @property
    def gt_aug(self) -> Path:
        return self.root / gt_dir("train") / f"{self.id}.png"

    def scribbles(self, r: float) -> Path:
        return self.root / scribble_dir(r) / f"{self.id}.png"

    def size(self) -> tuple[int, int] | None:
        """(width, height) from the JPEG header; None when there is no JPEG."""
        try:
            with Image.open(self.jpeg) as img:
                return img.size
        except FileNotFoundError:
            return None
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{self.jpeg}: cannot read image ({exc})") from None

    def check_size(self, where: object, width: int, height: int, required: bool = False) -> None:
        """``where`` (a file for this image) must have the JPEG's size; ``required``: and the JPEG must exist."""
        size = self.size()
        if size is None and required:
            raise DataError(f"{where}: its image {self.jpeg} does not exist")
        if size is not None and size != (width, height):
            raise DataError(f"{where}: size {width}×{height} differs from {self.jpeg}'s {size[0]}×{size[1]}")

    def checked(self, labels: np.ndarray, where: Path) -> np.ndarray:
        self.check_size(where, labels.shape[1], labels.shape[0])
        return labels


@dataclass(frozen=True)
class Strokes:
    strokes: list[Stroke]
    shape: tuple[int, int]  # of the image they belong to


class StrokeSource:
    """An image's full-length strokes: its XML polylines if any, else the skeletons of its PNG strokes."""

    def __init__(self, image: ImageFiles, xml: XmlSource | None, classes: ClassLookup) -> None:
        self.image, self.xml, self.classes = image, xml, classes
        self.has_xml = xml is not None and image.id in xml

    def available(self) -> bool:
        return self.has_xml or self.image.scribbles(1.0).is_file()

    def best(self) -> Strokes:
        return self.from_xml if self.has_xml else self.from_png

    @cached_property  # parsed once per image
    def from_xml(self) -> Strokes:
        """The XML polylines; the size the file states must be its JPEG's."""
        where = self.xml.where(self.image.id)
        parsed = parse_scribble_xml(self.xml.read(self.image.id), where, self.classes)
        self.image.check_size(where, parsed.width, parsed.height, required=True)
        return Strokes(parsed.strokes, (parsed.height, parsed.width))

    @cached_property
    def from_png(self) -> Strokes:
        labels = read_label_png(self.image.scribbles(1.0))
        return Strokes(strokes_from_labels(labels), labels.shape)
