"""Runs the Triton skip-gram kernel on the CPU under ``TRITON_INTERPRET=1`` (set by the caller
before Triton is imported): ``python triton_worker.py CASE OUT`` loads a chunk saved with
``torch.save``, trains it with ``sgns_chunk_triton`` and saves the tables and totals."""

from __future__ import annotations

import sys

import torch

from nslightning.kernels.sgns_triton import sgns_chunk_triton


def main(case_path: str, out_path: str) -> None:
    case = torch.load(case_path)
    syn0, syn1 = case["syn0"].clone(), case["syn1"].clone()
    loss, pairs = sgns_chunk_triton(
        syn0, syn1, case["centers"], case["contexts"], case["mask"], case["negatives"],
        case["keep"], case["lr_start"], case["lr_end"], case["lam"], case["segments"],
        case["with_loss"],
    )
    torch.save({"syn0": syn0, "syn1": syn1, "loss": loss, "pairs": pairs}, out_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
