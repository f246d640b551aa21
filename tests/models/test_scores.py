"""PairScore: the flat scores against PairEmbeddings; the hyperbolic distances against closed
forms, the papers' formulas and each other; float32 numerics (u == v, the ball's boundary, far
points); geoopt's optimizers against hand-computed Riemannian steps and extreme gradients."""

from __future__ import annotations

import math

import geoopt
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nslightning.models.hyperboloid import CappedLorentz
from nslightning.models.pair_embeddings import PairEmbeddings
from nslightning.models.scores import SCORE_NAMES, PairScore

FLAT = ("dot", "cosine", "euclidean")
HYPERBOLIC = ("poincare", "lorentz")
F64 = torch.float64
# geoopt's projection keeps Poincaré points at |x| <= 1 - 4e-3 in float32, 1 - 1e-5 in float64
BALL_EDGE = {torch.float32: 1 - 4e-3, F64: 1 - 1e-5}
# pairs against all_pairs in float32: measured within 1.5e-7 * (1 + d) (d up to 12)
AGREEMENT = {"rtol": 1e-6, "atol": 1e-6}


# ---------------------------------------------------------------- hand-written references


def minkowski(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """<u, v>_L = -u0 v0 + sum_i ui vi over the last dimension."""
    return -u[..., 0] * v[..., 0] + (u[..., 1:] * v[..., 1:]).sum(-1)


def ball_to_hyperboloid(b: torch.Tensor) -> torch.Tensor:
    """The inverse of to_ball: b -> ((1 + |b|²), 2 b) / (1 - |b|²)."""
    squared = b.square().sum(-1, keepdim=True)
    return torch.cat([1 + squared, 2 * b], dim=-1) / (1 - squared)


def textbook(name: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The papers' distances, (N, D') x (N, D') -> (N,): Nickel & Kiela 2017 and 2018."""
    if name == "poincare":
        gaps = (1 - u.square().sum(-1)) * (1 - v.square().sum(-1))
        return torch.acosh(1 + 2 * (u - v).square().sum(-1) / gaps)
    return torch.acosh(-minkowski(u, v))


def distance(score: PairScore, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(N, D') x (N, D') -> (N,) distances through pairs."""
    return -score.pairs(u, v.unsqueeze(1)).squeeze(1)


def ball_points(n: int, dim: int, max_radius: float, seed: int, dtype=F64) -> torch.Tensor:
    """n points of the ball in random directions at hyperbolic radii uniform in [0, max_radius)."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(n, dim, generator=g, dtype=F64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    radius = torch.rand(n, 1, generator=g, dtype=F64) * max_radius
    return (torch.tanh(radius / 2) * direction).to(dtype)


def points(name: str, n: int, dim: int, max_radius: float, seed: int, dtype=F64) -> torch.Tensor:
    """Random points of the named model (computed in float64, then rounded to dtype)."""
    b = ball_points(n, dim, max_radius, seed)
    return (b if name == "poincare" else ball_to_hyperboloid(b)).to(dtype)


def at_radius(name: str, n: int, dim: int, radius: float, seed: int, dtype=F64) -> torch.Tensor:
    """n points of the named model at hyperbolic distance ``radius`` from the origin."""
    b = ball_points(n, dim, 1.0, seed)
    b = torch.tanh(torch.tensor(radius / 2, dtype=F64)) * b / b.norm(dim=-1, keepdim=True)
    if name == "poincare":
        return b.to(dtype)
    spatial = math.sinh(radius) * b / b.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    time = torch.full((n, 1), math.cosh(radius), dtype=F64)
    return torch.cat([time, spatial], dim=-1).to(dtype)


def nearby(score: PairScore, x: torch.Tensor, step: float, seed: int) -> torch.Tensor:
    """Points at hyperbolic distance <= ``step`` from ``x`` (float64, on the same manifold)."""
    g = torch.Generator().manual_seed(seed)
    b = score.to_ball(x)
    move = torch.randn(b.shape, generator=g, dtype=F64)
    fraction = torch.rand(b.shape[0], 1, generator=g, dtype=F64)
    move = move / move.norm(dim=-1, keepdim=True) * fraction
    moved = b + move * step * (1 - b.square().sum(-1, keepdim=True)) / 2  # ball metric: 2/(1-|b|²)
    return moved if score.name == "poincare" else ball_to_hyperboloid(moved)


# ---------------------------------------------------------------- names and flat scores


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="'dot', 'cosine', 'euclidean', 'poincare', 'lorentz'"):
        PairScore("hyperbolic")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", SCORE_NAMES)
def test_kind_manifold_and_coordinates(name: str) -> None:
    score = PairScore(name)
    assert score.name == name and repr(score) == f"PairScore({name!r})"
    assert score.is_distance == (name in ("euclidean", "poincare", "lorentz"))
    assert score.coordinates(10) == (11 if name == "lorentz" else 10)
    if name == "poincare":
        assert type(score.manifold) is geoopt.PoincareBall and float(score.manifold.c) == 1.0
    elif name == "lorentz":
        assert isinstance(score.manifold, geoopt.Lorentz) and float(score.manifold.k) == 1.0
    else:
        assert score.manifold is None
    with pytest.raises(ValueError, match="dim must be >= 1"):
        score.coordinates(0)


def committed_pair_scores(name: str, anchors: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """PairEmbeddings.pair_scores as committed before PairScore (8bdb4f6), line for line."""
    if name == "euclidean":
        squared = (anchors.unsqueeze(1) - items).square().sum(-1)
        return -torch.sqrt(squared + 1e-12)
    if name == "cosine":
        anchors = F.normalize(anchors, dim=-1, eps=1e-12)
        items = F.normalize(items, dim=-1, eps=1e-12)
    return torch.bmm(items, anchors.unsqueeze(-1)).squeeze(-1)


def committed_score_all(name: str, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """PairEmbeddings.score_all's formulas as committed before PairScore (8bdb4f6)."""
    if name == "euclidean":
        return -torch.cdist(
            left.unsqueeze(0), right.unsqueeze(0), compute_mode="donot_use_mm_for_euclid_dist"
        ).squeeze(0)
    if name == "cosine":
        left = F.normalize(left, dim=-1, eps=1e-12)
        right = F.normalize(right, dim=-1, eps=1e-12)
    return left @ right.T


@pytest.mark.parametrize("name", FLAT)
def test_flat_scores_keep_the_committed_numbers(name: str) -> None:
    score = PairScore(name)
    torch.manual_seed(0)
    anchors, items = torch.randn(6, 5), torch.randn(6, 4, 5)
    anchors[2] = items[2, 1]  # equal vectors: the Euclidean eps
    assert torch.equal(score.pairs(anchors, items), committed_pair_scores(name, anchors, items))
    right = items.reshape(-1, 5)
    assert torch.equal(score.all_pairs(anchors, right), committed_score_all(name, anchors, right))


@pytest.mark.parametrize("name", SCORE_NAMES)
@pytest.mark.parametrize("shared", [False, True])
def test_pair_embeddings_scores_through_pair_score(name: str, shared: bool) -> None:
    torch.manual_seed(0)
    model = PairEmbeddings(9, 9, 5, shared=shared, score=name, init_scale=1.0)
    score = PairScore(name)
    anchors = torch.tensor([3, 0, 8, 3])
    items = torch.tensor([[4, 1, 3], [1, 1, 0], [8, 2, 5], [7, 6, 3]])
    left, right = model.all_anchors()[anchors], model.all_items()
    assert torch.equal(model(anchors, items), score.pairs(left, right[items]))
    assert torch.equal(model.score_all(anchors), score.all_pairs(left, right))


def test_init_points_keep_the_committed_draws() -> None:
    """The committed PairEmbeddings built both nn.Embedding tables (normal_ draws), then drew
    uniform_ into each: drawing init_points after the tables gives the same numbers."""
    torch.manual_seed(3)
    anchor_table, item_table = nn.Embedding(5, 4), nn.Embedding(7, 4)
    with torch.no_grad():
        anchor_table.weight.uniform_(-0.3, 0.3)
        item_table.weight.uniform_(-0.3, 0.3)
    for name in (*FLAT, "poincare"):
        torch.manual_seed(3)
        nn.Embedding(5, 4), nn.Embedding(7, 4)
        score = PairScore(name)
        assert torch.equal(score.init_points(5, 4, 0.3), anchor_table.weight.detach())
        assert torch.equal(score.init_points(7, 4, 0.3), item_table.weight.detach())
        torch.manual_seed(4)
        expected = torch.empty(3, 2).uniform_(-0.5, 0.5)
        torch.manual_seed(4)
        assert torch.equal(score.init_points(3, 2, 0.5), expected)


def test_init_points_of_the_hyperboloid() -> None:
    score = PairScore("lorentz")
    torch.manual_seed(1)
    spatial = torch.empty(6, 3).uniform_(-0.5, 0.5)
    torch.manual_seed(1)
    x = score.init_points(6, 3, 0.5)
    assert x.shape == (6, 4) and torch.equal(x[:, 1:], spatial)
    torch.testing.assert_close(x[:, 0], torch.sqrt(1 + spatial.square().sum(-1)))
    torch.testing.assert_close(minkowski(x, x), -torch.ones(6))


def test_shapes_are_checked() -> None:
    score = PairScore("poincare")
    with pytest.raises(ValueError, match=r"anchors \(B, D'\) and items \(B, M, D'\)"):
        score.pairs(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"anchors \(B, D'\) and items \(B, M, D'\)"):
        score.pairs(torch.zeros(2, 3), torch.zeros(3, 1, 3))
    with pytest.raises(ValueError, match=r"\(A, D'\) and \(C, D'\)"):
        score.all_pairs(torch.zeros(2, 3), torch.zeros(4, 2))


# ---------------------------------------------------------------- hyperbolic distances


@pytest.mark.parametrize("r", [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1 - 1e-5])
def test_poincare_distance_from_the_origin_is_2_artanh(r: float) -> None:
    score = PairScore("poincare")
    point = torch.zeros(1, 4, dtype=F64)
    point[0, 2] = r
    expected = math.log((1 + r) / (1 - r))
    assert distance(score, torch.zeros(1, 4, dtype=F64), point).item() == pytest.approx(expected)
    assert distance(score, point, torch.zeros(1, 4, dtype=F64)).item() == pytest.approx(expected)
    if r <= BALL_EDGE[torch.float32]:
        single = distance(score, torch.zeros(1, 4), point.float()).item()
        assert single == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("t", [0.0, 0.1, 1.0, 5.0, 10.0, 25.0])
def test_lorentz_distance_from_the_origin_is_t(t: float) -> None:
    score = PairScore("lorentz")
    origin = torch.tensor([[1.0, 0.0, 0.0]], dtype=F64)
    point = torch.tensor([[math.cosh(t), math.sinh(t), 0.0]], dtype=F64)
    assert distance(score, origin, point).item() == pytest.approx(t, abs=1e-12)
    if t <= 10:  # CappedLorentz's float32 radius
        single = distance(score, origin.float(), point.float()).item()
        assert single == pytest.approx(t, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("name", HYPERBOLIC)
def test_distances_follow_the_papers_formulas(name: str) -> None:
    score = PairScore(name)
    u, v = points(name, 200, 5, 5.0, seed=1), points(name, 200, 5, 5.0, seed=2)
    torch.testing.assert_close(distance(score, u, v), textbook(name, u, v), rtol=1e-9, atol=1e-9)


def test_the_two_models_agree_through_the_isometry() -> None:
    ball, hyperboloid = PairScore("poincare"), PairScore("lorentz")
    b, c = ball_points(300, 4, 9.0, seed=3), ball_points(300, 4, 9.0, seed=4)
    x, y = ball_to_hyperboloid(b), ball_to_hyperboloid(c)
    torch.testing.assert_close(minkowski(x, x), -torch.ones(300, dtype=F64))
    assert (x[:, 0] > 0).all()
    torch.testing.assert_close(hyperboloid.to_ball(x), b)
    torch.testing.assert_close(distance(hyperboloid, x, y), distance(ball, b, c))
    torch.testing.assert_close(hyperboloid.all_pairs(x, y), ball.all_pairs(b, c))


@pytest.mark.parametrize("name", HYPERBOLIC)
def test_symmetry_and_the_triangle_inequality(name: str) -> None:
    score = PairScore(name)
    a, b, c = (points(name, 500, 3, 6.0, seed=s) for s in (5, 6, 7))
    ab, bc, ac = distance(score, a, b), distance(score, b, c), distance(score, a, c)
    torch.testing.assert_close(ab, distance(score, b, a), rtol=1e-12, atol=1e-12)
    assert (ac <= ab + bc + 1e-9).all()
    # equality along a geodesic: a diameter of the ball through the origin
    e = torch.zeros(1, 3, dtype=F64)
    e[0, 0] = 1
    ends = [-0.7 * e, torch.zeros_like(e), 0.4 * e]
    if name == "lorentz":
        ends = [ball_to_hyperboloid(p) for p in ends]
    left, middle, right = ends
    whole = distance(score, left, right)
    parts = distance(score, left, middle) + distance(score, middle, right)
    torch.testing.assert_close(whole, parts)


@pytest.mark.parametrize("name", HYPERBOLIC)
def test_pairs_and_all_pairs_agree_in_float32(name: str) -> None:
    score = PairScore(name)
    right = score.project(points(name, 400, 8, 6.0, seed=8, dtype=torch.float32))
    duplicates = right[:10].clone()
    near = score.project(nearby(score, right[10:20].double(), 1e-3, seed=9).float())
    left = torch.cat([points(name, 40, 8, 6.0, seed=10, dtype=torch.float32), duplicates, near])
    every = score.all_pairs(left, right)
    assert every.shape == (60, 400) and not every.requires_grad
    each = score.pairs(left, right.expand(60, -1, -1))
    torch.testing.assert_close(every, each, **AGREEMENT)
    assert (every[40:50, :10].diagonal() == 0).all()


@pytest.mark.parametrize("name", HYPERBOLIC)
def test_float32_distances_against_float64(name: str) -> None:
    """The accuracy the module's docstring states, on the stored float32 points."""
    score = PairScore(name)
    spread = score.project(points(name, 300, 10, 6.2, seed=11, dtype=torch.float32))
    close = [
        score.project(nearby(score, spread.double(), step, seed=12).float())
        for step in (1e-2, 1e-4, 1e-6)
    ]
    exact = spread.double() if name == "poincare" else score.project(spread.double())
    far = (score.all_pairs(spread[:150], spread[150:]).double().neg(),
           textbook(name, exact[:150, None], exact[None, 150:]))
    torch.testing.assert_close(*far, rtol=0, atol=5e-5)
    for moved in close:
        truth = textbook(name, exact, moved.double() if name == "poincare"
                         else score.project(moved.double()))
        got = score.all_pairs(spread, moved).diagonal().double().neg()
        torch.testing.assert_close(got, truth, rtol=0, atol=1e-6 if name == "poincare" else 1e-4)


@pytest.mark.parametrize("name", HYPERBOLIC)
def test_gradcheck_of_pairs(name: str) -> None:
    score = PairScore(name)
    anchors = points(name, 3, 3, 4.0, seed=13).requires_grad_()
    items = points(name, 12, 3, 4.0, seed=14).reshape(3, 4, -1).requires_grad_()
    assert torch.autograd.gradcheck(score.pairs, (anchors, items))


# ---------------------------------------------------------------- float32 numerics


def _values_and_gradients(score: PairScore, u: torch.Tensor, v: torch.Tensor):
    u, v = u.clone().requires_grad_(), v.clone().requires_grad_()
    scores = score.pairs(u, v.unsqueeze(1))
    scores.sum().backward()
    assert u.grad is not None and v.grad is not None
    return scores.detach(), u.grad, v.grad


@pytest.mark.parametrize("name", HYPERBOLIC)
@pytest.mark.parametrize("radius", [0.0, 1.0, 6.2, 10.0])
def test_equal_points_score_zero_with_finite_gradients(name: str, radius: float) -> None:
    """At the origin, inside, at float32's ball edge (6.2) and the hyperboloid's cap (10)."""
    score = PairScore(name)
    x = score.project(at_radius(name, 8, 5, radius, seed=15, dtype=torch.float32))
    values, du, dv = _values_and_gradients(score, x, x)
    assert (values == 0).all()
    assert torch.isfinite(du).all() and torch.isfinite(dv).all()
    assert (score.all_pairs(x, x).diagonal() == 0).all()


@pytest.mark.parametrize("norm", [1 - 4e-3, 1 - 1e-6, 1.0, 1.5])
def test_ball_boundary_and_beyond_stay_finite(norm: float) -> None:
    """geoopt never leaves |x| > 1 - 4e-3 in float32; points past it still give numbers."""
    score = PairScore("poincare")
    direction = ball_points(16, 4, 5.0, seed=16, dtype=torch.float32)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    edge = direction * norm
    inner = ball_points(16, 4, 3.0, seed=17, dtype=torch.float32)
    for u, v in ((edge, inner), (edge, edge.roll(1, 0)), (edge, edge)):
        values, du, dv = _values_and_gradients(score, u, v)
        assert torch.isfinite(values).all() and torch.isfinite(du).all()
        assert torch.isfinite(dv).all()
        assert torch.isfinite(score.all_pairs(u, v)).all()


@pytest.mark.parametrize("radius", [10.0, 20.0, 40.0])
def test_far_hyperboloid_points_stay_finite(radius: float) -> None:
    """Past CappedLorentz's float32 cap too (points that were not projected)."""
    score = PairScore("lorentz")
    far = at_radius("lorentz", 16, 4, radius, seed=18, dtype=torch.float32)
    near = points("lorentz", 16, 4, 2.0, seed=19, dtype=torch.float32)
    for u, v in ((far, near), (far, far.roll(1, 0)), (far, far)):
        values, du, dv = _values_and_gradients(score, u, v)
        assert torch.isfinite(values).all() and torch.isfinite(du).all()
        assert torch.isfinite(dv).all()
        assert torch.isfinite(score.all_pairs(u, v)).all()
    origin = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]])
    assert distance(score, origin, far[:1]).item() == pytest.approx(radius, rel=1e-5)


# ---------------------------------------------------------------- maps between coordinates


@pytest.mark.parametrize("name", SCORE_NAMES)
def test_to_manifold_is_the_exponential_map_at_the_origin(name: str) -> None:
    score = PairScore(name)
    g = torch.Generator().manual_seed(20)
    vectors = torch.randn(32, 3, generator=g, dtype=F64)
    mapped = score.to_manifold(vectors)
    if score.manifold is None:
        assert mapped is vectors
        return
    origin = score.to_manifold(torch.zeros(1, 3, dtype=F64))
    assert origin.shape == (1, score.coordinates(3))
    torch.testing.assert_close(origin, torch.zeros_like(origin) if name == "poincare" else
                               torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=F64))
    lengths = vectors.norm(dim=-1)
    # the ball's metric is 2 / (1 - |x|²): a tangent vector at the origin is twice as long
    expected = 2 * lengths if name == "poincare" else lengths
    torch.testing.assert_close(distance(score, origin.expand_as(mapped), mapped), expected)
    torch.testing.assert_close(
        score.to_ball(mapped), torch.tanh(expected / 2).unsqueeze(-1) * vectors / lengths[:, None]
    )
    zero = torch.zeros(2, 3, requires_grad=True)
    score.to_manifold(zero).sum().backward()
    assert zero.grad is not None and torch.isfinite(zero.grad).all()
    huge = score.to_manifold(torch.full((2, 3), 1e4))
    assert torch.isfinite(huge).all()
    torch.testing.assert_close(score.project(huge), huge)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_project_onto_the_manifold(dtype: torch.dtype) -> None:
    outside = torch.tensor([[3.0, 4.0], [0.1, 0.2]], dtype=dtype)
    inside = PairScore("poincare").project(outside)
    assert inside[0].norm().item() == pytest.approx(BALL_EDGE[dtype], rel=1e-6)
    assert torch.equal(inside[1], outside[1])
    hyperboloid = PairScore("lorentz")
    off = torch.tensor([[0.5, 0.3, -0.2], [7.0, 1.0, 2.0]], dtype=dtype)
    on = hyperboloid.project(off)
    torch.testing.assert_close(minkowski(on, on), -torch.ones(2, dtype=dtype))
    assert torch.equal(on[:, 1:], off[:, 1:]) and (on[:, 0] > 0).all()
    for name in FLAT:
        assert PairScore(name).project(off) is off and PairScore(name).to_ball(off) is off
    assert PairScore("poincare").to_ball(off) is off


# ---------------------------------------------------------------- geoopt's optimizers


def _outward(name: str, x: torch.Tensor) -> torch.Tensor:
    """A Euclidean gradient whose descent pushes every point straight away from the origin."""
    gradient = torch.zeros_like(x)
    spatial = x if name == "poincare" else x[:, 1:]
    push = -spatial / spatial.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    if name == "poincare":
        return push
    gradient[:, 1:] = push
    return gradient


OPTIMIZERS = {
    "sgd": lambda params: geoopt.optim.RiemannianSGD(params, lr=0.01),
    "sgd-momentum": lambda params: geoopt.optim.RiemannianSGD(params, lr=0.01, momentum=0.9),
    "adam": lambda params: geoopt.optim.RiemannianAdam(params, lr=0.1),
}


@pytest.mark.parametrize("name", HYPERBOLIC)
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("push", ["random", "outward"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_points_stay_on_the_manifold_under_extreme_gradients(
    name: str, optimizer: str, push: str, dtype: torch.dtype
) -> None:
    score = PairScore(name)
    torch.manual_seed(21)
    start = score.init_points(64, 6, 0.1).to(dtype)
    table = geoopt.ManifoldParameter(start, manifold=score.manifold)
    step = OPTIMIZERS[optimizer]([table])
    for _ in range(200):
        random = push == "random"
        gradient = torch.randn_like(table) if random else _outward(name, table.detach())
        table.grad = gradient * 1e6
        step.step()
        x = table.detach()
        assert torch.isfinite(x).all()
        if name == "poincare":
            assert (x.norm(dim=-1) <= BALL_EDGE[dtype] + 1e-6).all()
        else:
            assert (x[:, 0] >= 1).all()
            drift = (minkowski(x.double(), x.double()) + 1).abs()
            assert (drift <= 1e-6 * x[:, 0].double().square()).all()
            cap = score.manifold.radius_cap(dtype)
            assert (torch.acosh(x[:, 0].double()) <= cap + 1e-3).all()


def _mobius_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x ⊕ y in the ball of curvature -1."""
    xy = (x * y).sum(-1, keepdim=True)
    xx, yy = x.square().sum(-1, keepdim=True), y.square().sum(-1, keepdim=True)
    return ((1 + 2 * xy + yy) * x + (1 - xx) * y) / (1 + 2 * xy + xx * yy)


def _one_sgd_step(manifold, x: torch.Tensor, gradient: torch.Tensor, lr: float) -> torch.Tensor:
    table = geoopt.ManifoldParameter(x.clone(), manifold=manifold)
    optimizer = geoopt.optim.RiemannianSGD([table], lr=lr)
    table.grad = gradient.clone()  # geoopt's Lorentz.egrad2rgrad writes into the gradient
    optimizer.step()
    return table.detach()


def test_poincare_sgd_step_is_nickel_kiela_2017() -> None:
    """geoopt's PoincareBall.retr is the first-order retraction proj(x + u), so one
    RiemannianSGD step is Nickel & Kiela 2017's update proj(x - lr (1 - |x|²)² / 4 g)."""
    score = PairScore("poincare")
    x = ball_points(8, 4, 3.0, seed=22)
    g = torch.randn(8, 4, generator=torch.Generator().manual_seed(23), dtype=F64)
    for lr in (0.05, 50.0):  # the second step leaves the ball: the projection brings it back
        moved = x - lr * (1 - x.square().sum(-1, keepdim=True)).square() / 4 * g
        norm = moved.norm(dim=-1, keepdim=True)
        edge = BALL_EDGE[F64]
        expected = torch.where(norm > edge, moved / norm * edge, moved)
        torch.testing.assert_close(_one_sgd_step(score.manifold, x, g, lr), expected)
    assert (moved.norm(dim=-1) > 1).any()


def test_poincare_exact_sgd_step_is_the_exponential_map() -> None:
    """geoopt's PoincareBallExact steps along the exponential map,
    exp_x(v) = x ⊕ tanh(λ_x |v| / 2) v / |v|, λ_x = 2 / (1 - |x|²), v = -lr (1 - |x|²)² / 4 g,
    which differs from PoincareBall's retraction at second order in lr."""
    x = ball_points(8, 4, 3.0, seed=24)
    g = torch.randn(8, 4, generator=torch.Generator().manual_seed(25), dtype=F64)
    lr = 0.5
    gap = 1 - x.square().sum(-1, keepdim=True)
    v = -lr * gap.square() / 4 * g
    length = v.norm(dim=-1, keepdim=True)
    expected = _mobius_add(x, torch.tanh(length / gap) * v / length)  # λ_x |v| / 2 = |v| / gap
    exact = _one_sgd_step(geoopt.PoincareBallExact(), x, g, lr)
    torch.testing.assert_close(exact, expected)
    retraction = _one_sgd_step(PairScore("poincare").manifold, x, g, lr)
    assert (exact - retraction).abs().max() > 1e-4


@pytest.mark.parametrize("manifold", [CappedLorentz(), geoopt.Lorentz()], ids=["ours", "geoopt"])
def test_lorentz_sgd_step_is_the_exponential_map(manifold) -> None:
    """rgrad = proj_x(diag(-1, 1, ..., 1) g) with proj_x(u) = u + <x, u>_L x, v = -lr rgrad,
    exp_x(v) = cosh(|v|_L) x + sinh(|v|_L) v / |v|_L, then x0 = sqrt(1 + |x[1:]|²)."""
    x = ball_to_hyperboloid(ball_points(8, 4, 3.0, seed=26))
    g = torch.randn(8, 5, generator=torch.Generator().manual_seed(27), dtype=F64)
    lr = 0.5
    flipped = torch.cat([-g[:, :1], g[:, 1:]], dim=-1)
    rgrad = flipped + minkowski(x, flipped).unsqueeze(-1) * x
    v = -lr * rgrad
    length = minkowski(v, v).sqrt().unsqueeze(-1)
    moved = torch.cosh(length) * x + torch.sinh(length) * v / length
    expected = torch.cat([torch.sqrt(1 + moved[:, 1:].square().sum(-1, keepdim=True)),
                          moved[:, 1:]], dim=-1)
    torch.testing.assert_close(_one_sgd_step(manifold, x, g, lr), expected)
    assert (length > 0.1).all()  # steps long enough that a first-order retraction would differ


def test_capped_lorentz_matches_geoopt_below_the_caps() -> None:
    score = PairScore("lorentz")
    x = score.project(points("lorentz", 16, 4, 4.0, seed=28))
    u = score.manifold.proju(x, torch.randn(16, 5, generator=torch.Generator().manual_seed(29),
                                            dtype=F64) * 0.3)
    v = score.manifold.proju(x, torch.randn(16, 5, generator=torch.Generator().manual_seed(30),
                                            dtype=F64))
    ours, theirs = score.manifold.retr_transp(x, u, v), geoopt.Lorentz().retr_transp(x, u, v)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-12, atol=1e-12)
    # the transported vectors reach 5e3 far out; geoopt's formula cancels a little there
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(
        score.manifold.component_inner(x, v), minkowski(v, v).unsqueeze(-1)
    )
    # whole runs of Adam and SGD on a real loss
    targets = points("lorentz", 16, 4, 2.0, seed=31)
    for make in (lambda p: geoopt.optim.RiemannianAdam(p, lr=0.05),
                 lambda p: geoopt.optim.RiemannianSGD(p, lr=0.05)):
        ends = []
        for manifold in (score.manifold, geoopt.Lorentz()):
            table = geoopt.ManifoldParameter(x.clone(), manifold=manifold)
            optimizer = make([table])
            for _ in range(50):
                optimizer.zero_grad()
                distance(score, targets, table).square().sum().backward()
                optimizer.step()
            ends.append(table.detach())
        assert distance(score, *ends).max() < 1e-6


def test_capped_lorentz_refuses_bad_caps_and_other_dimensions() -> None:
    with pytest.raises(ValueError, match="caps must be > 0"):
        CappedLorentz(max_step=0.0)
    manifold = CappedLorentz(max_radius=3.0)
    assert manifold.radius_cap(torch.float32) == 3.0
    assert CappedLorentz().radius_cap(torch.float32) == 10.0
    assert CappedLorentz().radius_cap(F64) == 30.0
    far = manifold.projx(torch.tensor([[0.0, 100.0, 0.0]], dtype=F64))
    assert torch.acosh(far[0, 0]).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="last dimension"):
        manifold.projx(torch.zeros(3, 2), dim=0)
