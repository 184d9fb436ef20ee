"""The tree mask and per-node positions on tiny real models of every family, through sdpa and eager.

The key correctness property of tree verification: the logits of every node from ONE forward over ``[root, *tree]``
(4-D mask + depth-based positions, `verification_inputs`) equal, in float32 within 1e-5, the logits of running that
node's root-to-node path as its own ordinary sequence, where transformers computes every position itself (the M-RoPE
rows of the Qwen families included). The same holds for the draft's level forwards (`draft_level_inputs`). Negative
controls show that the comparison catches wrong positions, a causal mask and a bool mask under eager.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

import pytest
import torch
from tree_testing import (
    FAMILY_TYPES,
    family_setup,
    fixed_tree,
    grow_draft_tree,
    last_logits,
    path_tokens,
    tree_forward,
    with_tokens,
)

from specvlm_hf.tree import tree_attention_mask

ATOL = 1e-5


@contextlib.contextmanager
def attention(model: torch.nn.Module, implementation: str):
    model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        model.set_attn_implementation("sdpa")


@functools.cache
def _path_references(model_type: str, implementation: str) -> torch.Tensor:
    """Row 0: logits after the prompt; row 1 + i: after the prompt and node i's path, each an ordinary forward."""
    model, inputs = family_setup(model_type)
    tree = fixed_tree()
    with attention(model, implementation):
        rows = [last_logits(model, inputs)]
        rows += [last_logits(model, with_tokens(inputs, path_tokens(tree, n))) for n in range(len(tree))]
    return torch.stack(rows)


MASKS = [("sdpa", torch.float32), ("sdpa", torch.bool), ("eager", torch.float32)]


@pytest.mark.parametrize(("implementation", "dtype"), MASKS, ids=["sdpa-additive", "sdpa-bool", "eager-additive"])
@pytest.mark.parametrize("model_type", FAMILY_TYPES)
def test_one_tree_forward_equals_every_path_alone(model_type, implementation, dtype):
    model, inputs = family_setup(model_type)
    with attention(model, implementation):
        logits, _ = tree_forward(model, inputs, fixed_tree(), dtype=dtype)
    reference = _path_references(model_type, implementation)
    assert logits.shape == reference.shape
    assert (logits - reference).abs().max().item() < ATOL


def _sequential_positions(block):
    """Positions as if the block were one chain (what a tree must NOT use)."""
    start = block.position_ids[..., :1]
    steps = torch.arange(block.position_ids.shape[-1])
    return dataclasses.replace(block, position_ids=start + steps)


def _causal_mask(block):
    chain = torch.arange(-1, block.input_ids.shape[1] - 1)
    past = block.attention_mask.shape[-1] - block.input_ids.shape[1]
    return dataclasses.replace(block, attention_mask=tree_attention_mask(chain, past))


def _bool_mask(block):
    return dataclasses.replace(block, attention_mask=block.attention_mask == 0)


CONTROLS = [("sdpa", _sequential_positions), ("sdpa", _causal_mask), ("eager", _bool_mask)]


@pytest.mark.parametrize(("implementation", "mutate"), CONTROLS, ids=["chain-positions", "causal-mask", "eager-bool"])
@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "llava_onevision"])
def test_the_comparison_catches_wrong_positions_and_masks(model_type, implementation, mutate):
    model, inputs = family_setup(model_type)
    with attention(model, implementation):
        logits, _ = tree_forward(model, inputs, fixed_tree(), mutate=mutate)
    assert (logits - _path_references(model_type, implementation)).abs().max().item() > 1e-2


@pytest.mark.parametrize("model_type", FAMILY_TYPES)
def test_draft_level_forwards_equal_every_path_alone(model_type):
    """EAGLE-2 growth with the model as its own draft: each level's forward over the frontier (keys = the draft
    prefix and every fed node) gives every fed node the logits of its own path run alone."""
    model, inputs = family_setup(model_type)
    tree, _, seen = grow_draft_tree(model, inputs, depth=3, top_k=2, total=10)
    assert len(seen) == 1 + 2 + 2  # the root, then two frontier nodes per level
    assert len(tree) == 2 + 4 + 4 and tree.depth == 3
    for path, logits in seen.items():
        assert (logits - last_logits(model, with_tokens(inputs, path))).abs().max().item() < ATOL
