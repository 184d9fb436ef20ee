"""The selection study (``python -m specvlm_hf.bench --study selection``, bench/study.py): its ablation selections
against brute-force definitions, the forced selection reaching the draft, the CLI on untrained testbed-architecture
models (every output checked against AR) and its section in RESULTS.md."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_bench import model_dirs  # noqa: F401  (the untrained testbed pair, saved once per module)

import specvlm_hf
from specvlm_hf.bench import __main__ as cli
from specvlm_hf.bench import study
from specvlm_hf.pruning import keep_budget, select_video_tokens

FAST = settings(max_examples=100, deadline=None)


def analysis(groups: int, per_group: int, seed: int = 0, objects: float = 0.2) -> study.VideoAnalysis:
    generator = torch.Generator().manual_seed(seed)
    n = groups * per_group
    attention = torch.rand(3, 2, 4, n, generator=generator)
    scores = attention.mean(dim=(0, 1, 2)).double()
    mask = torch.rand(n, generator=generator) < objects
    return study.VideoAnalysis(scores / scores.sum(), attention, mask, groups, per_group)


def check(kept: torch.Tensor, n: int, budget: int) -> list[int]:
    out = kept.tolist()
    assert out == sorted(set(out)) and len(out) == budget and all(0 <= i < n for i in out)
    return out


@FAST
@given(st.integers(1, 8), st.integers(1, 40), st.data())
def test_spread_over_groups_deals_round_robin(groups, per_group, data):
    n = groups * per_group
    candidates = sorted(data.draw(st.sets(st.integers(0, n - 1), max_size=n)))
    count = data.draw(st.integers(0, len(candidates)))
    got = study.spread_over_groups(torch.tensor(candidates, dtype=torch.long), per_group, count).tolist()
    assert got == sorted(set(got)) and len(got) == count and set(got) <= set(candidates)
    # Round-robin: two groups' counts differ by more than one only if the smaller group ran out of candidates.
    per = {g: sum(1 for c in got if c // per_group == g) for g in {c // per_group for c in candidates}}
    available = {g: sum(1 for c in candidates if c // per_group == g) for g in per}
    for a in per:
        for b in per:
            assert per[a] <= per[b] + 1 or per[b] == available[b]


@FAST
@given(st.integers(1, 6), st.integers(4, 40), st.sampled_from(study.STUDY_KEEPS), st.integers(0, 1000))
def test_ablation_selections_keep_the_budget(groups, per_group, keep, seed):
    a = analysis(groups, per_group, seed)
    n = groups * per_group
    budget = keep_budget(n, keep)
    for rule in study.RULES:
        if rule.select is not None:
            check(rule.select(a, keep), n, budget)
    for rule in study.source_rules(3):
        check(rule.select(a, keep), n, budget)


def test_oracles_take_the_object_tokens():
    a = analysis(4, 36, objects=0.25)
    objects = set(a.object_mask.nonzero().squeeze(1).tolist())
    for keep in study.STUDY_KEEPS:
        budget = keep_budget(144, keep)
        everything = study.oracle(a, keep, object_share=1.0).tolist()
        assert len(set(everything) & objects) == min(budget, len(objects))
        half = study.oracle(a, keep, object_share=0.5).tolist()
        assert len(set(half) & objects) >= min(round(0.5 * budget), len(objects))
        twice = study.oracle(a, keep, object_factor=2.0).tolist()
        share = len(objects) / 144
        assert len(set(twice) & objects) == min(len(objects), budget, max(1, round(2 * budget * share)))


def test_stage1_size_rules_and_quota():
    a = analysis(4, 36)
    order = torch.sort(a.scores, descending=True, stable=True).indices.tolist()
    for factor in (0.5, 1.0, 2.0):
        for keep in study.STUDY_KEEPS:
            budget = keep_budget(144, keep)
            size = min(budget, math.ceil(factor * math.sqrt(budget)))
            assert set(order[:size]) <= set(study.top_stage1(a.scores, keep, factor).tolist())
    # The adaptive rule's shape is factor 0.75 (diffuse random scores).
    for keep in study.STUDY_KEEPS:
        assert study.top_stage1(a.scores, keep, 0.75).tolist() == \
            select_video_tokens(a.scores, keep, stage1_rule="adaptive").tolist()
    # Temporal quota: every group keeps budget // groups or one more (the earliest groups take the remainder).
    kept = study.temporal_quota(a, 0.1).tolist()  # budget 14 over 4 groups: 4, 4, 3, 3
    assert [sum(1 for i in kept if i // 36 == g) for g in range(4)] == [4, 4, 3, 3]
    debiased = study.temporal_debias(a).view(4, 36).sum(dim=1)
    torch.testing.assert_close(debiased, torch.full((4,), 0.25, dtype=torch.float64))


def test_forced_selection_reaches_the_draft_and_is_undone(qwen_pair, video_inputs):
    target, draft = qwen_pair
    inputs = video_inputs(num_frames=4, height=56, width=56)
    kept = torch.tensor([0, 5, 7])
    original = study.PrunedVideoCandidateGenerator._select
    with study.forced_selection(kept):
        target.generate(**inputs, max_new_tokens=3, do_sample=False, assistant_model=draft,
                        video_pruning=specvlm_hf.PruneConfig(keep_ratio=0.5, scorer="uniform"))
    assert specvlm_hf.last_stats(target).kept_video_tokens == 3
    assert study.PrunedVideoCandidateGenerator._select is original


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_study_cli_and_its_section_in_results(model_dirs, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    args = ["--study", "selection", "--samples", "1", "--long-samples", "1", "--frames", "2", "--mid-frames", "0",
            "--long-frames", "4", "--max-new-tokens", "5", "--num-draft-tokens", "3", "--out", str(out)]
    assert cli.main([*model_dirs, *args]) == 0
    results = json.loads((out / study.STUDY_FILE).read_text())
    assert results["mismatches"] == [] and set(results["sets"]) == {"main", "long"}
    first = results["sets"]["main"]["samples"][0]
    assert first["tau"]["full@1"] > 0 and first["kept"]["adaptive@0.5"] == 18
    names = {r["name"] for r in results["rules"]}
    assert {f"{name}@{k:g}" for name in names for k in study.STUDY_KEEPS} | {"full@1"} == set(first["tau"])
    long = results["sets"]["long"]["samples"][0]
    core = {r.name for r in study.RULES if r.core}
    assert {key.split("@")[0] for key in long["tau"]} == core | {"full"}
    assert set(first["sources"]) == {f"L{i}@0.1" for i in range(12)}
    # A benchmark run in the same directory renders the study into its RESULTS.md.
    bench = ["--samples", "1", "--frames", "2", "--max-new-tokens", "4", "--keep", "0.5", "--long-frames", "0",
             "--mid-frames", "0", "--no-stock", "--no-self", "--verify", "strict", "--num-draft-tokens", "3"]
    assert cli.main([*model_dirs, *bench, "--out", str(out)]) == 0
    report = (out / "RESULTS.md").read_text()
    assert "## Selection study (issue 15)" in report and "**`adaptive`** (default)" in report
    assert "| S1 |" in report and "Which attention" in report
