"""Encoders: modules that map a batch of ids to vectors, the two sides of the contrastive task.

The interface, duck-typed (a plain ``nn.Module`` with only ``forward`` works):

- ``forward(ids (*,) long) -> (*, D)`` vectors;
- optional ``configure(num_ids, dim)``: builds the parameters once the side's number of ids
  and the vector size are known (the task calls it when it is built);
- optional ``bind(names)``: ``names[i]`` is the string id of id ``i`` (the task calls it at
  setup), for encoders that read per-id inputs by name;
- optional ``encode_names(names) -> (N, D)``: vectors of named entities that need not be ids
  of the relation (inductive use).

See ``docs/encoders.md``.
"""

from nslightning.data.feature_bags import FeatureBags, read_feature_bags
from nslightning.models.encoders.bag_of_features import BagOfFeatures
from nslightning.models.encoders.table import EmbeddingTable

__all__ = ["BagOfFeatures", "EmbeddingTable", "FeatureBags", "read_feature_bags"]
