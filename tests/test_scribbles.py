"""Scribble tools: shortening keeps the centred middle fraction, rasterising, skeleton paths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from rtrbench.datasets.scribbles import (
    longest_path,
    polyline_length,
    rasterize_strokes,
    shorten_polyline,
    shorten_strokes,
    skeleton_path,
    strokes_from_labels,
)

EIGHT = np.ones((3, 3), dtype=bool)


def point_at(points: np.ndarray, s: float) -> np.ndarray:
    """Independent reference: walk the segments to the point at arc length s."""
    for p, q in zip(points[:-1], points[1:]):
        seg = float(np.linalg.norm(q - p))
        if s <= seg and seg > 0:
            return p + (q - p) * (s / seg)
        s -= seg
    return points[-1]


def n_components(mask: np.ndarray) -> int:
    return ndimage.label(mask, structure=EIGHT)[1]


# --- shorten_polyline ---------------------------------------------------------------------------

L_SHAPE = np.array([[0.0, 0.0], [0.0, 10.0], [10.0, 10.0]])  # length 20, corner at arc 10


def test_shorten_l_shape_by_hand():
    out = shorten_polyline(L_SHAPE, 0.5)  # arc 5 .. 15
    np.testing.assert_allclose(out, [[0, 5], [0, 10], [5, 10]])
    assert polyline_length(out) == pytest.approx(10.0, abs=1e-12)


def test_shorten_zero_is_the_middle_point():
    pts = np.array([[0.0, 0.0], [0.0, 4.0], [6.0, 4.0]])  # length 10: middle at arc 5 = (1, 4)
    out = shorten_polyline(pts, 0.0)
    assert out.shape == (1, 2)
    np.testing.assert_allclose(out[0], [1.0, 4.0])


def test_shorten_one_is_identity():
    np.testing.assert_array_equal(shorten_polyline(L_SHAPE, 1.0), L_SHAPE)


@pytest.mark.parametrize("r", [-0.1, 1.1, float("nan")])
def test_shorten_rejects_invalid_r(r):
    with pytest.raises(ValueError):
        shorten_polyline(L_SHAPE, r)


polylines = st.lists(
    st.tuples(st.floats(-100, 100), st.floats(-100, 100)), min_size=2, max_size=12
).map(lambda pts: np.array(pts, dtype=float))


@settings(max_examples=150, deadline=None)
@given(polylines, st.floats(0.0, 1.0))
def test_shorten_keeps_centred_fraction(points, r):
    total = polyline_length(points)
    out = shorten_polyline(points, r)
    assert polyline_length(out) == pytest.approx(r * total, abs=1e-6)
    # The kept part starts at arc (1-r)/2 and ends at arc (1+r)/2 of the original: centred.
    np.testing.assert_allclose(out[0], point_at(points, 0.5 * (1 - r) * total), atol=1e-6)
    np.testing.assert_allclose(out[-1], point_at(points, 0.5 * (1 + r) * total), atol=1e-6)
    if r == 0.0 and total > 0:
        assert out.shape == (1, 2)


def test_shorten_strokes_keeps_labels():
    strokes = [(3, L_SHAPE), (0, L_SHAPE[::-1])]
    out = shorten_strokes(strokes, 0.5)
    assert [label for label, _ in out] == [3, 0]
    assert all(polyline_length(p) == pytest.approx(10.0) for _, p in out)


# --- rasterize_strokes ---------------------------------------------------------------------------

STROKES = [
    (1, np.array([[10.0, 5.0], [10.0, 55.0]])),  # horizontal line
    (2, np.array([[20.0, 5.0], [40.0, 25.0], [25.0, 50.0]])),  # bent polyline
    (0, np.array([[50.0 + 5 * np.sin(t / 4), 2.0 + t] for t in range(56)])),  # wavy line
]


@pytest.mark.parametrize("width", [1, 2, 3])
def test_horizontal_stroke_has_the_given_width(width):
    scr = rasterize_strokes([(4, np.array([[10.0, 5.0], [10.0, 30.0]]))], (24, 40), width=width)
    rows = np.flatnonzero((scr == 4).any(1))
    assert len(rows) == width
    assert set(np.unique(scr)) == {4, 255}


def test_clicks_are_one_component_per_stroke():
    scr = rasterize_strokes(shorten_strokes(STROKES, 0.0), (64, 64), width=3, click_radius=2)
    assert n_components(scr != 255) == len(STROKES)
    for label, _ in STROKES:
        assert n_components(scr == label) == 1


@pytest.mark.parametrize("width", [1, 3])
def test_labelled_fraction_strictly_increases_with_length(width):
    fractions = [
        (rasterize_strokes(shorten_strokes(STROKES, r), (64, 64), width=width) != 255).mean()
        for r in (0.0, 0.3, 0.5, 0.8, 1.0)
    ]
    assert all(a < b for a, b in zip(fractions, fractions[1:])), fractions


def test_later_strokes_overwrite_and_outside_points_are_dropped():
    scr = rasterize_strokes([(1, np.array([[5.0, -10.0], [5.0, 20.0]])), (2, np.array([[0.0, 10.0], [10.0, 10.0]]))], (12, 16), width=1)
    assert scr[5, 10] == 2 and scr[5, 0] == 1 and scr[5, 15] == 1


# --- skeleton_path / strokes_from_labels ---------------------------------------------------------


def assert_8_connected_path(path: np.ndarray) -> None:
    steps = np.abs(np.diff(path, axis=0))
    assert np.all(steps.max(1) == 1), "consecutive points must be distinct 8-neighbours"


def test_skeleton_path_of_rectangle_follows_long_axis():
    mask = np.zeros((40, 80), dtype=bool)
    mask[10:30, 5:75] = True  # 20 × 70: long axis horizontal, centre row 19.5
    path = skeleton_path(mask)
    assert_8_connected_path(path)
    assert np.ptp(path[:, 1]) >= 0.6 * 70
    middle = path[(path[:, 1] > 20) & (path[:, 1] < 60)]
    assert len(middle) and np.all(np.abs(middle[:, 0] - 19.5) <= 1.0)
    assert mask[tuple(path.astype(int).T)].all()


def test_skeleton_path_degenerate_masks():
    assert skeleton_path(np.zeros((5, 5), dtype=bool)).shape == (0, 2)
    one = np.zeros((5, 5), dtype=bool)
    one[2, 3] = True
    np.testing.assert_array_equal(skeleton_path(one), [[2.0, 3.0]])


def test_longest_path_on_a_tree_is_its_diameter():
    skel = np.zeros((21, 21), dtype=bool)
    skel[10, 0:21] = True  # long arm: 20 px
    skel[3:10, 10] = True  # shorter branch (7 px)
    path = longest_path(skel)
    assert_8_connected_path(path)
    assert {tuple(path[0]), tuple(path[-1])} == {(10.0, 0.0), (10.0, 20.0)}


def test_strokes_from_labels_round_trip():
    scr = rasterize_strokes(STROKES, (64, 64), width=3)
    recovered = strokes_from_labels(scr)
    assert sorted(label for label, _ in recovered) == sorted(label for label, _ in STROKES)
    by_label = {label: pts for label, pts in recovered}
    for label, pts in STROKES:
        path = by_label[label]
        assert_8_connected_path(path)
        assert np.all(scr[tuple(path.astype(int).T)] == label)  # lies on its own scribble
        assert polyline_length(path) >= 0.8 * polyline_length(pts)


def test_strokes_from_labels_splits_components():
    scr = np.full((10, 30), 255, dtype=np.uint8)
    scr[2:5, 2:10] = 7
    scr[2:5, 20:28] = 7  # same label, separate component
    scr[7, 5:25] = 1
    recovered = strokes_from_labels(scr)
    assert sorted(label for label, _ in recovered) == [1, 7, 7]
