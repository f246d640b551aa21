"""The hyperboloid of curvature -1 with optimizer steps that stay finite (for ``lorentz``)."""

from __future__ import annotations

import math

import geoopt
import torch
from torch import Tensor


class CappedLorentz(geoopt.Lorentz):
    """geoopt's hyperboloid of curvature -1 (``k = 1``), whose optimizer steps stay finite.

    With geoopt's ``Lorentz`` (measured, float32 and float64), one ``RiemannianSGD`` step with a
    Euclidean gradient of 1e6 took ``cosh(1e4) = inf`` and left ``nan`` points, and
    ``RiemannianAdam`` pushed outward went ``nan`` within 60 steps (float32) or 110 (float64).
    Two causes: steps and points without bound, and sums that cancel far from the origin
    (``<u, u>_L = |u[1:]|² - u0²``, and the projection ``u + <x, u>_L x``, whose correction
    is ``x0²`` times the rounding of ``<x, u>_L``). This subclass changes what geoopt's
    optimizers call; for tangent vectors, nothing changes below the caps, up to rounding:

    - a tangent vector at ``x`` is read from its spatial part ``u[1:]`` (its time coordinate
      follows from ``<x, u>_L = 0``: ``u0 = x[1:]·u[1:] / x0``), and inner products of tangent
      vectors are sums that do not cancel (:func:`_tangent_inner`);
    - :meth:`retr`: a step longer than ``max_step`` (hyperbolic distance), or than the room
      left on its geodesic before ``max_radius``, is shortened to it; then the exponential map
      ``cosh(|u|_L) x + sinh(|u|_L) u / |u|_L`` and :meth:`projx`;
    - :meth:`retr_transp` moves the optimizer's momentum along the same geodesic;
    - :meth:`component_inner` (RiemannianAdam's squared gradient) is ``|u|_L² >= 0``;
    - :meth:`projx`: a spatial part longer than ``sinh(max_radius)`` (a point farther than
      ``max_radius`` from the origin) is shortened to it; then ``x0 = sqrt(1 + |x[1:]|²)``.

    The default radius is where coordinates still resolve directions: past ``x0 · eps ≈ 1e-3``
    the rounding of a radial tangent vector (``x0`` times larger in coordinates than a sideways
    one of the same length) swamps its sideways part, and Adam's momentum, at radius 20 in
    float32 (``x0 · eps ≈ 30``), grew a thousandfold to ``inf`` (measured). Hence 10 in float32
    (``x0 ≈ 1.1e4``; the float32 Poincaré ball stops at 6.2) and 30 in float64. Only the last
    dimension holds coordinates.

    Args:
        max_step: the longest step.
        max_radius: the largest distance from the origin ``(1, 0, ..., 0)``; ``None``: 30 in
            float64, 10 in other dtypes.
    """

    def __init__(self, max_step: float = 10.0, max_radius: float | None = None) -> None:
        super().__init__(k=1.0)
        if max_step <= 0 or (max_radius is not None and max_radius <= 0):
            raise ValueError(f"caps must be > 0, got {max_step=} and {max_radius=}.")
        self.max_step = max_step
        self.max_radius = max_radius

    def extra_repr(self) -> str:
        return f"max_step={self.max_step}, max_radius={self.max_radius}"

    def radius_cap(self, dtype: torch.dtype) -> float:
        """The largest distance from the origin for points of ``dtype``."""
        if self.max_radius is not None:
            return self.max_radius
        return 30.0 if dtype == torch.float64 else 10.0

    def projx(self, x: Tensor, *, dim: int = -1) -> Tensor:
        """``(*, D + 1)`` points -> the hyperboloid, at most ``max_radius`` from the origin."""
        _check_last(x, dim)
        spatial = x[..., 1:]
        length = torch.linalg.vector_norm(spatial, dim=-1, keepdim=True)
        cap = math.sinh(self.radius_cap(x.dtype))
        spatial = spatial * (cap / length.clamp_min(cap))  # no 0 / 0 in the gradient
        return _with_time(spatial)

    def retr(self, x: Tensor, u: Tensor, *, dim: int = -1) -> Tensor:
        """One optimizer step from ``x`` along the tangent vector ``u`` (``(*, D + 1)`` each),
        at most ``max_step`` long -> ``(*, D + 1)`` points."""
        _check_last(x, dim)
        return self._step(x, u)[0]

    def retr_transp(self, x: Tensor, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`retr` and the parallel transport of the tangent vector ``v`` along its
        geodesic ``cosh(t) x + sinh(t) e``: ``v + <v, e>_L ((cosh t - 1) e + sinh t x)``."""
        point, direction, length = self._step(x, u)
        along = _tangent_inner(x, v[..., 1:], direction)
        spatial = v[..., 1:] + along * (
            (torch.cosh(length) - 1) * direction + torch.sinh(length) * x[..., 1:]
        )
        return point, _tangent_at(point, spatial)

    def component_inner(self, x: Tensor, u: Tensor, v: Tensor | None = None) -> Tensor:
        """``<u, v>_L`` (``|u|_L²`` without ``v``) of tangent vectors at ``x`` -> ``(*, 1)``."""
        return _tangent_inner(x, u[..., 1:], (u if v is None else v)[..., 1:])

    def _step(self, x: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(*, D + 1)`` point and tangent step -> the new point, the spatial part ``(*, D)``
        of the unit direction at ``x``, and the ``(*, 1)`` length walked."""
        tiny = torch.finfo(u.dtype).tiny
        scale = u[..., 1:].abs().amax(-1, keepdim=True)  # divided out: no overflow in squares
        spatial = u[..., 1:] / scale.clamp_min(tiny)
        length = _tangent_inner(x, spatial, spatial).sqrt()
        direction = spatial / length.clamp_min(tiny)
        walked = torch.minimum((scale * length).clamp(max=self.max_step), self._room(x, direction))
        moved = torch.cosh(walked) * x[..., 1:] + torch.sinh(walked) * direction
        return self.projx(_with_time(moved)), direction, walked

    def _room(self, x: Tensor, direction: Tensor) -> Tensor:
        """``(*, 1)`` longest walk from ``x`` along the unit direction (spatial part) that stays
        within ``max_radius``: momentum then follows the point instead of a path cut short.

        Along ``cosh(t) x + sinh(t) e`` the time coordinate is ``A cosh t + B sinh t`` with
        ``A = x0``, ``B = e0``; its largest ``t`` at or under ``C = cosh(max_radius)`` is
        ``log((C + sqrt(C² - A² + B²)) / (A + B))``. ``A² - B² = 1 + |x[1:]|² |p|²``, with
        ``p`` the part of ``e[1:]`` orthogonal to ``x[1:]``, and ``A + B = (A² - B²) / (A - B)``
        where ``B < 0``: neither cancels.
        """
        start = x[..., :1]
        position = x[..., 1:]
        radius = torch.linalg.vector_norm(position, dim=-1, keepdim=True)
        outward = position / radius.clamp_min(torch.finfo(x.dtype).tiny)
        radial = (direction * outward).sum(-1, keepdim=True)
        across = torch.linalg.vector_norm(direction - radial * outward, dim=-1, keepdim=True)
        climb = radius * radial / start
        lowest = 1 + (radius * across).square()
        rising = torch.where(climb >= 0, start + climb, lowest / (start - climb))
        ceiling = math.cosh(self.radius_cap(x.dtype))
        highest = ceiling + (ceiling**2 - lowest).clamp_min(0.0).sqrt()
        return torch.log(highest / rising).clamp_min(0.0)


def _check_last(x: Tensor, dim: int) -> None:
    if dim not in (-1, x.dim() - 1):
        raise ValueError(f"CappedLorentz keeps coordinates on the last dimension, got dim={dim}.")


def _with_time(spatial: Tensor) -> Tensor:
    """``(*, D)`` spatial parts -> ``(*, D + 1)`` hyperboloid points, ``x0 = sqrt(1 + |x|²)``."""
    return torch.cat([torch.sqrt(1 + spatial.square().sum(-1, keepdim=True)), spatial], dim=-1)


def _tangent_at(points: Tensor, spatial: Tensor) -> Tensor:
    """``(*, D + 1)`` points, ``(*, D)`` spatial parts -> the ``(*, D + 1)`` tangent vectors
    with that spatial part: time coordinate ``x[1:]·u[1:] / x0``."""
    time = (points[..., 1:] * spatial).sum(-1, keepdim=True) / points[..., :1]
    return torch.cat([time, spatial], dim=-1)


def _tangent_inner(points: Tensor, left: Tensor, right: Tensor) -> Tensor:
    """``<u, v>_L`` of the tangent vectors at ``points`` (``(*, D + 1)``) whose spatial parts
    are ``left`` and ``right`` (``(*, D)``) -> ``(*, 1)``, without cancellation.

    With ``x̂ = x[1:] / |x[1:]|``, ``a = u[1:]·x̂``, ``p = u[1:] - a x̂`` (and ``b``, ``q`` for
    ``v``): ``<u, v>_L = p·q + a b / x0²``, which for ``u = v`` adds two squares, where
    ``|u[1:]|² - u0²`` cancels far from the origin. Each side's scale is divided out first,
    so that huge gradients do not overflow the products.
    """
    tiny = torch.finfo(points.dtype).tiny
    position = points[..., 1:]
    outward = position / torch.linalg.vector_norm(position, dim=-1, keepdim=True).clamp_min(tiny)
    left_scale = left.abs().amax(-1, keepdim=True).clamp_min(tiny)
    right_scale = right.abs().amax(-1, keepdim=True).clamp_min(tiny)
    left, right = left / left_scale, right / right_scale
    left_out = (left * outward).sum(-1, keepdim=True)
    right_out = (right * outward).sum(-1, keepdim=True)
    across = ((left - left_out * outward) * (right - right_out * outward)).sum(-1, keepdim=True)
    time = points[..., :1]
    return (across + (left_out / time) * (right_out / time)) * left_scale * right_scale
