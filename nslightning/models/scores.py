"""The score of an anchor vector against an item vector: flat or hyperbolic geometry.

``dot``, ``cosine`` and ``euclidean`` are flat: vectors are plain ``(*, D)`` rows and the numbers
are those ``PairEmbeddings`` computed before this module (commit 8bdb4f6). ``poincare`` (Nickel &
Kiela 2017) and ``lorentz`` (Nickel & Kiela 2018) score two points of the hyperbolic space of
curvature -1 by minus their geodesic distance; their vectors are points of a geoopt manifold,
trained with geoopt's Riemannian optimizers (``geoopt.ManifoldParameter`` with
``manifold=score.manifold``, then ``geoopt.optim.RiemannianSGD`` or ``RiemannianAdam``).

Both hyperbolic models compute the distance the same way, from Poincaré-ball coordinates ``b``
(the point itself, or ``x[1:] / (1 + x0)`` for a point ``x`` of the hyperboloid
``<x, x>_L = -1``, ``x0 > 0``, with ``<u, v>_L = -u0 v0 + Σ ui vi``) and the "half chord"

    ``z = sinh(d / 2) = |b - b'| / (sqrt(1 - |b|²) sqrt(1 - |b'|²))``,

so that ``cosh d = 1 + 2 z²`` is Nickel & Kiela 2017's
``1 + 2 |u - v|² / ((1 - |u|²)(1 - |v|²))`` and, on the hyperboloid, 2018's ``-<u, v>_L``. The
hyperboloid takes its gap from the time coordinate, ``1 - |b|² = 2 / (1 + x0)``. Then
``d = 2 asinh(z)``, computed as ``log1p(2 z (z + sqrt(1 + z²)))`` (exact; ``torch.asinh`` is not
vectorised on the CPU and was 10-30 times slower).

Why this form rather than ``arcosh(-<u, v>_L)`` or geoopt's ``dist``: measured in float32 against
float64 on the same stored points, nearby pairs (``d <= 1e-2``) came out within 3e-5 (hyperboloid)
and 1e-7 (ball) of the truth, where ``arcosh`` of the Minkowski product, or of
``1 + 2 |u - v|² / ...`` with ``|u - v|²`` from a matrix product, was off by up to 0.14 (the
product ``u0 v0`` cancels against ``u[1:]·v[1:]``), and geoopt's ``PoincareBall.dist``
(Möbius addition, ``artanh`` clamped at ``1 - 1e-7``) by up to 1e-2. Far pairs (``d`` up to 12):
within 3e-5 for all of them. And ``arcosh`` has an infinite derivative at ``u == v``, which
needs a clamp; the half chord's derivative is bounded: at ``u == v`` the distance is exactly 0
with gradient 0 (the subgradient ``torch.linalg.vector_norm`` takes at 0), and every gradient is
finite elsewhere.

Numerical floors, the only eps of the hyperbolic scores: ``1 - |b|²`` is clamped to ``>= 1e-15``
in the ball and ``1 + x0`` to ``>= 1`` on the hyperboloid (it is ``>= 2`` there), so a point on
or past the ball's boundary, or off the hyperboloid, gives a large finite distance rather than
``inf`` or ``nan``. geoopt's optimizers and :meth:`PairScore.project` keep ``|b| <= 1 - 4e-3``
in float32 (``1 - 1e-5`` in float64), far from that floor.

The flat scores keep their committed eps: ``1e-12`` under the Euclidean square root and in the
cosine normalisation.
"""

from __future__ import annotations

from typing import Literal, get_args

import geoopt
import torch
import torch.nn.functional as F
from torch import Tensor

from nslightning.models.hyperboloid import CappedLorentz

ScoreName = Literal["dot", "cosine", "euclidean", "poincare", "lorentz"]
SCORE_NAMES: tuple[ScoreName, ...] = get_args(ScoreName)
DISTANCE_SCORES: frozenset[str] = frozenset({"euclidean", "poincare", "lorentz"})
HYPERBOLIC_SCORES: frozenset[str] = frozenset({"poincare", "lorentz"})

_EPS = 1e-12  # the flat scores' eps, as committed in pair_embeddings.py: the same numbers
_BALL_GAP_FLOOR = 1e-15  # floor of 1 - |x|² in the Poincaré ball
_CDIST_EXACT = "donot_use_mm_for_euclid_dist"  # pairwise differences, no |a|²+|b|²-2a·b


class PairScore:
    """A named score between anchor and item vectors, with the manifold its vectors live on.

    A plain object, not an ``nn.Module``: it has no parameters and no buffers (the curvature is
    fixed at -1), so a model that holds one keeps the same ``state_dict``.

    Vectors have ``D' = coordinates(D)`` numbers: ``D`` for the flat scores and the Poincaré
    ball, ``D + 1`` for the hyperboloid of dimension ``D`` in ``R^{D+1}`` (time coordinate
    first). Scores are minus a distance for ``euclidean``, ``poincare`` and ``lorentz``
    (``is_distance``): larger is closer.

    Args:
        name: ``"dot"``, ``"cosine"``, ``"euclidean"``, ``"poincare"`` or ``"lorentz"``.

    Example:
        >>> score = PairScore("poincare")
        >>> origin, point = torch.zeros(1, 2), torch.tensor([[[0.5, 0.0]]])
        >>> round(-score.pairs(origin, point).item(), 4)  # 2 artanh(0.5) = log 3
        1.0986
    """

    def __init__(self, name: ScoreName) -> None:
        if name not in SCORE_NAMES:
            raise ValueError(
                f"unknown score {name!r}: choose one of {', '.join(map(repr, SCORE_NAMES))}."
            )
        self.name: ScoreName = name
        self.is_distance: bool = name in DISTANCE_SCORES
        self.manifold: geoopt.Manifold | None = None
        if name == "poincare":
            self.manifold = geoopt.PoincareBall()  # c = 1: curvature -1
        elif name == "lorentz":
            self.manifold = CappedLorentz()  # geoopt.Lorentz, k = 1: curvature -1

    def __repr__(self) -> str:
        return f"PairScore({self.name!r})"

    def coordinates(self, dim: int) -> int:
        """Numbers stored per vector for a ``dim``-dimensional space (``dim + 1`` for lorentz)."""
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}.")
        return dim + 1 if self.name == "lorentz" else dim

    def pairs(self, anchors: Tensor, items: Tensor) -> Tensor:
        """Scores each anchor against the items of its row, differentiable.

        Args:
            anchors: ``(B, D')`` anchor vectors.
            items: ``(B, M, D')`` item vectors.

        Returns:
            ``(B, M)`` scores.
        """
        self._check_pairs(anchors, items)
        if self.name == "euclidean":
            squared = (anchors.unsqueeze(1) - items).square().sum(-1)
            return -torch.sqrt(squared + _EPS)
        if self.manifold is not None:
            anchor_ball, anchor_scale = self._ball_and_scale(anchors)
            item_ball, item_scale = self._ball_and_scale(items)
            chord = torch.linalg.vector_norm(anchor_ball.unsqueeze(1) - item_ball, dim=-1)
            return -_distance(chord * anchor_scale.unsqueeze(1) * item_scale)
        if self.name == "cosine":
            anchors = F.normalize(anchors, dim=-1, eps=_EPS)
            items = F.normalize(items, dim=-1, eps=_EPS)
        return torch.bmm(items, anchors.unsqueeze(-1)).squeeze(-1)

    def all_pairs(self, left: Tensor, right: Tensor) -> Tensor:
        """Scores every left vector against every right vector, without gradient.

        For evaluation and hard-negative mining. The hyperbolic scores take the pairwise
        differences of ball coordinates exactly (``torch.cdist`` without the
        ``|a|² + |b|² - 2 a·b`` matrix product), then :meth:`pairs`' formula in place: 0.18 s
        for ``A = 200``, ``C = 82,115``, dim 10 on one CPU thread (euclidean: 0.13 s, dot:
        0.06 s). The matrix-product form took 0.14 s, but it put float32 near-duplicates
        (``d <= 1e-2``) up to 0.14 away from their float64 distance, against 3e-5 here: too
        coarse for nearest neighbours. Dot and cosine are one matrix product, euclidean
        ``-cdist``, with the committed ``PairEmbeddings.score_all``'s numbers.

        Args:
            left: ``(A, D')`` vectors.
            right: ``(C, D')`` vectors.

        Returns:
            ``(A, C)`` scores, equal to :meth:`pairs` of each pair up to rounding.
        """
        if left.dim() != 2 or right.dim() != 2 or left.shape[1] != right.shape[1]:
            raise ValueError(
                f"all_pairs takes (A, D') and (C, D') vectors, got {tuple(left.shape)} and "
                f"{tuple(right.shape)}."
            )
        with torch.no_grad():
            if self.name == "euclidean":
                return -_cdist(left, right)
            if self.manifold is not None:
                left_ball, left_scale = self._ball_and_scale(left)
                right_ball, right_scale = self._ball_and_scale(right)
                half_chord = _cdist(left_ball, right_ball)
                half_chord.mul_(left_scale.unsqueeze(1)).mul_(right_scale)
                return _distance_(half_chord, torch.empty_like(half_chord)).neg_()
            if self.name == "cosine":
                left = F.normalize(left, dim=-1, eps=_EPS)
                right = F.normalize(right, dim=-1, eps=_EPS)
            return left @ right.T

    def init_points(self, num: int, dim: int, init_scale: float) -> Tensor:
        """``num`` random points of a ``dim``-dimensional space, from the global torch RNG.

        Flat and poincare: uniform in ``[-init_scale, init_scale)``, exactly
        ``torch.empty(num, dim).uniform_(-init_scale, init_scale)`` (the Poincaré ones then
        projected into the ball, which changes nothing unless ``init_scale * sqrt(dim)``
        reaches the boundary); lorentz: the spatial part drawn the same way and the time
        coordinate ``sqrt(1 + |x|²)``.

        Returns:
            ``(num, coordinates(dim))`` points, in the default dtype.
        """
        if num < 0:
            raise ValueError(f"num must be >= 0, got {num}.")
        self.coordinates(dim)  # checks dim
        points = torch.empty(num, dim).uniform_(-init_scale, init_scale)
        if self.name == "lorentz":
            time = torch.sqrt(1 + points.square().sum(-1, keepdim=True))
            return torch.cat([time, points], dim=-1)
        if self.name == "poincare":
            return self.project(points)
        return points

    def to_manifold(self, vectors: Tensor) -> Tensor:
        """Maps Euclidean vectors (a neural encoder's output) to points, differentiably.

        Identity for the flat scores; for poincare, the exponential map at the origin,
        ``tanh(|v|) v / |v|`` (a point at distance ``2 |v|`` from the origin: the ball's metric
        doubles lengths there; the projection caps it below ``2 artanh(1 - 4e-3) ≈ 6.2`` in
        float32); for lorentz, the exponential map of the tangent vector ``(0, v)`` at the
        origin ``(1, 0, ..., 0)``: ``(cosh |v|, sinh |v| v / |v|)``, at distance ``|v|``,
        capped at :meth:`CappedLorentz.radius_cap` (beyond it ``v`` is shortened).

        Args:
            vectors: ``(*, D)`` vectors.

        Returns:
            ``(*, coordinates(D))`` points.
        """
        if self.manifold is None:
            return vectors
        if isinstance(self.manifold, CappedLorentz):
            length = torch.linalg.vector_norm(vectors, dim=-1, keepdim=True)
            cap = self.manifold.radius_cap(vectors.dtype)
            vectors = vectors * (cap / length.clamp_min(cap))  # no 0 / 0 in the gradient
            vectors = F.pad(vectors, (1, 0))  # the tangent vector (0, v) at the origin
        points: Tensor = self.manifold.expmap0(vectors)
        return points

    def project(self, points: Tensor) -> Tensor:
        """``(*, D')`` points onto the manifold: into the ball (``|x| <= 1 - 4e-3`` in float32,
        ``1 - 1e-5`` in float64), onto the hyperboloid (``x0 = sqrt(1 + |x[1:]|²)``) or
        unchanged for the flat scores."""
        if self.manifold is None:
            return points
        projected: Tensor = self.manifold.projx(points)
        return projected

    def to_ball(self, points: Tensor) -> Tensor:
        """``(N, D')`` points -> ``(N, D)`` coordinates for export: the hyperboloid's points in
        the Poincaré ball, ``x[1:] / (1 + x[0])`` (an isometry); the others unchanged."""
        if self.name != "lorentz":
            return points
        return points[..., 1:] / (1 + points[..., :1])

    def _ball_and_scale(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """``(*, D')`` hyperbolic points -> ``(*, D)`` ball coordinates ``b`` and the ``(*,)``
        scales ``1 / sqrt(1 - |b|²)``: ``sinh(d / 2) = |b - b'| * scale * scale'``.

        Hyperboloid points take the gap from the time coordinate, ``1 - |b|² = 2 / (1 + x0)``,
        which float32 keeps for far points where ``1 - |b|²`` itself would cancel to nothing.
        """
        if self.name == "lorentz":
            shifted_time = (1 + points[..., 0]).clamp_min(1.0)  # >= 2 on the hyperboloid
            return points[..., 1:] / shifted_time.unsqueeze(-1), (shifted_time / 2).sqrt()
        gap = (1 - points.square().sum(-1)).clamp_min(_BALL_GAP_FLOOR)
        return points, gap.rsqrt()

    def _check_pairs(self, anchors: Tensor, items: Tensor) -> None:
        if (
            anchors.dim() != 2
            or items.dim() != 3
            or items.shape[0] != anchors.shape[0]
            or items.shape[2] != anchors.shape[1]
        ):
            raise ValueError(
                f"pairs takes anchors (B, D') and items (B, M, D'), got {tuple(anchors.shape)} "
                f"and {tuple(items.shape)}."
            )


def _cdist(left: Tensor, right: Tensor) -> Tensor:
    """``(A, D)`` x ``(C, D)`` -> ``(A, C)`` Euclidean distances from exact differences."""
    return torch.cdist(left.unsqueeze(0), right.unsqueeze(0), compute_mode=_CDIST_EXACT).squeeze(0)


def _distance(half_chord: Tensor) -> Tensor:
    """``z = sinh(d / 2) >= 0`` -> ``d = 2 asinh(z) = log1p(2 z (z + sqrt(1 + z²)))``, any shape."""
    return torch.log1p(2 * half_chord * (half_chord + torch.sqrt(1 + half_chord.square())))


def _distance_(half_chord: Tensor, scratch: Tensor) -> Tensor:
    """:func:`_distance` in place in ``half_chord``, without gradient or allocation.

    ``scratch`` is a buffer of the same shape: a fresh ``(200, 82115)`` float32 matrix costs as
    much as three in-place passes over it.
    """
    torch.mul(half_chord, half_chord, out=scratch).add_(1).sqrt_().add_(half_chord)
    return half_chord.mul_(scratch).mul_(2).log1p_()
