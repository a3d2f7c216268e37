"""A miniature PASCAL VOC 2012 + SBD + ScribbleSup download, before `rtrbench data prepare`.

- VOC: JPEGImages, SegmentationClass (with a void outline) and ImageSets/Segmentation lists
  for two train and two val images; no SegmentationAug lists, no SegmentationClassAug.
- SBD: ``cls/<id>.mat`` (struct GTcls, field Segmentation) for one image VOC also has (with a
  different mask, so the test sees which one wins), one image only SBD has, and one val image.
- ScribbleSup: one XML file per train image with axis-aligned polylines (lengths known exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from rtrbench.datasets.labelio import IGNORE, write_label_png

SIZE = (60, 80)  # H, W
VOC_TRAIN = ("2007_000032", "2007_000033")
SBD_ONLY = ("2008_000001",)
VAL = ("2007_000100", "2007_000101")
TRAIN = VOC_TRAIN + SBD_ONLY  # the train_aug list prepare must derive
AEROPLANE, PERSON = 1, 15


@dataclass(frozen=True)
class XmlStroke:
    tag: str  # as written in the XML
    label: int
    xy: tuple[tuple[int, int], ...]  # (X, Y) vertices, 0-based

    @property
    def rows_cols(self) -> np.ndarray:
        return np.array([(y, x) for x, y in self.xy], dtype=float)

    @property
    def length(self) -> float:
        return float(np.abs(np.diff(self.rows_cols, axis=0)).sum())  # axis-aligned segments


# Far enough apart that 3 px lines and r = 0 disks never touch; tags in several spellings.
STROKES = (
    XmlStroke("background", 0, ((5, 5), (74, 5))),
    XmlStroke("Aeroplane", AEROPLANE, ((10, 20), (50, 20), (50, 45))),
    XmlStroke("PERSON", PERSON, ((70, 20), (70, 52))),
)


def gt_mask(label: int) -> np.ndarray:
    """A rectangle of ``label`` with a 1 px void outline, like VOC's masks."""
    gt = np.zeros(SIZE, np.uint8)
    gt[15:50, 8:56] = IGNORE
    gt[16:49, 9:55] = label
    return gt


def scribble_xml(strokes=STROKES, size=SIZE, filename: str = "x.jpg") -> str:
    polygons = "".join(
        f"<polygon><tag>{s.tag}</tag>" + "".join(f"<point><X>{x}</X><Y>{y}</Y></point>" for x, y in s.xy) + "</polygon>"
        for s in strokes
    )
    return (
        f"<annotation><filename>{filename}</filename><size><width>{size[1]}</width><height>{size[0]}</height>"
        f"<depth>3</depth></size>{polygons}</annotation>"
    )


def write_sbd_mask(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"GTcls": {"Segmentation": labels, "CategoriesPresent": np.unique(labels)}})


def make_voc_download(base: Path) -> tuple[Path, Path, Path]:
    """(VOC root, ScribbleSup XML folder, SBD dataset folder) under ``base``."""
    root, xml_dir, sbd = base / "VOC2012", base / "scribble_annotation" / "pascal_2012", base / "benchmark_RELEASE" / "dataset"
    rng = np.random.default_rng(0)
    (root / "JPEGImages").mkdir(parents=True)
    xml_dir.mkdir(parents=True)
    for image_id in TRAIN + VAL:
        image = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
    for image_id in VOC_TRAIN + VAL:
        write_label_png(root / "SegmentationClass" / f"{image_id}.png", gt_mask(AEROPLANE))
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("".join(f"{i}\n" for i in VOC_TRAIN))
    (lists / "val.txt").write_text("".join(f"{i}\n" for i in VAL))
    for image_id in (VOC_TRAIN[1], *SBD_ONLY, VAL[0]):
        write_sbd_mask(sbd / "cls" / f"{image_id}.mat", np.full(SIZE, PERSON, np.uint8))
    for image_id in TRAIN:
        (xml_dir / f"{image_id}.xml").write_text(scribble_xml(filename=f"{image_id}.jpg"))
    return root, xml_dir, sbd
