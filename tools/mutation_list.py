"""The one-line bugs that ``tools/mutations.py`` plants, each with the tests that must catch it.

Each is a mistake someone could plausibly make in that line (a dropped factor, a sign, an
off-by-one, a forgotten mask or rank), not a random operator swap. Add one when a review finds
a bug the suite missed, with the tests that now catch it.
"""

from __future__ import annotations

from dataclasses import dataclass

DDP = "tests/distributed/test_ddp_equivalence.py"


@dataclass(frozen=True)
class Mutation:
    """One planted bug.

    Attributes:
        name: a short identifier (command-line argument).
        path: the file, relative to the project root.
        old: the text replaced; it must occur exactly once in the file.
        new: what replaces it.
        why: the bug in words.
        tests: pytest arguments (paths, node ids, ``-k`` expressions) that must fail.
    """

    name: str
    path: str
    old: str
    new: str
    why: str
    tests: tuple[str, ...]


MUTATIONS: tuple[Mutation, ...] = (
    # ---------------------------------------------------------------- DDP wiring of the tasks
    Mutation(
        "contrastive-local-normalizer", "nslightning/tasks/contrastive.py",
        "            self.loss.reduce_total = mean_over_ranks\n", "            pass\n",
        "under DDP the loss's means divide by the local batch's totals",
        (DDP, "-k", "contrastive"),
    ),
    Mutation(
        "task-set-rank", "nslightning/tasks/base.py",
        "            self.sampler.set_rank(self.global_rank)\n", "            pass\n",
        "every rank of every task draws the same negatives (the base's sampler set-up)",
        (f"{DDP}::test_contrastive_weighted_loss_under_ddp_equals_one_process",
         f"{DDP}::test_skipgram_update_under_ddp_equals_one_process",
         f"{DDP}::test_language_model_sampled_softmax_under_ddp_equals_one_process"),
    ),
    Mutation(
        "skipgram-world-scaling", "nslightning/tasks/skipgram.py",
        "self.manual_backward(loss_sum * world)", "self.manual_backward(loss_sum)",
        "skip-gram's gradient is averaged over ranks instead of summed",
        (f"{DDP}::test_skipgram_update_under_ddp_equals_one_process",),
    ),
    Mutation(
        "skipgram-update-count", "nslightning/tasks/skipgram.py",
        "count = max_over_ranks(len(updates), self.device)", "count = len(updates)",
        "ranks do not agree on the number of updates of a batch (a rank without rows hangs "
        "the other in its gradient all-reduce)",
        (f"{DDP}::test_skipgram_update_under_ddp_equals_one_process",),
    ),
    Mutation(
        "in-batch-local-pool", "nslightning/samplers/in_batch.py",
        "pool, offset = gather_ids(rows) if self.across_ranks else (rows, 0)",
        "pool, offset = rows, 0",
        "in-batch negatives with across_ranks come from this rank's batch only",
        (f"{DDP}::test_contrastive_in_batch_info_nce_under_ddp_equals_one_process",),
    ),
    Mutation(
        "sparse-sgd-local-repeats", "nslightning/optim/sparse_sgd.py",
        "totals = sum_over_ranks(torch.cat(local))", "totals = torch.cat(local)",
        "under DDP SparseSGD's repeat cap counts only this rank's occurrences of a row",
        (f"{DDP}::test_skipgram_update_under_ddp_equals_one_process",
         "tests/distributed/test_gloo.py", "-k", "sparse_sgd"),
    ),
    Mutation(
        "sparse-sgd-one-rank-group", "nslightning/optim/sparse_sgd.py",
        "    if not in_process_group():\n        return\n    rows =",
        "    if not in_process_group() or torch.distributed.get_world_size() == 1:\n"
        "        return\n    rows =",
        "DDP with one process (its gradient merged all the same) counts each row once",
        ("tests/distributed/test_gloo.py", "-k", "sparse_sgd"),
    ),
    Mutation(
        "sparse-sgd-accumulation", "nslightning/optim/sparse_sgd.py",
        "rows if kept is None else torch.cat([kept, rows])", "rows",
        "under DDP only the last of several backward passes before a step is counted",
        ("tests/distributed/test_gloo.py", "-k", "sparse_sgd"),
    ),
    Mutation(
        "sparse-sgd-stale-rows", "nslightning/optim/sparse_sgd.py",
        "        super().zero_grad(set_to_none)\n        self._rows_before_merge.clear()\n",
        "        super().zero_grad(set_to_none)\n",
        "rows of a backward pass whose step was skipped are counted in the next step",
        ("tests/distributed/test_gloo.py", "-k", "sparse_sgd"),
    ),
    Mutation(
        "mean-over-ranks-sum", "nslightning/distributed.py",
        "return sum_over_ranks(value) / world_size()", "return sum_over_ranks(value)",
        "the global normalizer is the sum of the ranks' totals, not their mean",
        (DDP, "-k", "contrastive"),
    ),
    Mutation(
        "fused-merge-averages", "nslightning/tasks/skipgram_engine.py",
        "                base.add_(change)\n", "                base.add_(change / world_size())\n",
        "the fused engine averages the ranks' changes, shrinking every update",
        ("tests/distributed/test_gloo.py", "-k", "fused"),
    ),
    Mutation(
        "evaluation-shard-overlap", "nslightning/data/rank_shards.py",
        "self.indices = range(rank, len(dataset), world_size)",
        "self.indices = range(0, len(dataset), world_size)",
        "every rank evaluates the same items: some counted twice, others never",
        ("tests/distributed/test_ddp_cli.py", "-k", "contrastive_trains"),
    ),
    # ---------------------------------------------------------------- skip-gram
    Mutation(
        "skipgram-no-hit-mask", "nslightning/tasks/skipgram.py",
        "scores[..., 0], scores[..., 1:], neg_mask=negatives.mask.unsqueeze(1),",
        "scores[..., 0], scores[..., 1:], neg_mask=None,",
        "accidental hits count as negatives (autograd engine)",
        ("tests/tasks/test_skipgram_hit_mask.py",),
    ),
    Mutation(
        "fused-no-hit-mask", "nslightning/tasks/skipgram.py",
        "negatives.ids, negatives.mask,", "negatives.ids, torch.ones_like(negatives.mask),",
        "accidental hits count as negatives (fused engine)",
        ("tests/tasks/test_skipgram_hit_mask.py",),
    ),
    Mutation(
        "window-exclusions-padding", "nslightning/tasks/skipgram.py",
        "return contexts.masked_fill(~mask, -1) if self.accidental_hits == \"known\" else None",
        "return contexts if self.accidental_hits == \"known\" else None",
        "accidental_hits known also excludes the ids in padded context slots",
        ("tests/tasks/test_skipgram_hit_mask.py",),
    ),
    Mutation(
        "sgns-ignores-lam", "nslightning/losses/functional/sgns.py",
        "per_pair = -F.logsigmoid(pos_scores) - lam * neg_terms.sum(-1)",
        "per_pair = -F.logsigmoid(pos_scores) - neg_terms.sum(-1)",
        "the SGNS loss ignores λ",
        ("tests/losses/test_sgns.py",),
    ),
    Mutation(
        "fused-lr-constant", "nslightning/kernels/sgns_numba.py",
        "alpha = np.float32(lr_start + (lr_end - lr_start) * (row - begin) / length)",
        "alpha = np.float32(lr_start)",
        "the fused kernel's learning rate does not decay inside a chunk",
        ("tests/kernels/test_fused_sgns.py",),
    ),
    Mutation(
        "subsampling-paper-formula", "nslightning/data/subsampling.py",
        "keep = (torch.sqrt(counts / threshold) + 1.0) * threshold / counts.clamp_min(1.0)",
        "keep = torch.sqrt(threshold / counts.clamp_min(1.0))",
        "the paper's keep probability instead of word2vec.c's",
        ("tests/data/test_subsampling.py",),
    ),
    Mutation(
        "window-can-be-empty", "nslightning/data/windows.py",
        "reduced = torch.randint(1, window + 1,", "reduced = torch.randint(0, window + 1,",
        "a center's dynamic window can be 0 words",
        ("tests/data/test_windows.py",),
    ),
    Mutation(
        "sparse-sgd-no-cap", "nslightning/optim/sparse_sgd.py",
        "cap = (self.max_repeats / repeats).clamp_(max=1.0)",
        "cap = self.max_repeats / repeats",
        "SparseSGD scales rows seen less often than max_repeats up",
        ("tests/optim/test_sparse_sgd.py",),
    ),
    Mutation(
        "vocabulary-min-count", "nslightning/data/vocabulary.py",
        "if count >= min_count),", "if count > min_count),",
        "min_count drops tokens seen exactly min_count times",
        ("tests/data/test_vocabulary.py",),
    ),
    # ---------------------------------------------------------------- samplers
    Mutation(
        "unigram-ignores-power", "nslightning/samplers/unigram.py",
        "return counts.pow(self.power) if self.power > 0 else torch.ones_like(counts)",
        "return counts if self.power > 0 else torch.ones_like(counts)",
        "unigram^0.75 draws from the plain unigram distribution",
        ("tests/samplers/test_distributions.py",),
    ),
    Mutation(
        "log-uniform-range", "nslightning/samplers/log_uniform.py",
        "ids = u.mul_(math.log(self.vocab_size + 1.0)).exp_().long().sub_(1)",
        "ids = u.mul_(math.log(self.vocab_size)).exp_().long().sub_(1)",
        "the log-uniform draw never reaches the last id and skews the others",
        ("tests/samplers/test_distributions.py",),
    ),
    Mutation(
        "in-batch-own-positive", "nslightning/samplers/in_batch.py",
        "positions = others + (others >= own[:, None]).long()",
        "positions = others + (others > own[:, None]).long()",
        "in-batch negatives include the row's own positive and skip another",
        ("tests/samplers/test_in_batch.py",),
    ),
    Mutation(
        "hard-negatives-easiest", "nslightning/samplers/scored_pool.py",
        "return scores.topk(num, dim=1).indices, usable",
        "return scores.topk(num, dim=1, largest=False).indices, usable",
        "hard-negative mining keeps the lowest-scoring candidates",
        ("tests/samplers/test_hard_negative.py",),
    ),
    # ---------------------------------------------------------------- losses
    Mutation(
        "weighted-negative-mean-over-slots", "nslightning/losses/functional/contrastive.py",
        "negative = neg_terms.sum() / neg_total.clamp_min(1e-12)",
        "negative = neg_terms.sum() / neg_scores.numel()",
        "the λ-weighted loss's negative mean counts masked slots and ignores weights",
        ("tests/losses/test_weighted_contrastive.py",),
    ),
    Mutation(
        "info-nce-log-q-without-count", "nslightning/losses/functional/softmax.py",
        "neg_logits = neg_logits - (log_q + log_count.unsqueeze(-1))",
        "neg_logits = neg_logits - log_q",
        "the logQ correction subtracts log q instead of log(K q)",
        ("tests/losses/test_softmax_losses.py",),
    ),
    Mutation(
        "sgns-masked-score-reaches-gradient", "nslightning/losses/functional/sgns.py",
        "neg_terms = F.logsigmoid(-drop_masked(neg_scores, neg_mask))",
        "neg_terms = F.logsigmoid(-neg_scores)",
        "a dropped negative's score (inf, NaN) reaches the SGNS gradient",
        ("tests/losses/test_contract.py",),
    ),
    Mutation(
        "sampled-softmax-uncorrected-positive", "nslightning/losses/functional/sampled_output.py",
        "pos_logits = pos_scores if pos_log_q is None else pos_scores - (pos_log_q + log_draws)",
        "pos_logits = pos_scores",
        "sampled softmax ignores the true class's log(K q) when pos_log_q is given",
        ("tests/losses/test_contract.py",),
    ),
    # ---------------------------------------------------------------- language model
    Mutation(
        "lm-state-not-reset", "nslightning/tasks/language_model.py",
        '    def on_train_epoch_start(self) -> None:\n        self._hidden["train"] = None\n',
        '    def on_train_epoch_start(self) -> None:\n        pass\n',
        "the LSTM state of the previous epoch's last window starts the next epoch",
        ("tests/tasks/test_lm_task.py",),
    ),
    Mutation(
        "lm-shared-hits-kept", "nslightning/models/sampled_output.py",
        "mask = None if keep else ids.unsqueeze(0) != targets.unsqueeze(1)  # (N, K)",
        "mask = None",
        "shared candidates equal to the target stay in the sampled softmax",
        ("tests/models/test_lm_output.py",),
    ),
    Mutation(
        "lm-inclusion-over-corrected", "nslightning/samplers/loss_inputs.py",
        "        return log_q - math.log(num_draws)",
        "        return log_q",
        "unique draws' inclusion probability is corrected by log(K π), not log π",
        ("tests/models/test_lm_output.py",),
    ),
    # ---------------------------------------------------------------- contrastive task
    Mutation(
        "contrastive-ignores-filter-known", "nslightning/tasks/contrastive.py",
        "known = self.known if self.accidental_hits == \"known\" else None",
        "known = None",
        "known positives drawn as negatives are not masked",
        ("tests/tasks/test_contrastive_task.py",),
    ),
    Mutation(
        "ranking-pessimistic-ties", "nslightning/metrics/ranking.py",
        "0.5 * (below_or_tied - below)", "1.0 * (below_or_tied - below)",
        "tied competitors count fully against the target",
        ("tests/metrics/test_ranking.py",),
    ),
    # ---------------------------------------------------------------- encoders and geometry
    Mutation(
        "encoder-vectors-gathered-without-gradients", "nslightning/distributed.py",
        "    return torch.cat(all_gather(vectors.contiguous()))",
        "    return torch.cat(all_gather(vectors.detach().contiguous()))",
        "the other ranks' losses no longer train the encoder of a rank's in-batch vectors",
        (DDP + "::test_contrastive_bag_encoders_gather_vectors_under_ddp_equal_one_process",),
    ),
    Mutation(
        "in-batch-vectors-misplaced", "nslightning/tasks/contrastive.py",
        "pool[negatives.positions]", "pool[negatives.positions.flip(-1)]",
        "reused in-batch vectors do not belong to the negatives' ids",
        ("tests/tasks/test_contrastive_encoders.py",),
    ),
    Mutation(
        "vectors-gathered-without-across-ranks", "nslightning/tasks/contrastive.py",
        "pool = gather_with_gradients(own) if across else own",
        "pool = gather_with_gradients(own)",
        "without across_ranks the local positions pick rank 0's gathered vectors on every rank",
        ("tests/tasks/test_contrastive_encoders.py",),
    ),
    Mutation(
        "calibration-not-applied", "nslightning/tasks/contrastive.py",
        "        logits = self.calibration(scores) if self.calibration is not None else scores\n",
        "        logits = scores\n",
        "the calibration is built and logged but the loss gets the raw distances",
        ("tests/tasks/test_score_calibration.py",),
    ),
    Mutation(
        "burn-in-one-epoch-short", "nslightning/tasks/contrastive.py",
        "factor if epoch < burn_in else 1.0", "factor if epoch < burn_in - 1 else 1.0",
        "the burn-in ends an epoch early",
        ("tests/tasks/test_hyperbolic_task.py",),
    ),
    Mutation(
        "hyperbolic-distance-not-doubled", "nslightning/models/scores.py",
        "torch.log1p(2 * half_chord * (half_chord",
        "torch.log1p(1 * half_chord * (half_chord",
        "d = 2 asinh(z) loses its factor: not the hyperbolic distance",
        ("tests/models/test_scores.py",),
    ),
    # ---------------------------------------------------------------- runs and outputs
    Mutation(
        "word2vec-header-swapped", "nslightning/callbacks/word2vec_format.py",
        'handle.write(f"{array.shape[0]} {array.shape[1]}\\n".encode())',
        'handle.write(f"{array.shape[1]} {array.shape[0]}\\n".encode())',
        "the word2vec header gives dim before the number of vectors",
        ("tests/callbacks/test_export_and_evaluation.py",),
    ),
    Mutation(
        "last-checkpoint-oldest", "nslightning/run_folders.py",
        "return max(found, key=lambda path: path.stat().st_mtime_ns)",
        "return min(found, key=lambda path: path.stat().st_mtime_ns)",
        "--ckpt_path last resumes the oldest run",
        ("tests/test_run_folders.py",),
    ),
    Mutation(
        "resume-does-not-skip", "nslightning/data/rank_shards.py",
        "skip, self._resume_at = skipped_steps(self._resume_at, self.epoch), None",
        "skip, self._resume_at = 0, None",
        "a run resumed mid-epoch repeats the batches it had done",
        ("tests/test_resume.py", "-k", "skipgram"),
    ),
)
