"""An encoder that computes each id's vector from its bag of features (words, tags, ...)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, Literal

import torch
from torch import Tensor, nn

from nslightning.data.feature_bags import read_feature_bags

Mode = Literal["mean", "sum", "idf"]
Activation = Literal["relu", "gelu", "tanh"]
_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
_SHOWN = 5  # names quoted in an error message
_EXTRA_STATE = "_extra_state"  # torch's key for get_extra_state


class BagOfFeatures(nn.Module):
    """Each id's vector is the mean (sum, or IDF-weighted mean) of its features' vectors, then
    an optional MLP.

    The features of every entity come from a side file (``id<TAB>feature feature ...``, see
    :mod:`nslightning.data.feature_bags`) or a built-in (``lee-doc-bags``). An entity's vector
    depends only on its features, so entities that no training pair names (held-out documents)
    are encoded too: :meth:`encode_names`. The side file may therefore name more entities than
    the relation uses (held-out ones for inductive evaluation, a catalog shared by several
    relations); every id of the relation's side needs a line.

    Shapes, with ``F`` features, bag width ``W`` and output size ``D`` (the task's ``dim``):

    - ``hidden=()``: the bag vector is the output, ``W = D``: ``EmbeddingBag(F, D)``.
    - ``hidden=(W,)``: ``EmbeddingBag(F, W)`` then ``Linear(W, D)`` (a low-rank, fastText-like
      projection; no activation).
    - ``hidden=(W, H1, ..., Hk)``: ``EmbeddingBag(F, W) -> Linear(W, H1) -> act -> ... ->
      Linear(Hk, D)``: ``hidden[0]`` is the bag width, ``hidden[1:]`` the hidden layers, each
      followed by ``activation``; the last ``Linear`` maps to ``D`` and has no activation.

    Feature vectors start uniform in ``[-init_scale, init_scale)``, the linear layers as
    ``nn.Linear`` does; both are drawn in :meth:`configure` from the global generator.

    Lifecycle: ``__init__`` reads the side file (the feature vocabulary, in order of first
    appearance, fixes ``F``); :meth:`configure` builds the parameters and a buffer ``rows``
    ``(num_ids,)`` (id -> its line in the side file, ``-1`` until bound, saved in the state dict
    so a model loaded from a checkpoint works without :meth:`bind`); :meth:`bind` maps the ids
    by name. The bags are held padded to the largest bag (``E x L`` int64, not saved in
    checkpoints), so that :meth:`forward` gathers them without a host sync; one very long bag
    makes every row that long: cut it in the file if memory matters.

    Args:
        path: the side file (``.gz``/``.bz2`` read transparently) or a built-in name.
        hidden: the bag width and hidden layer widths, see above; ``()`` for none.
        mode: ``"mean"`` (a feature that occurs twice weighs twice), ``"sum"`` of the bag, or
            ``"idf"``: the mean weighted by each feature's inverse document frequency over the
            relation's entities, ``log((1 + E) / (1 + df)) + 1`` (counted at :meth:`bind` and
            saved in the state dict), so that features every entity has (frequent words) weigh
            less than the telling ones, as in TF-IDF.
        init_scale: half-width of the uniform initialisation of the feature vectors (``>= 0``).
        delimiter: what separates the id from its features on a line of the side file.
        activation: ``"relu"``, ``"gelu"`` or ``"tanh"``, between the linear layers.

    Raises:
        FileNotFoundError: the side file does not exist.
        ValueError: a bad argument, or a bad line in the side file (named with its number).
    """

    bags: Tensor
    rows: Tensor
    idf: Tensor  # mode "idf" only
    bag: nn.EmbeddingBag | None
    mlp: nn.Sequential | None

    def __init__(
        self,
        path: str,
        hidden: Sequence[int] = (),
        mode: Mode = "mean",
        init_scale: float = 0.1,
        delimiter: str = "\t",
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        if mode not in ("mean", "sum", "idf"):
            raise ValueError(f"mode must be 'mean', 'sum' or 'idf', got {mode!r}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(map(repr, _ACTIVATIONS))}, got "
                f"{activation!r}."
            )
        if isinstance(hidden, int | str) or any(
            isinstance(width, bool) or not isinstance(width, int) or width < 1 for width in hidden
        ):
            raise ValueError(
                f"hidden must be a list of widths >= 1 (bag width, then hidden layers), e.g. "
                f"[64] or [128, 64], or [] for none; got {hidden!r}."
            )
        if not init_scale >= 0:
            raise ValueError(f"init_scale must be a number >= 0, got {init_scale}.")
        self.path = os.fspath(path)
        self.hidden = tuple(hidden)
        self.mode: Mode = mode
        self.init_scale = float(init_scale)
        self.activation: Activation = activation
        self.feature_bags = read_feature_bags(self.path, delimiter)
        self.register_buffer(
            "bags", torch.from_numpy(self.feature_bags.padded(self.num_features)), persistent=False
        )
        self.bag = None
        self.mlp = None
        self._bound = False

    @property
    def num_features(self) -> int:
        """``F``, the distinct features of the side file (the padding row is ``F``)."""
        return len(self.feature_bags.features)

    @property
    def num_ids(self) -> int:
        self._configured()
        return self.rows.numel()

    def configure(self, num_ids: int, dim: int) -> None:
        """Builds the feature vectors, the MLP and the unbound ``rows`` buffer (see the class).

        Raises:
            ValueError: ``num_ids`` or ``dim`` below 1.
        """
        if num_ids < 1 or dim < 1:
            raise ValueError(f"BagOfFeatures needs num_ids >= 1 and dim >= 1, got {num_ids} "
                             f"and {dim}.")
        device = self.bags.device
        widths = (*self.hidden, dim)
        pad = self.num_features
        # idf: a weighted sum whose weights sum to 1 per bag
        self.bag = nn.EmbeddingBag(pad + 1, widths[0], mode="sum" if self.mode == "idf" else
                                   self.mode, padding_idx=pad, device=device)
        if self.mode == "idf":  # uniform until bind counts the relation's entities
            self.register_buffer("idf", torch.ones(pad + 1, device=device))
            self.idf[pad] = 0.0
        with torch.no_grad():
            self.bag.weight.uniform_(-self.init_scale, self.init_scale)
            self.bag.weight[pad].zero_()  # excluded from every bag; kept at zero for clarity
        layers: list[nn.Module] = []
        for number, (width_in, width_out) in enumerate(pairwise(widths)):
            if number:
                layers.append(_ACTIVATIONS[self.activation]())
            layers.append(nn.Linear(width_in, width_out, device=device))
        self.mlp = nn.Sequential(*layers)  # empty: the identity
        self.register_buffer("rows", torch.full((num_ids,), -1, dtype=torch.long, device=device))
        self._bound = False

    def bind(self, names: Sequence[str]) -> None:
        """Maps each id to its line of the side file: id ``i`` is the entity ``names[i]``.

        Raises:
            RuntimeError: :meth:`configure` was not called.
            ValueError: ``len(names)`` is not ``num_ids``, or some names have no line in the
                side file (the first few are named).
        """
        self._configured()
        if len(names) != self.rows.numel():
            raise ValueError(
                f"BagOfFeatures.bind got {len(names)} names for {self.rows.numel()} ids; give "
                "one name per id of the side (configure(num_ids, dim) fixed their number)."
            )
        found, missing = self.feature_bags.rows(names)
        if missing:
            raise ValueError(
                f"{len(missing)} of the {len(names)} ids have no line in the side file "
                f"{self.feature_bags.source}: {first_few(missing)}; every id of the relation's "
                f"side (anchors or items) needs a line 'id<TAB>feature feature ...' in "
                f"{self.feature_bags.source}."
            )
        self.rows.copy_(torch.tensor(found, dtype=torch.long))
        self._bound = True
        if self.mode == "idf":
            self.idf.copy_(self._inverse_document_frequencies())

    def _inverse_document_frequencies(self) -> Tensor:
        """``(F + 1,)`` smoothed ``log((1 + E) / (1 + df)) + 1`` over the ``E`` entities of the
        relation (``df``: how many of them have the feature); 0 for the padding row."""
        pad = self.num_features
        entities = torch.unique(self.rows)
        bags = self.bags[entities]  # (E, L)
        owner = torch.arange(len(entities), device=bags.device).unsqueeze(1).expand_as(bags)
        present = torch.unique(owner * (pad + 1) + bags) % (pad + 1)  # (entity, feature) once
        df = torch.bincount(present, minlength=pad + 1).double()
        idf = torch.log((1.0 + len(entities)) / (1.0 + df)) + 1.0
        idf[pad] = 0.0
        return idf.to(self.idf.dtype)

    def forward(self, ids: Tensor) -> Tensor:
        """The vectors of ``ids``, from their bags.

        Args:
            ids: ``(*,)`` long ids in ``[0, num_ids)``.

        Returns:
            ``(*, D)`` vectors.

        Raises:
            RuntimeError: not configured, or not bound (see the class).
        """
        self._configured()
        if not self._bound:
            raise RuntimeError(
                "BagOfFeatures is not bound to the relation's ids: call bind(names) with the "
                "side's vocabulary (the contrastive task does it at setup) or load a state dict "
                "saved after bind."
            )
        vectors = self._encode_rows(self.rows[ids.reshape(-1)])
        return vectors.reshape(*ids.shape, vectors.shape[-1])

    def encode_names(self, names: Sequence[str]) -> Tensor:
        """The vectors of entities of the side file by name, whether or not they are ids of the
        relation (inductive use: held-out documents); needs :meth:`configure`, not :meth:`bind`.

        Once bound, a feature that no id of the relation has is left out of the bags (like an
        unknown word): its vector never received a gradient, so it would only add its random
        initialisation. An entity with no trained feature gets the zero vector.

        Returns:
            ``(N, D)`` vectors, ``N = len(names)``; with gradients unless called under
            ``torch.no_grad()``.

        Raises:
            ValueError: some names have no line in the side file (the first few are named).
        """
        self._configured()
        found, unknown = self.feature_bags.rows(names)
        if unknown:
            raise ValueError(
                f"{len(unknown)} names are not in the side file {self.feature_bags.source}: "
                f"{first_few(unknown)}; encode_names only encodes entities that have a line "
                "there."
            )
        rows = torch.tensor(found, dtype=torch.long, device=self.bags.device)
        bags = self.bags[rows]
        if self._bound:  # features no id of the relation has never trained: left out
            bags = bags.masked_fill(~self._trained_features()[bags], self.num_features)
        return self._encode_bags(bags)

    def _trained_features(self) -> Tensor:
        """``(F + 1,)`` bool: the features of the relation's ids (the padding row: False)."""
        trained = torch.zeros(self.num_features + 1, dtype=torch.bool, device=self.bags.device)
        trained[self.bags[self.rows]] = True
        trained[self.num_features] = False
        return trained

    def _encode_rows(self, rows: Tensor) -> Tensor:
        """``(N,)`` rows of the side file -> ``(N, D)`` vectors."""
        return self._encode_bags(self.bags[rows])

    def _encode_bags(self, bags: Tensor) -> Tensor:
        """``(N, L)`` padded feature ids -> ``(N, D)`` vectors."""
        bag, mlp = self._configured()
        if self.mode != "idf":
            return mlp(bag(bags))
        weights = self.idf[bags]
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return mlp(bag(bags, per_sample_weights=weights))

    def _configured(self) -> tuple[nn.EmbeddingBag, nn.Sequential]:
        if self.bag is None or self.mlp is None:
            raise RuntimeError(
                "BagOfFeatures is not configured: configure(num_ids, dim) must be called first "
                "(the contrastive task does it when it is built)."
            )
        return self.bag, self.mlp

    def side_file_fingerprint(self) -> str:
        """A digest of the side file's entities and features, in order."""
        digest = hashlib.sha256()
        for part in (self.feature_bags.names, self.feature_bags.features):
            digest.update("\n".join(part).encode() + b"\0")
        return digest.hexdigest()

    def get_extra_state(self) -> dict[str, str]:
        """Saved in the state dict: which side file the rows and feature vectors belong to."""
        return {"side_file": self.side_file_fingerprint()}

    def set_extra_state(self, state: Any) -> None:
        """Checked in :meth:`_load_from_state_dict`, once the other entries are loaded."""

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        errors = len(error_msgs)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if prefix + "rows" not in state_dict or len(error_msgs) > errors or self.bag is None:
            return
        saved = state_dict.get(prefix + _EXTRA_STATE, {}).get("side_file")
        if saved is not None and saved != self.side_file_fingerprint():
            error_msgs.append(
                f"{prefix}: the checkpoint was trained with another side file than "
                f"{self.feature_bags.source} (other entities or features, or another order): "
                "its rows and feature vectors would mean other things; build the encoder with "
                "the side file it was trained with."
            )
            return
        # Once per load, not per step: whether the saved encoder was bound, and to this file.
        rows = self.rows
        if bool((rows < 0).any()):
            self._bound = False
        elif int(rows.max()) >= len(self.feature_bags):
            error_msgs.append(
                f"{prefix}rows points past the {len(self.feature_bags)} entities of the side "
                f"file {self.feature_bags.source}: the checkpoint was trained with another "
                "side file; build the encoder with that file."
            )
        else:
            self._bound = True

    def extra_repr(self) -> str:
        return (
            f"path={self.path!r}, entities={len(self.feature_bags)}, "
            f"features={self.num_features}, hidden={list(self.hidden)}, mode={self.mode!r}"
        )


def first_few(names: Sequence[str]) -> str:
    """The first names, quoted, and how many more there are: ``'a', 'b' and 3 more``."""
    shown = ", ".join(map(repr, names[:_SHOWN]))
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
