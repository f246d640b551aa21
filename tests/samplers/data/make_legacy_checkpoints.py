"""Writes ``legacy_checkpoints.pt``: sampler state dicts as nslightning 0.1 saved them.

That layout predates ``vocab_size`` (the extra state held ``num_items``) and
``IndexHardNegativeSampler`` (index mode was ``HardNegativeSampler(base=None)``, and pool mode
also saved empty ``index``, ``age`` and ``calls`` buffers). Each entry holds a state dict taken
after a few draws and the draw that followed it, so that a test can load the state into today's
classes and check that they continue identically.

The file was made by running ``python tests/samplers/data/make_legacy_checkpoints.py`` at commit
7e05267 (before the split). Run with a later nslightning, the script writes today's layout, which
is not what the file must hold: do not regenerate it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    MixedSampler,
    NegativeSampler,
    UniformSampler,
    UnigramSampler,
)

COUNTS = torch.tensor([5.0, 0.0, 3.0, 10.0, 1.0, 7.0, 2.0, 4.0])
POSITIVES = torch.tensor([[3, 5, 0], [7, 2, 3]])
ANCHORS = torch.tensor([[1, 4, 6], [0, 3, 2]])
NUM_NEGATIVES = 3


def scorer(anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """A fixed model without ties: a smooth function of both ids."""
    a, c = anchors.double().unsqueeze(-1), candidates.double()
    return torch.sin(1.7 * a + 0.37 * c + 0.11 * c * c).float()


def samplers() -> dict[str, NegativeSampler]:
    return {
        "unigram": UnigramSampler(power=0.75, seed=1),
        "mixed": MixedSampler([InBatchSampler(), UniformSampler()], [0.5, 0.5], seed=2),
        "hard-pool": HardNegativeSampler(
            UnigramSampler(power=0.75), pool_size=6, selection="softmax", skip_top=1, seed=3
        ),
        "hard-index": HardNegativeSampler(
            pool_size=5, refresh_every=2, selection="softmax", temperature=0.5, chunk_size=3,
            seed=4,
        ),
    }


def record(sampler: NegativeSampler) -> dict[str, Any]:
    sampler.setup(COUNTS)
    for step in range(3):
        sampler.sample(
            (POSITIVES + step) % COUNTS.numel(), NUM_NEGATIVES, anchors=ANCHORS, scorer=scorer
        )
    state = sampler.state_dict()
    after = sampler.sample(POSITIVES, NUM_NEGATIVES, anchors=ANCHORS, scorer=scorer)
    return {"state": state, "ids": after.ids, "mask": after.mask, "log_q": after.log_q}


def main() -> None:
    path = Path(__file__).with_name("legacy_checkpoints.pt")
    torch.save({name: record(sampler) for name, sampler in samplers().items()}, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
