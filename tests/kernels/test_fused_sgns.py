"""The fused skip-gram kernels against the plain per-pair reference: numba on the CPU, Triton
under its interpreter (and compiled for a Hopper GPU), bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
import torch

from nslightning.kernels import fused_sgns_update
from nslightning.kernels.sgns_numba import numba_threads, set_threads
from tests.kernels.reference import reference_sgns_chunk

TRITON_WORKER = Path(__file__).with_name("triton_worker.py")


def random_chunk(seed: int, rows: int = 40, vocab: int = 23, dim: int = 12, width: int = 6,
                 k: int = 4, padding: int = 0) -> dict:
    """A chunk with repeated ids, accidental hits, skipped negatives, saturated scores and
    ``padding`` all-masked rows at its end (as a GPU chunk has)."""
    g = torch.Generator().manual_seed(seed)
    syn0 = torch.rand(vocab, dim, generator=g) - 0.5
    syn1 = torch.randn(vocab, dim, generator=g) * 0.3
    syn1[3] *= 40.0  # scores far past word2vec's ±6 table: the exact sigmoid stays finite
    total = rows + padding
    centers = torch.randint(0, vocab, (total,), generator=g)
    contexts = torch.randint(0, vocab, (total, width), generator=g)
    mask = torch.rand(total, width, generator=g) < 0.7
    mask[rows:] = False
    negatives = torch.randint(0, vocab, (total, k), generator=g)
    negatives[::5, 0] = centers[::5]  # accidental hits, skipped
    keep = (negatives != centers[:, None]) & (torch.rand(total, k, generator=g) < 0.9)
    return {"syn0": syn0, "syn1": syn1, "centers": centers, "contexts": contexts, "mask": mask,
            "negatives": negatives, "keep": keep}


def run_reference(chunk: dict, lr_start: float, lr_end: float, lam: float, segments: int,
                  num_rows: int | None = None) -> tuple[np.ndarray, np.ndarray, float, int]:
    syn0 = chunk["syn0"].double().numpy().copy()
    syn1 = chunk["syn1"].double().numpy().copy()
    loss, pairs = reference_sgns_chunk(
        syn0, syn1, chunk["centers"].numpy(), chunk["contexts"].numpy(), chunk["mask"].numpy(),
        chunk["negatives"].numpy(), chunk["keep"].numpy(), lr_start, lr_end, lam, segments,
        num_rows,
    )
    return syn0, syn1, loss, pairs


@pytest.fixture
def one_thread():
    before = numba_threads()
    set_threads(1)
    yield
    set_threads(before)


@pytest.mark.parametrize("segments", [1, 3])
@pytest.mark.parametrize("lam", [1.0, 0.35])
def test_cpu_kernel_equals_the_per_pair_reference(one_thread, segments: int, lam: float) -> None:
    chunk = random_chunk(seed=segments)
    expected0, expected1, expected_loss, expected_pairs = run_reference(
        chunk, 0.05, 0.01, lam, segments
    )
    syn0, syn1 = chunk["syn0"].clone(), chunk["syn1"].clone()
    loss, pairs = fused_sgns_update(
        syn0, syn1, chunk["centers"], chunk["contexts"], chunk["mask"], chunk["negatives"],
        chunk["keep"], 0.05, 0.01, lam=lam, segments=segments,
    )
    assert int(pairs) == expected_pairs == int(chunk["mask"].sum())
    assert loss is not None and float(loss) == pytest.approx(expected_loss, rel=1e-5)
    np.testing.assert_allclose(syn0.numpy(), expected0, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(syn1.numpy(), expected1, atol=1e-6, rtol=1e-6)
    assert not torch.equal(syn0, chunk["syn0"]) and not torch.equal(syn1, chunk["syn1"])


def test_loss_is_optional_and_does_not_change_the_update(one_thread) -> None:
    chunk = random_chunk(seed=7)
    tables = []
    for with_loss in (True, False):
        syn0, syn1 = chunk["syn0"].clone(), chunk["syn1"].clone()
        loss, pairs = fused_sgns_update(
            syn0, syn1, chunk["centers"], chunk["contexts"], chunk["mask"], chunk["negatives"],
            chunk["keep"], 0.1, 0.1, with_loss=with_loss,
        )
        assert (loss is None) is not with_loss and int(pairs) == int(chunk["mask"].sum())
        tables.append((syn0, syn1))
    assert torch.equal(tables[0][0], tables[1][0]) and torch.equal(tables[0][1], tables[1][1])


def test_one_thread_is_bit_identical_when_repeated(one_thread) -> None:
    chunk = random_chunk(seed=11, rows=200)
    results = []
    for _ in range(2):
        syn0, syn1 = chunk["syn0"].clone(), chunk["syn1"].clone()
        fused_sgns_update(syn0, syn1, chunk["centers"], chunk["contexts"], chunk["mask"],
                          chunk["negatives"], chunk["keep"], 0.1, 0.01, segments=4)
        results.append(torch.cat([syn0, syn1]))
    assert torch.equal(results[0], results[1])


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba runs one thread here")
def test_two_threads_train_their_parts_in_parallel() -> None:
    """Two segments on two threads: with disjoint ids per segment no update races, so the
    result is the reference's, whatever the interleaving."""
    chunk = random_chunk(seed=3, rows=60, vocab=40)
    half = 30  # rows 0..29 use ids < 20, rows 30..59 ids >= 20
    for key in ("centers", "contexts", "negatives"):
        chunk[key] = chunk[key] % 20
        chunk[key][half:] += 20
    chunk["keep"] &= chunk["negatives"] != chunk["centers"][:, None]
    expected0, expected1, _, _ = run_reference(chunk, 0.1, 0.02, 1.0, segments=2)
    before = numba_threads()
    try:
        assert set_threads(2) == 2 == numba_threads()
        syn0, syn1 = chunk["syn0"].clone(), chunk["syn1"].clone()
        fused_sgns_update(syn0, syn1, chunk["centers"], chunk["contexts"], chunk["mask"],
                          chunk["negatives"], chunk["keep"], 0.1, 0.02)  # segments = threads
    finally:
        set_threads(before)
    np.testing.assert_allclose(syn0.numpy(), expected0, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(syn1.numpy(), expected1, atol=1e-6, rtol=1e-6)


def test_an_empty_chunk_changes_nothing() -> None:
    chunk = random_chunk(seed=1, rows=0)
    syn0, syn1 = chunk["syn0"].clone(), chunk["syn1"].clone()
    loss, pairs = fused_sgns_update(syn0, syn1, chunk["centers"], chunk["contexts"],
                                    chunk["mask"], chunk["negatives"], chunk["keep"], 0.1, 0.1)
    assert float(loss) == 0.0 and int(pairs) == 0 and torch.equal(syn0, chunk["syn0"])


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda c: c.update(syn0=c["syn0"].double()), ValueError, "float32"),
        (lambda c: c.update(contexts=c["contexts"][:-1]), ValueError, "contexts must have shape"),
        (lambda c: c.update(keep=c["keep"].long()), TypeError, "bool"),
        (lambda c: c["negatives"].__setitem__((0, 1), 99), IndexError, r"negative id.*\[0, 23\)"),
        (lambda c: c["contexts"].__setitem__((2, 0), -4), IndexError, "context id"),
        (lambda c: c["centers"].__setitem__(0, 23), IndexError, "center id"),
    ],
)
def test_bad_input_is_a_clear_error(change, error: type, message: str) -> None:
    chunk = random_chunk(seed=0)
    chunk["mask"][2, 0] = True
    chunk["keep"][0, 1] = True
    change(chunk)
    with pytest.raises(error, match=message):
        fused_sgns_update(chunk["syn0"], chunk["syn1"], chunk["centers"], chunk["contexts"],
                          chunk["mask"], chunk["negatives"], chunk["keep"], 0.1, 0.1)


def test_masked_ids_out_of_range_are_never_read() -> None:
    chunk = random_chunk(seed=0)
    chunk["negatives"][~chunk["keep"]] = -1  # empty slots of a batch-based sampler
    chunk["contexts"][~chunk["mask"]] = 10**6
    fused_sgns_update(chunk["syn0"], chunk["syn1"], chunk["centers"], chunk["contexts"],
                      chunk["mask"], chunk["negatives"], chunk["keep"], 0.1, 0.1)
    assert torch.isfinite(chunk["syn0"]).all()


def test_negative_lambda_is_refused() -> None:
    chunk = random_chunk(seed=0)
    with pytest.raises(ValueError, match="lam"):
        fused_sgns_update(chunk["syn0"], chunk["syn1"], chunk["centers"], chunk["contexts"],
                          chunk["mask"], chunk["negatives"], chunk["keep"], 0.1, 0.1, lam=-1.0)


# ----------------------------------------------------------------- Triton
@pytest.mark.parametrize(("segments", "lam", "with_loss"), [(1, 1.0, True), (3, 0.5, False)])
def test_triton_kernel_under_the_interpreter_equals_the_reference(
    tmp_path: Path, segments: int, lam: float, with_loss: bool
) -> None:
    pytest.importorskip("triton", reason="Triton is not installed (pip install -e '.[dev]')")
    chunk = random_chunk(seed=5, rows=14, dim=10, width=4, k=3, padding=5)
    case = {**chunk, "lr_start": 0.2, "lr_end": 0.05, "lam": lam, "segments": segments,
            "with_loss": with_loss}
    torch.save(case, tmp_path / "case.pt")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [sys.executable, str(TRITON_WORKER), str(tmp_path / "case.pt"), str(tmp_path / "out.pt")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = torch.load(tmp_path / "out.pt")
    # the programs split the 14 real rows; the 5 padding rows at the end are not counted
    expected0, expected1, expected_loss, expected_pairs = run_reference(
        chunk, 0.2, 0.05, lam, segments, num_rows=14
    )
    assert int(out["pairs"]) == expected_pairs
    if with_loss:
        assert float(out["loss"]) == pytest.approx(expected_loss, rel=1e-5)
    else:
        assert float(out["loss"]) == 0.0
    np.testing.assert_allclose(out["syn0"].numpy(), expected0, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(out["syn1"].numpy(), expected1, atol=1e-6, rtol=1e-6)


def test_triton_kernel_compiles_for_a_hopper_gpu() -> None:
    """Type-checks the kernel the way a GPU run would, without a GPU: Triton lowers it to PTX
    and assembles it for sm_90 (H100/H200) with the ptxas it ships."""
    triton = pytest.importorskip("triton", reason="Triton is not installed")
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("TRITON_INTERPRET=1 replaces compilation with the interpreter")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from nslightning.kernels.sgns_triton import _sgns_chunk_kernel

    signature = {
        "syn0": "*fp32", "syn1": "*fp32", "centers": "*i64", "contexts": "*i64", "mask": "*i1",
        "negatives": "*i64", "keep": "*i1", "num_real": "*i64", "totals": "*fp32",
        "lr_start": "fp32", "lr_end": "fp32", "lam": "fp32", "dim": "i32",
        "num_contexts": "constexpr", "num_negatives": "constexpr", "BLOCK_D": "constexpr",
        "WITH_LOSS": "constexpr",
    }
    source = ASTSource(
        _sgns_chunk_kernel, signature,
        constexprs={"num_contexts": 10, "num_negatives": 5, "BLOCK_D": 128, "WITH_LOSS": True},
    )
    try:
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                                  options={"num_warps": 1})
    except (RuntimeError, FileNotFoundError) as error:
        if "ptxas" in str(error):
            pytest.skip(f"Triton's ptxas is not usable here: {error}")
        raise
    except TypeError as error:  # ASTSource's arguments differ between Triton releases
        pytest.skip(f"this Triton ({triton.__version__}) compiles ahead of time otherwise: {error}")
    assert compiled.asm["cubin"]
