"""Helpers for the tree tests: random trees, a synthetic context -> distribution "model", exact enumeration.

Exact enumeration: the sampling rules draw all their randomness through a `Sampler` (a biased coin and a categorical
draw). :func:`exact_distribution` runs a program once per complete sequence of random choices (a depth-first walk
over the choice tree, zero-probability branches skipped) and sums each outcome's probability, so a test compares the
*exact* output distribution of the implementation with the target's -- no sampling noise, no tolerance beyond float
rounding.
"""

from __future__ import annotations

import functools
import zlib
from collections import defaultdict
from collections.abc import Callable, Hashable
from typing import Any

import torch
from hypothesis import strategies as st

from specvlm_hf.tree import ROOT, BlockInputs, TokenTree, draft_level_inputs, grow_dynamic_tree, verification_inputs


@st.composite
def random_trees(draw: st.DrawFn, max_nodes: int = 12, vocab: int = 16) -> TokenTree:
    """A random tree (any shape, parents before children) whose siblings carry distinct tokens."""
    n = draw(st.integers(0, max_nodes))
    tree = TokenTree()
    used: dict[int, set[int]] = defaultdict(set)
    for i in range(n):
        parent = draw(st.integers(ROOT, i - 1))
        free = [t for t in range(vocab) if t not in used[parent]]
        token = draw(st.sampled_from(free))
        used[parent].add(token)
        tree.add_nodes([parent], [token])
    return tree


class ContextModel:
    """A fixed random distribution over `vocab` tokens for every context (a tuple of tokens), float64.

    `sharpness` scales the random logits; `name` separates independent models (target vs draft).
    """

    def __init__(self, name: str, vocab: int, sharpness: float = 1.5) -> None:
        self.name, self.vocab, self.sharpness = name, vocab, sharpness

    @functools.cache  # noqa: B019 (the models live for the whole test session)
    def probs(self, context: tuple[int, ...]) -> torch.Tensor:
        seed = zlib.crc32(repr((self.name, self.vocab, context)).encode())
        generator = torch.Generator().manual_seed(seed)
        logits = torch.randn(self.vocab, generator=generator, dtype=torch.float64) * self.sharpness
        return torch.softmax(logits, dim=-1)

    def log_probs(self, context: tuple[int, ...]) -> torch.Tensor:
        return self.probs(context).log()


def path_tokens(tree: TokenTree, node: int) -> tuple[int, ...]:
    return tuple(tree.tokens[n] for n in tree.path_to(node))


class EnumeratingSampler:
    """A `Sampler` that follows a script of choice indices (then the first option) and records every choice."""

    def __init__(self, script: list[int]) -> None:
        self.script = script
        self.taken: list[int] = []
        self.widths: list[int] = []
        self.weight = 1.0

    def _pick(self, options: list[tuple[object, float]]) -> object:
        index = self.script[len(self.taken)] if len(self.taken) < len(self.script) else 0
        self.taken.append(index)
        self.widths.append(len(options))
        value, probability = options[index]
        self.weight *= probability
        return value

    def accept(self, probability: float) -> bool:
        options = [(True, probability), (False, 1.0 - probability)]
        return bool(self._pick([(v, w) for v, w in options if w > 0]))

    def categorical(self, probs: torch.Tensor) -> int:
        weights = probs.to(torch.float64)
        weights = (weights / weights.sum()).tolist()
        return int(self._pick([(i, w) for i, w in enumerate(weights) if w > 0]))


def exact_distribution(program: Callable[[EnumeratingSampler], Hashable]) -> dict[Hashable, float]:
    """The exact distribution of ``program(sampler)``'s result over all of the sampler's random choices."""
    result: dict[Hashable, float] = defaultdict(float)
    pending: list[list[int]] = [[]]
    while pending:
        script = pending.pop()
        sampler = EnumeratingSampler(script)
        outcome = program(sampler)
        result[outcome] += sampler.weight
        for j in range(len(script), len(sampler.taken)):
            pending.extend(sampler.taken[:j] + [alternative] for alternative in range(1, sampler.widths[j]))
    return dict(result)


def total_variation(a: dict[Hashable, float], b: dict[Hashable, float]) -> float:
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


# -- tiny real models -------------------------------------------------------------------------------------------------

#: Every supported family: Qwen2-VL / Qwen2.5-VL / Qwen3-VL have 4-row M-RoPE position ids, the LLaVA ones 1-D ids.
FAMILY_TYPES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl", "llava_onevision", "llava_next_video")
PER_TOKEN_INPUTS = ("attention_mask", "mm_token_type_ids")


@functools.cache
def family_setup(model_type: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A tiny random model of `model_type` (the smaller "draft" size: it builds fastest) and a one-video prompt. Every
    lm_head row is random with logit spread 1 (``emit="all"``, ``logit_std=1``), so every logit is informative and an
    absolute tolerance of 1e-5 is tight."""
    from specvlm_hf.testbed import tiny

    model = tiny.build_tiny_model(model_type, "draft", emit="all", logit_std=1.0)
    inputs = dict(tiny.make_inputs(tiny.build_processor(model_type), video=tiny.make_video()))
    return model, inputs


def prompt_positions(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The prompt's position ids as generate() builds them (4 rows for the Qwen families, 1-D for LLaVA)."""
    return model._prepare_position_ids_for_generation(inputs["input_ids"], dict(inputs))


def with_tokens(inputs: dict[str, torch.Tensor], tokens: list[int] | tuple[int, ...]) -> dict[str, torch.Tensor]:
    """`inputs` with `tokens` appended as ordinary text (per-token inputs extended to match)."""
    extended = dict(inputs)
    extra = torch.tensor([list(tokens)], dtype=torch.long)
    extended["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=-1)
    for key in PER_TOKEN_INPUTS:
        if key in inputs:
            fill = torch.ones_like(extra) if key == "attention_mask" else torch.zeros_like(extra)
            extended[key] = torch.cat([inputs[key], fill.to(inputs[key].dtype)], dim=-1)
    return extended


def without_last(inputs: dict[str, torch.Tensor], count: int = 1) -> dict[str, torch.Tensor]:
    """`inputs` with the last `count` prompt tokens removed (they must be text)."""
    cut = dict(inputs)
    for key in ("input_ids", *PER_TOKEN_INPUTS):
        if key in inputs:
            cut[key] = inputs[key][:, :-count]
    return cut


@torch.no_grad()
def last_logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The logits after the last token of one ordinary full forward (no cache: transformers computes the positions)."""
    return model(**inputs, logits_to_keep=1).logits[0, -1]


#: Ordinary text ids of every family's local tokenizer lie below this; drafted tokens stay below it (no placeholder).
TEXT_IDS = 1000


def fixed_tree() -> TokenTree:
    """Nine nodes over three levels, with branching at every level and ordinary text tokens."""
    tree = TokenTree()
    tree.add_nodes([ROOT, ROOT, ROOT], [301, 457, 612])
    tree.add_nodes([0, 0, 1], [333, 402, 871])
    tree.add_nodes([3, 3, 5], [519, 388, 740])
    return tree


@torch.no_grad()
def tree_forward(model: torch.nn.Module, inputs: dict[str, torch.Tensor], tree: TokenTree, *,
                 dtype: torch.dtype = torch.float32,
                 mutate: Callable[[BlockInputs], BlockInputs] | None = None) -> tuple[torch.Tensor, Any]:
    """Prefill all but the prompt's last token, then ONE forward over ``[root = last prompt token, *tree]``.

    Returns the block's logits ``(1 + len(tree), vocab)`` and the cache (prefix + block). `mutate` alters the tree
    inputs (negative controls)."""
    from transformers import DynamicCache

    positions = prompt_positions(model, inputs)
    prompt_length = inputs["input_ids"].shape[1]
    cache = DynamicCache(config=model.config)
    model(**without_last(inputs), position_ids=positions[..., :-1], past_key_values=cache, use_cache=True,
          logits_to_keep=1)
    block = verification_inputs(tree, int(inputs["input_ids"][0, -1]), prompt_length - 1, positions[..., -1] + 1,
                                dtype=dtype)
    if mutate is not None:
        block = mutate(block)
    out = model(input_ids=block.input_ids, attention_mask=block.attention_mask, position_ids=block.position_ids,
                past_key_values=cache, use_cache=True)
    return out.logits[0], cache


def text_only(log_probs: torch.Tensor) -> torch.Tensor:
    """Rows restricted to ordinary text ids (a random model must not draft a placeholder token)."""
    restricted = log_probs.clone()
    restricted[..., TEXT_IDS:] = float("-inf")
    return restricted


@torch.no_grad()
def grow_draft_tree(model: torch.nn.Module, inputs: dict[str, torch.Tensor], *, depth: int, top_k: int, total: int
                    ) -> tuple[TokenTree, Any, dict[tuple[int, ...], torch.Tensor]]:
    """Use `model` as a draft: prefill the whole prompt (root included), then EAGLE-2 levels, one forward per level
    with `draft_level_inputs`. Returns the kept tree, the cache (prompt + fed nodes) and the logits the draft
    produced after the root and after every fed node, keyed by token path."""
    from transformers import DynamicCache

    positions = prompt_positions(model, inputs)
    prompt_length = inputs["input_ids"].shape[1]
    cache = DynamicCache(config=model.config)
    root_logits = model(**inputs, position_ids=positions, past_key_values=cache, use_cache=True,
                        logits_to_keep=1).logits[0, -1]
    seen = {(): root_logits}

    def step(tree: TokenTree, frontier: list[int]) -> torch.Tensor:
        block = draft_level_inputs(tree, frontier, prompt_length, positions[..., -1] + 1)
        logits = model(input_ids=block.input_ids, attention_mask=block.attention_mask,
                       position_ids=block.position_ids, past_key_values=cache, use_cache=True).logits[0]
        seen.update({path_tokens(tree, node): row for node, row in zip(frontier, logits)})
        return text_only(torch.log_softmax(logits, dim=-1))

    tree = grow_dynamic_tree(text_only(torch.log_softmax(root_logits, dim=-1)), step, depth=depth, top_k=top_k,
                             total=total)
    return tree, cache, seen
