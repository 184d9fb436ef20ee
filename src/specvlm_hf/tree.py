"""Token trees for tree drafting: the tree, static and dynamic (EAGLE-2) expansion, tree masks and positions.

A round of tree drafting proposes a *token tree* below the last committed token (the **root**, which is not a node):
each node is one drafted token whose parent is another node or the root (``ROOT`` = -1). The target verifies every
node in ONE forward; a 4-D attention mask lets each node see the committed prefix, its ancestors and itself only, and
each node sits at the position it would have in its own root-to-node sequence (the root's children at the root's
position + 1, their children at + 2, ...). A chain is the tree with one child per node.

Conventions used throughout (`tree_acceptance`, `cache_ops` and the decoding loop rely on them):

* Nodes are numbered in the order they were added, level by level, so a parent always has a smaller index than its
  children and a root-to-node path is increasing. Siblings are numbered in the draft's rank (or drawing) order.
* ``depth`` 0 is a child of the root: a node at depth ``d`` sits at position ``root + 1 + d``.
* The draft *feeds* a node when it runs a forward on it to score its children; the fed nodes, in feeding order, are
  what the draft appends to its cache after the root, so ``TokenTree.slots[node]`` is the node's position in that
  block (``None`` for nodes it never fed, e.g. leaves). The target feeds ``[root, *nodes]``.

Proposers are pure functions of the draft's scores: :func:`grow_static_tree` (a fixed shape of child ranks,
Medusa/EAGLE "choices" style) and :func:`grow_dynamic_tree` (EAGLE-2: expand the best frontier by cumulative draft
log-probability, keep the best nodes overall). Both call a ``step(tree, frontier)`` callback once per level -- one
draft forward over the whole frontier (:func:`draft_level_inputs` builds its inputs) -- and pick children
deterministically (top-ranked), which `tree_acceptance.sample_accept` verifies with the point-mass rule.

Masks follow transformers 5.23/5.24 ``masking_utils``: a 4-D ``attention_mask`` of shape ``(batch, 1, q_len,
kv_len)`` is returned unchanged by ``_preprocess_mask_arguments`` and reaches the attention function as is. ``sdpa``
takes a bool mask (True = attend) or an additive float mask in the query's dtype; ``eager`` *adds* the mask to the
attention scores, so it needs the float form (a bool mask would silently be added as 0/1). Flash-attention kernels
take no tree mask at all (:func:`check_tree_attention`).
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch

__all__ = [
    "CHILD_DRAWS",
    "DEFAULT_TREE_PATHS",
    "DETERMINISTIC",
    "IID",
    "ROOT",
    "TREE_ATTENTION",
    "WITHOUT_REPLACEMENT",
    "BlockInputs",
    "DraftStep",
    "StaticTreeShape",
    "TokenTree",
    "ancestor_matrix",
    "best_nodes",
    "block_parents",
    "check_tree_attention",
    "draft_level_inputs",
    "grow_dynamic_tree",
    "grow_static_tree",
    "paths_by_acceptance",
    "tree_attention_mask",
    "tree_position_ids",
    "validate_tree_paths",
    "verification_inputs",
]

ROOT = -1

#: How the children of a node were chosen -- the sampling acceptance rule must match it (`tree_acceptance`).
#: "deterministic": the draft's top-ranked tokens (static shapes, EAGLE-2); "without_replacement": sampled from the
#: draft's distribution without replacement, in drawing order; "iid": sampled independently (duplicates possible).
DETERMINISTIC = "deterministic"
WITHOUT_REPLACEMENT = "without_replacement"
IID = "iid"
CHILD_DRAWS = (DETERMINISTIC, WITHOUT_REPLACEMENT, IID)

#: Attention implementations that honour a 4-D tree mask.
TREE_ATTENTION = ("sdpa", "eager")


# -- the tree ---------------------------------------------------------------------------------------------------------


@dataclass
class TokenTree:
    """A drafted token tree, built level by level (module docstring: numbering, depths, slots).

    Attributes:
        tokens / parents / depths: per node; ``parents[i]`` is a smaller node index or ``ROOT``.
        scores: per node, the cumulative draft log-probability of its root-to-node path (0 for the root).
        slots: per node, its position among the nodes the draft fed (its draft-cache slot after the root), or None.
        child_probs: the draft's processed probability row the children of a node (or of ``ROOT``) were drawn from,
            for the nodes whose row was kept. The sampling rules for sampled children need it; greedy and
            deterministic children do not.
        drawn: how children were chosen, one of :data:`CHILD_DRAWS`.
    """

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    slots: list[int | None] = field(default_factory=list)
    child_probs: dict[int, torch.Tensor] = field(default_factory=dict)
    drawn: str = DETERMINISTIC

    def __post_init__(self) -> None:
        if self.drawn not in CHILD_DRAWS:
            raise ValueError(f"TokenTree.drawn must be one of {CHILD_DRAWS}, got {self.drawn!r}")

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def depth(self) -> int:
        """Number of levels (0 for an empty tree)."""
        return max(self.depths, default=-1) + 1

    def add_nodes(self, parents: Iterable[int], tokens: Iterable[int], scores: Iterable[float] | None = None
                  ) -> list[int]:
        """Append nodes (one level or part of one) and return their indices. Parents must already exist."""
        parents, tokens = [int(p) for p in parents], [int(t) for t in tokens]
        scores = [0.0] * len(tokens) if scores is None else [float(s) for s in scores]
        if not len(parents) == len(tokens) == len(scores):
            raise ValueError(f"add_nodes needs one parent, token and score per node, got {len(parents)} parents, "
                             f"{len(tokens)} tokens and {len(scores)} scores")
        first = len(self.tokens)
        for parent, token, score in zip(parents, tokens, scores):
            if not ROOT <= parent < first:
                raise ValueError(f"a node's parent must be ROOT (-1) or an existing node (< {first}), got {parent}")
            self.tokens.append(token)
            self.parents.append(parent)
            self.depths.append(0 if parent == ROOT else self.depths[parent] + 1)
            self.scores.append(score)
            self.slots.append(None)
        return list(range(first, len(self.tokens)))

    def mark_fed(self, nodes: Iterable[int]) -> None:
        """Record that the draft feeds `nodes` now, in this order (they take the next draft-cache slots)."""
        next_slot = sum(slot is not None for slot in self.slots)
        for node in nodes:
            if self.slots[node] is not None:
                raise ValueError(f"node {node} was already fed to the draft (slot {self.slots[node]})")
            parent = self.parents[node]
            if parent != ROOT and self.slots[parent] is None:
                raise ValueError(f"node {node} cannot be fed before its parent {parent}")
            self.slots[node] = next_slot
            next_slot += 1

    def fed_nodes(self) -> list[int]:
        """The nodes the draft fed, in feeding (= draft-cache) order."""
        fed = [(slot, node) for node, slot in enumerate(self.slots) if slot is not None]
        return [node for _, node in sorted(fed)]

    def children(self, node: int) -> list[int]:
        """The children of `node` (or of ``ROOT``), in rank / drawing order."""
        return [i for i, parent in enumerate(self.parents) if parent == node]

    def path_to(self, node: int) -> list[int]:
        """The nodes from the root's child down to `node`."""
        path = []
        while node != ROOT:
            path.append(node)
            node = self.parents[node]
        return path[::-1]

    def select(self, nodes: Iterable[int]) -> TokenTree:
        """The subtree made of `nodes` (renumbered in their original order); every kept node's parent must be kept."""
        kept = sorted({int(n) for n in nodes})
        new_index = {ROOT: ROOT} | {old: new for new, old in enumerate(kept)}
        missing = [n for n in kept if self.parents[n] not in new_index]
        if missing:
            raise ValueError(f"select() keeps nodes {missing} without their parents; keep a node only with all its "
                             "ancestors")
        return TokenTree(
            tokens=[self.tokens[n] for n in kept],
            parents=[new_index[self.parents[n]] for n in kept],
            depths=[self.depths[n] for n in kept],
            scores=[self.scores[n] for n in kept],
            slots=[self.slots[n] for n in kept],
            child_probs={new_index[n]: row for n, row in self.child_probs.items() if n in new_index},
            drawn=self.drawn,
        )

    def tokens_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.tensor(self.tokens, dtype=torch.long, device=device)

    def parents_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.tensor(self.parents, dtype=torch.long, device=device)

    def depths_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.tensor(self.depths, dtype=torch.long, device=device)


# -- static trees -----------------------------------------------------------------------------------------------------


def validate_tree_paths(paths: Any, *, argument: str = "tree_paths") -> tuple[tuple[int, ...], ...]:
    """`paths` as a tuple of rank tuples in node order (by depth, then by ranks), or a ValueError naming `argument`.

    A path lists child ranks from the root: ``(0,)`` is the draft's best token, ``(0, 1)`` the second-best child of
    that node. Every path must be a non-empty sequence of integers >= 0, appear once, and have all its prefixes
    present (a node needs its parent).
    """
    hint = f"e.g. {argument}=((0,), (1,), (0, 0), (0, 1)): non-empty tuples of child ranks >= 0, every prefix listed"
    if isinstance(paths, (str, bytes)) or not isinstance(paths, Iterable):
        raise ValueError(f"`{argument}` must be a sequence of paths of child ranks, got {paths!r}; {hint}")
    normalised: list[tuple[int, ...]] = []
    for path in paths:
        if isinstance(path, (str, bytes)) or not isinstance(path, Iterable):
            raise ValueError(f"`{argument}` contains {path!r}, which is not a sequence of child ranks; {hint}")
        ranks = tuple(path)
        if not ranks or any(isinstance(r, bool) or not isinstance(r, int) or r < 0 for r in ranks):
            raise ValueError(f"`{argument}` contains {path!r}: a path must be a non-empty sequence of integers "
                             f">= 0; {hint}")
        normalised.append(ranks)
    if not normalised:
        raise ValueError(f"`{argument}` is empty; {hint}")
    seen = set()
    for ranks in normalised:
        if ranks in seen:
            raise ValueError(f"`{argument}` lists the path {ranks} twice; list every node once")
        seen.add(ranks)
    for ranks in normalised:
        if len(ranks) > 1 and ranks[:-1] not in seen:
            raise ValueError(f"`{argument}` has the path {ranks} but not its parent {ranks[:-1]}; add every prefix of "
                             "a path (a node needs its parent)")
    return tuple(sorted(normalised, key=lambda ranks: (len(ranks), ranks)))


def paths_by_acceptance(rank_acceptance: Sequence[float], nodes: int, depth: int) -> tuple[tuple[int, ...], ...]:
    """The `nodes` most probable paths of at most `depth` ranks under a rank-acceptance profile (node order).

    Model (Medusa's and Sequoia's tree construction, position-independent form): the target's next token is the
    draft's rank-``r`` token with probability ``rank_acceptance[r]`` at every node, independently along a path, so a
    path is accepted with the product of its ranks' probabilities and the expected number of accepted tokens of a
    tree is the sum of those products over its nodes. The products shrink along a path, so the top `nodes` (ties:
    shallower, then lower ranks first) are ancestor-closed and maximise that expectation. Products are computed in
    exact rational arithmetic, so ties are real ties.
    """
    profile = [Fraction(str(a)) for a in rank_acceptance]
    if not profile or any(not 0 < a <= 1 for a in profile) or sum(profile) > 1:
        raise ValueError(f"rank_acceptance must be probabilities in (0, 1] summing to at most 1, got {rank_acceptance}")
    if nodes < 1 or depth < 1:
        raise ValueError(f"paths_by_acceptance needs nodes >= 1 and depth >= 1, got nodes={nodes}, depth={depth}")

    def entry(ranks: tuple[int, ...], probability: Fraction) -> tuple[Fraction, int, tuple[int, ...]]:
        return (-probability, len(ranks), ranks)

    heap = [entry((r,), a) for r, a in enumerate(profile)]
    heapq.heapify(heap)
    chosen: list[tuple[int, ...]] = []
    while heap and len(chosen) < nodes:
        negative, _, ranks = heapq.heappop(heap)
        chosen.append(ranks)
        if len(ranks) < depth:
            for r, a in enumerate(profile):
                heapq.heappush(heap, entry(ranks + (r,), -negative * a))
    return validate_tree_paths(chosen)


#: Assumed probability that the target's next token is the draft's rank-r token. Rank 0: ~0.8, the per-token
#: acceptance of the chain on the trained testbed pair at keep 0.1 (accept histogram [268, 364, 352, 157, 142, 611]
#: over 1894 rounds: 86% of first tokens, 0.8 per token on average). Ranks 1-3 catch a decreasing share of the
#: remaining 20% (40%, 15%, 7.5%), the usual shape of draft top-k accuracy. A measured profile should replace it.
DEFAULT_RANK_ACCEPTANCE = (0.8, 0.08, 0.03, 0.015)

#: The built-in static tree: 25 nodes, depth 5 (the SpecVLM decoder's budget: ~25 verified nodes at depth 5). It is the
#: expected-acceptance-optimal tree for :data:`DEFAULT_RANK_ACCEPTANCE` (:func:`paths_by_acceptance`): the full chain
#: of best tokens (so it never drafts less deeply than a chain of 5), plus second- and third-best branches where they
#: are most likely to be needed -- 3, 5, 6, 5 and 6 nodes per level, ranks <= 2 (top-3 children per fed node). Under
#: that profile its expected accepted drafts per round is 3.49 against 2.69 for the chain of 5.
DEFAULT_TREE_PATHS = paths_by_acceptance(DEFAULT_RANK_ACCEPTANCE, nodes=25, depth=5)


@dataclass(frozen=True)
class StaticTreeShape:
    """A validated static tree of child ranks: node ``i`` is ``paths[i]`` (node order as in :class:`TokenTree`)."""

    paths: tuple[tuple[int, ...], ...]

    @classmethod
    def from_paths(cls, paths: Any = DEFAULT_TREE_PATHS, *, argument: str = "tree_paths") -> StaticTreeShape:
        return cls(validate_tree_paths(paths, argument=argument))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def depth(self) -> int:
        return len(self.paths[-1])

    @functools.cached_property
    def parents(self) -> tuple[int, ...]:
        index = {path: i for i, path in enumerate(self.paths)}
        return tuple(index[path[:-1]] if len(path) > 1 else ROOT for path in self.paths)

    def level(self, depth: int) -> list[int]:
        """The nodes at `depth` (0 = children of the root)."""
        return [i for i, path in enumerate(self.paths) if len(path) == depth + 1]

    def frontier(self, depth: int) -> list[int]:
        """The nodes whose children sit at `depth`, i.e. what the draft feeds to expand that level (``[ROOT]`` for 0)."""
        if depth == 0:
            return [ROOT]
        parents = self.parents
        return sorted({parents[i] for i in self.level(depth)})

    def top_k(self, depth: int) -> int:
        """How many ranked children per frontier node level `depth` reads (highest rank + 1)."""
        return max(self.paths[i][-1] for i in self.level(depth)) + 1

    def expand_level(self, depth: int, ranked_tokens: torch.Tensor, ranked_log_probs: torch.Tensor
                     ) -> tuple[list[int], list[int], list[float]]:
        """The nodes the shape keeps at `depth`: ``(parents, tokens, log_probs)``.

        `ranked_tokens` / `ranked_log_probs` are ``(len(frontier(depth)), k)`` with ``k >= top_k(depth)``: each
        frontier node's best children, best first (as ``topk`` returns them). Each node of the level takes its
        parent's row and its own rank.
        """
        frontier = self.frontier(depth)
        if ranked_tokens.shape[0] != len(frontier) or ranked_tokens.shape[-1] < self.top_k(depth):
            raise ValueError(f"level {depth} needs the top {self.top_k(depth)} children of {len(frontier)} frontier "
                             f"nodes, got ranked tokens of shape {tuple(ranked_tokens.shape)}")
        row_of = {node: row for row, node in enumerate(frontier)}
        parents_all = self.parents
        level = self.level(depth)
        rows = torch.tensor([row_of[parents_all[i]] for i in level], device=ranked_tokens.device)
        ranks = torch.tensor([self.paths[i][-1] for i in level], device=ranked_tokens.device)
        tokens = ranked_tokens[rows, ranks].tolist()
        log_probs = ranked_log_probs[rows, ranks].tolist()
        return [parents_all[i] for i in level], tokens, log_probs


# -- proposers --------------------------------------------------------------------------------------------------------

#: ``step(tree, frontier)``: the draft feeds the `frontier` nodes (already marked fed, the last slots of the tree)
#: in one forward and returns its processed log-probability rows for their children, ``(len(frontier), vocab)``.
DraftStep = Callable[[TokenTree, list[int]], torch.Tensor]


def grow_static_tree(shape: StaticTreeShape, root_log_probs: torch.Tensor, step: DraftStep, *,
                     keep_probs: bool = False) -> TokenTree:
    """Draft the static `shape` below the root: one `step` per level after the first (only nodes with children
    are fed). `root_log_probs` is the draft's processed log-probability row after the root; ``keep_probs`` stores
    each fed node's row as probabilities in ``child_probs``."""
    tree = TokenTree()
    rows = root_log_probs.reshape(1, -1)
    for depth in range(shape.depth):
        frontier = shape.frontier(depth)
        if keep_probs:
            tree.child_probs.update({node: row.exp() for node, row in zip(frontier, rows)})
        values, tokens = rows.topk(shape.top_k(depth), dim=-1)
        parents, level_tokens, log_probs = shape.expand_level(depth, tokens, values)
        base = [0.0 if p == ROOT else tree.scores[p] for p in parents]
        tree.add_nodes(parents, level_tokens, [b + lp for b, lp in zip(base, log_probs)])
        if depth + 1 < shape.depth:
            frontier = shape.frontier(depth + 1)
            tree.mark_fed(frontier)
            rows = step(tree, frontier)
    return tree


def best_nodes(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` highest `scores` in increasing order; ties go to the lower index.

    With node scores that never increase from a parent to its child (cumulative log-probabilities) and parents
    numbered before their children, the result is ancestor-closed: a parent ranks at or before each of its children.
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    return torch.sort(order[:count]).values


def grow_dynamic_tree(root_log_probs: torch.Tensor, step: DraftStep, *, depth: int, top_k: int, total: int,
                      keep_probs: bool = False) -> TokenTree:
    """EAGLE-2's dynamic tree (Li et al. 2024, "EAGLE-2: Faster Inference of Language Models with Dynamic Draft
    Trees", §4): `depth` levels; every frontier node gets its `top_k` best children, the `top_k` of those with the
    highest cumulative draft log-probability form the next frontier (one `step` per level), and after the last
    level the `total` best nodes overall are kept (ancestor-closed, see :func:`best_nodes`)."""
    for name, value in (("depth", depth), ("top_k", top_k), ("total", total)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"grow_dynamic_tree needs {name} >= 1 (an integer), got {value!r}")
    tree = TokenTree()
    frontier = [ROOT]
    frontier_scores = torch.zeros(1, dtype=torch.float64, device=root_log_probs.device)
    rows = root_log_probs.reshape(1, -1)
    k = min(top_k, rows.shape[-1])
    for level in range(depth):
        if keep_probs:
            tree.child_probs.update({node: row.exp() for node, row in zip(frontier, rows)})
        values, tokens = rows.topk(k, dim=-1)
        cumulative = (frontier_scores[:, None] + values.to(torch.float64)).flatten()
        parents = [node for node in frontier for _ in range(k)]
        new = tree.add_nodes(parents, tokens.flatten().tolist(), cumulative.tolist())
        if level + 1 == depth:
            break
        chosen = best_nodes(cumulative, top_k)
        frontier = [new[i] for i in chosen.tolist()]
        frontier_scores = cumulative[chosen]
        tree.mark_fed(frontier)
        rows = step(tree, frontier)
    scores = torch.tensor(tree.scores, dtype=torch.float64)
    return tree.select(best_nodes(scores, total).tolist())


# -- masks and positions ----------------------------------------------------------------------------------------------


def _check_parents(parents: torch.Tensor) -> None:
    if parents.ndim != 1:
        raise ValueError(f"parents must be a 1-D tensor of node indices, got shape {tuple(parents.shape)}")
    index = torch.arange(parents.numel(), device=parents.device)
    if bool(((parents < ROOT) | (parents >= index)).any()):
        raise ValueError(f"every parent must be -1 or an earlier node, got {parents.tolist()}")


def ancestor_matrix(parents: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` bool: ``[i, j]`` is True when node ``j`` is node ``i`` or one of its ancestors.

    `parents` is 1-D, ``parents[i]`` < i or -1 (attached to what precedes the block). One tensor step per level.
    """
    _check_parents(parents)
    n = parents.numel()
    visible = torch.eye(n, dtype=torch.bool, device=parents.device)
    rows = torch.arange(n, device=parents.device)
    current = parents.clone()
    while True:
        valid = current >= 0
        if not bool(valid.any()):
            return visible
        visible[rows[valid], current[valid]] = True
        current = torch.where(valid, parents[current.clamp_min(0)], current)


def tree_attention_mask(parents: torch.Tensor, past_length: int, *, num_queries: int | None = None,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 4-D mask ``(1, 1, q, past_length + n)`` for a block of `n` tree nodes appended to `past_length` keys.

    The block's nodes (`parents` in block numbering, -1 = attached to the past only) are the last `n` keys; the
    queries are the block's last `num_queries` nodes (default: all of them). Each query sees every past key, its
    ancestors in the block and itself. ``dtype=torch.bool`` gives True = attend (sdpa only); a floating dtype gives
    the additive form, 0 or the dtype's minimum (sdpa and eager; use the model's dtype).
    """
    visible = ancestor_matrix(parents)
    queries = visible.shape[0] if num_queries is None else num_queries
    if not 0 < queries <= visible.shape[0]:
        raise ValueError(f"num_queries must be in [1, {visible.shape[0]}], got {num_queries}")
    past = torch.ones(queries, past_length, dtype=torch.bool, device=parents.device)
    allowed = torch.cat([past, visible[-queries:]], dim=-1)[None, None]
    if dtype == torch.bool:
        return allowed
    mask = torch.zeros(allowed.shape, dtype=dtype, device=parents.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)


def block_parents(parents: Sequence[int], nodes: Sequence[int]) -> torch.Tensor:
    """The parents of `nodes` (tree numbering) renumbered within `nodes`; -1 stays the root.

    Every parent that is a tree node must be in `nodes` before its child (true of fed nodes in slot order).
    """
    position = {node: i for i, node in enumerate(nodes)}
    result = []
    for i, node in enumerate(nodes):
        parent = parents[node]
        if parent == ROOT:
            result.append(ROOT)
        elif position.get(parent, len(nodes)) < i:
            result.append(position[parent])
        else:
            raise ValueError(f"node {node}'s parent {parent} must come before it in the block")
    return torch.tensor(result, dtype=torch.long)


def tree_position_ids(next_positions: torch.Tensor | int, depths: torch.Tensor) -> torch.Tensor:
    """Per-node position ids: ``next_positions[..., None] + depths``.

    `next_positions` is the position the root's children take in every position row, with the shape of one column of
    the model's ``position_ids`` (``(batch,)`` for 1-D positions; ``(rows, batch)`` for M-RoPE, e.g. Qwen-VL's 4 rows:
    text + temporal/height/width, which all advance by one per generated text token). Depth -1 is the root itself.
    Returns ``(..., batch, n)``.
    """
    start = torch.as_tensor(next_positions, dtype=torch.long, device=depths.device)
    if start.ndim == 0:
        start = start.reshape(1)
    return start[..., None] + depths.to(torch.long)


def check_tree_attention(model: torch.nn.Module, *, argument: str = "draft_tree") -> None:
    """Raise a ValueError unless `model`'s language model runs an attention that takes a 4-D tree mask."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    implementation = getattr(config, "_attn_implementation", None) or "eager"
    if implementation not in TREE_ATTENTION:
        raise ValueError(
            f"`{argument}` verifies a token tree with a 4-D attention mask, which {type(model).__name__}'s attention "
            f"implementation {implementation!r} cannot take. Load the model with attn_implementation='sdpa' (or "
            f"'eager'), or use {argument}='chain'."
        )


@dataclass(frozen=True)
class BlockInputs:
    """One forward's tree inputs: ``input_ids (1, q)``, ``attention_mask (1, 1, q, kv)``, ``position_ids``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor


def verification_inputs(tree: TokenTree, root_token: int, past_length: int, next_positions: torch.Tensor | int, *,
                        dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> BlockInputs:
    """The target's verification forward over ``[root, *nodes]`` on a cache of `past_length` tokens (the root is
    not in it yet): row 0 of the logits scores the root's children, row ``1 + i`` node ``i``'s children."""
    parents = torch.tensor([ROOT] + [p + 1 for p in tree.parents], dtype=torch.long, device=device)
    depths = torch.tensor([-1] + tree.depths, dtype=torch.long, device=device)
    return BlockInputs(
        input_ids=torch.tensor([[root_token, *tree.tokens]], dtype=torch.long, device=device),
        attention_mask=tree_attention_mask(parents, past_length, dtype=dtype),
        position_ids=tree_position_ids(next_positions, depths),
    )


def draft_level_inputs(tree: TokenTree, frontier: Sequence[int], past_length: int,
                       next_positions: torch.Tensor | int, *, dtype: torch.dtype = torch.float32,
                       device: torch.device | str | None = None) -> BlockInputs:
    """The draft's level forward over `frontier` (the last fed nodes, see :meth:`TokenTree.mark_fed`).

    The draft cache holds `past_length` tokens (root included) then the earlier fed nodes; each frontier node sees
    all of the past, its fed ancestors and itself.
    """
    fed = tree.fed_nodes()
    if list(frontier) != fed[len(fed) - len(frontier):]:
        raise ValueError(f"the frontier {list(frontier)} must be the last nodes fed to the draft ({fed})")
    parents = block_parents(tree.parents, fed).to(device)
    depths = torch.tensor([tree.depths[n] for n in frontier], dtype=torch.long, device=device)
    return BlockInputs(
        input_ids=torch.tensor([[tree.tokens[n] for n in frontier]], dtype=torch.long, device=device),
        attention_mask=tree_attention_mask(parents, past_length, num_queries=len(frontier), dtype=dtype),
        position_ids=tree_position_ids(next_positions, depths),
    )
