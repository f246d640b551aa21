"""Writing word vectors in word2vec's text and binary formats, atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from torch import Tensor

from nslightning.atomic import atomic_write


def save_word2vec_format(
    path: str | os.PathLike[str],
    tokens: Sequence[str],
    vectors: Tensor | np.ndarray,
    binary: bool = False,
    replace: bool = True,
) -> None:
    """Writes vectors as word2vec.c does; ``gensim.models.KeyedVectors.load_word2vec_format``
    reads the file back.

    The header is ``"V D"``; each following record is the token, a space, and either ``D``
    numbers separated by spaces (text) or ``D`` little-endian float32 values (binary), then a
    newline. The file appears complete or not at all.

    Args:
        path: destination file.
        tokens: ``V`` tokens without white space.
        vectors: ``(V, D)`` vectors.
        binary: binary format instead of text.
        replace: replace an existing file; with ``False`` an existing file raises
            ``FileExistsError`` (checked as the file is committed, so a concurrent writer
            cannot be overwritten either).
    """
    array = np.asarray(vectors.detach().cpu() if isinstance(vectors, Tensor) else vectors)
    array = array.astype("<f4", copy=False)
    if array.ndim != 2 or array.shape[0] != len(tokens):
        raise ValueError(
            f"need one vector per token: {len(tokens)} tokens but vectors of shape {array.shape}."
        )
    for token in tokens:
        if not token or any(ch.isspace() for ch in token):
            raise ValueError(f"token {token!r} is empty or contains white space; cannot export.")
    with atomic_write(path, "wb", replace=replace) as handle:
        handle.write(f"{array.shape[0]} {array.shape[1]}\n".encode())
        for token, row in zip(tokens, array, strict=True):
            if binary:
                handle.write(token.encode("utf-8") + b" " + row.tobytes() + b"\n")
            else:
                numbers = " ".join(f"{value:.6g}" for value in row.tolist())
                handle.write(f"{token} {numbers}\n".encode())
