"""specvlm_hf.tree without models: the tree structure, static shapes, the proposers, masks and positions.

References are independent brute-force code over plain lists: ancestors by walking parent pointers, the best paths by
sorting every path of the profile, EAGLE-2 by an explicit per-level sort of (score, index) keys.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tree_testing import ContextModel, path_tokens, random_trees

from specvlm_hf.tree import (
    DEFAULT_TREE_PATHS,
    ROOT,
    StaticTreeShape,
    TokenTree,
    ancestor_matrix,
    best_nodes,
    block_parents,
    check_tree_attention,
    draft_level_inputs,
    grow_dynamic_tree,
    grow_static_tree,
    paths_by_acceptance,
    tree_attention_mask,
    tree_position_ids,
    validate_tree_paths,
    verification_inputs,
)

FAST = settings(max_examples=150, deadline=None)


# -- TokenTree --------------------------------------------------------------------------------------------------------


def _small_tree() -> TokenTree:
    tree = TokenTree()
    tree.add_nodes([ROOT, ROOT], [10, 11], [-0.1, -2.0])
    tree.add_nodes([0, 0, 1], [12, 13, 14], [-0.3, -1.0, -2.5])
    tree.add_nodes([2], [15], [-0.4])
    return tree


def test_token_tree_levels_depths_paths():
    tree = _small_tree()
    assert len(tree) == 6 and tree.depth == 3
    assert tree.depths == [0, 0, 1, 1, 1, 2]
    assert tree.children(ROOT) == [0, 1] and tree.children(0) == [2, 3] and tree.children(5) == []
    assert tree.path_to(5) == [0, 2, 5] and tree.path_to(4) == [1, 4]
    assert tree.tokens_tensor().tolist() == [10, 11, 12, 13, 14, 15]
    assert tree.parents_tensor().tolist() == [-1, -1, 0, 0, 1, 2]
    assert tree.depths_tensor().tolist() == tree.depths


def test_token_tree_rejects_bad_nodes():
    tree = _small_tree()
    with pytest.raises(ValueError, match="parent must be ROOT"):
        tree.add_nodes([6], [1])
    with pytest.raises(ValueError, match="parent must be ROOT"):
        tree.add_nodes([-2], [1])
    with pytest.raises(ValueError, match="one parent, token and score per node"):
        tree.add_nodes([0, 1], [1])
    with pytest.raises(ValueError, match="TokenTree.drawn"):
        TokenTree(drawn="sampled")


def test_mark_fed_assigns_slots_in_feeding_order():
    tree = _small_tree()
    tree.mark_fed([1, 0])
    tree.mark_fed([2])
    assert tree.slots == [1, 0, 2, None, None, None]
    assert tree.fed_nodes() == [1, 0, 2]
    with pytest.raises(ValueError, match="already fed"):
        tree.mark_fed([0])
    chain = TokenTree()
    chain.add_nodes([ROOT], [1])
    chain.add_nodes([0], [2])
    with pytest.raises(ValueError, match="before its parent"):
        chain.mark_fed([1])


def test_select_renumbers_and_requires_ancestors():
    tree = _small_tree()
    tree.mark_fed([0, 2])
    tree.child_probs = {ROOT: torch.ones(3), 2: torch.zeros(3), 4: torch.ones(3)}
    sub = tree.select([5, 0, 2])
    assert sub.tokens == [10, 12, 15] and sub.parents == [-1, 0, 1] and sub.depths == [0, 1, 2]
    assert sub.scores == [-0.1, -0.3, -0.4] and sub.slots == [0, 1, None]
    assert set(sub.child_probs) == {ROOT, 1}
    with pytest.raises(ValueError, match="without their parents"):
        tree.select([0, 5])


# -- static trees -----------------------------------------------------------------------------------------------------


def test_validate_tree_paths_normalises_order():
    assert validate_tree_paths([[0, 1], (1,), [0], (0, 0)]) == ((0,), (1,), (0, 0), (0, 1))


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (None, "must be a sequence of paths"),
        ("01", "must be a sequence of paths"),
        ([], "is empty"),
        ([(0,), ()], "non-empty sequence of integers"),
        ([(0,), (-1,)], "non-empty sequence of integers"),
        ([(0,), (0, True)], "non-empty sequence of integers"),
        ([(0,), (0.0,)], "non-empty sequence of integers"),
        ([(0,), 3], "not a sequence of child ranks"),
        ([(0,), (0,)], "lists the path \\(0,\\) twice"),
        ([(0,), (1, 0)], "not its parent \\(1,\\)"),
        ([(0,), (0, 0, 0)], "not its parent \\(0, 0\\)"),
    ],
)
def test_validate_tree_paths_errors_name_the_argument_and_the_fix(paths, message):
    with pytest.raises(ValueError, match=message) as error:
        validate_tree_paths(paths)
    assert "`tree_paths`" in str(error.value)
    with pytest.raises(ValueError, match="`my_paths`"):
        validate_tree_paths(paths, argument="my_paths")


def _ancestor_closed(paths) -> bool:
    present = set(paths)
    return all(len(p) == 1 or p[:-1] in present for p in paths)


def test_default_tree():
    shape = StaticTreeShape.from_paths()
    assert shape.paths == DEFAULT_TREE_PATHS
    assert len(shape) == 25 and shape.depth == 5
    assert all((0,) * d in DEFAULT_TREE_PATHS for d in range(1, 6))  # the full chain of best tokens
    assert _ancestor_closed(DEFAULT_TREE_PATHS)
    assert [len(shape.level(d)) for d in range(5)] == [3, 5, 6, 5, 6]
    assert max(max(p) for p in DEFAULT_TREE_PATHS) == 2


def _oracle_best_paths(profile, nodes, depth):
    """Every path of ranks < len(profile) up to `depth`, sorted by exact probability (ties: shorter, lower ranks)."""
    exact = [Fraction(str(a)) for a in profile]
    paths = [p for d in range(1, depth + 1) for p in itertools.product(range(len(profile)), repeat=d)]

    def probability(p):
        result = Fraction(1)
        for r in p:
            result *= exact[r]
        return result

    best = sorted(paths, key=lambda p: (-probability(p), len(p), p))[:nodes]
    return tuple(sorted(best, key=lambda p: (len(p), p)))


@FAST
@given(
    profile=st.lists(st.sampled_from([0.5, 0.3, 0.2, 0.1, 0.05]), min_size=1, max_size=3).filter(lambda a: sum(a) <= 1),
    nodes=st.integers(1, 20),
    depth=st.integers(1, 4),
)
def test_paths_by_acceptance_matches_the_sorted_oracle(profile, nodes, depth):
    paths = paths_by_acceptance(profile, nodes, depth)
    assert paths == _oracle_best_paths(profile, nodes, depth)
    assert _ancestor_closed(paths)


def test_paths_by_acceptance_rejects_bad_profiles():
    for profile in ([], [0.0], [1.2], [0.7, 0.6]):
        with pytest.raises(ValueError, match="rank_acceptance"):
            paths_by_acceptance(profile, 5, 3)
    with pytest.raises(ValueError, match="nodes >= 1 and depth >= 1"):
        paths_by_acceptance([0.5], 0, 3)


def test_static_shape_levels_and_expansion():
    shape = StaticTreeShape.from_paths([(0,), (1,), (0, 0), (0, 2), (1, 0), (0, 0, 0)])
    assert shape.parents == (-1, -1, 0, 0, 1, 2)
    assert shape.level(1) == [2, 3, 4] and shape.frontier(0) == [ROOT] and shape.frontier(1) == [0, 1]
    assert shape.frontier(2) == [2] and [shape.top_k(d) for d in range(3)] == [2, 3, 1]
    ranked = torch.tensor([[7, 8, 9], [4, 5, 6]])
    values = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.6, -0.7]])
    parents, tokens, log_probs = shape.expand_level(1, ranked, values)
    assert parents == [0, 0, 1] and tokens == [7, 9, 4] and log_probs == [-1.0, -3.0, -0.5]
    with pytest.raises(ValueError, match="top 3 children of 2 frontier nodes"):
        shape.expand_level(1, ranked[:, :2], values[:, :2])


def _recording_step(model: ContextModel, calls: list):
    def step(tree: TokenTree, frontier: list[int]) -> torch.Tensor:
        calls.append((list(frontier), tree.fed_nodes()[-len(frontier):]))
        return torch.stack([model.log_probs(path_tokens(tree, n)) for n in frontier])

    return step


def test_grow_static_tree_follows_the_ranks():
    draft = ContextModel("draft", vocab=9)
    shape = StaticTreeShape.from_paths()
    calls: list = []
    tree = grow_static_tree(shape, draft.log_probs(()), _recording_step(draft, calls), keep_probs=True)
    assert tree.parents == list(shape.parents)
    for node, ranks in enumerate(shape.paths):
        context = path_tokens(tree, node)[:-1]
        order = sorted(range(9), key=lambda t: -float(draft.probs(context)[t]))
        assert tree.tokens[node] == order[ranks[-1]]
        expected = sum(float(draft.log_probs(path_tokens(tree, n)[:-1])[tree.tokens[n]]) for n in tree.path_to(node))
        assert tree.scores[node] == pytest.approx(expected, abs=1e-12)
    # one step per level after the first, feeding exactly the nodes with children, which become the last fed slots
    assert [frontier for frontier, _ in calls] == [shape.frontier(d) for d in range(1, 5)]
    assert all(frontier == last_fed for frontier, last_fed in calls)
    with_children = {p for p in shape.parents if p != ROOT}
    assert {n for n, slot in enumerate(tree.slots) if slot is not None} == with_children
    assert set(tree.child_probs) == with_children | {ROOT}
    assert torch.allclose(tree.child_probs[ROOT], draft.probs(()))


def _oracle_eagle2(model: ContextModel, depth: int, top_k: int, total: int):
    """EAGLE-2 written out with (score, index) sort keys; returns the kept nodes as token paths with their scores."""
    nodes = []  # (tokens path, score)
    frontier = [((), 0.0)]
    k = min(top_k, model.vocab)
    for level in range(depth):
        candidates = []
        for context, score in frontier:
            row = model.log_probs(context).tolist()
            for token in sorted(range(model.vocab), key=lambda t: -row[t])[:k]:
                candidates.append((context + (token,), score + row[token]))
        nodes.extend(candidates)
        if level + 1 < depth:
            order = sorted(range(len(candidates)), key=lambda i: (-candidates[i][1], i))[:top_k]
            frontier = [candidates[i] for i in sorted(order)]
    kept = sorted(range(len(nodes)), key=lambda i: (-nodes[i][1], i))[:total]
    return {nodes[i][0]: nodes[i][1] for i in kept}


@FAST
@given(vocab=st.integers(2, 7), depth=st.integers(1, 4), top_k=st.integers(1, 4), total=st.integers(1, 30),
       sharpness=st.sampled_from([0.3, 1.5, 6.0]), seed=st.integers(0, 10**6))
def test_grow_dynamic_tree_matches_eagle2_oracle(vocab, depth, top_k, total, sharpness, seed):
    draft = ContextModel(f"draft{seed}", vocab=vocab, sharpness=sharpness)
    calls: list = []
    tree = grow_dynamic_tree(draft.log_probs(()), _recording_step(draft, calls), depth=depth, top_k=top_k,
                             total=total)
    expected = _oracle_eagle2(draft, depth, top_k, total)
    got = {path_tokens(tree, n): tree.scores[n] for n in range(len(tree))}
    assert got.keys() == expected.keys()
    assert all(got[p] == pytest.approx(expected[p], abs=1e-9) for p in got)
    assert len(calls) == depth - 1 and all(len(f) == min(top_k, vocab ** (i + 1)) for i, (f, _) in enumerate(calls))
    assert all(frontier == last_fed for frontier, last_fed in calls)
    assert all(tree.parents[n] < n for n in range(len(tree)))


@FAST
@given(rows=st.lists(st.lists(st.sampled_from([0.0, -0.5, -1.0, -1.0, -3.0, float("-inf")]), min_size=4, max_size=4),
                     min_size=1, max_size=30),
       depth=st.integers(1, 4), top_k=st.integers(1, 4), total=st.integers(1, 40))
def test_dynamic_tree_is_ancestor_closed_with_ties(rows, depth, top_k, total):
    """Ties everywhere (log-prob 0 = certainty, repeated values, -inf): the kept set still has every ancestor, which
    `select` would otherwise refuse, and scores never increase along a path."""
    table = [torch.tensor(r, dtype=torch.float64) for r in rows]
    served = iter(itertools.cycle(table))

    def step(tree, frontier):
        return torch.stack([next(served) for _ in frontier])

    tree = grow_dynamic_tree(next(served), step, depth=depth, top_k=top_k, total=total)
    assert len(tree) == min(total, min(top_k, 4) * (1 + (depth - 1) * min(top_k, 4)))
    for n in range(len(tree)):
        parent = tree.parents[n]
        assert parent < n
        if parent != ROOT:
            assert tree.scores[n] <= tree.scores[parent]


def test_best_nodes_breaks_ties_towards_lower_indices():
    scores = torch.tensor([-1.0, 0.0, -1.0, -1.0, -5.0])
    assert best_nodes(scores, 3).tolist() == [0, 1, 2]
    assert best_nodes(scores, 10).tolist() == [0, 1, 2, 3, 4]


def test_grow_dynamic_tree_validates_sizes():
    for kwargs in ({"depth": 0, "top_k": 2, "total": 3}, {"depth": 2, "top_k": True, "total": 3},
                   {"depth": 2, "top_k": 2, "total": 0}):
        with pytest.raises(ValueError, match="needs"):
            grow_dynamic_tree(torch.zeros(4), lambda t, f: torch.zeros(len(f), 4), **kwargs)


# -- masks and positions ----------------------------------------------------------------------------------------------


def _oracle_visible(parents: list[int]) -> list[list[bool]]:
    n = len(parents)
    visible = [[False] * n for _ in range(n)]
    for i in range(n):
        j = i
        while j != ROOT:
            visible[i][j] = True
            j = parents[j]
    return visible


@FAST
@given(tree=random_trees(max_nodes=14), past=st.integers(0, 5), data=st.data())
def test_tree_attention_mask_matches_the_parent_walk(tree, past, data):
    if len(tree) == 0:
        return
    parents = tree.parents_tensor()
    assert ancestor_matrix(parents).tolist() == _oracle_visible(tree.parents)
    queries = data.draw(st.integers(1, len(tree)))
    allowed = tree_attention_mask(parents, past, num_queries=queries, dtype=torch.bool)
    assert allowed.shape == (1, 1, queries, past + len(tree)) and allowed.dtype == torch.bool
    expected = [[True] * past + row for row in _oracle_visible(tree.parents)[-queries:]]
    assert allowed[0, 0].tolist() == expected
    for dtype in (torch.float32, torch.bfloat16):
        additive = tree_attention_mask(parents, past, num_queries=queries, dtype=dtype)
        assert additive.dtype == dtype and additive.shape == allowed.shape
        assert torch.equal(additive == 0, allowed)
        assert bool((additive[~allowed] == torch.finfo(dtype).min).all())


def test_tree_attention_mask_rejects_bad_parents_and_query_counts():
    with pytest.raises(ValueError, match="earlier node"):
        tree_attention_mask(torch.tensor([-1, 1]), 3)
    with pytest.raises(ValueError, match="earlier node"):
        tree_attention_mask(torch.tensor([-2]), 3)
    with pytest.raises(ValueError, match="1-D"):
        tree_attention_mask(torch.tensor([[-1]]), 3)
    with pytest.raises(ValueError, match="num_queries"):
        tree_attention_mask(torch.tensor([-1, 0]), 3, num_queries=3)


def test_block_parents_renumbers_fed_nodes():
    parents = [-1, -1, 0, 0, 1, 2]
    assert block_parents(parents, [1, 0, 4, 2, 5]).tolist() == [-1, -1, 0, 1, 3]
    with pytest.raises(ValueError, match="must come before it"):
        block_parents(parents, [2, 0])


def test_tree_position_ids_for_1d_and_mrope_rows():
    depths = torch.tensor([-1, 0, 0, 1, 2])
    assert tree_position_ids(torch.tensor([9]), depths).tolist() == [[8, 9, 9, 10, 11]]
    assert tree_position_ids(9, depths).tolist() == [[8, 9, 9, 10, 11]]
    rows = tree_position_ids(torch.tensor([[9], [4], [4], [4]]), depths)
    assert rows.shape == (4, 1, 5)
    assert rows[:, 0].tolist() == [[8, 9, 9, 10, 11]] + [[3, 4, 4, 5, 6]] * 3


def test_verification_inputs_put_the_root_first():
    tree = _small_tree()
    inputs = verification_inputs(tree, 99, 7, torch.tensor([[20], [30], [30], [30]]), dtype=torch.bool)
    assert inputs.input_ids.tolist() == [[99, 10, 11, 12, 13, 14, 15]]
    assert inputs.attention_mask.shape == (1, 1, 7, 14)
    root_row = inputs.attention_mask[0, 0, 0].tolist()
    assert root_row == [True] * 8 + [False] * 6
    node5 = inputs.attention_mask[0, 0, 6].tolist()  # node 5 = block index 6: root, 0, 2, 5
    assert node5 == [True] * 7 + [True, True, False, True, False, False, True]
    assert inputs.position_ids[:, 0].tolist() == [[19, 20, 20, 21, 21, 21, 22]] + [[29, 30, 30, 31, 31, 31, 32]] * 3


def test_draft_level_inputs_use_the_fed_nodes_as_keys():
    tree = _small_tree()
    tree.mark_fed([0, 1])
    tree.mark_fed([2, 4])
    inputs = draft_level_inputs(tree, [2, 4], 5, torch.tensor([8]))
    assert inputs.input_ids.tolist() == [[12, 14]]
    allowed = (inputs.attention_mask == 0)[0, 0].tolist()
    # keys: 5 past, then fed nodes [0, 1, 2, 4]; node 2 sees 0 and itself, node 4 sees 1 and itself
    assert allowed == [[True] * 5 + [True, False, True, False], [True] * 5 + [False, True, False, True]]
    assert inputs.position_ids.tolist() == [[9, 9]]
    with pytest.raises(ValueError, match="last nodes fed"):
        draft_level_inputs(tree, [0, 1], 5, torch.tensor([8]))


def _fake_model(implementation):
    text = SimpleNamespace(_attn_implementation=implementation)
    return SimpleNamespace(config=SimpleNamespace(get_text_config=lambda: text))


def test_check_tree_attention():
    for ok in ("sdpa", "eager"):
        check_tree_attention(_fake_model(ok))
    for bad in ("flash_attention_2", "flex_attention", "paged|sdpa"):
        with pytest.raises(ValueError, match="attn_implementation='sdpa'.*draft_tree='chain'"):
            check_tree_attention(_fake_model(bad))
