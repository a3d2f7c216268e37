"""Permutohedral-lattice Gaussian filter in PyTorch (Adams, Baek & Davis, Eurographics 2010).

The construction follows Krähenbühl's C++ lattice (inside pydensecrf, and in Tang's rloss
wrapper) step for step -- feature scaling, float operation order of the elevation, rounding,
tie-breaks, barycentric weights, the [1/2, 1, 1/2] blur and the slice constant -- so the two
agree to float rounding (~1e-7 relative in float32) and Tang's loss weight keeps its meaning.

What ``filter`` computes: ``out_i ~= c * sum_j exp(-|f_i - f_j|^2 / 2) v_j`` for features ``f``
already divided by their sigmas. The lattice does not reproduce the exact Gaussian's
normalisation; ``c`` (about 0.3-0.65 for d = 5) is Krähenbühl's convention, kept on purpose.
``rtrbench.methods.solvers.bilateral`` documents the measured accuracy.

Implementation (vectorised over points; Python loops only over the d+1 coordinates):

- Points -> simplices: elevate, round, rank (all pairwise comparisons at once), barycentric
  weights. Points that fall in the same simplex share its d+1 vertices, so the keys are
  hashed in two levels: sort the N simplex keys, then the (d+1)·S vertex keys of the S
  distinct simplices (S is ~0.3 N on natural images at the reference sigmas), instead of
  sorting (d+1)·N vertex keys.
- Keys are packed into one int64 (mixed radix with a margin per digit), so a blur neighbour
  is "key + constant"; neighbours are found by ``searchsorted`` in the sorted unique keys.
- Splat = one M × N CSR matrix applied to the values permuted by simplex (so each row reads
  contiguous runs), built by expanding each vertex's simplex corners into their points;
  slice = one N × M CSR matrix. Sparse-dense products are multi-threaded (MKL on CPU,
  cuSPARSE on CUDA) and need no atomics.

Batches: points of several images share one lattice; the image index is the most significant
digit of the packed key, so images never share a vertex and the blur never crosses images.
One lattice per batch keeps the number of tensor ops (Python overhead) independent of it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache

import torch


@cache
def _constants(d: int) -> dict[str, torch.Tensor]:
    """Per-dimension constants (CPU), cached per d."""
    # Diagonal of the elevation matrix E (Adams et al., p. 5), scaled so the blur approximates a
    # unit-std Gaussian; the float32 rounding of sqrt(2/3)(d+1) is the C code's.
    i = torch.arange(d, dtype=torch.float64)
    scale = 1.0 / torch.sqrt((i + 1) * (i + 2)) * torch.tensor((2.0 / 3.0) ** 0.5 * (d + 1)).float().double()
    a, b = torch.triu_indices(d + 1, d + 1, 1)  # all coordinate pairs a < b
    to_rank = torch.zeros(d + 1, a.numel(), dtype=torch.float64)
    to_rank[a, torch.arange(a.numel())] = 1.0
    to_rank[b, torch.arange(a.numel())] = -1.0
    base_rank = torch.bincount(b, minlength=d + 1).double()
    return {"scale": scale, "pair_a": a, "pair_b": b, "to_rank": to_rank, "base_rank": base_rank}


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if col.numel() < 2**31:  # 32-bit indices: what MKL/cuSPARSE use (no conversion per product)
        crow, col = crow.int(), col.int()
    if not col.is_cpu:  # cuSPARSE assumes sorted columns within a row (MKL's CSR @ dense does not)
        row = torch.repeat_interleave(torch.arange(size[0], device=col.device), crow.diff().long(), output_size=col.numel())
        order = torch.argsort(row * size[1] + col.long())
        col, values = col[order], values[order]
    with warnings.catch_warnings():  # CSR is "beta" in torch; construction and CSR @ dense are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)  # valid by construction


def _group(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort int64 ``keys``: (sorted unique keys, group id per key, order, CSR row pointer of groups)."""
    sorted_keys, order = torch.sort(keys, stable=True)  # stable: deterministic CSR column order
    unique, group_sorted, counts = torch.unique_consecutive(sorted_keys, return_inverse=True, return_counts=True)
    group = torch.empty_like(group_sorted).scatter_(0, order, group_sorted)
    return unique, group, order, torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


@dataclass
class PermutohedralLattice:
    """A lattice built once for a set of points; ``filter`` may then be called many times."""

    point_order: torch.Tensor  # N long: points sorted by simplex
    splat: torch.Tensor  # M × N CSR: weight of the point_order[n]-th point on vertex m
    slice: torch.Tensor  # N × M CSR: barycentric weight of vertex m in point n
    neighbours: torch.Tensor  # (d+1)×2×M long: blur neighbours per direction; M = missing
    d: int

    @property
    def num_vertices(self) -> int:
        return self.splat.shape[0]

    @classmethod
    def build(cls, features: torch.Tensor, image_index: torch.Tensor | None = None) -> "PermutohedralLattice":
        """Lattice for ``features`` (N×d, already divided by the per-dimension sigma).

        ``image_index`` (N, long, optional) keeps the images of a batch apart (module doc).
        Runs in the features' float dtype (float64 for tests) on the features' device.
        """
        n, d = features.shape
        dev, dt = features.device, features.dtype
        k = {name: t.to(dev) for name, t in _constants(d).items()}
        # Coordinate-major layout ((d+1)×N): every per-coordinate op is on a contiguous row.
        cf = features.T * k["scale"].to(dt).unsqueeze(1)

        # Elevate onto the plane sum = 0 of R^{d+1} in the C code's float operation order, so
        # points on a simplex boundary pick the same simplex (a zero-weight vertex still
        # changes the blur's connectivity: that is a 1%-level difference otherwise).
        elevated = torch.empty(d + 1, n, device=dev, dtype=dt)
        sm = torch.zeros(n, device=dev, dtype=dt)
        for j in range(d, 0, -1):
            torch.sub(sm, cf[j - 1] * j, out=elevated[j])  # product rounded first, as in C (no FMA)
            sm += cf[j - 1]
        elevated[0] = sm

        # Nearest remainder-0 lattice point: round each coordinate to a multiple of d+1 (half to
        # even, as the SSE build does); the enclosing simplex follows from ranking the residuals.
        inv = torch.tensor(1.0 / (d + 1), dtype=dt, device=dev)
        rd = torch.round(elevated * inv)
        rem0 = rd * (d + 1)  # exact small integers, kept in float
        diff = elevated - rem0
        # rank_i = #{j: diff_j > diff_i} + #{j < i: diff_j == diff_i} (the C code's tie-break): for
        # each pair a < b, rank_a += [diff_a < diff_b] and rank_b += 1 - [diff_a < diff_b]; summed
        # by one small matmul (exact: integer counts). (index_add_ would do, but its CPU kernel
        # spawns threads even for tiny inputs, which is slow on a busy machine.)
        less = (diff.index_select(0, k["pair_a"]) < diff.index_select(0, k["pair_b"])).to(dt)
        rank = torch.addmm(k["base_rank"].to(dt).unsqueeze(1), k["to_rank"].to(dt), less).long()
        rank += rd.sum(0).long()  # the rounded point may be off the plane
        wrap = torch.div(rank, d + 1, rounding_mode="floor")  # bring ranks back into 0..d
        rank -= (d + 1) * wrap
        rem0 -= (d + 1) * wrap.to(dt)

        # Barycentric coordinates (Adams et al., p. 10): with the residuals sorted ascending
        # (= by decreasing rank), weight_r = v_(r) - v_(r-1), weight_0 = v_(0) + 1 - v_(d).
        # The sort is an odd-even transposition network on the d+1 rows: no scatter, and ties
        # need no tie-break since they give equal values.
        v = (elevated - rem0) * inv
        for t in range(d + 1):
            lo_row, hi_row = v[t % 2 : d : 2], v[t % 2 + 1 :: 2]
            lo_row, hi_row = lo_row[: hi_row.shape[0]], hi_row[: lo_row.shape[0]]
            smaller = torch.minimum(lo_row, hi_row)
            hi_row.copy_(torch.maximum(lo_row, hi_row))
            lo_row.copy_(smaller)
        weights = v - v.roll(1, 0)  # (d+1)×N, row r: weight of the remainder-r vertex
        weights[0] = v[0] + (1.0 - v[d])

        # Pack keys into int64: mixed radix over the first d coordinates (the last is minus
        # their sum), each digit with a margin of 2d (a vertex is within d of rem0 and a blur
        # step moves a coordinate by at most d) so that "neighbour = key + constant" holds.
        rem0 = rem0[:d].long()
        lo = rem0.amin(1, keepdim=True) - 2 * d
        span = rem0.amax(1) + 2 * d - lo.view(-1) + 1
        radix = torch.cumprod(torch.cat([span.new_ones(1), span[:-1]]), 0)
        top = int(radix[-1]) * int(span[-1])
        images = 1 if image_index is None else int(image_index.max()) + 1
        if top * images >= 2**62:
            raise ValueError("lattice keys do not fit in int64 (features too spread out: sigma too small?)")
        p0 = ((rem0 - lo) * radix.unsqueeze(1)).sum(0)
        if image_index is not None:
            p0 += image_index.to(dev).long() * top

        # Level 1: group points by simplex = (rem0, rank permutation).
        code = (rank[:d] * ((d + 1) ** torch.arange(d, device=dev)).unsqueeze(1)).sum(0)
        simplex_p0 = p0
        if top * images * (d + 1) ** d >= 2**62:  # compress rem0 to a dense id first
            simplex_p0 = torch.unique(p0, return_inverse=True)[1]
        _, simplex, point_order, simplex_crow = _group(simplex_p0 * (d + 1) ** d + code)
        rep = point_order[simplex_crow[:-1]]  # one point per simplex
        s = rep.numel()

        # Level 2: the d+1 vertex keys of each simplex. Vertex r has coordinates
        # rem0_i + r - (d+1)[rank_i >= d+1-r], so packed_r = P0 + r R - (d+1) crossed_r with
        # crossed_r = sum of radix_i over the i < d with d+1-rank_i <= r: scatter radix_i to row
        # d+1-rank_i (ranks are distinct: no collisions), then a cumulative sum over rows.
        rank_rep = torch.take(rank, rep + n * torch.arange(d, device=dev).view(-1, 1))  # d×S
        flat = (d + 1 - rank_rep) * s + torch.arange(s, device=dev)
        steps = torch.zeros((d + 2) * s, dtype=torch.long, device=dev)
        steps.scatter_(0, flat.view(-1), radix.repeat_interleave(s))
        crossed = torch.cumsum(steps.view(d + 2, s)[: d + 1], 0)
        r = torch.arange(d + 1, device=dev).view(-1, 1)
        vertex_keys = p0[rep] + r * radix.sum() - (d + 1) * crossed  # (d+1)×S
        unique, corner_vertex, corner_order, vertex_crow = _group(vertex_keys.view(-1))  # corner r*S + s
        m = unique.numel()

        # Splat matrix (M × N, columns = positions in point_order): vertex u collects, for each
        # simplex corner (r, s) that is u, the points of simplex s -- a contiguous range of
        # point_order -- with their weight r. Expanded from corners to points without a sort.
        counts = simplex_crow[1:] - simplex_crow[:-1]
        corner_s, corner_r = corner_order % s, torch.div(corner_order, s, rounding_mode="floor")
        length = counts[corner_s]  # points behind each sorted corner
        ends = torch.cumsum(length, 0)
        # Entry e of corner c: col = e + shift_c with shift_c = simplex_crow[s_c] - (first entry
        # of c); its weight is entry col of row r_c. Per-entry shifts = cumsum of their jumps at
        # the corners' first entries (cheaper than repeat_interleave).
        first = ends - length
        shift = simplex_crow[corner_s] - first
        shifts = torch.stack([shift, shift + corner_r * n])  # 2×(d+1)S: column, weight index
        jumps = torch.zeros(2, n * (d + 1), dtype=torch.long, device=dev)
        jumps.index_copy_(1, first, shifts - torch.nn.functional.pad(shifts[:, :-1], (1, 0)))
        index = torch.cumsum(jumps.view(-1), 0).view(2, -1)  # 1-D cumsum: faster than along dim 1
        index[1] -= index[0, -1]  # row 1 started from row 0's total
        index += torch.arange(n * (d + 1), device=dev)
        col = index[0]
        weight = torch.take(weights.index_select(1, point_order), index[1])
        splat = _csr(torch.cat([ends.new_zeros(1), ends])[vertex_crow], col, weight, (m, n))
        point_vertex = corner_vertex.view(d + 1, s).T.contiguous().index_select(0, simplex)  # N×(d+1)
        slice_ = _csr(
            torch.arange(0, n * (d + 1) + 1, d + 1, device=dev), point_vertex.view(-1), weights.T.reshape(-1), (n, m)
        )

        # Blur neighbours along direction j: n1 = key - 1 + (d+1) e_j, n2 = key + 1 - (d+1) e_j
        # (direction d only moves the implied last coordinate): packed, n1 = key + shift_j.
        # Only n1 is searched; n2 is its inverse (u = n1(w) <=> w = n2(u)).
        step = torch.eye(d + 1, d, dtype=torch.long, device=dev) * (d + 1) - 1
        targets = unique + (step * radix).sum(1, keepdim=True)  # (d+1)×M
        pos = torch.searchsorted(unique, targets).clamp_(max=m - 1)
        n1 = torch.where(unique[pos] == targets, pos, m)
        n2 = torch.full((d + 1, m + 1), m, dtype=torch.long, device=dev)  # column m: dump for misses
        n2.scatter_(1, n1, torch.arange(m, device=dev).expand(d + 1, m))
        return cls(point_order, splat, slice_, torch.stack([n1, n2[:, :m]], 1), d)

    def filter(self, values: torch.Tensor, transpose: bool = False, symmetric: bool = False) -> torch.Tensor:
        """Splat N×C ``values``, blur along each lattice direction, slice back: N×C.

        The operator L = alpha S^T B_d ... B_0 S is not exactly symmetric (blur steps on a sparse
        lattice do not commute). ``transpose=True`` applies L^T (blur in reverse order);
        ``symmetric=True`` applies (L + L^T)/2 -- one splat and slice, two blur passes (~15%
        more than L) -- which the dense CRF loss uses so that its gradient is exact.
        """
        splat, slice_ = self.splat, self.slice
        if splat.dtype != values.dtype:
            splat, slice_ = splat.to(values.dtype), slice_.to(values.dtype)
        # contiguous first: gathering rows of a transposed view is ~3x slower than copy + gather
        splat = splat @ values.contiguous().index_select(0, self.point_order)
        if symmetric:
            lat = self._blur(splat, reverse=False).add_(self._blur(splat, reverse=True)).mul_(0.5)
        else:
            lat = self._blur(splat, reverse=transpose)
        alpha = 1.0 / (1.0 + 2.0 ** (-self.d))  # Krähenbühl's slice constant
        return (slice_ @ lat).mul_(alpha)

    def _blur(self, splat: torch.Tensor, reverse: bool) -> torch.Tensor:
        """[1/2, 1, 1/2] along each of the d+1 lattice directions (M×C -> new M×C)."""
        m = self.num_vertices
        lat = torch.cat([splat, splat.new_zeros(1, splat.shape[1])])  # row M: "missing neighbour"
        spare = torch.zeros_like(lat)
        for j in range(self.d, -1, -1) if reverse else range(self.d + 1):
            n1, n2 = self.neighbours[j]
            out = spare[:m]
            torch.add(lat.index_select(0, n1), lat.index_select(0, n2), out=out)
            out.mul_(0.5).add_(lat[:m])
            lat, spare = spare, lat
        return lat[:m]
