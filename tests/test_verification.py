"""Speculative sampling (`verification.speculative_sampling_block`, Leviathan et al. algorithm 1) on hand-built
distributions, no models: every committed token has the target's distribution, with a power check that a wrong
residual fails the same test at the same sample size."""

from __future__ import annotations

import collections

import pytest
import torch

from specvlm_hf.verification import SAMPLED, BlockVerdict, speculative_sampling_block

VOCAB = 6
DRAWS = 8_000
# One-sample TV of 8,000 draws over 6 outcomes is ~0.01 under the null; the wrong variant moves ~0.1.
TOLERANCE = 0.03


def distributions(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Target scores (3, VOCAB) and draft scores (2, VOCAB) that disagree a lot, one token forbidden for the draft."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.randn(3, VOCAB, generator=generator) * 1.5
    draft = target[:2] + torch.randn(2, VOCAB, generator=generator)
    draft[:, 0] = float("-inf")  # the draft can never propose token 0; the residual must still give it p's mass
    return target, draft


def committed_tokens(target_scores, draft_scores, generator, rule=speculative_sampling_block) -> list[int]:
    """One block of two drafted tokens drawn from the draft (prefix-independent rows: a valid special case)."""
    drafted = torch.multinomial(torch.softmax(draft_scores, dim=-1), 1, generator=generator).flatten()
    verdict = rule(drafted, draft_scores, target_scores, generator=generator)
    return drafted[: verdict.accepted].tolist() + [verdict.bonus]


def tv(counts: collections.Counter, probs: torch.Tensor) -> float:
    total = sum(counts.values())
    return 0.5 * sum(abs(counts[t] / total - float(probs[t])) for t in range(VOCAB))


def first_and_second(rule=speculative_sampling_block) -> tuple[collections.Counter, collections.Counter]:
    target_scores, draft_scores = distributions()
    generator = torch.Generator().manual_seed(1)
    first, second = collections.Counter(), collections.Counter()
    for _ in range(DRAWS):
        tokens = committed_tokens(target_scores, draft_scores, generator, rule)
        first[tokens[0]] += 1
        if len(tokens) > 1:
            second[tokens[1]] += 1
    return first, second


def test_every_committed_token_has_the_target_distribution():
    target_scores, _ = distributions()
    p = torch.softmax(target_scores, dim=-1)
    first, second = first_and_second()
    assert tv(first, p[0]) <= TOLERANCE
    assert sum(second.values()) > DRAWS / 4  # enough blocks accepted their first token
    assert tv(second, p[1]) <= TOLERANCE
    assert first[0] > 0  # a token the draft cannot propose still comes out, from the residual


def test_power_a_wrong_residual_fails_the_same_test():
    """The classic mistake: after a rejection, draw from the target's distribution instead of the residual."""

    def target_after_rejection(drafted, draft_scores, target_scores, generator=None):
        verdict = speculative_sampling_block(drafted, draft_scores, target_scores, generator=generator)
        if verdict.accepted == drafted.numel():
            return verdict
        probs = torch.softmax(target_scores[verdict.accepted], dim=-1)
        return BlockVerdict(verdict.kinds, int(torch.multinomial(probs, 1, generator=generator)))

    target_scores, _ = distributions()
    first, _ = first_and_second(target_after_rejection)
    assert tv(first, torch.softmax(target_scores, dim=-1)[0]) > TOLERANCE


def test_block_outcomes():
    scores = torch.tensor([[0.0, 5.0, -5.0], [0.0, 0.0, 9.0]])
    same = speculative_sampling_block(torch.tensor([1]), scores[:1], scores)
    assert same.kinds == [SAMPLED] and same.bonus in (0, 1, 2)  # p == q: always accepted
    impossible = speculative_sampling_block(torch.tensor([2]), torch.tensor([[-9.0, -9.0, 9.0]]),
                                            torch.tensor([[0.0, 0.0, float("-inf")], [0.0, 0.0, 0.0]]))
    assert impossible.accepted == 0 and impossible.bonus in (0, 1)  # p(d) == 0: rejected, residual excludes d
    empty = speculative_sampling_block(torch.tensor([], dtype=torch.long), None, torch.tensor([[float("-inf"), 0.0]]))
    assert empty.accepted == 0 and empty.bonus == 1  # the prefill: the token is drawn from p


def test_reproducible_with_torch_manual_seed():
    target_scores, draft_scores = distributions(3)
    drafted = torch.tensor([1, 2])
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append([(v.accepted, v.bonus) for v in
                     (speculative_sampling_block(drafted, draft_scores, target_scores) for _ in range(20))])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("weight", [None, 1.0])
def test_ensemble_weight_one_is_plain_speculative_sampling(weight):
    """w = 1 verifies against p itself: identical draws to the lossless rule."""
    target_scores, draft_scores = distributions(5)
    drafted = torch.tensor([3, 4])
    plain = speculative_sampling_block(drafted, draft_scores, target_scores, generator=torch.Generator().manual_seed(0))
    mixed = speculative_sampling_block(drafted, draft_scores, target_scores, ensemble_weight=weight,
                                       generator=torch.Generator().manual_seed(0))
    assert (plain.accepted, plain.bonus) == (mixed.accepted, mixed.bonus)


def test_ensemble_weight_zero_accepts_every_draft():
    """w = 0 verifies against the draft's own distribution (DIVERSE's lossy end point): nothing is rejected."""
    target_scores, draft_scores = distributions(6)
    for seed in range(50):
        verdict = speculative_sampling_block(torch.tensor([1, 2]), draft_scores, target_scores, ensemble_weight=0.0,
                                             generator=torch.Generator().manual_seed(seed))
        assert verdict.accepted == 2
