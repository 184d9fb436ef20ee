"""Video-token selection for the draft model: scorers and the two-stage SpecVLM rule.

Pure tensor functions, no model code. Given one non-negative score per video token (the verifier's
attention from the query tokens, renormalised over the video tokens), :func:`select_video_tokens` returns
the indices of the video tokens the draft model keeps:

* **Stage I (verifier-guided)** -- the smallest top-scored set whose cumulative score reaches
  ``stage1_mass`` of the video mass, capped at ``stage1_max_share`` of the budget;
* **Stage II (spatially uniform)** -- the rest of the budget, evenly strided over the not-yet-chosen
  indices in frame-then-raster order.

Ablation scorers: ``"uniform"`` (Stage II only), ``"random"`` (seeded permutation) and ``"topk"`` (Stage I by
rank only, no mass target). Every function returns a sorted, duplicate-free ``LongTensor``, so the kept
tokens stay in temporal order.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence
from typing import Literal, get_args

import torch

__all__ = [
    "SCORERS",
    "ScorerName",
    "default_stage1_mass",
    "keep_budget",
    "select_video_tokens",
    "stage1_indices",
    "stage2_indices",
]

ScorerName = Literal["verifier", "uniform", "random", "topk"]
SCORERS: tuple[str, ...] = get_args(ScorerName)

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
    num_tokens: int | None = None,
    video_sizes: Sequence[int] | None = None,
) -> torch.LongTensor:
    """Choose which video tokens the draft model keeps.

    The budget is ``k = max(1, int(N * keep_ratio))`` of the N video tokens (``max(k, len(video_sizes))``
    with several videos). Scorers:

    * ``"verifier"`` -- Stage I then Stage II. Stage I ranks tokens by score descending (ties: lower index
      first), normalises by the total mass and takes the smallest prefix whose cumulative share reaches
      ``stage1_mass`` (1e-6 relative tolerance), capped at ``min(k, max(1, int(stage1_max_share * k)))``;
      a zero total mass leaves Stage I empty. Stage II fills the remaining ``r`` slots with indices evenly
      strided over the not-yet-chosen indices in ascending (frame-then-raster) order: positions
      ``linspace(0, L - 1, r)`` truncated, computed exactly in integer arithmetic (``r == 1`` picks the
      first remaining index).
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
        scores: 1-D, finite, non-negative scores, one per video token. Required for ``"verifier"`` and
            ``"topk"``; may be None for ``"uniform"`` and ``"random"`` (then ``num_tokens`` gives N).
        keep_ratio: share of the video tokens to keep, in (0, 1].
        stage1_mass: Stage I mass target in (0, 1]; None means :func:`default_stage1_mass`.
        scorer: one of ``"verifier"``, ``"uniform"``, ``"random"``, ``"topk"``.
        generator: RNG for ``"random"``; ignored by the other scorers.
        stage1_max_share: cap on Stage I as a share of the budget, in (0, 1]; 1.0 is the paper.
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

    if scores is None:
        if scorer in ("verifier", "topk"):
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

    if scorer == "verifier":
        cap = min(budget, max(1, int(max_share * budget)))
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
        kept = _one_per_video(kept, sizes, values if scorer in ("verifier", "topk") else None)
    return kept.to(device)
