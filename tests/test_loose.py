"""Loose verification (LVSpec, ``PruneConfig(verify="loose")``) and the owned assisted-decoding loop.

1. The rule functions of `specvlm_hf.verification` on hand-built score rows and hidden states (no models): each of
   the module docstring's rules 1-5, `relaxed_positions`, `visual_relevance`, `word_token_ids`,
   `protected_token_ids`.
2. The owned loop with the strict rule (``integration.OWNED_LOOP_FOR_STRICT = True``) and the loose rule with nothing
   relaxed (``relax_ratio=0, shift_window=0``) are token-identical to plain ``target.generate`` and to the stock
   assisted loop, for every family, with the real small draft and with self-speculation (multi-token blocks).
3. The owned loop honours the generate options (streamers, stopping criteria, lengths, logits processors,
   ``return_dict_in_generate`` outputs); with relaxation on, the hard constraints still hold (length, forbidden tokens,
   eos and protected tokens, models left unchanged, also after an exception mid-decoding).
4. Loose actually relaxes (and is lossy by design), and its bad input is rejected before any forward.

Every call through `spec` asserts which loop ran (a spy on `decoding.assisted_decoding`) and which rule it used.
"""

from __future__ import annotations

import copy
import functools
import math
import os

import pytest
import torch
from generate_options import (
    BanArgmaxAtEvenLengths,
    RecordingStreamer,
    StopAfter,
    StopOnToken,
    assert_same_step_outputs,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_state import assert_same_snapshot, snapshot
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from specvlm_hf import FAMILIES, PruneConfig, candidate, decoding, integration, last_stats, verification, word_token_ids
from specvlm_hf.testbed import tiny
from specvlm_hf.verification import (
    EXACT,
    RELAXED,
    SHIFTED,
    LooseRule,
    LooseVerification,
    SpeculativeSampling,
    StrictVerification,
    loose_block,
    protected_token_ids,
    relaxed_positions,
    strict_block,
    visual_relevance,
)

# Many tests run relax 0 / shift 0 on purpose (it must equal strict); its warning is tested on its own.
pytestmark = pytest.mark.filterwarnings("ignore:PruneConfig\\(verify='loose'\\) with num_draft_tokens")

EXAMPLES = int(os.environ.get("SPECVLM_FUZZ_EXAMPLES", "20"))
FAMILY_NAMES = sorted(FAMILIES)
VOCAB = 32


# =====================================================================================================================
# 1. The rules on hand-built tensors
# =====================================================================================================================


def score_rows(predictions: list[int], *, ranking: dict[int, list[int]] | None = None,
               forbid: tuple[tuple[int, int], ...] = ()) -> torch.Tensor:
    """``(len(predictions), VOCAB)`` processed scores: row i's argmax is ``predictions[i]``.

    ``ranking[i]`` fixes the best tokens of row i in order (its first entry replaces the prediction); every other token
    ranks below them, by id. ``forbid`` sets ``(row, token)`` to -inf, as a logits processor that forbids it.
    """
    rows = torch.empty(len(predictions), VOCAB)
    for i, prediction in enumerate(predictions):
        best = (ranking or {}).get(i, [prediction])
        order = best + [t for t in range(VOCAB) if t not in best]
        rows[i, order] = torch.arange(VOCAB, 0, -1, dtype=torch.float32)
    for row, token in forbid:
        rows[row, token] = float("-inf")
    return rows


def rule(*, kind: str = "any", top_k: int = 5, window: int = 0, protected=()) -> LooseRule:
    return LooseRule(relax_ratio=1.0, loose_rule=kind, loose_top_k=top_k, shift_window=window,
                     protected=frozenset(protected))


def verdict(drafted: list[int], predictions: list[int], relaxed: list[bool] | bool, the_rule: LooseRule, **rows):
    assert len(predictions) == len(drafted) + 1
    mask = torch.tensor(relaxed if isinstance(relaxed, list) else [relaxed] * len(drafted), dtype=torch.bool)
    return loose_block(torch.tensor(drafted), score_rows(predictions, **rows), mask, the_rule)


T = [10, 11, 12, 13, 14]  # the target's predictions t_0 .. t_4 for a block of n = 4 drafted tokens
# A target that still wants 11 after the draft's token at position 1 (rows are conditioned on the drafted prefix):
# the draft inserting a word before 11, or swapping 11 with the next word, re-synchronises at position 2.
T_AGAIN = [10, 11, 11, 13, 14]


def test_all_exact_block_takes_the_bonus_from_row_n():
    for result in (strict_block(torch.tensor(T[:4]), score_rows(T)),
                   verdict(T[:4], T, False, rule(window=2)),
                   verdict(T[:4], T, True, rule())):
        assert result.kinds == [EXACT] * 4 and result.accepted == 4
        assert result.bonus == 14


def test_all_accepted_mixed_block_takes_the_bonus_from_row_n():
    result = verdict([10, 20, 12, 21], T, [False, True, False, True], rule())
    assert result.kinds == [EXACT, RELAXED, EXACT, RELAXED]
    assert result.bonus == 14


def test_anchor_mismatch_rejects_and_the_bonus_is_the_targets_token():
    result = verdict([10, 20, 12, 13], T, [True, False, True, True], rule(window=2))
    assert result.kinds == [EXACT] and result.bonus == 11
    strict = strict_block(torch.tensor([10, 20, 12, 13]), score_rows(T))
    assert strict.kinds == [EXACT] and strict.bonus == 11


def test_relaxed_mismatch_accepted_under_any_even_when_the_target_ranks_it_last():
    result = verdict([10, 20, 12, 13], T, [False, True, False, False], rule(kind="any"),
                     ranking={1: [11] + [t for t in range(VOCAB) if t not in (11, 20)] + [20]})
    assert result.kinds == [EXACT, RELAXED, EXACT, EXACT] and result.bonus == 14


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
def test_target_topk_accepts_exactly_within_the_top_k(rank):
    """Row 1 ranks its tokens [11, 21, 22, 23, 24, ...]: the drafted token 2x has rank `rank` (1-based, 1 = the
    argmax, which matches exactly)."""
    best = [11, 21, 22, 23, 24]
    drafted_token = best[rank - 1]
    for k in range(1, 7):
        result = verdict([10, drafted_token, 12, 13], T, [False, True, False, False], rule(kind="target_topk", top_k=k),
                         ranking={1: best})
        if rank == 1:
            assert result.kinds == [EXACT] * 4
        elif rank <= k:
            assert result.kinds == [EXACT, RELAXED, EXACT, EXACT], (rank, k)
        else:
            assert result.kinds == [EXACT], (rank, k)
            assert result.bonus == 11


def test_target_topk_boundary_is_by_rank_not_by_id():
    """Top-k means the k highest scores: a token with a small id but a low score is outside."""
    result = verdict([10, 0, 12, 13], T, [False, True, False, False], rule(kind="target_topk", top_k=3),
                     ranking={1: [11, 30, 29, 0]})
    assert result.kinds == [EXACT]  # token 0 is 4th
    result = verdict([10, 0, 12, 13], T, [False, True, False, False], rule(kind="target_topk", top_k=4),
                     ranking={1: [11, 30, 29, 0]})
    assert result.kinds == [EXACT, RELAXED, EXACT, EXACT]


@pytest.mark.parametrize("kind", ["any", "target_topk"])
def test_relaxed_token_forbidden_by_a_processor_is_rejected(kind):
    # 20 is the target's second choice in row 1 (inside any top-k) but a processor set it to -inf.
    rows = {"ranking": {1: [11, 20]}, "forbid": ((1, 20),)}
    result = verdict([10, 20, 12, 13], T, [False, True, False, False], rule(kind=kind, top_k=5), **rows)
    assert result.kinds == [EXACT] and result.bonus == 11
    # The same token, allowed, is accepted (the -inf is what rejects it).
    result = verdict([10, 20, 12, 13], T, [False, True, False, False], rule(kind=kind, top_k=5), ranking={1: [11, 20]})
    assert result.kinds == [EXACT, RELAXED, EXACT, EXACT]


def test_forbidden_token_is_not_accepted_by_a_shift_either():
    # t_1 = 11 = d_2 and d_2 = t_2: the inserted 20 is a shift, unless row 1 forbids 20.
    assert verdict([10, 20, 11, 13], T_AGAIN, False, rule(window=1)).kinds == [EXACT, SHIFTED, EXACT, EXACT]
    result = verdict([10, 20, 11, 13], T_AGAIN, False, rule(window=1), forbid=((1, 20),))
    assert result.kinds == [EXACT] and result.bonus == 11


# -- rule 4: position-shift tolerance with re-synchronisation ---------------------------------------------------------


@pytest.mark.parametrize(
    "drafted, predictions, window, kinds",
    [
        # Insertion: the draft put 20 before the target's 11, and the target (after 20) still wants 11: accepted.
        ([10, 20, 11, 13], T_AGAIN, 1, [EXACT, SHIFTED, EXACT, EXACT]),
        # Swap: the draft says 13 11 where the target wanted 11 (then 13): the first of the pair is shifted.
        ([10, 13, 11, 13], T_AGAIN, 1, [EXACT, SHIFTED, EXACT, EXACT]),
        # Re-synchronisation fails: d_2 = t_1 but the target does not want 11 after the draft's 20 (t_2 = 12).
        ([10, 20, 11, 13], T, 1, [EXACT]),
        # The target's token is drafted two positions later: needs shift_window 2, and both following tokens exact.
        ([10, 20, 12, 11], [10, 11, 12, 11, 14], 2, [EXACT, SHIFTED, EXACT, EXACT]),
        ([10, 20, 12, 11], [10, 11, 12, 11, 14], 1, [EXACT]),
        ([10, 20, 25, 11], [10, 11, 12, 11, 14], 2, [EXACT]),
        # Near the end of the block only min(w, n-1-i) following tokens are needed: i = 2 needs just d_3.
        ([10, 11, 20, 12], [10, 11, 12, 12, 14], 2, [EXACT, EXACT, SHIFTED, EXACT]),
        # The draft has the target's token only *earlier* (d_0 = t_2): not a shift (rows are conditioned on the
        # drafted prefix, so looking back finds only a token the block already has).
        ([10, 11, 20, 13], [10, 11, 10, 13, 14], 2, [EXACT, EXACT]),
        # A stutter is not a shift: d_1 repeats d_0 and the target's 11 never appears later in the draft.
        ([10, 10, 12, 13], T, 1, [EXACT]),
        ([11, 11, 12, 13], T, 1, []),
        # shift_window = 0 disables shifts.
        ([10, 20, 11, 13], T_AGAIN, 0, [EXACT]),
        # The last drafted token has nothing after it: never shifted (nor is the bonus row n looked at).
        ([10, 11, 12, 20], T, 2, [EXACT, EXACT, EXACT]),
        # A mismatch whose target token is nowhere in the draft: rejected.
        ([10, 25, 12, 13], T, 3, [EXACT]),
    ],
)
def test_shift_acceptance(drafted, predictions, window, kinds):
    result = verdict(drafted, predictions, False, rule(window=window))
    assert result.kinds == kinds
    assert result.bonus == predictions[len(kinds)]


def test_shift_acceptance_with_a_one_token_block():
    # n = 1: the only drafted token is the last one, so a shift is never possible.
    assert verdict([11], [10, 11], False, rule(window=3)).kinds == []


# -- rule 2: protected tokens -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["drafted", "target"])
def test_protected_tokens_are_never_relaxed(side):
    drafted = [10, 20, 12, 13]
    protected = {20} if side == "drafted" else {11}
    result = verdict(drafted, T, True, rule(protected=protected))
    assert result.kinds == [EXACT] and result.bonus == 11
    # Unprotected, the same block is accepted whole.
    assert verdict(drafted, T, True, rule()).kinds == [EXACT, RELAXED, EXACT, EXACT]


@pytest.mark.parametrize("side", ["drafted", "target"])
def test_protected_tokens_are_never_shifted(side):
    drafted = [10, 20, 11, 13]  # t_1 = d_2, re-synchronised by d_2: a shift when unprotected
    assert verdict(drafted, T_AGAIN, False, rule(window=1)).kinds == [EXACT, SHIFTED, EXACT, EXACT]
    protected = {20} if side == "drafted" else {11}
    result = verdict(drafted, T_AGAIN, False, rule(window=1, protected=protected))
    assert result.kinds == [EXACT] and result.bonus == 11


def test_a_protected_token_matching_exactly_is_accepted():
    result = verdict([10, 11, 12, 13], T, True, rule(window=1, protected={10, 11, 12, 13, 14}))
    assert result.kinds == [EXACT] * 4 and result.bonus == 14


def test_protected_set_comes_from_the_call_and_the_config():
    config = PruneConfig(verify="loose", protect_tokens=[20, 3], relax_ratio=0.4, loose_rule="target_topk",
                         loose_top_k=7, shift_window=2)
    the_rule = LooseRule.from_config(config, protected={1, 2})
    assert the_rule.protected == frozenset({1, 2, 3, 20})
    assert (the_rule.relax_ratio, the_rule.loose_rule, the_rule.loose_top_k, the_rule.shift_window) == (
        0.4, "target_topk", 7, 2)


def test_acceptance_stops_at_the_first_unaccepted_mismatch():
    # Position 1 is an anchor mismatch; positions 2 and 3 match (or would be relaxed) but are never reached.
    result = verdict([10, 20, 12, 13], T, [True, False, True, True], rule(window=1))
    assert result.kinds == [EXACT] and result.bonus == 11
    result = verdict([20, 11, 12, 13], T, [False, True, True, True], rule())
    assert result.kinds == [] and result.bonus == 10
    assert strict_block(torch.tensor([20, 11, 12, 13]), score_rows(T)).kinds == []


def test_the_rules_apply_in_order_relaxed_before_shift():
    # t_0 = d_1 with d_1 = t_1: both a relaxed and a shifted acceptance apply to d_0; rule 3 comes first.
    predictions = [10, 10, 12, 13, 14]
    assert verdict([20, 10, 12, 13], predictions, [True, False, False, False], rule(window=1)).kinds[0] == RELAXED
    # Not relaxed at position 0 but a shift.
    assert verdict([20, 10, 12, 13], predictions, [False, True, True, True], rule(window=1)).kinds[0] == SHIFTED


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 6),
    data=st.data(),
    kind=st.sampled_from(["any", "target_topk"]),
    top_k=st.integers(1, 4),
    window=st.integers(0, 3),
)
def test_loose_block_against_a_reference_implementation(n, data, kind, top_k, window):
    """Random small blocks against a direct transcription of the module docstring's rules 1-5."""
    vocab = 6
    scores = torch.tensor(data.draw(st.lists(st.lists(st.floats(-5, 5) | st.just(-math.inf), min_size=vocab,
                                                      max_size=vocab), min_size=n + 1, max_size=n + 1)))
    scores[:, 0] = torch.where(torch.isinf(scores[:, 0]), torch.zeros(n + 1), scores[:, 0])  # a finite token per row
    drafted = data.draw(st.lists(st.integers(0, vocab - 1), min_size=n, max_size=n))
    relaxed = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    protected = frozenset(data.draw(st.sets(st.integers(0, vocab - 1), max_size=2)))
    the_rule = LooseRule(1.0, kind, top_k, window, protected)

    t = [int(scores[i].argmax()) for i in range(n + 1)]
    kinds = []
    for i in range(n):
        d = drafted[i]
        if d == t[i]:
            kinds.append(EXACT)
            continue
        if d in protected or t[i] in protected or scores[i, d] == -math.inf:
            break
        ranks = sorted(range(vocab), key=lambda v: -float(scores[i, v]))  # ties: torch.topk may order differently
        top = {v for v in range(vocab) if float(scores[i, v]) >= float(scores[i, ranks[min(top_k, vocab) - 1]])}
        if relaxed[i] and (kind == "any" or d in top):
            if kind == "target_topk" and sum(float(scores[i, v]) == float(scores[i, d]) for v in range(vocab)) > 1:
                return  # a tie at the boundary: either answer is right
            kinds.append(RELAXED)
            continue
        later_drafts = [drafted[j] for j in range(i + 1, min(n, i + 1 + window))]
        following = min(window, n - 1 - i)
        if window and t[i] in later_drafts and following >= 1 and all(drafted[i + k] == t[i + k]
                                                               for k in range(1, following + 1)):
            kinds.append(SHIFTED)
            continue
        break
    result = loose_block(torch.tensor(drafted), scores, torch.tensor(relaxed), the_rule)
    assert result.kinds == kinds
    assert result.bonus == t[len(kinds)]


# -- relaxed_positions and visual_relevance ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "relevance, ratio, expected",
    [
        ([0.5, 0.1, 0.1, 0.9, 0.1], 0.4, [1, 2]),  # ties: the earlier first
        ([0.5, 0.1, 0.1, 0.9, 0.1], 0.6, [1, 2, 4]),  # 0.6 * 5 -> 3
        ([0.5, 0.1, 0.1, 0.9, 0.1], 0.8, [0, 1, 2, 4]),
        ([0.5, 0.1, 0.1, 0.9, 0.1], 0.19, []),  # floor(0.95) = 0
        ([0.5, 0.1, 0.1, 0.9, 0.1], 0.0, []),
        ([0.5, 0.1, 0.1, 0.9, 0.1], 1.0, [0, 1, 2, 3, 4]),
        ([0.3, 0.2, 0.1, 0.0], 0.7, [2, 3]),  # floor(2.8) = 2, the lowest two
        ([-1.0, 2.0, -3.0], 0.34, [2]),
        ([0.2, 0.2, 0.2], 0.67, [0, 1]),  # all tied: the earliest
        ([], 0.7, []),
    ],
)
def test_relaxed_positions(relevance, ratio, expected):
    mask = relaxed_positions(torch.tensor(relevance, dtype=torch.float32), ratio)
    assert mask.dtype == torch.bool and mask.shape == (len(relevance),)
    assert mask.nonzero().flatten().tolist() == expected


def test_relaxed_positions_floor_survives_floating_point():
    """0.58 * 50 is 28.999999999999996 in floating point; the documented count is floor(29) = 29."""
    relevance = torch.arange(50, dtype=torch.float32).flip(0)  # the last positions are the least relevant
    mask = relaxed_positions(relevance, 0.58)
    assert int(mask.sum()) == 29 and mask[-29:].all()


@settings(max_examples=100, deadline=None)
@given(relevance=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(-1, 1), min_size=1, max_size=12),
       tenths=st.integers(0, 10))
def test_relaxed_positions_property(relevance, tenths):
    from fractions import Fraction

    ratio = tenths / 10
    mask = relaxed_positions(torch.tensor(relevance, dtype=torch.float32), ratio)
    count = math.floor(Fraction(tenths, 10) * len(relevance))  # the decimal ratio's exact floor
    values = torch.tensor(relevance, dtype=torch.float32).tolist()
    expected = sorted(sorted(range(len(values)), key=lambda i: (values[i], i))[:count])
    assert mask.nonzero().flatten().tolist() == expected


def brute_relevance(drafted: torch.Tensor, video: torch.Tensor, top_n: int) -> torch.Tensor:
    out = []
    for row in drafted.double():
        cosines = sorted((float(row @ v / (row.norm() * v.norm())) for v in video.double()), reverse=True)
        top = cosines[: min(top_n, len(cosines))]
        out.append(sum(top) / len(top))
    return torch.tensor(out, dtype=torch.float32)


@pytest.mark.parametrize("top_n", [1, 3, 10, 50])
def test_visual_relevance_is_the_mean_of_the_top_n_cosines(top_n):
    generator = torch.Generator().manual_seed(top_n)
    drafted = torch.randn(5, 16, generator=generator) * 3
    video = torch.randn(12, 16, generator=generator) + 0.5
    got = visual_relevance(drafted, verification.normalised_rows(video), top_n)
    torch.testing.assert_close(got, brute_relevance(drafted, video, top_n), rtol=1e-5, atol=1e-5)
    assert got.shape == (5,)


def test_visual_relevance_without_video_tokens_is_zero():
    drafted = torch.randn(4, 8)
    got = visual_relevance(drafted, torch.empty(0, 8), 10)
    assert torch.equal(got, torch.zeros(4))
    assert visual_relevance(torch.empty(0, 8), verification.normalised_rows(torch.randn(3, 8)), 2).shape == (0,)


def test_loose_verification_takes_relevance_from_the_drafted_rows_and_the_video_positions():
    """The prefill's video rows (positions 1 and 3) point along e0; the other prompt rows along e3. In the
    verification forward (last accepted token + 2 drafted), the drafted row aligned with e0 is the anchor and the
    one along e3 is relaxed (relax_ratio 0.5 of n = 2 relaxes one)."""
    e = torch.eye(4)
    prompt = torch.stack([e[3], e[0], e[3], e[0] + 0.1 * e[1], e[3]])[None]
    strictish = LooseRule(relax_ratio=0.5, loose_rule="any", shift_window=0)

    def run(drafted_rows, drafted):
        loose = LooseVerification(strictish, relevance_top_n=2, visual_positions=torch.tensor([1, 3]))
        loose.observe_prefill(prompt)
        hidden = torch.stack([e[2], *drafted_rows])[None]
        return loose.verify(torch.tensor(drafted), score_rows([10, 11, 12]), hidden)

    # drafted 0 visual (anchor), drafted 1 not (relaxed)
    assert run([e[0], e[3]], [10, 20]).kinds == [EXACT, RELAXED]
    assert run([e[0], e[3]], [20, 11]).kinds == []
    # swapped hidden rows: now drafted 0 is relaxed and drafted 1 the anchor
    assert run([e[3], e[0]], [20, 11]).kinds == [RELAXED, EXACT]
    assert run([e[3], e[0]], [10, 20]).kinds == [EXACT]
    # No drafted tokens (the prefill round): the target's token.
    loose = LooseVerification(strictish, 2, torch.tensor([1, 3]))
    loose.observe_prefill(prompt)
    result = loose.verify(torch.tensor([], dtype=torch.long), score_rows([10]), prompt)
    assert result.kinds == [] and result.bonus == 10
    # Without visual positions nothing is relaxed: the same block that was relaxed above is now rejected.
    blind = LooseVerification(strictish, 2, torch.tensor([], dtype=torch.long))
    blind.observe_prefill(prompt)
    hidden = torch.stack([e[2], e[3], e[0]])[None]
    assert blind.verify(torch.tensor([20, 11]), score_rows([10, 11, 12]), hidden).kinds == []


def test_strict_verification_is_strict_block():
    strict = StrictVerification()
    strict.observe_prefill(None)
    result = strict.verify(torch.tensor([10, 11, 20, 13]), score_rows(T), None)
    assert result.kinds == [EXACT, EXACT] and result.bonus == 12
    assert not StrictVerification.needs_hidden_states and LooseVerification.needs_hidden_states


# -- word_token_ids and protected_token_ids ---------------------------------------------------------------------------


def test_word_token_ids_with_the_word_level_testbed_tokenizer():
    from specvlm_hf.testbed import vocab

    tokenizer = vocab.build_processor().tokenizer
    red = tokenizer.convert_tokens_to_ids("red")
    left = tokenizer.convert_tokens_to_ids("left")
    assert red != tokenizer.unk_token_id and left != tokenizer.unk_token_id
    # The tokenizer lowercases and drops whitespace: every variant is the same single token.
    assert word_token_ids(tokenizer, ["red"]) == [red]
    assert word_token_ids(tokenizer, [" Red ", "left"]) == sorted({red, left})
    # Words the vocabulary does not know give their unk token: skipped, not protected.
    assert word_token_ids(tokenizer, ["zyzzyva"]) == []
    assert word_token_ids(tokenizer, ["zyzzyva", "red"]) == [red]
    assert tokenizer.unk_token_id not in word_token_ids(tokenizer, ["not", "no", "never"])


def test_word_token_ids_with_the_qwen_bpe_tokenizer(qwen_processor):
    tokenizer = qwen_processor.tokenizer
    ids = word_token_ids(tokenizer, ["not", "no"])
    for variant in (" not", " no"):  # single tokens in running text ("Ġnot", "Ġno")
        encoded = tokenizer.encode(variant, add_special_tokens=False)
        assert len(encoded) == 1 and encoded[0] in ids, variant
    # Every non-whitespace piece of every variant: in this small test vocabulary "Not" splits into letters.
    expected = {token for w in ("not", "no") for v in (w, " " + w, w.capitalize(), " " + w.capitalize())
                for token in tokenizer.encode(v, add_special_tokens=False) if tokenizer.decode([token]).strip()}
    assert ids == sorted(expected)
    assert all(isinstance(i, int) for i in ids)
    assert word_token_ids(tokenizer, []) == []


def test_word_token_ids_protects_every_piece_of_a_split_word(qwen_processor):
    """A negation split into pieces (" never" = "Ġne" + "v" "e" "r", " isn't" = ...) is protected whole, so that no
    piece of it can be relaxed away."""
    tokenizer = qwen_processor.tokenizer
    for word in ("never", "isn't"):
        ids = set(word_token_ids(tokenizer, [word]))
        pieces = tokenizer.encode(" " + word, add_special_tokens=False)
        assert len(pieces) > 1, word
        assert {p for p in pieces if tokenizer.decode([p]).strip()} <= ids, (word, tokenizer.convert_ids_to_tokens(pieces))


def test_word_token_ids_never_protects_a_bare_word_boundary_token(qwen_processor):
    tokenizer = qwen_processor.tokenizer
    ids = word_token_ids(tokenizer, ["not"])
    space = tokenizer.encode(" ", add_special_tokens=False)
    assert space and space[0] not in ids, tokenizer.convert_ids_to_tokens(ids)


@pytest.mark.parametrize("bad", ["", "   ", None, 3, b"not"])
def test_word_token_ids_rejects_bad_words(qwen_processor, bad):
    with pytest.raises(ValueError, match="word_token_ids needs non-empty strings"):
        word_token_ids(qwen_processor.tokenizer, ["not", bad])


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "llava_onevision", "llava_next_video"])
def test_protected_token_ids(model_type):
    target, _, processor = family(model_type)
    spec_ = FAMILIES[model_type]
    generation_config = GenerationConfig(eos_token_id=[5, 7], pad_token_id=3)
    ids = protected_token_ids(target, generation_config)
    assert {5, 7, 3} <= ids
    assert spec_.video_token_id(target.config) in ids and spec_.image_token_id(target.config) in ids
    text = target.config.get_text_config()
    assert {i for i in (text.eos_token_id, text.bos_token_id) if i is not None} <= ids
    if model_type.startswith("qwen"):
        assert {target.config.vision_start_token_id, target.config.vision_end_token_id} <= ids
    # The eos tensor generate() prepares counts too.
    generation_config._eos_token_tensor = torch.tensor([9, 11])
    assert {9, 11} <= protected_token_ids(target, generation_config)
    # The tokenizer's special tokens only when it is given.
    tokenizer = processor.tokenizer
    with_tokenizer = protected_token_ids(target, GenerationConfig(), tokenizer)
    assert set(tokenizer.all_special_ids) <= with_tokenizer
    assert all(isinstance(i, int) and i >= 0 for i in with_tokenizer)
    # Ordinary words are never protected.
    word = tokenizer.encode(" red", add_special_tokens=False)[0]
    assert word not in with_tokenizer


def test_protected_token_ids_reads_both_tokenizer_sources():
    """``all_special_ids`` and the special entries of ``added_tokens_decoder`` (not the ordinary added tokens)."""
    from types import SimpleNamespace

    target, _, _ = family("qwen2_5_vl")
    base = protected_token_ids(target, GenerationConfig())
    assert not {21, 22, 23, 24} & base
    tokenizer = SimpleNamespace(all_special_ids=[21, 22], added_tokens_decoder={
        23: SimpleNamespace(special=True), 24: SimpleNamespace(special=False)})
    assert protected_token_ids(target, GenerationConfig(), tokenizer) == base | {21, 22, 23}


def test_protected_token_ids_ignores_unset_and_negative_ids():
    target, _, _ = family("qwen2_5_vl")
    base = protected_token_ids(target, GenerationConfig())
    odd = GenerationConfig()
    odd.pad_token_id = -1
    odd.bos_token_id = None
    assert protected_token_ids(target, odd) == base
    assert all(i >= 0 for i in base)


# =====================================================================================================================
# Models: set-up, the loop spy and the call helper
# =====================================================================================================================


@functools.cache
def family(model_type: str):
    target, draft = tiny.build_tiny_pair(model_type, seed=0)
    return target, draft, tiny.build_processor(model_type)


@functools.cache
def _inputs(model_type: str, frames: int, size: int, seed: int, question_first: bool, question: str):
    _, _, processor = family(model_type)
    video = tiny.make_video(num_frames=frames, height=size, width=size, seed=seed)
    return tiny.make_inputs(processor, video=video, question_first=question_first, question=question)


def inputs_for(model_type: str, *, frames: int = 4, size: int = 56, seed: int = 0, question_first: bool = False,
               question: str = "Describe the video."):
    return dict(_inputs(model_type, frames, size, seed, question_first, question))


@functools.cache
def perturbed_copy(model_type: str, scale: float) -> torch.nn.Module:
    """The target with deterministic noise on its language model: a self-draft that mostly, not always, agrees."""
    target, _, _ = family(model_type)
    noisy = copy.deepcopy(target)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in noisy.named_parameters():
            if "lm_head" in name or "language_model.layers" in name:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * scale * parameter.std())
    return noisy


def prompt_length(inputs) -> int:
    return inputs["input_ids"].shape[1]


LOOP: list = []  # the verification object of every owned-loop run, in call order


@pytest.fixture(autouse=True)
def _spy_on_the_owned_loop(monkeypatch):
    original = decoding.assisted_decoding

    def spy(*args, **kwargs):
        LOOP.append(kwargs.get("verification"))
        return original(*args, **kwargs)

    monkeypatch.setattr(decoding, "assisted_decoding", spy)


def strict_config(keep: float = 0.25, gamma: int = 3, **kwargs) -> PruneConfig:
    return PruneConfig(keep_ratio=keep, num_draft_tokens=gamma, **kwargs)


def loose_zero(keep: float = 0.25, gamma: int = 3, **kwargs) -> PruneConfig:
    return PruneConfig(keep_ratio=keep, num_draft_tokens=gamma, verify="loose", relax_ratio=0.0, shift_window=0,
                       **kwargs)


def loose(keep: float = 0.25, gamma: int = 3, **kwargs) -> PruneConfig:
    kwargs = {"relax_ratio": 1.0, "shift_window": 0, **kwargs}
    return PruneConfig(keep_ratio=keep, num_draft_tokens=gamma, verify="loose", **kwargs)


@functools.cache
def tokenizer_for(model_type: str):
    return tiny.build_processor(model_type).tokenizer


def with_tokenizer(target, config, options: dict) -> dict:
    """Loose calls need ``tokenizer=`` (its special tokens are protected); tests that check the error pass None."""
    if isinstance(config, PruneConfig) and config.is_loose and "tokenizer" not in options:
        return {**options, "tokenizer": tokenizer_for(target.config.model_type)}
    return options


def spec(target, draft, inputs, config: PruneConfig, *, owned_strict: bool = False, **options):
    """The call with pruning; asserts which loop and rule ran and that no generation_config changed."""
    options = with_tokenizer(target, config, options)
    configs = target.generation_config.to_dict(), draft.generation_config.to_dict()
    before = len(LOOP)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(integration, "OWNED_LOOP_FOR_STRICT", owned_strict)
        out = target.generate(**inputs, **options, assistant_model=draft, video_pruning=config)
    ran = LOOP[before:]
    passed = getattr(options.get("generation_config"), "do_sample", None)
    sampled = options.get("do_sample", passed if passed is not None else target.generation_config.do_sample)
    if config.is_loose or owned_strict or sampled:
        assert len(ran) == 1, "the owned loop must run exactly once"
        rule = LooseVerification if config.is_loose else SpeculativeSampling if sampled else StrictVerification
        assert type(ran[0]) is rule
    else:
        assert not ran, "greedy strict calls run the stock loop unless OWNED_LOOP_FOR_STRICT"
    assert (target.generation_config.to_dict(), draft.generation_config.to_dict()) == configs
    return out


def assert_same_tokens(out: torch.Tensor, ref: torch.Tensor, what: str = "") -> None:
    assert out.shape == ref.shape, f"{what}: length differs: {tuple(out.shape)} vs {tuple(ref.shape)}"
    if not torch.equal(out, ref):
        first = int((out != ref).nonzero()[0, 1])
        raise AssertionError(f"{what}: first mismatch at {first}: {out[0, first:first + 5].tolist()} vs "
                             f"{ref[0, first:first + 5].tolist()}")


def loop_counters(stats) -> tuple:
    return stats.new_tokens, stats.rounds, stats.drafted, stats.accepted, tuple(stats.accept_histogram)


# =====================================================================================================================
# 2./3. Strict through the owned loop and loose with nothing relaxed equal plain generate
# =====================================================================================================================


@pytest.mark.parametrize("model_type", FAMILY_NAMES)
def test_owned_strict_and_loose_zero_equal_plain_generate(model_type):
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    ref = target.generate(**inputs, max_new_tokens=16)
    for assistant, keep, gamma, name in ((draft, 0.25, 3, "draft"), (target, 1.0, 4, "self")):
        stock = spec(target, assistant, inputs, strict_config(keep, gamma), max_new_tokens=16)
        assert_same_tokens(stock, ref, f"stock {name}")
        stock_stats = loop_counters(last_stats(target))
        owned = spec(target, assistant, inputs, strict_config(keep, gamma), owned_strict=True, max_new_tokens=16)
        assert_same_tokens(owned, ref, f"owned strict {name}")
        # Same candidate generator, same rule: the same rounds and acceptances as the stock loop.
        assert loop_counters(last_stats(target)) == stock_stats, name
        zero = spec(target, assistant, inputs, loose_zero(keep, gamma), max_new_tokens=16)
        assert_same_tokens(zero, ref, f"loose relax 0 {name}")
        stats = last_stats(target)
        assert loop_counters(stats) == stock_stats, name
        assert stats.relaxed_accepted == stats.shift_accepted == 0
        if assistant is target:  # multi-token acceptance paths are exercised
            assert stats.acceptance_rate >= 0.99 and max(i for i, n in enumerate(stats.accept_histogram) if n) >= 3
        else:
            assert stats.rounds > 0


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(["owned_strict", "loose_zero", "loose_top1", "loose_protect_all"]),
    self_spec=st.booleans(),
    keep_ratio=st.sampled_from([1.0, 0.5, 0.1]) | st.floats(0.01, 1.0),
    gamma=st.integers(1, 8),
    max_new_tokens=st.integers(1, 24),
    question_first=st.booleans(),
    question=st.sampled_from(["Describe the video.", "What moves, and where?", "Is the red square not moving?"]),
    frames=st.sampled_from([2, 4]),
    seed=st.integers(0, 3),
    eos_at=st.none() | st.integers(0, 10),
)
def test_owned_loop_lossless_fuzz(mode, self_spec, keep_ratio, gamma, max_new_tokens, question_first, question, frames,
                                  seed, eos_at):
    """Qwen2.5-VL: the owned loop with a rule that can accept nothing but the target's own tokens equals plain
    generate and the stock loop. ``loose_top1``: relaxing everything, but only to the target's top-1 (= its argmax);
    ``loose_protect_all``: relaxing and shifting everything, but every token is protected."""
    model_type = "qwen2_5_vl"
    target, draft, _ = family(model_type)
    assistant = target if self_spec else draft
    inputs = inputs_for(model_type, frames=frames, seed=seed, question_first=question_first, question=question)
    options = {"max_new_tokens": max_new_tokens}
    if eos_at is not None:
        plain = target.generate(**inputs, **options)
        if eos_at < plain.shape[1] - prompt_length(inputs):
            options["eos_token_id"] = int(plain[0, prompt_length(inputs) + eos_at])
    ref = target.generate(**inputs, **options)
    common = {"keep_ratio": keep_ratio, "num_draft_tokens": gamma, "seed": seed}
    config = {
        "owned_strict": PruneConfig(**common),
        "loose_zero": PruneConfig(**common, verify="loose", relax_ratio=0.0, shift_window=0),
        "loose_top1": PruneConfig(**common, verify="loose", relax_ratio=1.0, loose_rule="target_topk", loose_top_k=1,
                                  shift_window=0),
        "loose_protect_all": PruneConfig(**common, verify="loose", relax_ratio=1.0, shift_window=3,
                                         protect_tokens=ALL_TARGET_TOKENS),
    }[mode]
    stock = spec(target, assistant, inputs, PruneConfig(**common), **options)
    assert_same_tokens(stock, ref, "stock")
    stock_stats = loop_counters(last_stats(target))
    out = spec(target, assistant, inputs, config, owned_strict=mode == "owned_strict", **options)
    assert_same_tokens(out, ref, mode)
    stats = last_stats(target)
    assert loop_counters(stats) == stock_stats
    assert stats.relaxed_accepted == stats.shift_accepted == 0


ALL_TARGET_TOKENS = range(152064)  # every id of the Qwen2.5-VL target's vocabulary


# =====================================================================================================================
# 3. The generate options, in the owned loop
# =====================================================================================================================


def plain_tokens(model_type: str, inputs, n: int = 20) -> list[int]:
    target, _, _ = family(model_type)
    return target.generate(**inputs, max_new_tokens=n)[0, prompt_length(inputs):].tolist()


def first_new_token_at(tokens: list[int], step: int) -> int:
    firsts = [k for k in range(len(tokens)) if tokens[k] not in tokens[:k]]
    later = [k for k in firsts if k >= step]
    return later[0] if later else firsts[-1]


OPTION_CASES = ["streamer", "stop_after_7", "stop_on_token", "eos", "max_new_tokens_1", "max_new_tokens_2",
                "max_length", "min_new_tokens", "suppress_tokens", "bad_words_ids", "repetition_penalty",
                "custom_processor"]


def case_options(case: str, inputs, tokens: list[int]) -> dict:
    k = first_new_token_at(tokens, 5)
    frequent = max(set(tokens), key=tokens.count)
    if case == "streamer":
        return {"max_new_tokens": 14}
    if case == "stop_after_7":
        return {"max_new_tokens": 20, "stopping_criteria": StoppingCriteriaList([StopAfter(prompt_length(inputs), 7)])}
    if case == "stop_on_token":
        return {"max_new_tokens": 20, "stopping_criteria": StoppingCriteriaList([StopOnToken(tokens[k])])}
    if case == "eos":
        return {"max_new_tokens": 20, "eos_token_id": tokens[k]}
    if case.startswith("max_new_tokens"):
        return {"max_new_tokens": int(case[-1])}
    if case == "max_length":
        return {"max_length": prompt_length(inputs) + 7}
    if case == "min_new_tokens":
        early = first_new_token_at(tokens, 2)
        return {"max_new_tokens": 20, "eos_token_id": tokens[early], "min_new_tokens": early + 4}
    if case == "suppress_tokens":
        return {"max_new_tokens": 16, "suppress_tokens": [frequent, tokens[0]]}
    if case == "bad_words_ids":
        return {"max_new_tokens": 16, "bad_words_ids": [[tokens[2]], [tokens[0], tokens[1]]]}
    if case == "repetition_penalty":
        return {"max_new_tokens": 16, "repetition_penalty": 3.0}
    if case == "custom_processor":
        return {"max_new_tokens": 16, "logits_processor": LogitsProcessorList([BanArgmaxAtEvenLengths()])}
    raise AssertionError(case)


EXPECTED_LENGTH = {"stop_after_7": 7, "max_new_tokens_1": 1, "max_new_tokens_2": 2, "max_length": 7}


@pytest.mark.parametrize("case", OPTION_CASES)
def test_owned_loop_honours_generate_options(case):
    """Owned strict and loose-relax-0, with a self-draft at keep 1.0 (whole blocks accepted, so a stop inside a block
    is exercised) and with the real draft: each equals plain generate with the same option."""
    model_type = FAMILY_NAMES[OPTION_CASES.index(case) % len(FAMILY_NAMES)]
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    tokens = plain_tokens(model_type, inputs)
    options = case_options(case, inputs, tokens)
    ref = target.generate(**inputs, **options)
    new = ref[0, prompt_length(inputs):].tolist()
    if case in EXPECTED_LENGTH:
        assert len(new) == EXPECTED_LENGTH[case], "the test must force the length it checks"
    if case in ("stop_on_token", "eos", "min_new_tokens"):
        assert len(new) < 20 and new[-1] == options.get("eos_token_id", tokens[first_new_token_at(tokens, 5)])
    if case in ("suppress_tokens", "bad_words_ids", "repetition_penalty", "custom_processor"):
        assert new != tokens[:len(new)], "the option must change the output (test power)"
    runs = [(target, loose_zero(1.0, 6), False), (target, strict_config(1.0, 6), True),
            (draft, loose_zero(0.25, 3), False), (draft, strict_config(0.25, 3), True)]
    for assistant, config, owned in runs:
        what = f"{'self' if assistant is target else 'draft'} {config.verify} owned={owned}"
        streamer = RecordingStreamer() if case == "streamer" else None
        out = spec(target, assistant, inputs, config, owned_strict=owned, streamer=streamer, **options)
        assert_same_tokens(out, ref, what)
        stats = last_stats(target)
        assert stats.new_tokens == len(new)
        assert stats.relaxed_accepted == stats.shift_accepted == 0
        if streamer is not None:
            assert streamer.ends == 1 and not streamer.put_after_end
            assert torch.equal(streamer.puts[0].reshape(-1), inputs["input_ids"][0])
            assert streamer.new_tokens() == new, what
        if assistant is target and stats.drafted:
            assert stats.acceptance_rate >= 0.99, what


def test_owned_loop_never_commits_past_eos_even_if_the_draft_proposes_it(monkeypatch):
    """Our draft stops before a stop token; a candidate generator that drafts through eos (here: ours with that check
    disabled) must still give the plain output, as the stock loop does (it crops accepted blocks at eos)."""
    from specvlm_hf.candidate import PrunedVideoCandidateGenerator

    model_type = "qwen2_5_vl"
    target, _, _ = family(model_type)
    inputs = inputs_for(model_type)
    tokens = plain_tokens(model_type, inputs)
    options = {"max_new_tokens": 20, "eos_token_id": tokens[first_new_token_at(tokens, 5)]}
    ref = target.generate(**inputs, **options)
    assert ref.shape[1] - prompt_length(inputs) < 20
    drafted_eos = []
    original = PrunedVideoCandidateGenerator._draft

    def draft_through_stops(self, input_ids, budget):
        candidates, logits = original(self, input_ids, budget)
        drafted_eos.append(options["eos_token_id"] in candidates[0, input_ids.shape[1]:].tolist())
        return candidates, logits

    monkeypatch.setattr(PrunedVideoCandidateGenerator, "_would_stop", lambda self, sequence: False)
    monkeypatch.setattr(PrunedVideoCandidateGenerator, "_draft", draft_through_stops)
    for config, owned in ((strict_config(1.0, 6), False), (strict_config(1.0, 6), True), (loose_zero(1.0, 6), False),
                          (loose(1.0, 6), False)):
        drafted_eos.clear()
        out = spec(target, target, inputs, config, owned_strict=owned, **options)
        assert any(drafted_eos), "the draft must propose eos inside a block (test power)"
        assert_same_tokens(out, ref, f"{config.verify} owned={owned}")


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "llava_onevision", "qwen3_vl"])
def test_owned_loop_return_dict_outputs(model_type):
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    options = dict(max_new_tokens=9, return_dict_in_generate=True, output_scores=True, output_logits=True,
                   output_hidden_states=True, repetition_penalty=1.5)
    ref = target.generate(**inputs, **options)
    for assistant, config, owned in ((target, strict_config(1.0, 3), True), (target, loose_zero(1.0, 3), False),
                                     (draft, loose_zero(0.25, 3), False)):
        out = spec(target, assistant, inputs, config, owned_strict=owned, **options)
        assert_same_tokens(out.sequences, ref.sequences)
        assert_same_step_outputs(out, ref, 9)
        assert len(out.hidden_states) == len(ref.hidden_states) == 9
        for step, (a_layers, b_layers) in enumerate(zip(out.hidden_states, ref.hidden_states)):
            assert len(a_layers) == len(b_layers), step
            for a, b in zip(a_layers, b_layers):
                assert a.shape == b.shape, (step, a.shape, b.shape)
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        assert out.past_key_values is not None
        assert out.past_key_values.get_seq_length() == ref.past_key_values.get_seq_length()


# =====================================================================================================================
# 3. Loose with relaxation on: the hard constraints hold
# =====================================================================================================================


def committed(out, inputs) -> tuple[list[int], list[int], list[bool]]:
    """Per generated token: the token, the target's argmax of its processed scores there, and whether the token's
    processed score is finite."""
    tokens = out.sequences[0, prompt_length(inputs):].tolist()
    argmax = [int(out.scores[s][0].argmax()) for s in range(len(tokens))]
    finite = [bool(torch.isfinite(out.scores[s][0, t])) for s, t in enumerate(tokens)]
    return tokens, argmax, finite


@pytest.mark.parametrize("model_type", FAMILY_NAMES)
def test_loose_relaxed_counts_every_committed_mismatch(model_type):
    """relax_ratio 1, rule any, no shifts: every committed token that is not the target's argmax was relaxed, and
    stats.relaxed_accepted counts exactly those."""
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    streamer = RecordingStreamer()
    out = spec(target, draft, inputs, loose(), max_new_tokens=16, return_dict_in_generate=True, output_scores=True,
               streamer=streamer)
    tokens, argmax, finite = committed(out, inputs)
    stats = last_stats(target)
    assert len(tokens) == 16 and all(finite)
    assert streamer.new_tokens() == tokens and streamer.ends == 1 and not streamer.put_after_end
    assert stats.relaxed_accepted == sum(t != a for t, a in zip(tokens, argmax)) > 0
    assert stats.shift_accepted == 0
    assert stats.relaxed_accepted <= stats.accepted
    assert stats.new_tokens == 1 + stats.rounds + stats.accepted


@settings(max_examples=max(4, EXAMPLES // 2), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    relax_ratio=st.sampled_from([0.0, 0.3, 0.5, 1.0]) | st.floats(0.0, 1.0),
    loose_rule=st.sampled_from(["any", "target_topk"]),
    loose_top_k=st.integers(1, 6),
    shift_window=st.integers(0, 2),
    gamma=st.integers(1, 7),
    keep_ratio=st.sampled_from([1.0, 0.3]),
    noisy=st.booleans(),
    seed=st.integers(0, 2),
    max_new_tokens=st.integers(1, 20),
)
def test_loose_invariants_fuzz(relax_ratio, loose_rule, loose_top_k, shift_window, gamma, keep_ratio, noisy, seed,
                               max_new_tokens):
    """Whatever the loose parameters: exact length, every committed token allowed by the processors, every committed
    mismatch counted as relaxed or shifted, no protected token in a mismatch, at most floor(relax_ratio * gamma)
    relaxed per round, and (without shifts) a target_topk mismatch always within the target's top k."""
    model_type = "qwen2_5_vl"
    target, draft, _ = family(model_type)
    assistant = perturbed_copy(model_type, 0.2) if noisy else draft
    inputs = inputs_for(model_type, seed=seed)
    config = loose(keep_ratio, gamma, relax_ratio=relax_ratio, loose_rule=loose_rule, loose_top_k=loose_top_k,
                   shift_window=shift_window, protect_tokens=[661, 671])
    out = spec(target, assistant, inputs, config, max_new_tokens=max_new_tokens, return_dict_in_generate=True,
               output_scores=True, repetition_penalty=1.2)
    tokens, argmax, finite = committed(out, inputs)
    stats = last_stats(target)
    assert len(tokens) == max_new_tokens and all(finite)
    mismatches = [s for s, (t, a) in enumerate(zip(tokens, argmax)) if t != a]
    assert stats.relaxed_accepted + stats.shift_accepted == len(mismatches)
    assert stats.relaxed_accepted <= math.floor(relax_ratio * gamma + 1e-9) * stats.rounds
    if shift_window == 0:
        assert stats.shift_accepted == 0
    protected = protected_token_ids(target, GenerationConfig(eos_token_id=[151645, 151643])) | {661, 671}
    for step in mismatches:
        assert tokens[step] not in protected and argmax[step] not in protected, step
        if loose_rule == "target_topk" and shift_window == 0:
            row = out.scores[step][0]
            assert int((row > row[tokens[step]]).sum()) < loose_top_k, f"step {step}: outside the top {loose_top_k}"


def test_loose_on_a_prompt_without_video_relaxes_nothing(qwen_processor):
    """No visual tokens: no drafted token can be told visual or not, so none is relaxed (relax_ratio 1.0 included);
    without shifts the output is the target's own."""
    target, draft, _ = family("qwen2_5_vl")
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe the video."}]}]
    inputs = qwen_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                                return_tensors="pt")
    ref = target.generate(**inputs, max_new_tokens=12)
    out = spec(target, draft, inputs, loose(gamma=4, relax_ratio=1.0), max_new_tokens=12)
    stats = last_stats(target)
    assert stats.video_tokens == 0 and stats.relaxed_accepted == 0
    assert LOOP[-1].visual_unit.shape[0] == 0
    assert stats.drafted > stats.accepted, "the tiny draft disagrees with the target: there was something to relax"
    assert_same_tokens(out, ref, "no visual tokens")


def test_loose_measures_relevance_against_image_tokens_too(qwen_processor):
    """An image-only prompt: the image placeholders are the visual anchors, so relaxation happens."""
    target, draft, _ = family("qwen2_5_vl")
    image = tiny.make_video(num_frames=1, height=56, width=56, seed=3)[0]
    inputs = tiny.make_inputs(qwen_processor, image=image, num_videos=0)
    image_id = FAMILIES["qwen2_5_vl"].image_token_id(target.config)
    spec(target, draft, inputs, loose(gamma=4, relax_ratio=1.0), max_new_tokens=12)
    assert LOOP[-1].visual_positions.tolist() == (inputs["input_ids"][0] == image_id).nonzero().flatten().tolist()
    assert LOOP[-1].visual_unit.shape[0] > 0
    assert last_stats(target).relaxed_accepted > 0


class Scripted(LogitsProcessor):
    """Scripts both models' greedy choices, so that a rule's decision in the owned loop is known in advance.

    The target continues `cycle` (the successor of the last generated token; `cycle[0]` first), with `runner_up(new)`
    (if given) its second choice; the draft does the same except where `draft_override(new)` returns a token. Draft
    calls are recognised by the -inf columns the candidate generator appends to the draft's logits (the Qwen2.5-VL
    draft's vocabulary is the smaller one). Scores are raised, never set to -inf, so every token stays allowed.
    """

    def __init__(self, prompt: int, cycle: list[int], draft_override=None, runner_up=None, skip_foreign=False):
        self.prompt, self.cycle = prompt, cycle
        self.draft_override, self.runner_up = draft_override, runner_up
        self.skip_foreign = skip_foreign  # continue from the last cycle word, ignoring inserted foreign words

    def successor(self, new: list[int]) -> int:
        if self.skip_foreign:
            new = [token for token in new if token in self.cycle]
        if not new or new[-1] not in self.cycle:
            return self.cycle[0]
        return self.cycle[(self.cycle.index(new[-1]) + 1) % len(self.cycle)]

    def __call__(self, input_ids, scores):
        new = input_ids[0, self.prompt:].tolist()
        scores = scores.clone()
        if bool(torch.isinf(scores[0, -1])):  # the draft
            override = self.draft_override(new) if self.draft_override else None
            scores[0, self.successor(new) if override is None else override] += 1e5
        else:
            scores[0, self.successor(new)] += 1e5
            if self.runner_up is not None:
                scores[0, self.runner_up(new)] += 5e4
        return scores


CYCLE = list(range(700, 720))


def scripted_call(config: PruneConfig, processor: Scripted, max_new_tokens: int = 10, owned_strict: bool = False):
    target, draft, _ = family("qwen2_5_vl")
    assert draft.config.get_text_config().vocab_size < target.config.get_text_config().vocab_size
    inputs = inputs_for("qwen2_5_vl")
    out = spec(target, draft, inputs, config, owned_strict=owned_strict, max_new_tokens=max_new_tokens,
               logits_processor=LogitsProcessorList([processor]))
    return out[0, prompt_length(inputs):].tolist(), last_stats(target)


def test_scripted_repeated_word_is_accepted_as_an_insertion():
    """Round 1 drafts [W1, W2, W2, W3] while the target predicts [W1, W2, W3, W3 | W4]: the scripted target ignores
    the repeat (after W2 W2 it still wants W3), so the second W2 is an inserted word followed by the target's W3, and
    shift_window=1 accepts it (and only it); strict and shift_window=0 reject it. Rule 4 does not judge whether an
    insertion reads well: a real target re-synchronising after a stutter is what lets it through."""
    prompt = prompt_length(inputs_for("qwen2_5_vl"))
    stutter = Scripted(prompt, CYCLE, draft_override=lambda new: new[-1] if len(new) == 3 else None)
    shifted, stats = scripted_call(loose(gamma=4, relax_ratio=0.0, shift_window=1), stutter)
    assert shifted == CYCLE[:3] + [CYCLE[2]] + CYCLE[3:9]
    assert (stats.shift_accepted, stats.relaxed_accepted) == (1, 0)
    assert stats.accept_histogram[4] >= 1  # the whole first block was accepted
    for config, owned in ((loose(gamma=4, relax_ratio=0.0, shift_window=0), False), (strict_config(gamma=4), False),
                          (strict_config(gamma=4), True)):
        tokens, stats = scripted_call(config, stutter, owned_strict=owned)
        assert tokens == CYCLE[:10], (config.verify, owned)
        assert stats.shift_accepted == stats.relaxed_accepted == 0
    # Relaxing the position accepts the stutter as relaxed instead (rule 3 before rule 4).
    relaxed, stats = scripted_call(loose(gamma=4, relax_ratio=1.0, shift_window=1), stutter)
    assert relaxed == shifted and (stats.shift_accepted, stats.relaxed_accepted) == (0, 1)


@pytest.mark.parametrize("rule_, top_k, accepted", [("any", 5, True), ("target_topk", 2, True),
                                                    ("target_topk", 1, False)])
def test_scripted_runner_up_under_the_loose_rules(rule_, top_k, accepted):
    """The draft proposes the target's second choice (R) at the third position: relaxed under ``any`` and
    ``target_topk`` with k >= 2, rejected with k = 1 (the target's own token is taken)."""
    runner = 900
    prompt = prompt_length(inputs_for("qwen2_5_vl"))
    script = Scripted(prompt, CYCLE, draft_override=lambda new: runner if len(new) == 2 else None,
                      runner_up=lambda new: runner)
    tokens, stats = scripted_call(loose(gamma=4, loose_rule=rule_, loose_top_k=top_k), script)
    if accepted:
        assert tokens == CYCLE[:2] + [runner] + CYCLE[:7]
        assert stats.relaxed_accepted == 1
    else:
        assert tokens == CYCLE[:10]
        assert stats.relaxed_accepted == 0
    # A protected runner-up is never relaxed.
    tokens, stats = scripted_call(loose(gamma=4, loose_rule=rule_, loose_top_k=top_k, protect_tokens=[runner]),
                                  script)
    assert tokens == CYCLE[:10] and stats.relaxed_accepted == 0


@pytest.mark.parametrize("max_new_tokens", [1, 2, 5, 13])
def test_loose_output_length_respects_max_new_tokens_and_max_length(max_new_tokens):
    model_type = "qwen2_vl"
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    for config in (loose(gamma=4), loose(gamma=8, shift_window=2, relax_ratio=0.8)):
        out = spec(target, draft, inputs, config, max_new_tokens=max_new_tokens)
        assert out.shape[1] - prompt_length(inputs) == max_new_tokens
        out = spec(target, draft, inputs, config, max_length=prompt_length(inputs) + max_new_tokens)
        assert out.shape[1] - prompt_length(inputs) == max_new_tokens
        # A criterion met inside an accepted block stops there (the draft never drafts past it).
        stop = StoppingCriteriaList([StopAfter(prompt_length(inputs), max_new_tokens)])
        out = spec(target, draft, inputs, config, max_new_tokens=20, stopping_criteria=stop)
        assert out.shape[1] - prompt_length(inputs) == max_new_tokens


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "llava_onevision"])
def test_loose_stops_at_the_first_stop_token(model_type):
    """A stopping criterion on a token: generation ends at its first occurrence, never past it (or runs to
    max_new_tokens). The criterion changes the blocks (the draft stops drafting before it), so the output may differ
    from the unconstrained call: several stop tokens are tried, and at least one must be reached."""
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    config = loose(gamma=6)
    base = spec(target, draft, inputs, config, max_new_tokens=20)[0, prompt_length(inputs):].tolist()
    reached = 0
    for stop_token in sorted({base[k] for k in range(2, len(base)) if base[k] not in base[:k]})[:4]:
        out = spec(target, draft, inputs, config, max_new_tokens=20,
                   stopping_criteria=StoppingCriteriaList([StopOnToken(stop_token)]))
        new = out[0, prompt_length(inputs):].tolist()
        if stop_token in new:
            assert new.index(stop_token) == len(new) - 1, (stop_token, new)
            reached += 1
        else:
            assert len(new) == 20
    assert reached, "a stop token must be reached (test power)"


@pytest.mark.parametrize("processors", ["suppress_tokens", "bad_words_ids"])
def test_loose_never_commits_forbidden_tokens(processors):
    """The tokens the unconstrained loose call commits (relaxed ones included) are forbidden: none appears, and every
    committed token has a finite processed score."""
    model_type = "llava_next_video"
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    base = spec(target, draft, inputs, loose(), max_new_tokens=16, return_dict_in_generate=True, output_scores=True)
    tokens, argmax, _ = committed(base, inputs)
    relaxed_tokens = [t for t, a in zip(tokens, argmax) if t != a]
    banned = sorted(set(relaxed_tokens[:2]) | {tokens[0]})
    options = {"suppress_tokens": banned} if processors == "suppress_tokens" else {"bad_words_ids": [[b] for b in banned]}
    out = spec(target, draft, inputs, loose(), max_new_tokens=16, return_dict_in_generate=True, output_scores=True,
               **options)
    new, _, finite = committed(out, inputs)
    assert len(new) == 16 and all(finite)
    assert not set(new) & set(banned), (new, banned)
    assert last_stats(target).relaxed_accepted > 0


def test_loose_rejects_a_relaxed_token_a_processor_forbids_for_the_target():
    """A custom processor that bans the argmax at even lengths bans a different token for the draft (its own argmax)
    than for the target: the draft then proposes the target's argmax, which is -inf in the target's row. The rule must
    reject it (rule 2), never commit it."""
    model_type = "qwen2_5_vl"
    target, _, _ = family(model_type)
    noisy = perturbed_copy(model_type, 0.2)
    inputs = inputs_for(model_type)
    seen = []
    original = verification.loose_block

    def spy(drafted, scores, relaxed, the_rule):
        result = original(drafted, scores, relaxed, the_rule)
        seen.extend((i, result.accepted) for i, d in enumerate(drafted.tolist()) if scores[i, d] == -math.inf)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(verification, "loose_block", spy)
        out = spec(target, noisy, inputs, loose(keep=1.0, gamma=5), max_new_tokens=20,
                   logits_processor=LogitsProcessorList([BanArgmaxAtEvenLengths()]),
                   return_dict_in_generate=True, output_scores=True)
    assert seen, "the test must produce a drafted token the target's processors forbid"
    assert all(accepted <= i for i, accepted in seen), "a forbidden drafted token was accepted"
    assert any(accepted == i for i, accepted in seen), "the test must reach a forbidden token (all before accepted)"
    _, _, finite = committed(out, inputs)
    assert all(finite)


def test_loose_never_relaxes_away_eos():
    """eos forced to a token the target predicts where, unconstrained, loose committed another token: with it as eos,
    generation stops there (the eos is never relaxed away) and nowhere earlier."""
    model_type = "qwen2_5_vl"
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    base = spec(target, draft, inputs, loose(), max_new_tokens=20, return_dict_in_generate=True, output_scores=True)
    tokens, argmax, _ = committed(base, inputs)
    candidates = [a for t, a in zip(tokens, argmax) if t != a and a not in tokens]
    assert candidates, "need a target prediction that loose relaxed away"
    eos = candidates[0]
    out = spec(target, draft, inputs, loose(), max_new_tokens=20, eos_token_id=eos, return_dict_in_generate=True,
               output_scores=True)
    new, argmax, finite = committed(out, inputs)
    assert all(finite)
    assert new[-1] == eos and eos not in new[:-1], new
    for step, (t, a) in enumerate(zip(new, argmax)):
        assert not (a == eos and t != eos), f"step {step}: the target's eos was relaxed away"


def test_loose_respects_protect_tokens_both_ways():
    """Protect a token the unconstrained loose call drafted over the target's choice, and a target choice that was
    relaxed away: neither is ever on either side of a mismatch, and the first such position now takes the target's
    token."""
    model_type = "qwen3_vl"
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    base = spec(target, draft, inputs, loose(), max_new_tokens=20, return_dict_in_generate=True, output_scores=True)
    tokens, argmax, _ = committed(base, inputs)
    mismatches = [(s, t, a) for s, (t, a) in enumerate(zip(tokens, argmax)) if t != a]
    assert len(mismatches) >= 2
    (first, drafted_side, _), (_, _, target_side) = mismatches[0], mismatches[1]
    protect = {drafted_side, target_side}
    out = spec(target, draft, inputs, loose(protect_tokens=sorted(protect)), max_new_tokens=20,
               return_dict_in_generate=True, output_scores=True)
    new, new_argmax, finite = committed(out, inputs)
    assert all(finite) and len(new) == 20
    for step, (t, a) in enumerate(zip(new, new_argmax)):
        if t != a:
            assert t not in protect and a not in protect, f"step {step}: protected token in a mismatch ({t} vs {a})"
    # Everything before the first mismatch is unchanged; there the target's token is now taken.
    assert new[:first] == tokens[:first]
    assert new[first] == argmax[first] != tokens[first]


def test_loose_tokenizer_special_tokens_and_rule_reach_the_loop():
    """What the owned loop receives: the config's rule, eos/video/the tokenizer's special tokens and protect_tokens
    protected, and the prompt's visual positions (here the video placeholders)."""
    model_type = "qwen2_5_vl"
    target, draft, processor = family(model_type)
    inputs = inputs_for(model_type)
    config = loose(relax_ratio=0.4, loose_rule="target_topk", loose_top_k=3, shift_window=2, relevance_top_n=4,
                   protect_tokens=[612, 613])
    tokenizer = processor.tokenizer
    spec(target, draft, inputs, config, max_new_tokens=4, eos_token_id=[151645, 700], tokenizer=tokenizer)
    loop_rule = LOOP[-1]
    the_rule = loop_rule.rule
    assert (the_rule.relax_ratio, the_rule.loose_rule, the_rule.loose_top_k, the_rule.shift_window) == (
        0.4, "target_topk", 3, 2)
    assert loop_rule.relevance_top_n == 4
    video_id = FAMILIES[model_type].video_token_id(target.config)
    assert loop_rule.visual_positions.tolist() == (inputs["input_ids"][0] == video_id).nonzero().flatten().tolist()
    assert {612, 613, 151645, 700, video_id} <= the_rule.protected
    assert set(tokenizer.all_special_ids) <= the_rule.protected  # e.g. <|im_start|>: only the tokenizer knows it
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in the_rule.protected


def test_loose_accepts_a_processor_as_tokenizer():
    """``tokenizer=processor`` (a processor has no all_special_ids of its own) protects exactly what
    ``tokenizer=processor.tokenizer`` does: <|im_start|>, <|vision_start|>, the box/object-ref tokens, ..."""
    model_type = "qwen2_5_vl"
    target, draft, processor = family(model_type)
    inputs = inputs_for(model_type)
    protected = []
    for tokenizer in (processor.tokenizer, processor):
        spec(target, draft, inputs, loose(), max_new_tokens=4, tokenizer=tokenizer)
        protected.append(LOOP[-1].rule.protected)
    assert protected[1] == protected[0]
    only_the_tokenizer_knows = set(processor.tokenizer.all_special_ids) - protected_token_ids(target, GenerationConfig())
    assert processor.tokenizer.convert_tokens_to_ids("<|im_start|>") in only_the_tokenizer_knows <= protected[1]


def test_loose_rejects_a_tokenizer_that_knows_no_special_tokens():
    target, draft, _ = family("qwen2_5_vl")
    expect_rejected(target, draft, inputs_for("qwen2_5_vl"), r"object has no `all_special_ids`.*processor\.tokenizer",
                    video_pruning=LOOSE, do_sample=False, max_new_tokens=4, tokenizer=object())


def test_loose_needs_the_tokenizer():
    target, draft, _ = family("qwen2_5_vl")
    expect_rejected(target, draft, inputs_for("qwen2_5_vl"), r"needs `tokenizer=`.*tokenizer=processor\.tokenizer",
                    video_pruning=LOOSE, do_sample=False, max_new_tokens=4, tokenizer=None)


def test_loose_decisions_do_not_depend_on_output_hidden_states():
    """The loose rule reads the target's last-layer hidden states; asking for all of them (output_hidden_states=True)
    must give the same relevance scores, hence the same output."""
    model_type = "qwen2_5_vl"
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type, seed=1)
    recorded: list[list[torch.Tensor]] = [[], []]
    original = verification.visual_relevance
    config = loose(gamma=4, relax_ratio=0.5, shift_window=1)
    outs = []
    for index, options in enumerate(({}, {"return_dict_in_generate": True, "output_hidden_states": True})):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(verification, "visual_relevance",
                          lambda *args, _i=index: recorded[_i].append(original(*args)) or recorded[_i][-1])
            out = spec(target, draft, inputs, config, max_new_tokens=16, **options)
        outs.append(out if isinstance(out, torch.Tensor) else out.sequences)
    assert_same_tokens(outs[1], outs[0])
    assert len(recorded[0]) == len(recorded[1]) > 0
    for a, b in zip(*recorded):
        torch.testing.assert_close(a, b)
    assert any(float(r.abs().max()) > 0 for r in recorded[0]), "relevance must be computed from real video rows"


def test_loose_leaves_both_models_unchanged():
    model_type = "llava_onevision"
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    target.generate(**inputs, max_new_tokens=2)
    draft.generate(**inputs, max_new_tokens=2)
    before_t, before_d = snapshot(target), snapshot(draft)
    weights = {k: v.clone() for k, v in draft.state_dict().items()}
    spec(target, draft, inputs, loose(shift_window=1), max_new_tokens=10)
    spec(target, target, inputs, loose(keep=0.5, relax_ratio=0.5), max_new_tokens=10, output_hidden_states=True,
         return_dict_in_generate=True)
    assert_same_snapshot(before_t, snapshot(target), skip=("rope_deltas",))
    assert_same_snapshot(before_d, snapshot(draft))
    assert all(torch.equal(weights[k], v) for k, v in draft.state_dict().items())


class RaiseOnCall(StoppingCriteria):
    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self, input_ids, scores, **kwargs):
        self.calls += 1
        if self.calls >= self.n:
            raise RuntimeError("criterion exploded")
        return torch.zeros(input_ids.shape[0], dtype=torch.bool)


class RaiseAfter(LogitsProcessor):
    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self, input_ids, scores):
        self.calls += 1
        if self.calls >= self.n:
            raise RuntimeError("processor exploded")
        return scores


@pytest.mark.parametrize("where", ["stopping_criterion", "logits_processor", "target_forward"])
@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "llava_next_video"])
def test_models_unchanged_after_an_exception_mid_decoding(model_type, where):
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    target.generate(**inputs, max_new_tokens=2)  # warm-up: transformers installs hooks lazily on a first forward
    draft.generate(**inputs, max_new_tokens=2)
    config = loose(gamma=3, shift_window=1)
    expected = spec(target, draft, inputs, config, max_new_tokens=12)
    before_t, before_d = snapshot(target), snapshot(draft)
    weights = {k: v.clone() for k, v in draft.state_dict().items()}
    options: dict = {"max_new_tokens": 12}
    handle = None
    if where == "stopping_criterion":
        options["stopping_criteria"] = StoppingCriteriaList([RaiseOnCall(6)])
    elif where == "logits_processor":
        options["logits_processor"] = LogitsProcessorList([RaiseAfter(9)])
    else:
        forwards = {"n": 0}

        def explode(module, args, kwargs):
            forwards["n"] += 1
            if forwards["n"] == 3:  # prefill, first verification, then a second verification
                raise RuntimeError("forward exploded")

        handle = target.register_forward_pre_hook(explode, with_kwargs=True)
    try:
        with pytest.raises(RuntimeError, match="exploded"):
            spec(target, draft, inputs, config, **options)
    finally:
        if handle is not None:
            handle.remove()
    assert integration._ACTIVE.get() is None
    assert_same_snapshot(before_t, snapshot(target), skip=("rope_deltas",))
    assert_same_snapshot(before_d, snapshot(draft), skip=("rope_deltas",))
    assert all(torch.equal(weights[k], v) for k, v in draft.state_dict().items())
    # Nothing leaked into the next call.
    assert_same_tokens(spec(target, draft, inputs, config, max_new_tokens=12), expected, "after the exception")


# =====================================================================================================================
# 5. Loose actually relaxes
# =====================================================================================================================


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "llava_onevision"])
def test_loose_accepts_more_than_strict_with_a_disagreeing_draft(model_type):
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    ref = target.generate(**inputs, max_new_tokens=16)
    strict = spec(target, draft, inputs, strict_config(gamma=4), max_new_tokens=16)
    assert_same_tokens(strict, ref)
    strict_stats = last_stats(target)
    out = spec(target, draft, inputs, loose(gamma=4), max_new_tokens=16)
    stats = last_stats(target)
    assert out.shape == ref.shape
    assert stats.relaxed_accepted > 0
    assert stats.mean_accepted_length > strict_stats.mean_accepted_length
    assert stats.acceptance_rate > strict_stats.acceptance_rate
    # Deterministic: the same call again gives the same tokens and counters.
    again = spec(target, draft, inputs, loose(gamma=4), max_new_tokens=16)
    assert_same_tokens(again, out)
    assert loop_counters(last_stats(target)) == loop_counters(stats)
    assert last_stats(target).relaxed_accepted == stats.relaxed_accepted


def test_loose_with_a_perturbed_self_draft_is_lossy_and_deterministic():
    """A self-draft with noise on its language model agrees with the target mostly: strict stays lossless, loose
    relaxes the disagreements, so its output differs from the target's (lossy by design), identically every time."""
    model_type = "qwen2_5_vl"
    target, _, _ = family(model_type)
    noisy = perturbed_copy(model_type, 0.2)
    differing = 0
    for seed in range(2):
        inputs = inputs_for(model_type, seed=seed)
        ref = target.generate(**inputs, max_new_tokens=24)
        strict = spec(target, noisy, inputs, strict_config(1.0, 4), max_new_tokens=24)
        assert_same_tokens(strict, ref)
        strict_tau = last_stats(target).mean_accepted_length
        config = loose(1.0, 4, relax_ratio=0.5, shift_window=1)
        out = spec(target, noisy, inputs, config, max_new_tokens=24)
        stats = last_stats(target)
        assert out.shape == ref.shape and torch.equal(out[:, :prompt_length(inputs)], inputs["input_ids"])
        assert stats.relaxed_accepted > 0 and stats.mean_accepted_length > strict_tau
        differing += not torch.equal(out, ref)
        assert_same_tokens(spec(target, noisy, inputs, config, max_new_tokens=24), out, "repeat")
    assert differing >= 1


def test_relax_ratio_bounds_the_relaxed_tokens_per_round():
    """relax_ratio 0 relaxes nothing; 0.5 of a 4-token block relaxes at most 2 per round; 1.0 relaxes."""
    model_type = "qwen2_vl"
    target, draft, _ = family(model_type)
    inputs = inputs_for(model_type)
    relaxed = {}
    for ratio in (0.0, 0.5, 1.0):
        spec(target, draft, inputs, loose(gamma=4, relax_ratio=ratio), max_new_tokens=16)
        stats = last_stats(target)
        relaxed[ratio] = stats.relaxed_accepted
        assert stats.relaxed_accepted <= math.floor(ratio * 4) * stats.rounds
    assert relaxed[0.0] == 0 and relaxed[0.5] > 0 and relaxed[1.0] > 0


# =====================================================================================================================
# 6. Bad input, before any decoding
# =====================================================================================================================


LOOSE = PruneConfig(verify="loose")


def expect_rejected(target, draft, inputs, match, **options):
    """The call raises ValueError matching `match`; no forward of either model ran; both are unchanged."""
    options = with_tokenizer(target, options.get("video_pruning"), options)
    before_t, before_d = snapshot(target), snapshot(draft)
    forwards = []
    handles = [model.register_forward_pre_hook(lambda *args: forwards.append(1)) for model in {target, draft}]
    try:
        with pytest.raises(ValueError, match=match):
            target.generate(**inputs, assistant_model=draft, **options)
    finally:
        for handle in handles:
            handle.remove()
    assert not forwards, f"{len(forwards)} forward(s) ran before the error"
    assert_same_snapshot(before_t, snapshot(target))
    assert_same_snapshot(before_d, snapshot(draft))


@pytest.mark.parametrize(
    "options, match",
    [
        ({"do_sample": True}, "verify='loose'.*greedy.*do_sample=False"),
        ({"do_sample": True, "temperature": 0.7}, "do_sample"),
        ({"generation_config": GenerationConfig(do_sample=True, max_new_tokens=4)}, "do_sample"),
        ({"assistant_ensemble_weight": 0.5}, "assistant_ensemble_weight"),
        ({"generation_config": GenerationConfig(assistant_ensemble_weight=0.5, max_new_tokens=4)},
         "assistant_ensemble_weight"),
        ({"video_pruning": {"verify": "loose", "relax_ratio": 1.5}}, "relax_ratio"),
        ({"video_pruning": {"verify": "lossy"}}, "verify"),
        ({"video_pruning": {"verify": "loose", "protect_tokens": "not"}}, "protect_tokens"),
    ],
)
def test_loose_bad_input_rejected_before_decoding(options, match):
    target, draft, _ = family("qwen2_5_vl")
    inputs = inputs_for("qwen2_5_vl")
    options = {"video_pruning": LOOSE, **options}
    if "generation_config" not in options:
        options["max_new_tokens"] = 4
    expect_rejected(target, draft, inputs, match, **options)


@functools.cache
def sampling_by_default():
    """A copy of the target whose own generation_config samples (as many released checkpoints do)."""
    model = copy.deepcopy(family("qwen2_5_vl")[0])
    model.generation_config.do_sample = True
    model.generation_config.temperature = 5.0
    return model


def test_loose_rejects_sampling_from_the_models_own_generation_config():
    target = sampling_by_default()
    inputs = inputs_for("qwen2_5_vl")
    expect_rejected(target, family("qwen2_5_vl")[1], inputs, "do_sample", video_pruning=LOOSE, max_new_tokens=4)
    expect_rejected(target, target, inputs, "do_sample", video_pruning=LOOSE, max_new_tokens=4)
    # An explicit do_sample=False overrides the model's default: accepted, greedy, deterministic.
    plain_greedy = family("qwen2_5_vl")[0]
    ref = spec(plain_greedy, plain_greedy, inputs, loose(1.0, 4), max_new_tokens=8)
    for override in ({"do_sample": False}, {"generation_config": GenerationConfig(do_sample=False, max_new_tokens=8)}):
        out = spec(target, target, inputs, loose(1.0, 4), **({"max_new_tokens": 8} | override
                                                             if "do_sample" in override else override))
        assert_same_tokens(out, ref, str(override))


@pytest.mark.parametrize("attribute, value", [("do_sample", True), ("assistant_ensemble_weight", 0.5)])
def test_loose_rejects_options_inherited_by_a_passed_generation_config(attribute, value):
    target = copy.deepcopy(family("qwen2_5_vl")[0])
    setattr(target.generation_config, attribute, value)
    expect_rejected(target, target, inputs_for("qwen2_5_vl"), attribute, video_pruning=LOOSE,
                    generation_config=GenerationConfig(max_new_tokens=4))


def test_strict_still_accepts_sampling_and_the_ensemble_weight():
    """The two loose-only rejections do not leak into strict calls."""
    target, draft, _ = family("qwen2_5_vl")
    inputs = inputs_for("qwen2_5_vl")
    torch.manual_seed(0)
    out = spec(target, draft, inputs, strict_config(), max_new_tokens=4, do_sample=True)
    assert out.shape[1] - prompt_length(inputs) == 4
    out = spec(target, draft, inputs, strict_config(), max_new_tokens=4, assistant_ensemble_weight=0.5)
    assert out.shape[1] - prompt_length(inputs) == 4
    # Sampled calls run the owned loop's speculative sampling, with the ensemble weight (DIVERSE) when it is set.
    out = spec(target, draft, inputs, strict_config(), max_new_tokens=4, do_sample=True, assistant_ensemble_weight=0.5)
    assert out.shape[1] - prompt_length(inputs) == 4 and LOOP[-1].ensemble_weight == 0.5


def test_loose_rejects_synced_gpus_before_decoding():
    target, draft, _ = family("qwen2_5_vl")
    expect_rejected(target, draft, inputs_for("qwen2_5_vl"), "synced_gpus", video_pruning=LOOSE, do_sample=False,
                    max_new_tokens=4, synced_gpus=True)


def test_owned_loop_refuses_a_rule_that_does_not_match_do_sample(monkeypatch):
    """integration picks the rule from do_sample; the loop itself guards callers that pass a mismatching one."""
    target, draft, _ = family("qwen2_5_vl")
    monkeypatch.setattr(integration._Call, "verification", lambda *args: StrictVerification())
    with pytest.raises(ValueError, match="StrictVerification is a greedy rule but the call has do_sample=True"):
        target.generate(**inputs_for("qwen2_5_vl"), assistant_model=draft, video_pruning=strict_config(),
                        do_sample=True, max_new_tokens=4)


@pytest.mark.parametrize("gamma, relax_ratio, shift_window, warns", [
    (4, 0.0, 0, True),  # nothing can be relaxed or shifted
    (1, 0.7, 1, True),  # floor(0.7) = 0 relaxed, and a one-token block cannot shift
    (2, 0.3, 0, True),  # floor(0.6) = 0
    (2, 0.3, 1, False),  # shifts possible
    (1, 1.0, 0, False),  # floor(1.0) = 1 relaxed
    (5, 0.7, 1, False),  # the defaults
])
def test_loose_warns_when_it_cannot_accept_any_mismatch(gamma, relax_ratio, shift_window, warns):
    import warnings

    target, draft, _ = family("qwen2_5_vl")
    config = loose(gamma=gamma, relax_ratio=relax_ratio, shift_window=shift_window)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec(target, draft, inputs_for("qwen2_5_vl"), config, max_new_tokens=2)
    ours = [w for w in caught if "can never accept a mismatch" in str(w.message)]
    assert bool(ours) == warns, [str(w.message) for w in caught]
    if warns:
        assert ours[0].filename == __file__, "the warning points at the caller's generate() line"


# =====================================================================================================================
# 7. What the rules see end to end
# =====================================================================================================================


def test_relax_ratio_bounds_every_block():
    """Per verification block (not just in total): at most floor(relax_ratio * n) relaxed positions of n drafted."""
    target, draft, _ = family("qwen2_vl")
    inputs = inputs_for("qwen2_vl")
    blocks = []
    original = verification.loose_block

    def spy(drafted, target_scores, relaxed, rule_):
        verdict_ = original(drafted, target_scores, relaxed, rule_)
        blocks.append((drafted.numel(), int(relaxed.sum()), verdict_.kinds.count(RELAXED)))
        return verdict_

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(verification, "loose_block", spy)
        for ratio in (0.3, 0.5, 0.75):
            blocks.clear()
            spec(target, draft, inputs, loose(gamma=4, relax_ratio=ratio), max_new_tokens=16)
            assert blocks and all(mask == math.floor(ratio * n + 1e-9) and used <= mask for n, mask, used in blocks), \
                (ratio, blocks)
            assert sum(used for _, _, used in blocks) == last_stats(target).relaxed_accepted


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "llava_onevision"])
def test_relevance_in_the_loop_equals_a_full_forward(model_type):
    """The relevance the loop scores (from the cached verification forward and the prefill's video rows) equals an
    independent uncached forward of the target over the same sequence: cosine of each drafted token's own
    last-layer state to the video tokens' states, mean of the top relevance_top_n. The relaxed positions follow."""
    target, draft, _ = family(model_type)
    target = copy.deepcopy(target)  # the extra forwards below must not touch the shared fixture's state
    inputs = inputs_for(model_type)
    config = loose(gamma=4, relax_ratio=0.5, shift_window=1, relevance_top_n=6)
    candidates, recorded = [], []
    original_candidates = candidate.PrunedVideoCandidateGenerator.get_candidates
    original_relevance = verification.visual_relevance

    def record_candidates(self, input_ids, *args, **kwargs):
        ids, logits = original_candidates(self, input_ids, *args, **kwargs)
        candidates.append((ids.clone(), ids.shape[1] - input_ids.shape[1]))
        return ids, logits

    def record_relevance(drafted_hidden, unit, top_n):
        scores = original_relevance(drafted_hidden, unit, top_n)
        recorded.append(scores.clone())
        return scores

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(candidate.PrunedVideoCandidateGenerator, "get_candidates", record_candidates)
        patch.setattr(verification, "visual_relevance", record_relevance)
        spec(target, draft, inputs, config, max_new_tokens=12)
    blocks = [(ids, n) for ids, n in candidates if n > 0]
    assert len(blocks) == len(recorded) >= 2
    video_id = FAMILIES[model_type].video_token_id(target.config)
    video = (inputs["input_ids"][0] == video_id).nonzero().flatten()
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    for (ids, n), scores in zip(blocks, recorded):
        grown = dict(extra)
        for key in ("mm_token_type_ids", "token_type_ids"):
            if key in grown:
                grown[key] = torch.cat([grown[key], grown[key].new_zeros(1, ids.shape[1] - grown[key].shape[1])], 1)
        if hasattr(target.model, "rope_deltas"):
            target.model.rope_deltas = None
        with torch.no_grad():
            full = target(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True,
                          **grown).hidden_states[-1][0]
        expected = original_relevance(full[-n:], verification.normalised_rows(full[video]), 6)
        torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-4)
        if (expected.sort().values.diff().abs() > 1e-3).all():  # no near-tie: the same positions are relaxed
            assert torch.equal(relaxed_positions(scores, 0.5), relaxed_positions(expected, 0.5))


def test_owned_loop_output_attentions_with_an_eager_target():
    """output_attentions through our loop: the same per-step structure, shapes and values as stock generate."""
    model_type = "llava_onevision"
    target, _ = tiny.build_tiny_pair(model_type, seed=0, attn_implementation="eager")
    inputs = inputs_for(model_type)
    options = dict(max_new_tokens=6, return_dict_in_generate=True, output_attentions=True, output_hidden_states=True)
    ref = target.generate(**inputs, **options)
    for config, owned in ((strict_config(1.0, 3), True), (loose_zero(1.0, 3), False)):
        out = spec(target, target, inputs, config, owned_strict=owned, **options)
        assert_same_tokens(out.sequences, ref.sequences)
        for name in ("attentions", "hidden_states"):
            ours, stock = getattr(out, name), getattr(ref, name)
            assert len(ours) == len(stock) == 6, name
            for step, (a_layers, b_layers) in enumerate(zip(ours, stock)):
                assert len(a_layers) == len(b_layers), (name, step)
                for a, b in zip(a_layers, b_layers):
                    assert a is not None and a.shape == b.shape, (name, step)
                    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_scripted_insertion_is_accepted_by_a_shift():
    """The draft inserts a foreign word X before W3; the scripted target ignores foreign words (it continues the
    cycle from the last cycle word), so after X it still wants W3, which the draft gives next: shift_window=1
    accepts X as an insertion and the block goes on; strict and shift_window=0 reject X."""
    prompt = prompt_length(inputs_for("qwen2_5_vl"))
    foreign = 650
    insert = Scripted(prompt, CYCLE, draft_override=lambda new: foreign if new == CYCLE[:2] else None,
                      skip_foreign=True)
    shifted, stats = scripted_call(loose(gamma=4, relax_ratio=0.0, shift_window=1), insert)
    assert shifted == CYCLE[:2] + [foreign] + CYCLE[2:9]
    assert (stats.shift_accepted, stats.relaxed_accepted) == (1, 0)
    for config in (loose(gamma=4, relax_ratio=0.0, shift_window=0), strict_config(gamma=4)):
        tokens, stats = scripted_call(config, insert)
        assert tokens == CYCLE[:10], config.verify
        assert stats.shift_accepted == 0
