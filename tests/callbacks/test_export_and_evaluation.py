from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from nslightning.atomic import atomic_write
from nslightning.callbacks import (
    evaluate_keyed_vectors,
    nearest_neighbours,
    save_word2vec_format,
    to_keyed_vectors,
)
from nslightning.cli import main
from tests.cli_args import tiny_args


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_format_round_trips_through_gensim(tmp_path: Path, binary: bool) -> None:
    rng = np.random.default_rng(0)
    tokens = ["the", "café", "naïve", "x"]
    vectors = rng.normal(size=(4, 7)).astype(np.float32)
    path = tmp_path / ("v.bin" if binary else "v.txt")
    save_word2vec_format(path, tokens, vectors, binary=binary)
    loaded = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert loaded.index_to_key == tokens
    np.testing.assert_allclose(loaded.vectors, vectors, rtol=1e-5 if not binary else 0, atol=1e-6)


def test_export_rejects_bad_input_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(ValueError, match="white space"):
        save_word2vec_format(path, ["a b"], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="one vector per token"):
        save_word2vec_format(path, ["a", "b"], np.zeros((1, 2)))
    assert path.read_text(encoding="utf-8") == "old"


def test_atomic_write_leaves_no_half_file(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("complete old file", encoding="utf-8")
    with pytest.raises(RuntimeError), atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write("half of the new")
        raise RuntimeError("crash mid-write")
    assert path.read_text(encoding="utf-8") == "complete old file"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_evaluation_scores_and_neighbours() -> None:
    from gensim.test.utils import datapath

    lines = Path(datapath("wordsim353.tsv")).read_text(encoding="utf-8").splitlines()
    words = sorted({w.lower() for line in lines if not line.startswith("#")
                    for w in line.split("\t")[:2]})
    rng = np.random.default_rng(0)
    keyed = to_keyed_vectors(words, __import__("torch").tensor(rng.normal(size=(len(words), 10))))
    scores = evaluate_keyed_vectors(keyed, analogy=True)
    assert set(scores) == {"ws353", "ws353_oov", "simlex", "simlex_oov", "analogy"}
    assert abs(scores["ws353"]) < 0.2  # random vectors: no correlation
    assert scores["ws353_oov"] == 0.0
    rows = nearest_neighbours(keyed, ["tiger", "not-a-word"], topn=3)
    assert [r[0] for r in rows] == ["tiger"] and rows[0][1].count(",") == 2


def test_run_stopped_by_max_steps_is_evaluated_at_its_end(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", *tiny_args(topic_corpus_file), "--trainer.max_steps", "2",
          "--model.update_size", "64"])
    metrics = next((tmp_path / "outputs/skipgram/logs").glob("version_*/metrics.csv"))
    with open(metrics, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert any(row.get("val/ws353") for row in rows)
