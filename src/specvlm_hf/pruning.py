"""Video-token selection for the draft model: scorers and the two-stage SpecVLM rule.

Pure tensor functions, no model code. Given one non-negative score per video token (the verifier's
attention from the query tokens, or the hidden-state similarity of ``scorer="similarity"``, renormalised
over the video tokens), :func:`select_video_tokens` returns the indices of the video tokens the draft
model keeps:

* **Stage I (score-guided)** -- the smallest top-scored set whose cumulative score reaches
  ``stage1_mass`` of the video mass, capped at ``stage1_max_share`` of the budget and, with
  ``stage1_rule="adaptive"`` unless the scores are concentrated, at ``ceil(0.75 sqrt(k))`` tokens;
* **Stage II (spatially uniform)** -- the rest of the budget, evenly strided over the not-yet-chosen
  indices in frame-then-raster order.

``stage1_rule="paper"`` (the default) is SpecVLM's rule (Stage I capped by the budget and ``stage1_max_share`` only).
Ablation scorers: ``"uniform"`` (Stage II only), ``"random"`` (seeded permutation) and ``"topk"`` (Stage I by
rank only, no mass target). Every function returns a sorted, duplicate-free ``LongTensor``, so the kept
tokens stay in temporal order.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import Literal, get_args

import torch

__all__ = [
    "CONCENTRATED_MASS",
    "SCORERS",
    "STAGE1_RULES",
    "ScorerName",
    "Stage1Rule",
    "adaptive_stage1_cap",
    "default_stage1_mass",
    "is_concentrated",
    "keep_budget",
    "select_video_tokens",
    "stage1_indices",
    "stage2_indices",
    "top_share",
]

ScorerName = Literal["verifier", "similarity", "uniform", "random", "topk"]
SCORERS: tuple[str, ...] = get_args(ScorerName)
# Scorers whose selection is the two-stage rule on scores (they differ in how the target produces the scores).
TWO_STAGE_SCORERS = ("verifier", "similarity")
SCORE_BASED_SCORERS = (*TWO_STAGE_SCORERS, "topk")

Stage1Rule = Literal["adaptive", "paper"]
STAGE1_RULES: tuple[str, ...] = get_args(Stage1Rule)
# "Concentrated" scores, the paper's premise: the top TOP_FRACTION of the video tokens hold at least
# CONCENTRATED_MASS of the score mass. Only then does the adaptive rule let Stage I grow to the paper's size.
TOP_FRACTION = 0.1
CONCENTRATED_MASS = 0.5

# Relative tolerance when comparing the cumulative Stage I mass with its target: float rounding of a
# cumulative sum that "exactly" reaches the target (e.g. 0.39999998 for 0.4) must not add an extra token.
_MASS_RTOL = 1e-6


# --------------------------------------------------------------------------------------------- validation


def _fraction(name: str, value: object) -> float:
    """``value`` as a float in (0, 1], or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    result = float(value)
    if not 0.0 < result <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return result


def _count(name: str, value: object, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, or a ValueError naming ``name``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        result = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if result < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {result}")
    return result


def _prepare_scores(scores: object) -> torch.Tensor:
    """Validate ``scores`` and return them as a contiguous float64 CPU tensor."""
    if not isinstance(scores, torch.Tensor):
        raise ValueError(f"scores must be a 1-D torch.Tensor, got {type(scores).__name__}")
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D (one score per video token), got shape {tuple(scores.shape)}")
    if scores.numel() < 1:
        raise ValueError("scores must hold at least one video token (N >= 1), got an empty tensor")
    if scores.dtype.is_complex:
        raise ValueError(f"scores must be real-valued, got dtype {scores.dtype}")
    # float64 on the CPU: exact for every float/int score dtype, and the same rounding on every device.
    values = scores.detach().to(device="cpu", dtype=torch.float64).contiguous()
    if not bool(torch.isfinite(values).all()):
        raise ValueError("scores must be finite (no NaN or inf)")
    if bool((values < 0).any()):
        raise ValueError(f"scores must be non-negative, got minimum {values.min().item()!r}")
    return values


def _prepare_video_sizes(video_sizes: Sequence[int], num_tokens: int) -> list[int]:
    if isinstance(video_sizes, (str, bytes)) or not isinstance(video_sizes, (Sequence, torch.Tensor)):
        raise ValueError(f"video_sizes must be a sequence of positive integers, got {video_sizes!r}")
    sizes = [_count("video_sizes[i]", size, 1) for size in video_sizes]
    if not sizes:
        raise ValueError("video_sizes must name at least one video, got an empty sequence")
    if sum(sizes) != num_tokens:
        raise ValueError(f"video_sizes must sum to the number of video tokens N={num_tokens}, got sum {sum(sizes)}")
    return sizes


# ---------------------------------------------------------------------------------------------- budgets


def default_stage1_mass(keep_ratio: float) -> float:
    """The Stage I mass target used when ``stage1_mass=None``: 0.4, or 0.5 when ``keep_ratio > 0.25``.

    These are the values of the SpecVLM paper code.
    """
    return 0.5 if _fraction("keep_ratio", keep_ratio) > 0.25 else 0.4


def top_share(scores: torch.Tensor, fraction: float = TOP_FRACTION) -> float:
    """Share of the total score held by the top ``max(1, int(N * fraction))`` tokens (0.0 for a zero total)."""
    values = _prepare_scores(scores)
    fraction = _fraction("fraction", fraction)
    total = values.sum().item()
    if total <= 0.0:
        return 0.0
    count = max(1, int(values.numel() * fraction))
    return values.topk(count).values.sum().item() / total


def is_concentrated(scores: torch.Tensor) -> bool:
    """Whether the top 10% of the tokens hold at least half of the score mass (the paper's premise)."""
    return top_share(scores) >= CONCENTRATED_MASS


def adaptive_stage1_cap(budget: int) -> int:
    """Stage I's size limit under ``stage1_rule="adaptive"`` with diffuse scores: ``ceil(0.75 * sqrt(budget))``.

    Measured on the trained testbed (benchmarks/RESULTS.md, "Selection study"): a few of the top-scored tokens
    (the most salient objects) help the draft, more of them skew its picture of the scene (e.g. the object count),
    so Stage I grows much slower than the budget; Stage II spreads the rest. The factor 0.75 was the best of 0.5,
    0.75, 1 and 2 that never lost to ``uniform`` or ``random`` on the 144-, 288- and 576-token sets.
    """
    budget = _count("budget", budget, 1)
    # ceil(sqrt(9 k) / 4) == ceil(ceil(sqrt(9 k)) / 4), and ceil(sqrt(x)) == isqrt(x - 1) + 1: exact in integers.
    return -(-(math.isqrt(9 * budget - 1) + 1) // 4)


def keep_budget(num_tokens: int, keep_ratio: float) -> int:
    """How many of ``num_tokens`` video tokens the draft keeps: ``max(1, int(num_tokens * keep_ratio))``."""
    num_tokens = _count("num_tokens", num_tokens, 1)
    return max(1, int(num_tokens * _fraction("keep_ratio", keep_ratio)))


# -------------------------------------------------------------------------------------------- the stages


def _rank(values: torch.Tensor) -> torch.Tensor:
    """Indices by score descending; ties keep the lower index first."""
    return torch.sort(values, descending=True, stable=True).indices


def _stage1(values: torch.Tensor, stage1_mass: float, cap: int) -> torch.Tensor:
    """Stage I on validated float64 CPU scores; indices in rank order (best first)."""
    total = values.sum()
    if cap <= 0 or total.item() <= 0.0:
        return torch.zeros(0, dtype=torch.long)
    order = _rank(values)
    cumulative = torch.cumsum(values[order], dim=0) / total
    target = stage1_mass * (1.0 - _MASS_RTOL)
    # Smallest prefix whose cumulative share reaches the target: one more than the count of prefixes
    # below it (the cumulative share is non-decreasing). The full prefix always reaches it (share 1.0).
    size = int((cumulative < target).sum().item()) + 1
    return order[: min(size, cap, values.numel())]


def _spread(candidates: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` evenly strided entries of the 1-D ``candidates``, first and last included.

    Position ``i`` is ``floor(i * (L - 1) / (count - 1))`` -- ``torch.linspace(0, L - 1, count).long()``
    evaluated exactly in integer arithmetic, so float rounding can neither shift a pick by one nor
    produce a duplicate (float32 ``linspace`` does both for some sizes). ``count == 1`` picks the first.
    """
    length = candidates.numel()
    if count <= 0:
        return candidates[:0]
    if count == 1:
        return candidates[:1]
    steps = torch.arange(count, dtype=torch.long)
    return candidates[(steps * (length - 1)) // (count - 1)]


def stage1_indices(scores: torch.Tensor, stage1_mass: float, cap: int) -> torch.LongTensor:
    """Stage I: the smallest top-scored set whose cumulative score reaches ``stage1_mass`` of the total.

    Tokens are ranked by score descending (ties: lower index first), the scores are normalised by their
    total, and the shortest prefix of that ranking whose cumulative share reaches ``stage1_mass`` (with a
    1e-6 relative tolerance against float rounding) is taken, truncated to ``cap`` tokens. A zero total
    mass gives an empty Stage I.

    Args:
        scores: 1-D, finite, non-negative scores, one per video token.
        stage1_mass: target share of the total score, in (0, 1].
        cap: the most tokens Stage I may take (>= 0).

    Returns:
        The Stage I indices, sorted ascending, as a ``LongTensor`` on ``scores.device``.
    """
    values = _prepare_scores(scores)
    mass = _fraction("stage1_mass", stage1_mass)
    cap = _count("cap", cap, 0)
    return torch.sort(_stage1(values, mass, cap)).values.to(scores.device)


def stage2_indices(num_tokens: int, taken: torch.Tensor | None, count: int) -> torch.LongTensor:
    """Stage II: ``count`` indices evenly strided over ``0..num_tokens-1`` minus ``taken``.

    The not-yet-chosen indices are listed in ascending (frame-then-raster) order and ``count`` of them are
    picked at positions ``floor(i * (L - 1) / (count - 1))``, i.e. ``linspace(0, L - 1, count)`` truncated,
    computed exactly (``count == 1`` picks the first remaining index).

    Args:
        num_tokens: N, the number of video tokens (>= 1).
        taken: indices already chosen (any order), or None.
        count: how many to pick, between 0 and the number of remaining indices.

    Returns:
        The picked indices, sorted ascending, as a ``LongTensor`` on ``taken.device`` (CPU if None).
    """
    num_tokens = _count("num_tokens", num_tokens, 1)
    free = torch.ones(num_tokens, dtype=torch.bool)
    device = torch.device("cpu")
    if taken is not None:
        device = taken.device
        taken = taken.detach().to("cpu", torch.long).reshape(-1)
        if taken.numel() and (int(taken.min()) < 0 or int(taken.max()) >= num_tokens):
            raise ValueError(f"taken must hold indices in [0, {num_tokens - 1}]")
        free[taken] = False
    remaining = torch.nonzero(free).flatten()
    count = _count("count", count, 0)
    if count > remaining.numel():
        raise ValueError(f"count must be in [0, {remaining.numel()}] (the remaining indices), got {count}")
    return _spread(remaining, count).to(device)


# ------------------------------------------------------------------------------------------- selection


def _one_per_video(kept: torch.Tensor, sizes: list[int], values: torch.Tensor | None) -> torch.Tensor:
    """Give every video with nothing kept one token, taking one from the video that keeps the most.

    ``values`` is None when the selection is not score-based (then the added token is the video's middle
    index and the dropped token the donor's last kept index).
    """
    starts = [0]
    for size in sizes[:-1]:
        starts.append(starts[-1] + size)
    per_video: list[list[int]] = [[] for _ in sizes]
    boundaries = torch.tensor(starts[1:], dtype=torch.long)
    owners = torch.bucketize(kept, boundaries, right=True).tolist()
    for index, owner in zip(kept.tolist(), owners, strict=True):
        per_video[owner].append(index)

    for video, (start, size) in enumerate(zip(starts, sizes, strict=True)):
        if per_video[video]:
            continue
        if values is None:
            best = start + size // 2
        else:  # highest score, ties: lowest index (torch.argmax returns the first maximum)
            best = start + int(torch.argmax(values[start : start + size]))
        # Donor: the video keeping the most tokens (ties: the earliest video). It keeps >= 2, since the
        # budget is >= the number of videos and this one keeps none.
        donor = max(range(len(sizes)), key=lambda v: (len(per_video[v]), -v))
        if values is None:
            drop = per_video[donor][-1]
        else:  # lowest score, ties: the later index
            drop = min(reversed(per_video[donor]), key=lambda i: values[i].item())
        per_video[donor].remove(drop)
        per_video[video].append(best)

    return torch.tensor(sorted(i for indices in per_video for i in indices), dtype=torch.long)


def select_video_tokens(
    scores: torch.Tensor | None,
    keep_ratio: float,
    stage1_mass: float | None = None,
    scorer: str = "verifier",
    generator: torch.Generator | None = None,
    *,
    stage1_max_share: float = 1.0,
    stage1_rule: str = "paper",
    num_tokens: int | None = None,
    video_sizes: Sequence[int] | None = None,
) -> torch.LongTensor:
    """Choose which video tokens the draft model keeps.

    The budget is ``k = max(1, int(N * keep_ratio))`` of the N video tokens (``max(k, len(video_sizes))``
    with several videos). Scorers:

    * ``"verifier"`` and ``"similarity"`` -- Stage I then Stage II. Stage I ranks tokens by score descending
      (ties: lower index first), normalises by the total mass and takes the smallest prefix whose cumulative
      share reaches ``stage1_mass`` (1e-6 relative tolerance), capped at
      ``min(k, max(1, int(stage1_max_share * k)))``; with ``stage1_rule="adaptive"`` it is further capped at
      :func:`adaptive_stage1_cap` ``(k) = ceil(0.75 sqrt(k))`` unless the scores are concentrated
      (:func:`is_concentrated`: the top 10% of the tokens hold >= 50% of the mass), in which case the
      selection equals ``stage1_rule="paper"``. A zero total mass leaves Stage I empty. Stage II fills the
      remaining ``r`` slots with indices evenly strided over the not-yet-chosen indices in ascending
      (frame-then-raster) order: positions ``linspace(0, L - 1, r)`` truncated, computed exactly in integer
      arithmetic (``r == 1`` picks the first remaining index).
    * ``"topk"`` -- the ``k`` highest scores (ties: lower index first).
    * ``"uniform"`` -- Stage II alone over all N indices; ``scores`` may be None.
    * ``"random"`` -- ``torch.randperm(N, generator=generator)[:k]``; reproducible for a seeded
      ``generator``. With ``generator=None`` the draw uses torch's global RNG (not reproducible unless the
      caller seeds it). ``scores`` may be None.

    Several videos in one prompt (``video_sizes``, concatenated in order, summing to N) share one global
    budget ``max(k, len(video_sizes))``, but every video keeps at least one token: after the selection
    above, each video (in order) that kept nothing gets its best token -- the highest score (ties: lowest
    index), or for ``"uniform"``/``"random"`` its middle index ``start + size // 2`` -- and, to keep the
    total at the budget, the video currently keeping the most tokens (ties: the earliest) gives up one:
    its lowest-score kept token (ties: the later index), or for ``"uniform"``/``"random"`` its last kept
    index.

    Args:
        scores: 1-D, finite, non-negative scores, one per video token. Required for ``"verifier"``,
            ``"similarity"`` and ``"topk"``; may be None for ``"uniform"`` and ``"random"`` (then ``num_tokens``
            gives N).
        keep_ratio: share of the video tokens to keep, in (0, 1].
        stage1_mass: Stage I mass target in (0, 1]; None means :func:`default_stage1_mass`.
        scorer: one of ``"verifier"``, ``"similarity"``, ``"uniform"``, ``"random"``, ``"topk"``.
        generator: RNG for ``"random"``; ignored by the other scorers.
        stage1_max_share: cap on Stage I as a share of the budget, in (0, 1]; 1.0 is no cap.
        stage1_rule: ``"adaptive"`` (Stage I at most ``ceil(0.75 sqrt(k))`` tokens unless the scores are
            concentrated) or ``"paper"`` (SpecVLM's rule).
        num_tokens: N when ``scores`` is None; if both are given they must agree.
        video_sizes: token count of each video, in prompt order; must sum to N.

    Returns:
        Sorted, unique indices into ``0..N-1`` as a ``LongTensor`` of length equal to the budget, on
        ``scores.device`` (CPU when ``scores`` is None).

    Raises:
        ValueError: an argument is out of range; the message names the argument and what is allowed.
    """
    keep_ratio = _fraction("keep_ratio", keep_ratio)
    mass = default_stage1_mass(keep_ratio) if stage1_mass is None else _fraction("stage1_mass", stage1_mass)
    max_share = _fraction("stage1_max_share", stage1_max_share)
    if not isinstance(scorer, str) or scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {', '.join(map(repr, SCORERS))}; got {scorer!r}")
    if not isinstance(stage1_rule, str) or stage1_rule not in STAGE1_RULES:
        raise ValueError(f"stage1_rule must be one of {', '.join(map(repr, STAGE1_RULES))}; got {stage1_rule!r}")

    if scores is None:
        if scorer in SCORE_BASED_SCORERS:
            raise ValueError(f"scores are required for scorer={scorer!r} (only 'uniform' and 'random' take None)")
        if num_tokens is None:
            raise ValueError("num_tokens must be given (an integer >= 1) when scores is None")
        n = _count("num_tokens", num_tokens, 1)
        values = None
        device = torch.device("cpu")
    else:
        values = _prepare_scores(scores)
        n = values.numel()
        device = scores.device
        if num_tokens is not None and _count("num_tokens", num_tokens, 1) != n:
            raise ValueError(f"num_tokens={num_tokens} does not match len(scores)={n}")

    sizes = None if video_sizes is None else _prepare_video_sizes(video_sizes, n)
    budget = max(1, int(n * keep_ratio))
    if sizes is not None:
        budget = max(budget, len(sizes))

    if scorer in TWO_STAGE_SCORERS:
        cap = min(budget, max(1, int(max_share * budget)))
        if stage1_rule == "adaptive" and not is_concentrated(values):
            cap = min(cap, adaptive_stage1_cap(budget))
        first = _stage1(values, mass, cap)
        kept = torch.cat([first, stage2_indices(n, first, budget - first.numel())])
    elif scorer == "topk":
        kept = _rank(values)[:budget]
    elif scorer == "uniform":
        kept = _spread(torch.arange(n), budget)
    else:  # random
        rng_device = generator.device if generator is not None else torch.device("cpu")
        kept = torch.randperm(n, generator=generator, device=rng_device)[:budget].cpu()
    kept = torch.sort(kept).values

    if sizes is not None and len(sizes) > 1:
        kept = _one_per_video(kept, sizes, values if scorer in SCORE_BASED_SCORERS else None)
    return kept.to(device)
