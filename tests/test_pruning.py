"""Property tests for specvlm_hf.pruning against a brute-force oracle written with plain Python lists.

The oracle does not reuse the module's helpers: ranks are plain ``sorted`` calls, masses are exact
``Fraction`` sums, and the Stage II spread is the exact value of ``linspace(0, L - 1, r)`` truncated.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from specvlm_hf.pruning import (
    SCORERS,
    STAGE1_RULES,
    adaptive_stage1_cap,
    default_stage1_mass,
    is_concentrated,
    keep_budget,
    select_video_tokens,
    stage1_indices,
    stage2_indices,
    top_share,
)

FAST = settings(max_examples=200, deadline=None)

# ------------------------------------------------------------------------------------------------ oracle

RTOL = Fraction(1, 10**6)  # the documented Stage I tolerance
NEAR = Fraction(1, 10**9)  # cases this close to the tolerance boundary are float-rounding coin flips


def o_budget(n: int, keep_ratio: float, videos: int = 1) -> int:
    return max(1, int(n * keep_ratio), videos)


def o_rank(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def o_linspace_floor(length: int, r: int) -> list[int]:
    """Positions floor(linspace(0, length - 1, r)), exactly."""
    if r == 0:
        return []
    if r == 1:
        return [0]
    return [math.floor(Fraction(i * (length - 1), r - 1)) for i in range(r)]


def o_stage2(n: int, taken: list[int], r: int) -> list[int]:
    excluded = set(taken)
    remaining = [i for i in range(n) if i not in excluded]
    return [remaining[p] for p in o_linspace_floor(len(remaining), r)]


def o_stage1(scores: list[float], mass: float, cap: int) -> tuple[list[int], bool]:
    """(Stage I indices, whether some prefix share sits within NEAR of the tolerance boundary)."""
    total = sum(Fraction(s) for s in scores)
    if total == 0:
        return [], False
    target = Fraction(mass) * (1 - RTOL)
    chosen: list[int] = []
    acc = Fraction(0)
    near = False
    for i in o_rank(scores):
        if len(chosen) == cap:
            break
        chosen.append(i)
        acc += Fraction(scores[i])
        share = acc / total
        near = near or abs(share - target) <= target * NEAR
        if share >= target:
            break
    return chosen, near


def o_default_mass(keep_ratio: float) -> float:
    return 0.5 if keep_ratio > 0.25 else 0.4


def o_sqrt_cap(k: int) -> int:
    """The adaptive Stage I limit ceil(0.75 sqrt(k)): the smallest m >= 1 with (4 m)^2 >= 9 k, by counting."""
    m = 1
    while (4 * m) ** 2 < 9 * k:
        m += 1
    return m


def o_concentrated(scores: list[float]) -> tuple[bool, bool]:
    """(top 10% of the tokens hold >= 1/2 of the mass, exactly; whether the share sits within NEAR of 1/2)."""
    total = sum(Fraction(s) for s in scores)
    if total == 0:
        return False, False
    top = sorted(scores, reverse=True)[: max(1, len(scores) // 10)]
    share = sum(Fraction(s) for s in top) / total
    return share >= Fraction(1, 2), abs(share - Fraction(1, 2)) <= NEAR


def o_verifier(
    scores: list[float], keep_ratio: float, mass: float | None, share: float, videos: int = 1, rule: str = "paper"
) -> tuple[list[int], list[int], bool]:
    """(selection, Stage I, near-boundary flag) for one video (no per-video fix-up)."""
    k = o_budget(len(scores), keep_ratio, videos)
    cap = min(k, max(1, int(share * k)))
    concentrated, near_concentrated = o_concentrated(scores)
    if rule == "adaptive" and not concentrated:
        cap = min(cap, o_sqrt_cap(k))
    first, near = o_stage1(scores, o_default_mass(keep_ratio) if mass is None else mass, cap)
    near = near or (rule == "adaptive" and near_concentrated)
    return sorted(first + o_stage2(len(scores), first, k - len(first))), first, near


def o_one_per_video(kept: list[int], sizes: list[int], scores: list[float] | None) -> list[int]:
    starts = [sum(sizes[:v]) for v in range(len(sizes))]
    groups = [[i for i in kept if s <= i < s + n] for s, n in zip(starts, sizes, strict=True)]
    for v, (s, n) in enumerate(zip(starts, sizes, strict=True)):
        if groups[v]:
            continue
        if scores is None:
            best = s + n // 2
        else:
            best = min(range(s, s + n), key=lambda i: (-scores[i], i))
        most = max(len(g) for g in groups)
        donor = next(u for u in range(len(sizes)) if len(groups[u]) == most)
        if scores is None:
            drop = max(groups[donor])
        else:
            drop = min(groups[donor], key=lambda i: (scores[i], -i))
        groups[donor].remove(drop)
        groups[v].append(best)
    return sorted(i for g in groups for i in g)


# ------------------------------------------------------------------------------------------- strategies

fractions_ = st.floats(min_value=0.0, max_value=1.0, exclude_min=True)
keep_ratios = st.one_of(fractions_, st.sampled_from([0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 1.0]))
masses = st.one_of(st.none(), fractions_, st.sampled_from([0.4, 0.5, 0.9, 1.0]))
shares = st.one_of(st.just(1.0), fractions_)
rules = st.sampled_from(STAGE1_RULES)
two_stage_scorers = st.sampled_from(["verifier", "similarity"])
score_values = st.one_of(
    st.integers(0, 4).map(float),  # ties and zeros
    st.floats(min_value=0.0, max_value=100.0, allow_nan=False, allow_infinity=False),
)
dtypes = st.sampled_from([torch.float32, torch.float64])


@st.composite
def score_tensors(draw, min_size: int = 1, max_size: int = 64) -> tuple[torch.Tensor, list[float]]:
    """A 1-D score tensor and its exact values as Python floats (after any float32 rounding)."""
    values = draw(st.lists(score_values, min_size=min_size, max_size=max_size))
    tensor = torch.tensor(values, dtype=draw(dtypes))
    assume(bool(torch.isfinite(tensor).all()))
    return tensor, tensor.tolist()


def check_contract(kept: torch.Tensor, n: int, budget: int) -> list[int]:
    assert kept.dtype == torch.long
    assert kept.dim() == 1
    out = kept.tolist()
    assert len(out) == budget
    assert out == sorted(set(out)), "indices must be sorted and unique"
    assert all(0 <= i < n for i in out)
    return out


# ----------------------------------------------------------------------------------------------- tests


@FAST
@given(score_tensors(), keep_ratios, masses, shares, st.sampled_from(SCORERS), rules, st.integers(0, 2**31 - 1))
def test_contract_every_scorer(data, keep_ratio, mass, share, scorer, rule, seed):
    scores, values = data
    gen = torch.Generator().manual_seed(seed)
    kept = select_video_tokens(scores, keep_ratio, mass, scorer, gen, stage1_max_share=share, stage1_rule=rule)
    check_contract(kept, len(values), o_budget(len(values), keep_ratio))
    assert kept.device == scores.device


@FAST
@given(score_tensors(), keep_ratios, masses, shares, two_stage_scorers, rules)
def test_two_stage_matches_oracle(data, keep_ratio, mass, share, scorer, rule):
    scores, values = data
    expected, first, near = o_verifier(values, keep_ratio, mass, share, rule=rule)
    assume(not near)
    kept = select_video_tokens(scores, keep_ratio, mass, scorer, stage1_max_share=share, stage1_rule=rule)
    assert check_contract(kept, len(values), len(expected)) == expected
    # Stage I on its own equals the oracle's smallest reaching top set (capped).
    k = o_budget(len(values), keep_ratio)
    cap = min(k, max(1, int(share * k)))
    if rule == "adaptive" and not o_concentrated(values)[0]:
        cap = min(cap, o_sqrt_cap(k))
    used_mass = o_default_mass(keep_ratio) if mass is None else mass
    assert stage1_indices(scores, used_mass, cap).tolist() == sorted(first)
    assert set(first) <= set(kept.tolist())


@st.composite
def concentrated_scores(draw) -> torch.Tensor:
    """Scores whose top 10% hold at least half of the mass (the paper's premise), built so by construction."""
    n = draw(st.integers(10, 400))
    top = max(1, n // 10)
    background = draw(st.lists(st.floats(0.0, 1.0), min_size=n - top, max_size=n - top))
    ceiling = max(background, default=0.0)
    # Every top value exceeds the largest background value, and together they outweigh the background.
    floor = max(ceiling, sum(background) / top) + 1e-3
    peaks = draw(st.lists(st.floats(floor, floor + 10.0), min_size=top, max_size=top))
    values = background + peaks
    order = draw(st.permutations(range(n)))
    return torch.tensor([values[i] for i in order], dtype=torch.float64)


@FAST
@given(concentrated_scores(), keep_ratios, masses, shares, two_stage_scorers)
def test_concentrated_scores_select_what_the_paper_selects(scores, keep_ratio, mass, share, scorer):
    """Where the paper's premise holds (top 10% of the tokens hold >= 50% of the mass), the adaptive rule selects
    exactly what SpecVLM's rule selects, at every keep ratio, mass target and cap."""
    assert o_concentrated(scores.tolist())[0] and is_concentrated(scores)
    adaptive = select_video_tokens(scores, keep_ratio, mass, scorer, stage1_max_share=share, stage1_rule="adaptive")
    paper = select_video_tokens(scores, keep_ratio, mass, scorer, stage1_max_share=share, stage1_rule="paper")
    assert adaptive.tolist() == paper.tolist()


def test_diffuse_scores_cap_stage1_at_sqrt_of_the_budget():
    """Diffuse scores (every token alike): the paper's rule degenerates to pure top-k, the adaptive rule keeps
    ceil(0.75 sqrt(k)) top tokens and spreads the rest."""
    scores = torch.linspace(2.0, 1.0, 144, dtype=torch.float64)  # descending, top 10% hold ~0.11 of the mass
    assert not is_concentrated(scores)
    paper = select_video_tokens(scores, 0.1, stage1_rule="paper")
    assert paper.tolist() == list(range(14))  # 40% of the mass needs more than the whole budget k = 14
    adaptive = select_video_tokens(scores, 0.1, stage1_rule="adaptive")
    assert select_video_tokens(scores, 0.1).tolist() == paper.tolist()  # the default is the paper's rule
    assert adaptive.tolist()[:3] == [0, 1, 2]  # Stage I: ceil(0.75 sqrt(14)) = 3 top tokens
    assert adaptive.tolist() == [0, 1, 2] + o_stage2(144, [0, 1, 2], 11)
    # Concentrated: the same vector with fourteen dominant tokens at the end selects what the paper selects.
    peaked = scores.clone()
    peaked[-14:] = 100.0
    assert is_concentrated(peaked)
    assert select_video_tokens(peaked, 0.1, stage1_rule="adaptive").tolist() == \
        select_video_tokens(peaked, 0.1, stage1_rule="paper").tolist()


def test_adaptive_cap_is_ceil_of_three_quarters_sqrt():
    for budget in range(1, 20000):
        assert adaptive_stage1_cap(budget) == o_sqrt_cap(budget)
    # The budgets of the benchmark's sets: keep 0.05 / 0.1 / 0.25 / 0.5 of 144 and 576 tokens.
    assert [adaptive_stage1_cap(k) for k in (1, 7, 14, 36, 72, 28, 57, 144, 288)] == [1, 2, 3, 5, 7, 4, 6, 9, 13]


@FAST
@given(score_tensors(), st.floats(0.01, 1.0))
def test_top_share_matches_oracle(data, fraction):
    scores, values = data
    total = sum(Fraction(v) for v in values)
    top = sorted(values, reverse=True)[: max(1, int(len(values) * fraction))]
    expected = float(sum(Fraction(v) for v in top) / total) if total else 0.0
    assert top_share(scores, fraction) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@FAST
@given(score_tensors(), fractions_, st.integers(0, 70))
def test_stage1_is_smallest_reaching_top_set(data, mass, cap):
    scores, values = data
    expected, near = o_stage1(values, mass, cap)
    assume(not near)
    got = stage1_indices(scores, mass, cap).tolist()
    assert got == sorted(expected)
    assert len(got) <= cap
    total = sum(Fraction(v) for v in values)
    if total and len(got) < cap:
        # Uncapped: the set reaches the target and no smaller top set does.
        share = sum(Fraction(values[i]) for i in got) / total
        assert share >= Fraction(mass) * (1 - RTOL)
        ranked = o_rank(values)
        assert sorted(ranked[: len(got)]) == got
        shorter = sum(Fraction(values[i]) for i in ranked[: len(got) - 1]) / total
        assert shorter < Fraction(mass) * (1 - RTOL)


@FAST
@given(st.integers(1, 300), st.data())
def test_stage2_spread_matches_linspace_oracle(n, data):
    taken = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n - 1))
    r = data.draw(st.integers(0, n - len(taken)))
    got = stage2_indices(n, torch.tensor(taken, dtype=torch.long), r).tolist()
    assert got == o_stage2(n, taken, r)
    assert len(set(got)) == r and not set(got) & set(taken)
    if r >= 1:
        remaining = [i for i in range(n) if i not in set(taken)]
        assert got[0] == remaining[0]
        if r >= 2:
            assert got[-1] == remaining[-1]


def test_stage2_agrees_with_torch_linspace_when_float_is_exact_enough():
    # For small sizes float64 linspace truncates to the exact values, so the two definitions coincide.
    for length in range(1, 40):
        for r in range(1, length + 1):
            ref = torch.linspace(0, length - 1, r, dtype=torch.float64).long().tolist()
            assert stage2_indices(length, None, r).tolist() == ref


def test_stage2_has_no_float32_linspace_duplicates():
    # float32 linspace(0, 49999, 49998).long() repeats an index; the exact spread never does.
    n, r = 50_000, 49_998
    assert torch.linspace(0, n - 1, r).long().unique().numel() < r
    got = stage2_indices(n, None, r)
    assert got.unique().numel() == r
    assert got.tolist() == o_stage2(n, [], r)


@FAST
@given(score_tensors(), keep_ratios)
def test_topk_is_sorted_by_score(data, keep_ratio):
    scores, values = data
    k = o_budget(len(values), keep_ratio)
    kept = select_video_tokens(scores, keep_ratio, scorer="topk")
    assert check_contract(kept, len(values), k) == sorted(o_rank(values)[:k])


@FAST
@given(st.integers(1, 500), keep_ratios, st.booleans())
def test_uniform_spread(n, keep_ratio, with_scores):
    k = o_budget(n, keep_ratio)
    scores = torch.rand(n) if with_scores else None
    kept = select_video_tokens(scores, keep_ratio, scorer="uniform", num_tokens=n)
    assert check_contract(kept, n, k) == o_stage2(n, [], k)


@FAST
@given(st.integers(200, 2000), st.floats(0.05, 0.5), st.integers(0, 2**31 - 1), st.integers(1, 1000))
def test_random_reproducible_and_seed_dependent(n, keep_ratio, seed, offset):
    k = o_budget(n, keep_ratio)

    def draw(s: int) -> list[int]:
        kept = select_video_tokens(
            None, keep_ratio, scorer="random", num_tokens=n, generator=torch.Generator().manual_seed(s)
        )
        return check_contract(kept, n, k)

    first = draw(seed)
    assert first == draw(seed)
    assert first == sorted(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].tolist())
    assert first != draw(seed + offset)


def test_random_without_generator_is_valid():
    check_contract(select_video_tokens(torch.rand(100), 0.3, scorer="random"), 100, 30)


@FAST
@given(st.data(), st.sampled_from(SCORERS), keep_ratios, masses, shares, rules)
def test_multi_video_keeps_one_per_video(data, scorer, keep_ratio, mass, share, rule):
    sizes = data.draw(st.lists(st.integers(1, 20), min_size=1, max_size=6))
    n = sum(sizes)
    scores, values = data.draw(score_tensors(min_size=n, max_size=n))
    seed = data.draw(st.integers(0, 2**31 - 1))
    budget = o_budget(n, keep_ratio, len(sizes))

    kept = select_video_tokens(
        scores,
        keep_ratio,
        mass,
        scorer,
        torch.Generator().manual_seed(seed),
        stage1_max_share=share,
        stage1_rule=rule,
        video_sizes=sizes,
    )
    out = check_contract(kept, n, budget)
    starts = [sum(sizes[:v]) for v in range(len(sizes))]
    for s, size in zip(starts, sizes, strict=True):
        assert any(s <= i < s + size for i in out), f"video at {s} (size {size}) kept nothing"

    # The selection before the fix-up, from the oracle, then the documented fix-up rule.
    if scorer in ("verifier", "similarity"):
        base, _, near = o_verifier(values, keep_ratio, mass, share, len(sizes), rule)
        assume(not near)
    elif scorer == "topk":
        base = sorted(o_rank(values)[:budget])
    elif scorer == "uniform":
        base = o_stage2(n, [], budget)
    else:
        base = sorted(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:budget].tolist())
    by_score = scorer in ("verifier", "similarity", "topk")
    expected = o_one_per_video(base, sizes, values if by_score else None) if len(sizes) > 1 else base
    assert out == expected


def test_multi_video_example():
    # Video 0 dominates the attention; videos 1 and 2 would get nothing without the rule.
    scores = torch.tensor([9.0, 8.0, 7.0, 6.0, 5.0, 0.1, 0.3, 0.2, 0.0, 0.0])
    kept = select_video_tokens(scores, 0.3, scorer="topk", video_sizes=[5, 3, 2])
    # topk budget 3 -> [0, 1, 2]; video 1 adds its best (6), drops 2; video 2 adds its first max (8), drops 1.
    assert kept.tolist() == [0, 6, 8]
    kept = select_video_tokens(None, 0.1, scorer="uniform", num_tokens=10, video_sizes=[8, 2])
    # budget max(1, 2) = 2: uniform picks [0, 9] which already covers both videos.
    assert kept.tolist() == [0, 9]
    kept = select_video_tokens(None, 0.2, scorer="uniform", num_tokens=10, video_sizes=[2, 6, 2])
    # budget 3: uniform [0, 4, 9]; video 0, 1, 2 each covered.
    assert kept.tolist() == [0, 4, 9]
    kept = select_video_tokens(None, 0.2, scorer="uniform", num_tokens=10, video_sizes=[1, 1, 8])
    # budget 3: uniform [0, 4, 9] -> video 1 (index 1) is empty: add 1, drop video 2's last kept (9).
    assert kept.tolist() == [0, 1, 4]


@FAST
@given(st.integers(1, 200), keep_ratios, masses, shares)
def test_zero_mass(n, keep_ratio, mass, share):
    zeros = torch.zeros(n)
    k = o_budget(n, keep_ratio)
    assert stage1_indices(zeros, 0.4, k).tolist() == []
    assert top_share(zeros) == 0.0 and not is_concentrated(zeros)
    for rule in STAGE1_RULES:
        verifier = select_video_tokens(zeros, keep_ratio, mass, stage1_max_share=share, stage1_rule=rule)
        assert check_contract(verifier, n, k) == o_stage2(n, [], k)  # Stage II only, i.e. uniform
    assert select_video_tokens(zeros, keep_ratio, scorer="topk").tolist() == list(range(k))


def test_stage1_tolerance_does_not_add_a_token():
    assert stage1_indices(torch.ones(10), 0.4, 10).tolist() == [0, 1, 2, 3]
    # float32 0.1 * 3 / (0.1 * 10) rounds just below 0.3.
    assert stage1_indices(torch.full((10,), 0.1, dtype=torch.float32), 0.3, 10).tolist() == [0, 1, 2]
    assert stage1_indices(torch.tensor([0.5, 0.25, 0.25]), 1.0, 3).tolist() == [0, 1, 2]
    # In float32, 0.21 / (0.21 + 0.04) comes out as 0.8399999988 < 0.84: the tolerance keeps it one token.
    assert stage1_indices(torch.tensor([0.21, 0.04]), 0.84, 2).tolist() == [0]
    # Beyond the tolerance the next token is added.
    assert stage1_indices(torch.tensor([0.21, 0.04]), 0.8401, 2).tolist() == [0, 1]


def test_stage1_max_share_caps_stage1():
    equal = torch.ones(100)  # diffuse: reaching mass 1.0 needs every token
    paper = {"stage1_rule": "paper"}
    assert select_video_tokens(equal, 0.2, 1.0, **paper).tolist() == list(range(20))  # pure top-k
    capped = select_video_tokens(equal, 0.2, 1.0, stage1_max_share=0.5, **paper).tolist()
    assert capped[:10] == list(range(10))  # Stage I: 10 = 0.5 * 20 tokens
    assert capped[10:] == [10 + (i * 89) // 9 for i in range(10)]  # Stage II spread over 10..99
    # The cap never drops below one token.
    assert len(stage1_indices(equal, 1.0, max(1, int(0.01 * 20)))) == 1
    assert select_video_tokens(equal, 0.2, 1.0, stage1_max_share=0.01, **paper).tolist() == [0] + o_stage2(
        100, [0], 19)
    # With the adaptive rule the smaller of the two caps applies: ceil(0.75 sqrt(20)) = 4 < 10.
    adaptive = {"stage1_rule": "adaptive"}
    assert select_video_tokens(equal, 0.2, 1.0, stage1_max_share=0.5, **adaptive).tolist() == [0, 1, 2, 3, *o_stage2(
        100, [0, 1, 2, 3], 16)]
    assert select_video_tokens(equal, 0.2, 1.0, stage1_max_share=0.1, **adaptive).tolist() == [0, 1, *o_stage2(
        100, [0, 1], 18)]


def test_defaults_and_budget():
    assert default_stage1_mass(0.1) == 0.4
    assert default_stage1_mass(0.25) == 0.4
    assert default_stage1_mass(0.26) == 0.5
    assert default_stage1_mass(1.0) == 0.5
    assert keep_budget(100, 0.1) == 10
    assert keep_budget(5, 0.1) == 1
    assert keep_budget(7, 1.0) == 7
    assert keep_budget(100, 0.29) == int(100 * 0.29)  # the formula's float truncation, deliberately kept


# ------------------------------------------------------------------------------------- invalid arguments

S = torch.rand(10)
NAN = float("nan")
INVALID = [
    ({"keep_ratio": 0.0}, "keep_ratio"),
    ({"keep_ratio": -0.1}, "keep_ratio"),
    ({"keep_ratio": 1.5}, "keep_ratio"),
    ({"keep_ratio": NAN}, "keep_ratio"),
    ({"keep_ratio": "0.1"}, "keep_ratio"),
    ({"keep_ratio": True}, "keep_ratio"),
    ({"stage1_mass": 0.0}, "stage1_mass"),
    ({"stage1_mass": 1.01}, "stage1_mass"),
    ({"stage1_mass": NAN}, "stage1_mass"),
    ({"stage1_max_share": 0.0}, "stage1_max_share"),
    ({"stage1_max_share": 2.0}, "stage1_max_share"),
    ({"stage1_max_share": NAN}, "stage1_max_share"),
    ({"scorer": "attention"}, "scorer"),
    ({"scorer": None}, "scorer"),
    ({"stage1_rule": "sqrt"}, "stage1_rule"),
    ({"stage1_rule": None}, "stage1_rule"),
    ({"scores": None, "scorer": "similarity", "num_tokens": 10}, "scores"),
    ({"scores": S.reshape(2, 5)}, "scores"),
    ({"scores": torch.zeros(0)}, "scores"),
    ({"scores": torch.tensor([1.0, NAN])}, "scores"),
    ({"scores": torch.tensor([1.0, float("inf")])}, "scores"),
    ({"scores": torch.tensor([1.0, -0.5])}, "scores"),
    ({"scores": [0.1, 0.2]}, "scores"),
    ({"scores": None}, "scores"),
    ({"scores": None, "scorer": "topk", "num_tokens": 10}, "scores"),
    ({"scores": None, "scorer": "uniform"}, "num_tokens"),
    ({"scores": None, "scorer": "random", "num_tokens": 0}, "num_tokens"),
    ({"num_tokens": 11}, "num_tokens"),
    ({"video_sizes": [4, 5]}, "video_sizes"),
    ({"video_sizes": [10, 0]}, "video_sizes"),
    ({"video_sizes": []}, "video_sizes"),
    ({"video_sizes": [4, -1, 7]}, "video_sizes"),
]


@pytest.mark.parametrize(("overrides", "name"), INVALID, ids=[f"{n}-{i}" for i, (_, n) in enumerate(INVALID)])
def test_invalid_arguments_raise_naming_the_argument(overrides, name):
    kwargs = {"scores": S, "keep_ratio": 0.3, **overrides}
    with pytest.raises(ValueError, match=re.escape(name)) as info:
        select_video_tokens(**kwargs)
    if name in ("keep_ratio", "stage1_mass", "stage1_max_share"):
        assert "(0, 1]" in str(info.value)


def test_invalid_helper_arguments():
    with pytest.raises(ValueError, match="keep_ratio"):
        default_stage1_mass(0.0)
    with pytest.raises(ValueError, match="num_tokens"):
        keep_budget(0, 0.5)
    with pytest.raises(ValueError, match="keep_ratio"):
        keep_budget(10, NAN)
    with pytest.raises(ValueError, match="cap"):
        stage1_indices(S, 0.4, -1)
    with pytest.raises(ValueError, match="stage1_mass"):
        stage1_indices(S, 0.0, 3)
    with pytest.raises(ValueError, match="scores"):
        stage1_indices(torch.tensor([-1.0]), 0.4, 1)
    with pytest.raises(ValueError, match="count"):
        stage2_indices(5, torch.tensor([0, 1]), 4)
    with pytest.raises(ValueError, match="taken"):
        stage2_indices(5, torch.tensor([7]), 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_result_on_scores_device():
    scores = torch.rand(50, device="cuda")
    for scorer in SCORERS:
        kept = select_video_tokens(scores, 0.2, scorer=scorer)
        assert kept.device == scores.device
        if scorer != "random":
            assert kept.tolist() == select_video_tokens(scores.cpu(), 0.2, scorer=scorer).tolist()
