"""Scribble tools: medial-axis strokes, length shortening, rasterisation, recovery from PNGs.

A stroke is ``(label, points)`` with ``points`` an ordered (P, 2) float polyline in
(row, col) pixel coordinates. The same functions serve the synthetic set and real
ScribbleSup data (XML polylines or rasterised PNGs), so "scribble length r" means the
same thing everywhere: the contiguous middle part of each stroke with a
fraction r of its arc length; r = 0 leaves one click at the stroke's middle.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from skimage.morphology import skeletonize

from rtrbench.datasets.labelio import IGNORE

Stroke = tuple[int, np.ndarray]

# The four "forward" 8-neighbour offsets; the other four are their mirrors (undirected graph).
_OFFSETS = ((0, 1, 1.0), (1, -1, np.sqrt(2.0)), (1, 0, 1.0), (1, 1, np.sqrt(2.0)))
_EIGHT = np.ones((3, 3), dtype=bool)


def skeleton_path(mask: np.ndarray) -> np.ndarray:
    """Ordered (P, 2) pixel coordinates of the longest geodesic path through the mask's skeleton."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return np.zeros((0, 2))
    # Skeletonise only the bounding box (outside it is background either way): much faster for
    # small objects in large images.
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return longest_path(skeletonize(crop)) + (rows[0], cols[0])


def longest_path(skel: np.ndarray) -> np.ndarray:
    """Diameter path of a thin pixel set seen as an 8-neighbour graph (largest 8-connected component).

    Two Dijkstra sweeps: the node farthest from any node is one end of the (approximate, exact
    on trees) diameter; the node farthest from that end is the other end.
    """
    skel = np.asarray(skel, dtype=bool)
    # Several components (e.g. a mask in pieces): keep the one with most pixels.
    comps, n_comps = ndimage.label(skel, structure=_EIGHT)
    if n_comps > 1:
        skel = comps == np.bincount(comps.ravel())[1:].argmax() + 1
    coords = np.argwhere(skel)
    n = len(coords)
    if n <= 1:
        return coords.astype(float).reshape(n, 2)
    index = np.full(skel.shape, -1, dtype=np.int64)
    index[coords[:, 0], coords[:, 1]] = np.arange(n)
    padded = np.pad(index, 1, constant_values=-1)  # so shifted neighbours never wrap around
    rows, cols, weights = [], [], []
    r, c = coords[:, 0] + 1, coords[:, 1] + 1
    for dr, dc, w in _OFFSETS:
        nb = padded[r + dr, c + dc]
        ok = nb >= 0
        rows.append(np.arange(n)[ok])
        cols.append(nb[ok])
        weights.append(np.full(ok.sum(), w))
    rows, cols, weights = map(np.concatenate, (rows, cols, weights))
    # Store both directions once: dijkstra(directed=False) would rebuild the transpose per call.
    graph = coo_matrix((np.r_[weights, weights], (np.r_[rows, cols], np.r_[cols, rows])), shape=(n, n)).tocsr()
    dist = dijkstra(graph, indices=0)
    a = int(np.argmax(dist))
    dist, pred = dijkstra(graph, indices=a, return_predecessors=True)
    b = int(np.argmax(dist))
    path = [b]
    while path[-1] != a:  # loop over path length, not pixels of the image
        path.append(int(pred[path[-1]]))
    return coords[path[::-1]].astype(float)


def polyline_length(points: np.ndarray) -> float:
    """Total arc length of a polyline."""
    points = np.asarray(points, dtype=float)
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum()) if len(points) > 1 else 0.0


def shorten_polyline(points: np.ndarray, r: float) -> np.ndarray:
    """Contiguous middle part of the polyline with arc length r × total (r = 0: the middle point)."""
    if not (0.0 <= r <= 1.0):  # also rejects NaN
        raise ValueError(f"scribble length must be in [0, 1], got {r}")
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    if r == 1.0 or len(points) == 0:
        return points.copy()
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 0])  # np.interp needs strictly increasing arc lengths
    points, seg = points[keep], seg[seg > 0]
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = arc[-1]
    if total == 0.0:
        return points[:1].copy()

    def at(s: float) -> np.ndarray:
        return np.array([np.interp(s, arc, points[:, 0]), np.interp(s, arc, points[:, 1])])

    if r == 0.0:
        return at(0.5 * total)[None]
    s0, s1 = 0.5 * (1.0 - r) * total, 0.5 * (1.0 + r) * total
    inner = points[(arc > s0) & (arc < s1)]
    return np.vstack([at(s0), inner, at(s1)])


def shorten_strokes(strokes: list[Stroke], r: float) -> list[Stroke]:
    """Shorten every stroke to the middle fraction r of its length."""
    return [(label, shorten_polyline(pts, r)) for label, pts in strokes]


def disk_footprint(radius: float) -> np.ndarray:
    """Boolean disk of the pixels within Euclidean distance ``radius`` of the centre pixel."""
    k = int(np.floor(radius))
    yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
    return yy**2 + xx**2 <= radius**2 + 1e-9


def line_footprint(width: int) -> np.ndarray:
    """Pen for a line exactly ``width`` pixels wide: the pixels within width/2 of the pen centre.

    For even widths the centre sits on a pixel corner (offset by half a pixel), so width 2 is a
    2×2 block rather than a 3-pixel plus.
    """
    c = 0.5 * (1 - width % 2)
    k = width // 2
    yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
    return (yy - c) ** 2 + (xx - c) ** 2 <= (width / 2) ** 2 + 1e-9


def rasterize_strokes(
    strokes: list[Stroke], shape: tuple[int, int], width: int = 3, click_radius: float = 2
) -> np.ndarray:
    """Draw strokes into an H×W uint8 map (255 = unlabelled); later strokes overwrite earlier ones.

    A polyline's centre-line pixels are stamped with ``line_footprint(width)`` (a straight
    horizontal stroke is exactly ``width`` pixels wide); a one-point stroke (a click) is a disk
    of ``click_radius``.
    """
    if int(width) != width or width < 1 or click_radius < 0:
        raise ValueError(f"need an integer width >= 1 and click_radius >= 0, got {width}, {click_radius}")
    width = int(width)
    line_foot, click_foot = line_footprint(width), disk_footprint(click_radius)
    h, w = shape
    out = np.full((h, w), IGNORE, dtype=np.uint8)
    for label, pts in strokes:
        pts = np.asarray(pts, dtype=float).reshape(-1, 2)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        if len(pts) == 0:
            continue
        if seg.sum() == 0.0:
            centre, foot = pts[:1], click_foot
        else:
            # Sample the centre line every 0.5 px (dense enough that rounding leaves no gaps).
            keep = np.concatenate([[True], seg > 0])
            arc = np.concatenate([[0.0], np.cumsum(seg[seg > 0])])
            s = np.linspace(0.0, arc[-1], int(np.ceil(arc[-1] / 0.5)) + 1)
            centre = np.stack([np.interp(s, arc, pts[keep, 0]), np.interp(s, arc, pts[keep, 1])], 1)
            foot = line_foot
        # Round halves up on both axes alike, so a diagonal step never adds an off-path pixel.
        ij = np.floor(centre + 0.5).astype(np.int64)
        # Stamp the pen at every centre pixel: all (centre, pen offset) pairs at once.
        offsets = np.argwhere(foot) - foot.shape[0] // 2
        ij = (ij[:, None, :] + offsets[None]).reshape(-1, 2)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < h) & (ij[:, 1] >= 0) & (ij[:, 1] < w)
        out[ij[ok, 0], ij[ok, 1]] = label
    return out


def strokes_from_labels(scribble: np.ndarray) -> list[Stroke]:
    """Recover strokes from a rasterised scribble map: one skeleton path per 8-connected component."""
    scribble = np.asarray(scribble)
    if scribble.ndim != 2:
        raise ValueError(f"scribble map must be 2-D, got shape {scribble.shape}")
    strokes: list[Stroke] = []
    for label in np.unique(scribble):
        if label == IGNORE:
            continue
        comps, _ = ndimage.label(scribble == label, structure=_EIGHT)
        for i, sl in enumerate(ndimage.find_objects(comps), start=1):
            path = skeleton_path(comps[sl] == i)  # crop: skeletonising the whole image per stroke is slow
            strokes.append((int(label), path + (sl[0].start, sl[1].start)))
    return strokes
