"""specvlm_hf.tree_acceptance: greedy against a brute-force oracle, sampling by exact enumeration and by seeds.

Sampling is checked on whole generations: a synthetic target and draft (`ContextModel`, a fixed random distribution
per context) generate ``LENGTH`` tokens round after round -- the draft proposes a tree, the target's rows for every
node decide what is accepted -- and the exact distribution of the generated sequence (enumerated over every random
choice of the draft and of the rule) must equal the target's own, with and without stop tokens. A deliberately wrong
rule (SpecInfer's i.i.d. rule on children that were not drawn i.i.d.) must fail the same comparison, exactly and at
the seeded test's sample size.
"""

from __future__ import annotations

import functools
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tree_testing import ContextModel, exact_distribution, path_tokens, random_trees, total_variation

from specvlm_hf.tree import (
    DETERMINISTIC,
    IID,
    ROOT,
    WITHOUT_REPLACEMENT,
    StaticTreeShape,
    TokenTree,
    grow_dynamic_tree,
    grow_static_tree,
)
from specvlm_hf.tree_acceptance import TorchSampler, TreeVerdict, draw_children, greedy_accept, sample_accept

FAST = settings(max_examples=200, deadline=None)

# -- greedy -----------------------------------------------------------------------------------------------------------


def _oracle_greedy(tree: TokenTree, choices: list[int], stops: set[int]) -> tuple[list[int], int | None]:
    """The deepest node whose whole path agrees with the target's argmax at every parent (siblings are distinct, so
    the agreeing nodes form one chain), cut at the first stop token."""
    def agrees(node):
        return all(tree.tokens[n] == choices[tree.parents[n] + 1] for n in tree.path_to(node))

    agreeing = [n for n in range(len(tree)) if agrees(n)]
    path = tree.path_to(max(agreeing, key=lambda n: tree.depths[n])) if agreeing else []
    for i, node in enumerate(path):
        if tree.tokens[node] in stops:
            return path[: i + 1], None
    return path, choices[path[-1] + 1 if path else 0]


@FAST
@given(tree=random_trees(max_nodes=14, vocab=16), data=st.data())
def test_greedy_matches_the_brute_force_oracle(tree, data):
    vocab = 16
    choices = []
    for row in range(len(tree) + 1):  # the target often agrees with one of the node's children
        children = tree.children(row - 1)
        hit = children and data.draw(st.booleans())
        choices.append(tree.tokens[data.draw(st.sampled_from(children))] if hit else data.draw(st.integers(0, 15)))
    noise = torch.rand(len(tree) + 1, vocab, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 99))))
    scores = noise + 5.0 * torch.nn.functional.one_hot(torch.tensor(choices), vocab)
    # stop tokens drawn among the target's choices (every accepted token is one), so accepted paths often cross one
    stops = set(data.draw(st.lists(st.sampled_from(choices), max_size=2)))
    verdict = greedy_accept(tree, scores, is_stop=lambda t: t in stops)
    path, bonus = _oracle_greedy(tree, choices, stops)
    assert verdict.path == path and verdict.bonus == bonus
    assert verdict.tokens == [tree.tokens[n] for n in path]
    assert verdict.new_tokens == verdict.tokens + ([] if bonus is None else [bonus])


def test_greedy_on_a_chain_is_the_longest_matching_prefix():
    tree = TokenTree()
    for token, parent in zip([5, 6, 7], [ROOT, 0, 1]):
        tree.add_nodes([parent], [token])
    scores = torch.nn.functional.one_hot(torch.tensor([5, 6, 3, 9]), 10).float()
    assert greedy_accept(tree, scores) == TreeVerdict([0, 1], [5, 6], 3)
    assert greedy_accept(tree, scores, is_stop=lambda t: t == 5) == TreeVerdict([0], [5], None)  # no bonus
    assert greedy_accept(tree, scores, is_stop=lambda t: t == 3) == TreeVerdict([0, 1], [5, 6], 3)  # bonus stops
    with pytest.raises(ValueError, match="one row for the root and one per node"):
        greedy_accept(tree, scores[:3])


# -- sampling: one node, exact ----------------------------------------------------------------------------------------

VOCAB = 3
LENGTH = 3
STOP = 0


def _first_token_distribution(p: torch.Tensor, q: torch.Tensor, count: int, drawn: str) -> dict:
    def program(sampler):
        tree = TokenTree(drawn=drawn)
        tokens = draw_children(q, count, drawn, sampler)
        tree.add_nodes([ROOT] * len(tokens), tokens)
        tree.child_probs[ROOT] = q
        rows = torch.cat([p[None], torch.full((len(tokens), p.numel()), 1.0 / p.numel(), dtype=p.dtype)])
        return sample_accept(tree, rows, sampler).new_tokens[0]

    return exact_distribution(program)


distributions = st.lists(st.sampled_from([0.0, 0.0, 0.1, 0.3, 1.0, 2.0]), min_size=4, max_size=4).filter(
    lambda w: sum(w) > 0).map(lambda w: torch.tensor(w, dtype=torch.float64) / sum(w))


@settings(max_examples=100, deadline=None)
@given(p=distributions, q=distributions, count=st.integers(1, 3), drawn=st.sampled_from([DETERMINISTIC, IID,
                                                                                          WITHOUT_REPLACEMENT]))
def test_one_node_rule_is_exact_for_every_draw(p, q, count, drawn):
    """Zeros anywhere in p or q, any number of children: the first committed token is distributed as p."""
    result = _first_token_distribution(p, q, count, drawn)
    assert total_variation(result, dict(enumerate(p.tolist()))) < 1e-12


# -- sampling: whole generations, exact -------------------------------------------------------------------------------

TARGET = ContextModel("target", VOCAB)
DRAFT = ContextModel("draft", VOCAB)
STATIC_SHAPE = StaticTreeShape.from_paths(((0,), (1,), (0, 0), (0, 1), (1, 0)))


def _draft_step(prefix: tuple[int, ...]):
    def step(tree, frontier):
        return torch.stack([DRAFT.log_probs(prefix + path_tokens(tree, n)) for n in frontier])

    return step


def _propose(prefix: tuple[int, ...], proposer: str, sampler) -> TokenTree:
    """The draft's tree after `prefix`: static / dynamic (deterministic children) or sampled children."""
    if proposer == "static":
        return grow_static_tree(STATIC_SHAPE, DRAFT.log_probs(prefix), _draft_step(prefix), keep_probs=True)
    if proposer == "dynamic":
        return grow_dynamic_tree(DRAFT.log_probs(prefix), _draft_step(prefix), depth=3, top_k=2, total=5,
                                 keep_probs=True)
    tree = TokenTree(drawn=proposer)
    for parent in (ROOT, 0):  # the root and its first child get two sampled children each
        q = DRAFT.probs(prefix + (() if parent == ROOT else path_tokens(tree, parent)))
        tree.child_probs[parent] = q
        tree.add_nodes([parent] * 2, draw_children(q, 2, proposer, sampler))
    return tree


def _round(prefix: tuple[int, ...], proposer: str, claimed: str | None, stops: bool, sampler) -> tuple[int, ...]:
    tree = _propose(prefix, proposer, sampler)
    if claimed is not None:  # the deliberately wrong variant: verify with another rule than the draw's
        tree.drawn = claimed
    rows = torch.stack([TARGET.probs(prefix)] + [TARGET.probs(prefix + path_tokens(tree, n)) for n in range(len(tree))])
    verdict = sample_accept(tree, rows, sampler, is_stop=(lambda t: t == STOP) if stops else None)
    return tuple(verdict.new_tokens)


def _finished(sequence: tuple[int, ...], stops: bool) -> bool:
    return len(sequence) >= LENGTH or (stops and STOP in sequence)


def _final(sequence: tuple[int, ...]) -> tuple[int, ...]:
    return sequence[:LENGTH]


@functools.cache
def _target_generation(prefix: tuple[int, ...] = (), stops: bool = False) -> dict:
    """Sampling with the target alone: the exact distribution of the finished sequence after `prefix`."""
    result: Counter = Counter()
    for token, probability in enumerate(TARGET.probs(prefix).tolist()):
        sequence = prefix + (token,)
        if _finished(sequence, stops):
            result[_final(sequence)] += probability
        else:
            for final, weight in _target_generation(sequence, stops).items():
                result[final] += probability * weight
    return dict(result)


@functools.cache
def _speculative_generation(proposer: str, claimed: str | None, stops: bool, prefix: tuple[int, ...] = ()) -> dict:
    """The same with tree speculative decoding, exactly: each round enumerated, rounds composed by recursion."""
    round_outcomes = exact_distribution(lambda sampler: _round(prefix, proposer, claimed, stops, sampler))
    result: Counter = Counter()
    for new_tokens, probability in round_outcomes.items():
        sequence = prefix + new_tokens
        if _finished(sequence, stops):
            result[_final(sequence)] += probability
        else:
            for final, weight in _speculative_generation(proposer, claimed, stops, sequence).items():
                result[final] += probability * weight
    return dict(result)


CORRECT = [("static", None), ("dynamic", None), (WITHOUT_REPLACEMENT, None), (IID, None)]


@pytest.mark.parametrize("stops", [False, True], ids=["no-stop", "stop-token"])
@pytest.mark.parametrize(("proposer", "claimed"), CORRECT, ids=[c[0] for c in CORRECT])
def test_tree_sampling_is_exactly_the_targets_distribution(proposer, claimed, stops):
    speculative = _speculative_generation(proposer, claimed, stops)
    target = _target_generation(stops=stops)
    assert abs(sum(speculative.values()) - 1.0) < 1e-9
    assert total_variation(speculative, target) < 1e-9
    if stops:  # the stop token really ends generations early, so the stop path is exercised
        assert any(len(s) < LENGTH for s in target)


WRONG = [("static", IID), ("dynamic", IID), (WITHOUT_REPLACEMENT, IID)]
#: The wrong rules are at least this far from the target (exactly: ~0.27 on top-k children, ~0.065 on children drawn
#: without replacement); the correct ones are within float rounding (1e-9).
POWER_TV = 0.05


@pytest.mark.parametrize(("proposer", "claimed"), WRONG, ids=[f"{p}-as-{c}" for p, c in WRONG])
def test_wrong_rule_is_detected_exactly(proposer, claimed):
    """Power check for the exact test: SpecInfer's i.i.d. rule on top-k or without-replacement children is biased."""
    speculative = _speculative_generation(proposer, claimed, False)
    assert total_variation(speculative, _target_generation()) > POWER_TV


# -- sampling: seeded, with torch's RNG -------------------------------------------------------------------------------

SAMPLES = 600


def _seeded_generation(proposer: str, claimed: str | None, seed: int) -> dict:
    sampler = TorchSampler(torch.Generator().manual_seed(seed))
    counts: Counter = Counter()
    for _ in range(SAMPLES):
        sequence: tuple[int, ...] = ()
        while not _finished(sequence, False):
            sequence += _round(sequence, proposer, claimed, False, sampler)
        counts[_final(sequence)] += 1
    return {k: v / SAMPLES for k, v in counts.items()}


def test_seeded_sampling_passes_and_the_wrong_rule_fails_at_the_same_sample_size():
    """TorchSampler end to end: the empirical TV to the target stays under the bound, the wrong rule exceeds it."""
    target = _target_generation()
    # E[TV] of an empirical distribution over K outcomes is at most sqrt(K / N) / 2 (Cauchy-Schwarz).
    bound = 1.5 * 0.5 * (len(target) / SAMPLES) ** 0.5
    assert total_variation(_speculative_generation("static", IID, False), target) > 1.5 * bound  # exactly ~0.27
    assert total_variation(_seeded_generation("static", None, seed=1), target) < bound
    assert total_variation(_seeded_generation("static", IID, seed=1), target) > bound


def test_torch_sampler_draws():
    sampler = TorchSampler(torch.Generator().manual_seed(0))
    assert sampler.accept(1.0) and not sampler.accept(0.0)
    assert sampler.categorical(torch.tensor([0.0, 0.0, 1.0])) == 2
    hits = sum(sampler.accept(0.25) for _ in range(4000))
    assert 850 < hits < 1150


def test_sampling_needs_the_draft_rows_of_sampled_children():
    tree = TokenTree(drawn=IID)
    tree.add_nodes([ROOT], [1])
    with pytest.raises(ValueError, match="needs the draft's row"):
        sample_accept(tree, torch.full((2, 3), 1 / 3))
    tree.child_probs[ROOT] = torch.tensor([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="draft probability 0"):
        sample_accept(tree, torch.full((2, 3), 1 / 3))


def test_draw_children():
    probs = torch.tensor([0.1, 0.5, 0.0, 0.4])
    assert draw_children(probs, 2, DETERMINISTIC) == [1, 3]
    sampler = TorchSampler(torch.Generator().manual_seed(0))
    drawn = draw_children(probs, 5, WITHOUT_REPLACEMENT, sampler)
    assert sorted(drawn) == [0, 1, 3]  # the support runs out after three distinct tokens
    assert len(draw_children(probs, 5, IID, sampler)) == 5
    with pytest.raises(ValueError, match="drawn must be"):
        draw_children(probs, 2, "topk")
