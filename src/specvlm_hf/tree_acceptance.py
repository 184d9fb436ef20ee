"""Which nodes of a drafted token tree the target accepts: greedy and lossless multi-draft speculative sampling.

Pure functions over a :class:`~specvlm_hf.tree.TokenTree` and the target's rows from ONE verification forward over
``[root, *nodes]`` (`tree.verification_inputs`): row 0 is the target's processed distribution after the root, row
``1 + i`` after node ``i`` -- each row processed with that node's own path as history. Both rules walk down from the
root and return the accepted nodes (a root-to-node path) plus the target's bonus token after them.

**Greedy** (:func:`greedy_accept`): follow the child whose token is the target's argmax at its parent; the bonus is
the argmax at the last accepted node. Token-identical to greedy decoding with the target alone.

**Sampling** (:func:`sample_accept`): at each node, multi-draft speculative sampling over its children decides which
child (if any) is accepted; if none is, the bonus is drawn from the residual distribution. Lossless -- the committed
tokens have exactly the target's distribution -- when the rule matches how the children were drawn
(``TokenTree.drawn``). With target distribution ``p`` at the node and children ``x_1, x_2, ...`` in drawing order:

* ``"iid"``: children drawn independently from the draft's ``q`` -- SpecInfer's multi-step speculative sampling
  (Miao et al. 2023, "SpecInfer: Accelerating Generative LLM Serving with Tree-based Speculative Inference and
  Verification"): accept ``x_i`` with probability ``min(1, p(x_i) / q(x_i))``; on rejection
  ``p <- norm(max(p - q, 0))`` and ``q`` stays.
* ``"without_replacement"``: children drawn from ``q`` without replacement (equivalently: i.i.d. draws with repeats
  discarded) -- the recursive rule of Sequoia (Chen et al. 2024, "Sequoia: Scalable, Robust, and Hardware-aware
  Speculative Decoding") and Recursive Speculative Decoding (Jeon et al. 2024): the same test, and on rejection also
  ``q <- norm(q with x_i removed)``, the distribution the next child was actually drawn from.
* ``"deterministic"``: children fixed by the draft's ranking (static shapes, EAGLE-2's top-k) -- the same recursion
  with each ``q`` a point mass on its child: accept ``x_i`` with probability ``p(x_i)``, on rejection
  ``p <- norm(p with x_i removed)``. Overall this is "draw from ``p``; descend if the draw is a child".

Why each is exact: every test is a standard speculative-sampling step (Leviathan et al. 2023) whose draft token was
drawn from the ``q`` the rule uses, given everything that happened before it, so its output -- accepted token or, on
rejection, whatever the rest of the recursion produces from the residual -- has distribution ``p``. The tests in
``tests/test_tree_acceptance.py`` check it by exact enumeration, including a wrong rule (i.i.d. on top-k children) that
fails.

**Stop tokens**: when an accepted node's token stops generation (``is_stop(token)``), acceptance ends there with no
bonus; generation with the target alone would have stopped at the same token, so distributions stay exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from .tree import DETERMINISTIC, IID, ROOT, WITHOUT_REPLACEMENT, TokenTree

__all__ = ["Sampler", "TorchSampler", "TreeVerdict", "draw_children", "greedy_accept", "sample_accept"]

StopPredicate = Callable[[int], bool]


@dataclass(frozen=True)
class TreeVerdict:
    """The accepted nodes (root's child first), their tokens, and the bonus token (None after a stop token)."""

    path: list[int]
    tokens: list[int]
    bonus: int | None

    @property
    def accepted(self) -> int:
        return len(self.path)

    @property
    def new_tokens(self) -> list[int]:
        """What the round commits: the accepted tokens, then the bonus if there is one."""
        return self.tokens + ([] if self.bonus is None else [self.bonus])


class Sampler(Protocol):
    """The randomness of the sampling rules: a biased coin and a categorical draw (tests replace it by enumeration)."""

    def accept(self, probability: float) -> bool: ...

    def categorical(self, probs: torch.Tensor) -> int: ...


class TorchSampler:
    """:class:`Sampler` on torch's RNG: the global one by default, or `generator` (on the device of the rows)."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def accept(self, probability: float) -> bool:
        if probability >= 1.0:
            return True
        if probability <= 0.0:
            return False
        device = self.generator.device if self.generator is not None else "cpu"
        return bool(torch.rand((), generator=self.generator, device=device) < probability)

    def categorical(self, probs: torch.Tensor) -> int:
        if self.generator is not None:
            probs = probs.to(self.generator.device)
        return int(torch.multinomial(probs, 1, generator=self.generator))


def _children_lists(tree: TokenTree) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {ROOT: []}
    for node, parent in enumerate(tree.parents):
        children.setdefault(node, [])
        children[parent].append(node)
    return children


def _check_rows(tree: TokenTree, rows: torch.Tensor, name: str) -> None:
    if rows.ndim != 2 or rows.shape[0] != len(tree) + 1:
        raise ValueError(f"{name} must have one row for the root and one per node, shape ({len(tree) + 1}, vocab), "
                         f"got {tuple(rows.shape)}")


def greedy_accept(tree: TokenTree, target_scores: torch.Tensor, is_stop: StopPredicate | None = None) -> TreeVerdict:
    """Greedy walk: from the root, follow the child equal to the target's argmax at its parent.

    `target_scores` ``(len(tree) + 1, vocab)``: processed scores, row 0 after the root, row ``1 + i`` after node
    ``i``. Siblings should carry distinct tokens (top-k children do); otherwise the first match is followed.
    """
    _check_rows(tree, target_scores, "target_scores")
    choices = target_scores.argmax(dim=-1).tolist()
    children = _children_lists(tree)
    path: list[int] = []
    node = ROOT
    while True:
        wanted = choices[node + 1]
        child = next((c for c in children[node] if tree.tokens[c] == wanted), None)
        if child is None:
            return TreeVerdict(path, [tree.tokens[n] for n in path], wanted)
        path.append(child)
        if is_stop is not None and is_stop(wanted):
            return TreeVerdict(path, [tree.tokens[n] for n in path], None)
        node = child


def _normalised(row: torch.Tensor) -> torch.Tensor | None:
    total = row.sum()
    return row / total if float(total) > 0 else None


def _speculative_step(p: torch.Tensor, children: list[int], tree: TokenTree, q: torch.Tensor | None,
                      sampler: Sampler) -> tuple[int | None, int | None]:
    """One node's multi-draft speculative sampling (module docstring): ``(accepted child, None)`` or
    ``(None, token drawn from the final residual)``."""
    for child in children:
        x = tree.tokens[child]
        px = float(p[x])
        if q is None:  # deterministic child: q is a point mass on x
            probability = px
        else:
            qx = float(q[x])
            if qx <= 0.0:
                raise ValueError(f"node {child}'s token {x} has draft probability 0 in the row its children were "
                                 f"drawn from; with TokenTree.drawn={tree.drawn!r} that cannot happen")
            probability = min(1.0, px / qx)
        if sampler.accept(probability):
            return child, None
        if q is None:
            residual = p.clone()
            residual[x] = 0.0
        else:
            residual = (p - q).clamp_min_(0.0)
            if tree.drawn == WITHOUT_REPLACEMENT:
                q = q.clone()
                q[x] = 0.0
                q = _normalised(q)
                if q is None:  # the draft's whole support was drawn: no later child can exist
                    q = torch.zeros_like(p)
        normalised = _normalised(residual)
        if normalised is None:
            # Only reachable by rounding: an empty residual means p <= q everywhere, i.e. p == q, where rejection
            # has probability 0. Keep p without the rejected token.
            residual = p.clone()
            residual[x] = 0.0
            normalised = _normalised(residual)
        p = normalised if normalised is not None else p
    return None, sampler.categorical(p)


def sample_accept(tree: TokenTree, target_probs: torch.Tensor, sampler: Sampler | None = None,
                  is_stop: StopPredicate | None = None) -> TreeVerdict:
    """Lossless tree speculative sampling with the rule for ``tree.drawn`` (module docstring).

    `target_probs` ``(len(tree) + 1, vocab)``: the target's sampling distributions (softmax of the processed scores),
    row 0 after the root, row ``1 + i`` after node ``i``. For sampled children, ``tree.child_probs`` must hold the
    draft's distribution for the root and every node with children. `sampler` defaults to torch's global RNG.
    """
    _check_rows(tree, target_probs, "target_probs")
    sampler = sampler if sampler is not None else TorchSampler()
    children = _children_lists(tree)
    path: list[int] = []
    node = ROOT
    while True:
        p = target_probs[node + 1].to(torch.float64)
        p = p / p.sum()
        q = None
        if tree.drawn != DETERMINISTIC and children[node]:
            if node not in tree.child_probs:
                raise ValueError(f"TokenTree.drawn={tree.drawn!r} needs the draft's row for every node with children "
                                 f"in child_probs; node {node} has none")
            q = tree.child_probs[node].to(device=p.device, dtype=torch.float64)
            q = q / q.sum()
        child, bonus = _speculative_step(p, children[node], tree, q, sampler)
        if child is None:
            return TreeVerdict(path, [tree.tokens[n] for n in path], bonus)
        path.append(child)
        if is_stop is not None and is_stop(tree.tokens[child]):
            return TreeVerdict(path, [tree.tokens[n] for n in path], None)
        node = child


def draw_children(probs: torch.Tensor, count: int, drawn: str, sampler: Sampler | None = None) -> list[int]:
    """`count` child tokens from the draft distribution `probs`, the way ``drawn`` says (the rule checks them).

    ``"deterministic"``: the top `count`; ``"iid"``: independent draws (repeats possible); ``"without_replacement"``:
    sequential draws, each from the rest renormalised (fewer than `count` if the support runs out).
    """
    if drawn == DETERMINISTIC:
        return probs.topk(min(count, probs.numel())).indices.tolist()
    sampler = sampler if sampler is not None else TorchSampler()
    if drawn == IID:
        return [sampler.categorical(probs) for _ in range(count)]
    if drawn != WITHOUT_REPLACEMENT:
        raise ValueError(f"drawn must be 'deterministic', 'iid' or 'without_replacement', got {drawn!r}")
    rest: torch.Tensor | None = probs.to(torch.float64)
    tokens: list[int] = []
    while rest is not None and len(tokens) < count:
        token = sampler.categorical(rest)
        tokens.append(token)
        rest = rest.clone()
        rest[token] = 0.0
        rest = _normalised(rest)
    return tokens
