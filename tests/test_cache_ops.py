"""specvlm_hf.cache_ops: after keeping an accepted path, a cache equals a fresh forward's on prefix + path.

Checked on hand-made caches against an explicit gather (hypothesis), and on tiny real models: the target after a tree
verification forward, the draft after EAGLE-2 levels, and several rounds in a row (positions, memory).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import DynamicCache, StaticCache
from transformers.cache_utils import Cache, DynamicSlidingWindowLayer
from tree_testing import (
    family_setup,
    fixed_tree,
    grow_draft_tree,
    prompt_positions,
    tree_forward,
    with_tokens,
    without_last,
)

from specvlm_hf.cache_ops import check_tree_cache, keep_accepted_path
from specvlm_hf.tree import TokenTree, verification_inputs

ATOL = 1e-5
FAMILIES = ["qwen2_5_vl", "llava_next_video"]  # M-RoPE and 1-D positions


def _filled_cache(layers: int, length: int, *, seed: int = 0) -> DynamicCache:
    cache = DynamicCache()
    generator = torch.Generator().manual_seed(seed)
    for layer in range(layers):
        keys = torch.randn(1, 2, length, 4, generator=generator)
        cache.update(keys, keys + 100.0, layer)
    return cache


@settings(max_examples=100, deadline=None)
@given(start=st.integers(0, 6), block=st.integers(0, 8), data=st.data())
def test_keep_gathers_exactly_the_kept_positions(start, block, data):
    keep = sorted(data.draw(st.sets(st.integers(0, max(block - 1, 0)), max_size=block)) if block else [])
    cache = _filled_cache(3, start + block)
    before = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
    keep_accepted_path(cache, start, keep)
    index = torch.tensor(list(range(start)) + [start + k for k in keep], dtype=torch.long)
    assert cache.get_seq_length() == start + len(keep)
    for layer, (keys, values) in zip(cache.layers, before):
        assert torch.equal(layer.keys, keys.index_select(-2, index))
        assert torch.equal(layer.values, values.index_select(-2, index))


def test_keep_validates_its_arguments():
    cache = _filled_cache(1, 6)
    for keep in ([1, 1], [2, 0], [-1], [4]):
        with pytest.raises(ValueError, match="strictly increasing positions in \\[0, 4\\)"):
            keep_accepted_path(cache, 2, keep)
    with pytest.raises(ValueError, match="beyond the cache"):
        keep_accepted_path(cache, 7, [])


def test_keep_writes_inference_tensors_outside_inference_mode():
    with torch.inference_mode():
        cache = _filled_cache(2, 5)
    keep_accepted_path(cache, 1, [1, 3])
    assert cache.get_seq_length() == 3
    assert torch.equal(cache.layers[0].keys[..., 1:, :], _filled_cache(2, 5).layers[0].keys[..., [2, 4], :])


def test_keep_skips_layers_that_hold_nothing():
    cache = DynamicCache()
    cache.update(torch.ones(1, 1, 4, 2), torch.ones(1, 1, 4, 2), 1)  # layer 0 exists but holds nothing
    assert not cache.layers[0].is_initialized
    keep_accepted_path(cache, 1, [2])
    assert cache.layers[1].keys.shape[-2] == 2


def test_unsupported_caches_are_rejected_clearly():
    sliding = Cache(layers=[DynamicSlidingWindowLayer(sliding_window=8)])
    with pytest.raises(ValueError, match="DynamicSlidingWindowLayer \\(sliding_window=8\\).*draft_tree='chain'"):
        check_tree_cache(sliding)
    model, _ = family_setup("llava_next_video")
    static = StaticCache(config=model.config, max_cache_len=16)
    with pytest.raises(ValueError, match="StaticLayer"):
        keep_accepted_path(static, 0, [])
    with pytest.raises(ValueError, match="needs a DynamicCache"):
        check_tree_cache(((torch.zeros(1), torch.zeros(1)),))
    check_tree_cache(DynamicCache(config=model.config))


@torch.no_grad()
def _fresh_cache(model, inputs, tokens) -> DynamicCache:
    """The cache of ONE ordinary forward on the prompt followed by `tokens` (transformers' own positions)."""
    cache = DynamicCache(config=model.config)
    model(**with_tokens(inputs, tokens), past_key_values=cache, use_cache=True, logits_to_keep=1)
    return cache


def _assert_same_cache(cache, reference) -> None:
    assert cache.get_seq_length() == reference.get_seq_length()
    for layer, expected in zip(cache.layers, reference.layers, strict=True):
        assert layer.keys.shape == expected.keys.shape
        assert (layer.keys - expected.keys).abs().max().item() < ATOL
        assert (layer.values - expected.values).abs().max().item() < ATOL


# Accepted paths in fixed_tree(): none; the first child (block prefix [root, 0]: a crop is enough); a deep branch
# under the second root child, [1, 5, 8] (states move); the last root child.
@pytest.mark.parametrize("path_end", [None, 0, 8, 2], ids=["root-only", "first-child", "deep-branch", "last-child"])
@pytest.mark.parametrize("model_type", FAMILIES)
def test_target_cache_keeps_root_and_path(model_type, path_end):
    model, inputs = family_setup(model_type)
    tree = fixed_tree()
    path = [] if path_end is None else tree.path_to(path_end)
    _, cache = tree_forward(model, inputs, tree)
    prefix = inputs["input_ids"].shape[1] - 1
    keep_accepted_path(cache, prefix, [0] + [1 + node for node in path])  # block = [root, *nodes]
    _assert_same_cache(cache, _fresh_cache(model, inputs, [tree.tokens[n] for n in path]))


@pytest.mark.parametrize("model_type", FAMILIES)
def test_draft_cache_keeps_the_fed_part_of_the_accepted_path(model_type):
    model, inputs = family_setup(model_type)
    tree, cache, _ = grow_draft_tree(model, inputs, depth=3, top_k=2, total=10)
    deepest = max(range(len(tree)), key=lambda n: (tree.depths[n], n))
    fed = [n for n in tree.path_to(deepest) if tree.slots[n] is not None]  # the leaf itself was never fed
    assert len(fed) == 2 and tree.slots[deepest] is None
    keep_accepted_path(cache, inputs["input_ids"].shape[1], [tree.slots[n] for n in fed])
    _assert_same_cache(cache, _fresh_cache(model, inputs, [tree.tokens[n] for n in fed]))


@pytest.mark.parametrize("model_type", FAMILIES)
@torch.no_grad()
def test_rounds_in_a_row_keep_the_cache_exact_and_memory_flat(model_type):
    """Four verification rounds of a 10-node block, accepting a branch that is not a block prefix each time: the cache
    equals a fresh forward on everything committed, and no layer's storage ever holds more than one round's block."""
    model, inputs = family_setup(model_type)
    positions = prompt_positions(model, inputs)
    cache = DynamicCache(config=model.config)
    model(**without_last(inputs), position_ids=positions[..., :-1], past_key_values=cache, use_cache=True,
          logits_to_keep=1)
    tree = fixed_tree()
    accepted = tree.path_to(8)  # [1, 5, 8]: under the second root child, so every round moves states
    root, root_position = int(inputs["input_ids"][0, -1]), positions[..., -1]
    committed: list[int] = []
    layer = cache.layers[0]
    per_position = layer.keys[..., :1, :].numel() * layer.keys.element_size()
    for round_index in range(4):
        tokens = [t + round_index for t in tree.tokens]  # a different tree each round
        shifted = TokenTree(tokens=tokens, parents=tree.parents, depths=tree.depths, scores=tree.scores,
                            slots=tree.slots)
        block = verification_inputs(shifted, root, cache.get_seq_length(), root_position + 1)
        model(input_ids=block.input_ids, attention_mask=block.attention_mask, position_ids=block.position_ids,
              past_key_values=cache, use_cache=True, logits_to_keep=1)
        start = cache.get_seq_length() - block.input_ids.shape[1]
        keep_accepted_path(cache, start, [0] + [1 + n for n in accepted])
        assert layer.keys.untyped_storage().nbytes() <= (start + block.input_ids.shape[1]) * per_position
        committed += [root] + [tokens[n] for n in accepted]
        root, root_position = 5 + round_index, root_position + 1 + len(accepted)  # the bonus is the next root
    assert cache.get_seq_length() == inputs["input_ids"].shape[1] - 1 + len(committed)
    _assert_same_cache(cache, _fresh_cache(model, inputs, committed[1:]))
