"""Two gloo processes: the samplers' ranks draw differently and share what they should, the
fused engine's ranks exchange their changes, and a non-finite value on one rank stops all.
The tasks' own DDP paths are tested in ``test_ddp_equivalence.py``."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("gloo_worker.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_group(scenario: str, world: int, out: Path) -> list[dict]:
    """Runs ``world`` worker processes (a gloo group when ``world > 1``), returns their results."""
    out.mkdir(parents=True, exist_ok=True)
    port = str(free_port())
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), scenario, str(rank), str(world), port, str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in range(world)
    ]
    for process in processes:
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, output
    return [torch.load(out / f"rank{rank}.pt") for rank in range(world)]


def test_ranks_draw_different_negatives_and_share_the_memory_bank(tmp_path: Path) -> None:
    first, second = run_group("draws", 2, tmp_path)
    assert not torch.equal(first["unigram"], second["unigram"])
    # the bank holds the positives of both ranks in rank order, the same on every rank
    torch.testing.assert_close(first["bank"], torch.arange(16))
    torch.testing.assert_close(second["bank"], torch.arange(16))
    assert not torch.equal(first["bank_draw"], second["bank_draw"])
    for rank, result in enumerate((first, second)):
        own = torch.arange(8) + 8 * rank
        drawn = result["in_batch"]
        assert drawn.shape == (8, 3)
        assert not (drawn == own[:, None]).any()
        assert drawn.min() >= 0 and drawn.max() < 16  # from the global batch
    # rows drew from both ranks' positives
    every = torch.cat([first["in_batch"].flatten(), second["in_batch"].flatten()])
    assert (every < 8).any() and (every >= 8).any()


def test_fused_skipgram_ranks_exchange_their_changes(tmp_path: Path) -> None:
    (single,) = run_group("fused_merge", 1, tmp_path / "one")
    ranks = run_group("fused_merge", 2, tmp_path / "two")
    for result in ranks:
        assert result["merged"]
        for name in ("syn0", "syn1"):
            torch.testing.assert_close(result[name], single[name], atol=1e-6, rtol=1e-6)
        # merged every 2 chunks and at the epoch's end, not after the first chunk
        assert result["when"] == [False, True, True]
        assert result["table"].tolist() == [[14.0, 11.0, 11.0], [14.0, 11.0, 11.0]]
    assert not torch.equal(ranks[0]["local"], ranks[1]["local"])


def test_every_rank_stops_when_one_rank_sees_a_non_finite_value(tmp_path: Path) -> None:
    ranks = run_group("finite_guard", 2, tmp_path)
    for rank, messages in enumerate(ranks):
        assert set(messages) == {"check", "pending", "state"}, messages
        if rank == 1:
            assert messages["check"].startswith("train/loss is nan at step 7 (epoch 1, batch 3)")
            assert messages["pending"].startswith("train/loss is nan at step 7")
            assert messages["state"].startswith("the parameter weight is inf at step 7")
        else:
            for message in messages.values():
                assert message.startswith("rank 1 found a non-finite"), message


def test_sparse_sgd_repeat_cap_under_ddp_is_that_of_one_process(tmp_path: Path) -> None:
    """gloo's all-reduce merges the ranks' sparse gradients (each row once); the cap must
    still count every lookup of every rank, of every pass accumulated before the step and
    none of a pass whose step was skipped, also when DDP runs on one process."""
    (reference,) = run_group("sparse_sgd_reference", 1, tmp_path / "reference")
    (one_rank,) = run_group("sparse_sgd", 1, tmp_path / "one")
    ranks = run_group("sparse_sgd", 2, tmp_path / "two")
    torch.manual_seed(0)
    start = torch.nn.Embedding(5, 2).weight.detach()
    assert (reference["weight"] - start).abs().amax() > 1e-2
    for result in (one_rank, *ranks):
        torch.testing.assert_close(result["weight"], reference["weight"], atol=1e-6, rtol=0)
