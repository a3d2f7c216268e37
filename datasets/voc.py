"""One reader for the PASCAL VOC + ScribbleSup layout (docs/data.md), real or synthetic.

Train items: image, scribbles at the chosen length, full GT (diagnostics / full
supervision only), any extra per-image label maps, and the image id. Val items: image,
GT and id. Every file is checked up front so a bad data set fails before training,
with one line naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from rtrbench.datasets.classes import read_class_names
from rtrbench.datasets.labelio import IGNORE, read_image, read_label_png
from rtrbench.datasets.transforms import JointTransform
from rtrbench.errors import DataError


Split = Literal["train", "val"]
# A source of an extra label map per image id (e.g. stored proposals); None = all unlabelled.
MapSource = Callable[[str], "np.ndarray | None"]


def scribble_dir(length: float) -> str:
    return "pascal_2012_scribble" if length == 1 else f"pascal_2012_scribble{length:g}"


def gt_dir(split: Split) -> str:
    return "SegmentationClassAug" if split == "train" else "SegmentationClass"


def read_id_list(path: Path) -> list[str]:
    """Image ids of a list file: the first word of each non-empty line."""
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def read_ids(root: Path, split: Split) -> list[str]:
    if not root.is_dir():
        raise DataError(f"{root}: data root not found")
    path = root / "ImageSets" / "SegmentationAug" / f"{split}.txt"
    if not path.is_file():
        raise DataError(f"{path}: image list not found")
    ids = read_id_list(path)
    if not ids:
        raise DataError(f"{path}: image list is empty")
    return ids


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # H×W×3 uint8
    maps: dict[str, np.ndarray]  # "gt", "scribbles" (train), extras; H×W uint8
    image_id: str


class ScribbleDataset(torch.utils.data.Dataset):
    """PASCAL-layout split. With a transform, items are augmented crops; without, full images."""

    def __init__(
        self,
        root: Path,
        split: Split,
        length: float | None = None,
        transform: JointTransform | None = None,
        extra_maps: Mapping[str, MapSource] | None = None,
        seed: int = 0,
        cache_mb: float = 0,
    ) -> None:
        if split == "train" and length is None:
            raise ValueError("the train split needs a scribble length")
        self.root, self.split, self.length = Path(root), split, length
        self.transform, self.extra_maps, self.seed = transform, dict(extra_maps or {}), seed
        self.epoch = 0
        # Decoded files kept in memory, up to cache_mb: decoding is most of the loading time on
        # small images. Per process (each loader worker fills its own).
        self._decoded: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self._cache_left = cache_mb * 2**20
        self.class_names = read_class_names(self.root)
        self.ids = read_ids(self.root, split)
        self._check_files()

    def set_epoch(self, epoch: int) -> None:
        """Augmentation is a pure function of (seed, epoch, index): resumable and worker-independent."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ids)

    def paths(self, image_id: str) -> dict[str, Path]:
        paths = {"image": self.root / "JPEGImages" / f"{image_id}.jpg", "gt": self.root / gt_dir(self.split) / f"{image_id}.png"}
        if self.split == "train":
            paths["scribbles"] = self.root / scribble_dir(self.length) / f"{image_id}.png"
        return paths

    def load(self, index: int) -> Sample:
        """The un-augmented image and label maps of one item, checked for consistency."""
        image_id = self.ids[index]
        image, maps = self._decode(index)
        extras = {}
        for name, source in self.extra_maps.items():
            extra = source(image_id)
            extras[name] = np.full(image.shape[:2], IGNORE, np.uint8) if extra is None else extra
        self._check_maps(image, extras, image_id)
        return Sample(image, maps | extras, image_id)

    def _decode(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The image and the label maps read from files, checked; copies of cached arrays, so
        that no caller can change the cache."""
        if index in self._decoded:
            image, maps = self._decoded[index]
            return image.copy(), {k: v.copy() for k, v in maps.items()}
        paths = self.paths(self.ids[index])
        image = read_image(paths["image"])
        maps = {key: read_label_png(path) for key, path in paths.items() if key != "image"}
        self._check_maps(image, maps, self.ids[index], paths)
        size = image.nbytes + sum(m.nbytes for m in maps.values())
        if size <= self._cache_left:
            self._cache_left -= size
            self._decoded[index] = (image.copy(), {k: v.copy() for k, v in maps.items()})
        return image, maps

    def _check_maps(self, image: np.ndarray, maps: dict[str, np.ndarray], image_id: str, paths: Mapping[str, Path] | None = None) -> None:
        k, paths = len(self.class_names), paths or {}
        for key, labels in maps.items():
            where = paths.get(key) or f"{key} map of {image_id}"
            if labels.shape != image.shape[:2]:
                raise _size_error(where, labels.shape[::-1], image.shape[1::-1])
            bad = labels[(labels >= k) & (labels != IGNORE)]
            if bad.size:
                raise DataError(f"{where}: unknown label {int(bad[0])} (data set has {k} classes, 255 = unlabelled)")

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """Item `index`, or `(epoch, index)`: loader workers that live across epochs hold a
        copy of this dataset whose `set_epoch` they never see, so their sampler names it."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        sample = self.load(index)
        image, maps = sample.image, sample.maps
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            image, maps, roi = self.transform(image, maps, rng)
        else:
            roi = np.ones(image.shape[:2], dtype=bool)
        item = {"image": torch.from_numpy(image).permute(2, 0, 1).float(), "roi": torch.from_numpy(roi), "id": sample.image_id}
        item.update({k: torch.from_numpy(v.astype(np.int64)) for k, v in maps.items()})
        return item

    def _check_files(self) -> None:
        """Every listed file must exist and have its image's size; report the first problem and a count."""
        missing, mismatched = [], []
        for image_id in self.ids:
            sizes = {}
            for key, path in self.paths(image_id).items():
                try:
                    with Image.open(path) as img:
                        sizes[key] = img.size  # reads the header only
                except FileNotFoundError:
                    missing.append(path)
                except (UnidentifiedImageError, OSError) as exc:
                    raise DataError(f"{path}: cannot read image ({exc})") from None
            image_size = sizes.get("image")
            mismatched += [
                (self.paths(image_id)[key], size, image_size)
                for key, size in sizes.items()
                if image_size is not None and size != image_size
            ]
        if missing:
            raise missing_files_error(missing)
        if mismatched:
            raise _size_error(*mismatched[0])


def missing_files_error(missing: list[Path]) -> DataError:
    """One line: the first missing file and how many more there are."""
    more = f" (and {len(missing) - 1} more missing files)" if len(missing) > 1 else ""
    return DataError(f"{missing[0]}: file not found{more}")


def _size_error(where: object, size: tuple[int, int], image_size: tuple[int, int]) -> DataError:
    return DataError(f"{where}: size {size[0]}×{size[1]} differs from its image's {image_size[0]}×{image_size[1]}")


def collate(items: list[dict]) -> dict:
    """Stack items, padding any smaller one to the batch's largest size (padding outside the ROI;
    training crops all have the crop size, and evaluation predicts val images one by one)."""
    height = max(it["image"].shape[1] for it in items)
    width = max(it["image"].shape[2] for it in items)
    out: dict = {"id": [it["id"] for it in items], "size": [tuple(it["image"].shape[1:]) for it in items]}
    for key in items[0]:
        if key == "id":
            continue
        fill = {"image": 0.0, "roi": False}.get(key, IGNORE)
        tensors = [it[key] for it in items]
        padded = tensors[0].new_full((len(items), *tensors[0].shape[:-2], height, width), fill)
        for i, t in enumerate(tensors):
            padded[i, ..., : t.shape[-2], : t.shape[-1]] = t
        out[key] = padded
    return out
