"""Deterministic synthetic scribble data set written in the PASCAL layout (docs/data.md).

Each foreground class is a (shape family, texture type, main colour) triple; its texture mixes
the class's main colour with a darker shade of it. Colours come from one palette shared with the
background clutter (flat blobs of any palette colour, the classes' included), so colour never
decides the class on its own; beyond 6 classes shapes repeat with other textures.
Backgrounds carry a smooth colour field, amoeba-like blobs and lines (all background class); a
blob is flat-coloured, except that with probability ``TEXTURED_BLOB_P`` it carries an object
texture, so texture alone does not decide either (only the blob's irregular shape tells it
apart). Objects have soft (blurred) edges and the image gets Gaussian
noise, so object edges are class edges but not trivially found. Scribbles follow the medial
axis of every object's visible region plus one or two background strokes; the shortened
lengths are cut from the same polylines with ``shorten_strokes``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.draw import polygon as draw_polygon
from skimage.morphology import skeletonize

from rtrbench.datasets.labelio import IGNORE, write_label_png
from rtrbench.datasets.scribbles import Stroke, longest_path, rasterize_strokes, shorten_polyline, shorten_strokes, skeleton_path
from rtrbench.datasets.specs import SynthConfig
from rtrbench.datasets.voc import scribble_dir
from rtrbench.errors import ConfigError

SHAPES = ("ellipse", "rectangle", "triangle", "ring", "cross", "star")
TEXTURES = ("striped", "checkered", "dotted", "speckled")
# Share of clutter blobs that carry an object texture. All of them made the set too hard for the
# small CPU network to learn in the default budget (full supervision stayed near 0.2 mIoU).
TEXTURED_BLOB_P = 0.25
SPLITS = ("train", "val")
DEFAULT_LENGTHS = (0.0, 0.3, 0.5, 0.8)
JPEG_QUALITY = 95

# Class k's main colour is PALETTE[(k - 1) % len]; clutter draws from the same palette.
PALETTE = np.array(
    [(200, 60, 50), (60, 150, 70), (50, 90, 190), (220, 190, 60), (150, 80, 170), (70, 180, 190), (235, 235, 225), (60, 55, 50)],
    dtype=float,
) / 255.0

# Scribble geometry at the reference size of 96 px; scaled linearly with the image size so the
# labelled fraction stays about the same (~3 % at full length, as on VOC).
_REF_SIZE = 96
_STROKE_WIDTH = 1
_CLICK_RADIUS = 2.0




@dataclass
class Sample:
    """One rendered training/validation sample, before anything is written."""

    image: np.ndarray  # H×W×3 uint8
    gt: np.ndarray  # H×W uint8 class indices, no void
    strokes: list[Stroke]  # full-length strokes, background first


def class_style(k: int) -> tuple[str, str]:
    """(shape, texture) of foreground class k >= 1; pairs are unique for k <= len(SHAPES)·len(TEXTURES)."""
    i = k - 1
    return SHAPES[i % len(SHAPES)], TEXTURES[(i // len(SHAPES) + i) % len(TEXTURES)]


def class_names(classes: int) -> list[str]:
    """Class names in index order: background, then "<texture>_<shape>" per foreground class."""
    return ["background"] + ["_".join(class_style(k)[::-1]) for k in range(1, classes)]


def sample_id(split: str, index: int) -> str:
    return f"synth_{split}_{index:05d}"


def stroke_geometry(size: int) -> tuple[int, float]:
    """(stroke width, click radius) for images of the given size, scaled from the 96 px reference."""
    scale = size / _REF_SIZE
    return max(1, round(_STROKE_WIDTH * scale)), max(1.0, round(_CLICK_RADIUS * scale))


# ---------------------------------------------------------------------------------------------
# Rendering


def _texture(
    rng: np.random.Generator, texture: str, size: int, main: int | None = None
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Draw a texture's parameters now; return a function giving its colours on a pixel grid.

    The pattern t in [0, 1] mixes two colours (brightness jittered): two distinct random
    palette colours, or a class's `main` colour and a darker shade of it.
    """
    if main is None:
        a, b = PALETTE[rng.choice(len(PALETTE), 2, replace=False)] * rng.uniform(0.85, 1.15, (2, 1))
    else:  # a class's texture: its main colour against a darker shade of itself
        a = PALETTE[main] * rng.uniform(0.85, 1.15)
        b = a * rng.uniform(0.3, 0.55)
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(0.08, 0.13) * size

    def colours(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        u = np.cos(theta) * yy + np.sin(theta) * xx  # texture axes, rotated independently of the shape
        v = -np.sin(theta) * yy + np.cos(theta) * xx
        if texture == "striped":
            t = np.clip(0.5 + 1.5 * np.sin(2 * np.pi * u / period), 0, 1)
        elif texture == "checkered":
            t = np.clip(0.5 + 3.0 * np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period), 0, 1)
        elif texture == "dotted":
            du, dv = (u % period) - period / 2, (v % period) - period / 2
            t = np.clip(0.3 * period - np.hypot(du, dv) + 0.5, 0, 1)
        else:  # speckled: a fine checker, several times the frequency of the others
            fine = period / 3
            t = np.clip(0.5 + 3.0 * np.sin(2 * np.pi * u / fine) * np.sin(2 * np.pi * v / fine), 0, 1)
        return a * (1 - t[..., None]) + b * t[..., None]

    return colours


def _shape_mask(rng: np.random.Generator, shape: str, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    """Hard mask of one randomly sized, placed and rotated shape (may be clipped at the edge)."""
    cy, cx = rng.uniform(0.1, 0.9, 2) * size
    radius = rng.uniform(0.18, 0.34) * size
    phi = rng.uniform(0, 2 * np.pi)
    u = np.cos(phi) * (yy - cy) + np.sin(phi) * (xx - cx)  # shape-aligned coordinates
    v = -np.sin(phi) * (yy - cy) + np.cos(phi) * (xx - cx)
    if shape == "ellipse":  # elongated so its medial axis is a segment, not a point
        return (u / radius) ** 2 + (v / (radius * rng.uniform(0.45, 0.7))) ** 2 <= 1
    if shape == "rectangle":
        return (np.abs(u) <= radius) & (np.abs(v) <= radius * rng.uniform(0.35, 0.65))
    if shape == "ring":
        rho = np.hypot(u, v / rng.uniform(0.75, 1.0))
        return (rho <= radius) & (rho >= 0.55 * radius)
    if shape == "cross":
        arm = 0.3 * radius
        return ((np.abs(u) <= radius) & (np.abs(v) <= arm)) | ((np.abs(u) <= arm) & (np.abs(v) <= radius * rng.uniform(0.7, 1.0)))
    if shape == "triangle":
        spread = rng.uniform(0.8, 1.2)
        angles, radii = np.array([0.0, 2 * np.pi / 3 * spread, -2 * np.pi / 3 * spread]), np.full(3, radius)
    else:  # star
        angles, radii = np.arange(10) * np.pi / 5, np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    rows = cy + radii * np.cos(angles + phi)
    cols = cx + radii * np.sin(angles + phi)
    mask = np.zeros(yy.shape, dtype=bool)
    mask[draw_polygon(rows, cols, yy.shape)] = True
    return mask


def _blob_mask(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    """Irregular amoeba-like clutter: a radius modulated by a few random angular harmonics."""
    cy, cx = rng.uniform(0, 1, 2) * size
    amp, phase = rng.uniform(0.1, 0.25, (3, 1, 1)), rng.uniform(0, 2 * np.pi, (3, 1, 1))
    radius = rng.uniform(0.06, 0.14) * size
    # Only the window the blob can reach (radius × (1 + Σ amp)) is evaluated, for speed.
    reach = radius * (1 + amp.sum()) + 1
    win = np.s_[max(int(cy - reach), 0) : max(int(cy + reach) + 1, 0), max(int(cx - reach), 0) : max(int(cx + reach) + 1, 0)]
    dy, dx = yy[win] - cy, xx[win] - cx
    angle = np.arctan2(dy, dx)
    k = np.arange(2, 5)[:, None, None]
    mask = np.zeros(yy.shape, dtype=bool)
    mask[win] = np.hypot(dy, dx) <= radius * (1 + (amp * np.cos(k * angle + phase)).sum(0))
    return mask


def _line_alpha(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased straight line segment (clutter), about 1.5 px wide at 96 px."""
    p, q = rng.uniform(-0.1, 1.1, (2, 2)) * size
    d = q - p
    s = np.clip(((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / max(d @ d, 1e-9), 0, 1)
    dist = np.hypot(yy - p[0] - s * d[0], xx - p[1] - s * d[1])
    return np.clip(0.75 * size / _REF_SIZE + 0.5 - dist, 0, 1)


def _paint(img: np.ndarray, layer: np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray], alpha: np.ndarray, yy, xx) -> None:
    """Alpha-blend ``layer`` (a colour, or a function of the pixel grid) into ``img`` in place.

    Only the bounding box of the non-zero alpha is touched, which keeps rendering fast.
    """
    rows, cols = np.nonzero(alpha.any(1))[0], np.nonzero(alpha.any(0))[0]
    if len(rows) == 0:
        return
    win = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    colour = layer(yy[win], xx[win]) if callable(layer) else layer
    a = alpha[win][..., None]
    img[win] = img[win] * (1 - a) + colour * a


def _layout(rng: np.random.Generator, spec: SynthConfig, yy: np.ndarray, xx: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """1–3 objects (class, mask) in painting order; each stays at least half visible after occlusion."""
    size, min_area = spec.size, 0.015 * spec.size**2
    objects: list[tuple[int, np.ndarray]] = []
    for _ in range(rng.integers(1, 4)):
        before = np.bincount(_owner(objects, yy.shape).ravel() + 1, minlength=len(objects) + 1)[1:]
        for _try in range(10):
            cls = int(rng.integers(1, spec.classes))
            mask = _shape_mask(rng, class_style(cls)[0], yy, xx, size)
            if mask.sum() < min_area:
                continue
            # Reject placements that hide most of an earlier object: its scribble would be a speck.
            after = before - np.bincount(_owner(objects, yy.shape)[mask] + 1, minlength=len(objects) + 1)[1:]
            if np.all(after >= np.maximum(min_area, 0.5 * before)):
                objects.append((cls, mask))
                break
    return objects


def _owner(objects: list[tuple[int, np.ndarray]], shape: tuple[int, int]) -> np.ndarray:
    """Index of the topmost object per pixel (-1 = background)."""
    owner = np.full(shape, -1, dtype=np.int64)
    for j, (_, mask) in enumerate(objects):
        owner[mask] = j
    return owner


def _strokes(rng: np.random.Generator, owner: np.ndarray, objects: list, size: int) -> list[Stroke]:
    """Background strokes (one or two, far apart) and one medial-axis stroke per visible object."""
    skel = skeletonize(owner == -1)
    first = longest_path(skel)
    strokes: list[Stroke] = [(0, first)] if len(first) else []
    if len(first) and rng.random() < 0.5:
        on_first = np.zeros(owner.shape, dtype=bool)
        on_first[tuple(first.astype(np.int64).T)] = True
        rest = skel & (ndimage.distance_transform_edt(~on_first) > 0.2 * size)
        second = longest_path(rest)
        if len(second) >= 0.15 * size:
            strokes.append((0, second))
    for j, (cls, _) in enumerate(objects):
        path = skeleton_path(owner == j)
        if len(path):
            strokes.append((cls, path))
    return strokes


def _clicks_apart(strokes: list[Stroke], click_radius: float) -> bool:
    """True when the length-0 clicks of all strokes are separate connected components."""
    mids = np.array([shorten_polyline(p, 0.0)[0] for _, p in strokes]).reshape(-1, 2)
    d = np.hypot(*(mids[:, None] - mids[None]).transpose(2, 0, 1))
    return bool(np.all(d[np.triu_indices(len(mids), 1)] > 2 * click_radius + 2))


def render_sample(spec: SynthConfig, split: str, index: int) -> Sample:
    """Image, ground truth and full-length strokes of one sample; a pure function of its arguments."""
    rng = np.random.default_rng([spec.seed, SPLITS.index(split), index])
    size = spec.size
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    _, click_radius = stroke_geometry(size)
    for _attempt in range(20):  # redraw layouts whose clicks would touch (rare)
        objects = _layout(rng, spec, yy, xx)
        owner = _owner(objects, yy.shape)
        strokes = _strokes(rng, owner, objects, size)
        if _clicks_apart(strokes, click_radius):
            break

    # Background: smooth two-colour field, then textured blobs and lines (all background class).
    # (a sum of three random low-frequency waves: smooth like filtered noise, but cheaper)
    freq = rng.normal(0.0, 2.0 * np.pi / size * 1.5, (3, 2))
    t = sum(np.cos(f[0] * yy + f[1] * xx + ph) for f, ph in zip(freq, rng.uniform(0, 2 * np.pi, 3)))
    t = (t - t.min()) / max(np.ptp(t), 1e-9)
    a, b = PALETTE[rng.choice(len(PALETTE), 2, replace=False)]
    img = a + (0.6 * (b - a)) * t[..., None]
    edge_sigma = 0.7 * size / _REF_SIZE
    for _ in range(rng.integers(1, 4)):
        blob = ndimage.gaussian_filter(_blob_mask(rng, yy, xx, size).astype(float), edge_sigma, truncate=3.0)
        textured = rng.random() < TEXTURED_BLOB_P
        fill = _texture(rng, TEXTURES[rng.integers(len(TEXTURES))], size) if textured else PALETTE[rng.integers(len(PALETTE))]
        _paint(img, fill, blob, yy, xx)
    for _ in range(rng.integers(1, 4)):
        _paint(img, PALETTE[rng.integers(len(PALETTE))], _line_alpha(rng, yy, xx, size), yy, xx)
    # Objects with soft edges, in painting order (later ones occlude earlier ones).
    for cls, mask in objects:
        alpha = ndimage.gaussian_filter(mask.astype(float), edge_sigma, truncate=3.0)
        _paint(img, _texture(rng, class_style(cls)[1], size, main=(cls - 1) % len(PALETTE)), alpha, yy, xx)
    img = img + 0.035 * rng.standard_normal(img.shape, dtype=np.float32)

    gt = np.zeros((size, size), dtype=np.uint8)
    for cls, mask in objects:
        gt[mask] = cls
    image = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return Sample(image=image, gt=gt, strokes=strokes)


def scribble_map(sample: Sample, r: float) -> np.ndarray:
    """Rasterised scribbles of length r, clipped to their own class so every seed is correct."""
    width, click_radius = stroke_geometry(sample.gt.shape[0])
    scr = rasterize_strokes(shorten_strokes(sample.strokes, r), sample.gt.shape, width, click_radius)
    # A stroke's width can spill over the region edge at skeleton ends; seeds must lie on their class.
    return np.where(scr == sample.gt, scr, IGNORE).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Writing


def write_synthetic(
    out: Path,
    spec: SynthConfig,
    lengths: Iterable[float] = DEFAULT_LENGTHS,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write the whole set under ``out`` in the PASCAL layout; byte-identical for the same spec.

    Full-length scribbles always go to ``pascal_2012_scribble``; ``lengths`` lists the shortened
    ones (a 1 in it is the full set and is not written twice). List files and ``classes.txt``
    are written last, so a reader that finds them sees complete image folders.
    """
    out = Path(out)
    lengths = sorted({float(r) for r in lengths} - {1.0})
    for r in lengths:
        if not 0.0 <= r <= 1.0:
            raise ConfigError(f"scribble length must be in [0, 1], got {r}")
    dirs = ["JPEGImages", "SegmentationClassAug", "SegmentationClass"] + [scribble_dir(r) for r in [1.0, *lengths]]
    for d in dirs:
        (out / d).mkdir(parents=True, exist_ok=True)

    todo = [("train", i) for i in range(spec.n_train)] + [("val", i) for i in range(spec.n_val)]
    for done, (split, index) in enumerate(todo, start=1):
        sample = render_sample(spec, split, index)
        sid = sample_id(split, index)
        Image.fromarray(sample.image).save(out / "JPEGImages" / f"{sid}.jpg", quality=JPEG_QUALITY)
        write_label_png(out / "SegmentationClassAug" / f"{sid}.png", sample.gt)
        if split == "val":
            write_label_png(out / "SegmentationClass" / f"{sid}.png", sample.gt)
        else:
            for r in [1.0, *lengths]:
                write_label_png(out / scribble_dir(r) / f"{sid}.png", scribble_map(sample, r))
        if progress is not None:
            progress(done, len(todo))

    lists = out / "ImageSets" / "SegmentationAug"
    lists.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", spec.n_train), ("val", spec.n_val)):
        (lists / f"{split}.txt").write_text("".join(f"{sample_id(split, i)}\n" for i in range(n)))
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in class_names(spec.classes)))
