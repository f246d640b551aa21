"""Encoders: EmbeddingTable and BagOfFeatures (configure, bind, forward, encode_names,
gradients, checkpoints, errors)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from nslightning.models.encoders import BagOfFeatures, EmbeddingTable

SIDE = "a\tx y x\nb\ty\nc\tz y\nheld\tx z\n"  # "held": in the file, not an id of the relation


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def bound(path: Path, names: list[str], dim: int = 4, **kwargs: object) -> BagOfFeatures:
    encoder = BagOfFeatures(str(path), **kwargs)  # type: ignore[arg-type]
    encoder.configure(len(names), dim)
    encoder.bind(names)
    return encoder


@pytest.fixture
def side(tmp_path: Path) -> Path:
    return write(tmp_path / "side.tsv", SIDE)


# ---------------------------------------------------------------- EmbeddingTable
def test_table_draws_the_init_of_pair_embeddings() -> None:
    torch.manual_seed(3)
    encoder = EmbeddingTable(init_scale=0.05)
    encoder.configure(7, 5)
    torch.manual_seed(3)
    reference = nn.Embedding(7, 5)
    with torch.no_grad():
        reference.weight.uniform_(-0.05, 0.05)
    assert torch.equal(encoder.weight, reference.weight)
    assert encoder.num_ids == 7 and encoder.weight.abs().max() <= 0.05


def test_table_looks_up_ids_of_any_shape() -> None:
    encoder = EmbeddingTable()
    encoder.configure(10, 3)
    ids = torch.tensor([[1, 2, 9], [0, 0, 4]])
    assert torch.equal(encoder(ids), encoder.weight[ids])
    assert encoder(torch.tensor(5)).shape == (3,)


def test_table_sparse_flag_switches_the_embedding() -> None:
    encoder = EmbeddingTable(sparse=True)
    encoder.configure(4, 2)
    assert encoder.sparse and encoder.table is not None and encoder.table.sparse
    encoder(torch.tensor([1])).sum().backward()
    assert encoder.weight.grad is not None and encoder.weight.grad.is_sparse
    encoder.sparse = False
    assert not encoder.sparse and not encoder.table.sparse


def test_table_before_configure_says_so() -> None:
    with pytest.raises(RuntimeError, match=re.escape("configure(num_ids, dim) must be called")):
        EmbeddingTable()(torch.tensor([0]))
    with pytest.raises(ValueError, match="init_scale must be a number >= 0"):
        EmbeddingTable(init_scale=-1.0)


# ---------------------------------------------------------------- BagOfFeatures: shapes
@pytest.mark.parametrize(
    ("hidden", "layers"),
    [((), []), ((6,), [(6, 4)]), ((6, 5, 3), [(6, 5), "act", (5, 3), "act", (3, 4)])],
)
def test_hidden_lists_the_bag_width_then_the_hidden_layers(
    side: Path, hidden: tuple[int, ...], layers: list[object]
) -> None:
    encoder = bound(side, ["a", "b", "c"], dim=4, hidden=hidden, activation="tanh")
    assert encoder.bag is not None and encoder.mlp is not None
    assert encoder.bag.embedding_dim == (hidden[0] if hidden else 4)
    assert encoder.bag.num_embeddings == encoder.num_features + 1 == 4  # x y z + padding
    shapes = [(m.in_features, m.out_features) if isinstance(m, nn.Linear) else "act"
              for m in encoder.mlp]
    assert shapes == layers
    assert all(isinstance(m, nn.Linear | nn.Tanh) for m in encoder.mlp)
    ids = torch.tensor([[0, 1], [2, 2], [1, 0]])
    assert encoder(ids).shape == (3, 2, 4)
    assert encoder(torch.tensor(1)).shape == (4,)
    assert encoder(torch.zeros(0, 5, dtype=torch.long)).shape == (0, 5, 4)


def test_init_is_uniform_and_seeded(side: Path) -> None:
    torch.manual_seed(0)
    first = bound(side, ["a", "b", "c"], dim=3, init_scale=0.01, hidden=(5,))
    torch.manual_seed(0)
    second = bound(side, ["a", "b", "c"], dim=3, init_scale=0.01, hidden=(5,))
    for left, right in zip(first.state_dict().values(), second.state_dict().values(),
                           strict=True):
        assert torch.equal(left, right) if isinstance(left, torch.Tensor) else left == right
    assert first.bag is not None
    features = first.bag.weight[: first.num_features]
    assert features.abs().max() <= 0.01 and features.abs().min() > 0


# ---------------------------------------------------------------- BagOfFeatures: values
def test_repeated_features_weight_the_mean_and_the_sum(side: Path) -> None:
    for mode in ("mean", "sum"):
        encoder = bound(side, ["a", "b", "c"], mode=mode)
        assert encoder.bag is not None
        x, y, z = encoder.bag.weight[:3]  # features in order of first appearance
        out = encoder(torch.tensor([0, 1, 2]))
        expected = [(2 * x + y) / 3, y, (z + y) / 2] if mode == "mean" else [2 * x + y, y, z + y]
        torch.testing.assert_close(out, torch.stack(expected))


@pytest.mark.parametrize("mode", ["mean", "sum"])
def test_one_feature_per_id_is_an_embedding_table(tmp_path: Path, mode: str) -> None:
    """Same vectors and same gradients as a table whose rows are the feature vectors."""
    names = [f"e{i}" for i in range(6)]
    features = [3, 0, 5, 1, 4, 2]  # id i has only feature f{features[i]}
    path = write(tmp_path / "one.tsv", "".join(f"e{i}\tf{f}\n" for i, f in enumerate(features)))
    encoder = bound(path, names, dim=3, mode=mode)
    assert encoder.bag is not None
    table = EmbeddingTable()
    table.configure(6, 3)
    file_features = encoder.feature_bags.features
    with torch.no_grad():
        for i, f in enumerate(features):
            table.weight[i] = encoder.bag.weight[file_features.index(f"f{f}")]
    ids = torch.tensor([[0, 5, 2], [2, 2, 4]])
    target = torch.randn(2, 3, 3)
    out_bag, out_table = encoder(ids), table(ids)
    torch.testing.assert_close(out_bag, out_table, rtol=0, atol=0)
    (out_bag * target).sum().backward()
    (out_table * target).sum().backward()
    assert encoder.bag.weight.grad is not None and table.weight.grad is not None
    bag_grad = encoder.bag.weight.grad
    for i, f in enumerate(features):
        torch.testing.assert_close(bag_grad[file_features.index(f"f{f}")], table.weight.grad[i])
    assert torch.all(bag_grad[encoder.num_features] == 0)  # the padding row


def test_gradients_reach_the_bag_and_the_mlp(side: Path) -> None:
    torch.manual_seed(0)
    encoder = bound(side, ["a", "b", "c"], dim=4, hidden=(6, 5))
    encoder(torch.tensor([[0, 1], [2, 0]])).square().sum().backward()
    parameters = dict(encoder.named_parameters())
    assert set(parameters) == {"bag.weight", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight",
                               "mlp.2.bias"}
    for name, parameter in parameters.items():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    grad = parameters["bag.weight"].grad
    assert grad is not None and torch.all(grad[3] == 0)  # padding gets nothing


def test_encode_names_equals_forward_and_reaches_held_out_entities(side: Path) -> None:
    encoder = bound(side, ["c", "a", "b"], hidden=(3,))
    torch.testing.assert_close(encoder.encode_names(["a", "b", "c"]),
                               encoder(torch.tensor([1, 2, 0])))
    assert encoder.bag is not None
    x, _, z = encoder.bag.weight[:3]
    torch.testing.assert_close(encoder.encode_names(["held"]), encoder.mlp(((x + z) / 2)[None]))
    with pytest.raises(ValueError, match=r"2 names are not in the side file .*side\.tsv: 'nope', "
                                         r"'d'; encode_names only encodes"):
        encoder.encode_names(["a", "nope", "d"])


def test_encode_names_needs_no_bind(side: Path) -> None:
    encoder = BagOfFeatures(str(side))
    encoder.configure(2, 3)
    assert encoder.encode_names(["held", "a"]).shape == (2, 3)


# ---------------------------------------------------------------- checkpoints
def test_state_dict_round_trip_needs_no_bind(side: Path) -> None:
    torch.manual_seed(1)
    trained = bound(side, ["c", "a", "b"], dim=3, hidden=(4, 5))
    state = trained.state_dict()
    assert "rows" in state and "bags" not in state
    fresh = BagOfFeatures(str(side), hidden=(4, 5))
    fresh.configure(3, 3)
    with pytest.raises(RuntimeError, match="not bound"):
        fresh(torch.tensor([0]))
    fresh.load_state_dict(state)
    ids = torch.tensor([[0, 1, 2], [2, 2, 1]])
    assert torch.equal(fresh(ids), trained(ids))


def test_a_state_dict_saved_unbound_stays_unbound(side: Path) -> None:
    saved = BagOfFeatures(str(side))
    saved.configure(3, 2)
    loaded = BagOfFeatures(str(side))
    loaded.configure(3, 2)
    loaded.load_state_dict(saved.state_dict())
    with pytest.raises(RuntimeError, match=re.escape("call bind(names)")):
        loaded(torch.tensor([0]))


def test_a_state_dict_of_another_side_file_is_refused(tmp_path: Path) -> None:
    big = bound(write(tmp_path / "big.tsv", "a\tx\nb\ty\nc\tx\n"), ["c", "a"], dim=2)
    small = BagOfFeatures(str(write(tmp_path / "small.tsv", "a\tx\nb\ty\n")))
    small.configure(2, 2)
    with pytest.raises(RuntimeError, match=r"trained with another side file than .*small\.tsv"):
        small.load_state_dict(big.state_dict())
    reordered = BagOfFeatures(str(write(tmp_path / "reordered.tsv", "b\ty\na\tx\nc\tx\n")))
    reordered.configure(2, 2)  # the same entities in another order: rows would mean others
    with pytest.raises(RuntimeError, match="trained with another side file"):
        reordered.load_state_dict(big.state_dict())


# ---------------------------------------------------------------- errors
def test_bind_names_the_missing_ids_the_file_and_the_fix(side: Path) -> None:
    encoder = BagOfFeatures(str(side))
    encoder.configure(4, 2)
    with pytest.raises(ValueError, match=r"2 of the 4 ids have no line in the side file "
                                         r".*side\.tsv: 'q', 'r'; every id .* needs a line "
                                         r"'id<TAB>feature feature \.\.\.' in .*side\.tsv"):
        encoder.bind(["a", "q", "b", "r"])
    with pytest.raises(ValueError, match="bind got 3 names for 4 ids"):
        encoder.bind(["a", "b", "c"])


def test_unconfigured_and_unbound_encoders_say_what_to_call(side: Path) -> None:
    encoder = BagOfFeatures(str(side))
    with pytest.raises(RuntimeError, match=re.escape("configure(num_ids, dim) must be called")):
        encoder(torch.tensor([0]))
    with pytest.raises(RuntimeError, match=re.escape("configure(num_ids, dim) must be called")):
        encoder.bind(["a"])
    encoder.configure(1, 2)
    with pytest.raises(RuntimeError, match=re.escape("not bound to the relation's ids: call "
                                                     "bind(names)")):
        encoder(torch.tensor([0]))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"mode": "max"}, "mode must be 'mean', 'sum' or 'idf'"),
        ({"activation": "sigmoid"}, "activation must be one of 'relu', 'gelu', 'tanh'"),
        ({"hidden": (8, 0)}, "hidden must be a list of widths >= 1"),
        ({"hidden": 8}, "hidden must be a list of widths >= 1"),
        ({"init_scale": -0.1}, "init_scale must be a number >= 0"),
    ],
)
def test_bad_arguments(side: Path, kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        BagOfFeatures(str(side), **kwargs)  # type: ignore[arg-type]


def test_bad_side_files_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"side file .*nope\.tsv.* not found"):
        BagOfFeatures(str(tmp_path / "nope.tsv"))
    path = write(tmp_path / "dup.tsv", "a\tx\na\ty\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:2: id 'a' already has a line")):
        BagOfFeatures(str(path))


def test_lee_doc_bags_encode_held_out_documents() -> None:
    encoder = BagOfFeatures("lee-doc-bags", hidden=(8,))
    encoder.configure(300, 4)
    encoder.bind([f"bg:{i}" for i in range(300)])
    assert encoder(torch.tensor([0, 299])).shape == (2, 4)
    assert encoder.encode_names([f"lee:{i}" for i in range(50)]).shape == (50, 4)


def test_encode_names_leaves_out_features_no_relation_id_has(tmp_path: Path) -> None:
    """A held-out entity's feature that no training id has never trained: it is left out, as
    an unknown word would be (an entity with only such features gets the zero vector)."""
    side = tmp_path / "bags.tsv"
    side.write_text("a\tx y\nb\ty z\nheld\tx unseen unseen\nnew\tonly_new\n", encoding="utf-8")
    encoder = BagOfFeatures(str(side))
    encoder.configure(num_ids=2, dim=3)
    before = encoder.encode_names(["held"]).detach()  # unbound: every feature counts
    encoder.bind(["a", "b"])
    x = encoder.bag.weight[encoder.feature_bags.features.index("x")]
    torch.testing.assert_close(encoder.encode_names(["held"])[0], x)
    assert not torch.allclose(before[0], x)
    assert torch.equal(encoder.encode_names(["new"]), torch.zeros(1, 3))
    torch.testing.assert_close(encoder.encode_names(["a", "b"]), encoder(torch.tensor([0, 1])))


def test_idf_mode_weighs_features_by_their_inverse_document_frequency(tmp_path: Path) -> None:
    """``mode="idf"``: the bag vector is the mean of its features' vectors weighted by
    ``log((1 + E) / (1 + df)) + 1`` over the relation's ``E`` entities, counted at bind (a
    feature repeated in one bag counts once in ``df``, and twice in that bag)."""
    side = tmp_path / "bags.tsv"
    side.write_text("a\tx y y\nb\ty z\nc\ty w\nheld\tx z\n", encoding="utf-8")
    encoder = BagOfFeatures(str(side), mode="idf")
    encoder.configure(num_ids=3, dim=4)
    encoder.bind(["c", "a", "b"])  # "held" is no entity of the relation: not counted
    features = encoder.feature_bags.features
    idf = {f: math.log(4 / (1 + df)) + 1 for f, df in {"x": 1, "y": 3, "z": 1, "w": 1}.items()}
    vector = {f: encoder.bag.weight[features.index(f)] for f in idf}

    def weighted(bag: list[str]) -> torch.Tensor:
        total = sum(idf[f] for f in bag)
        return sum(idf[f] * vector[f] for f in bag) / total

    torch.testing.assert_close(encoder(torch.tensor(1)), weighted(["x", "y", "y"]))
    torch.testing.assert_close(encoder.encode_names(["held"])[0], weighted(["x", "z"]))
    loaded = BagOfFeatures(str(side), mode="idf")
    loaded.configure(num_ids=3, dim=4)
    loaded.load_state_dict(encoder.state_dict())  # no bind: the weights come with the state
    torch.testing.assert_close(loaded(torch.arange(3)), encoder(torch.arange(3)))
    encoder(torch.arange(3)).sum().backward()
    assert encoder.bag.weight.grad is not None and encoder.bag.weight.grad.abs().sum() > 0
