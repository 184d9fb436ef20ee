"""``python -m specvlm_hf.bench --study selection``: which video tokens should the draft keep? (issue 15)

A τ-only study on the trained testbed: every selection rule × keep ratio on the 144-, 288- and 576-token sets, each
run as a real speculative ``generate`` call whose output is checked against the target alone (AR). τ is deterministic
for a fixed selection, so no timing is recorded and the study is unaffected by machine load.

Rules are either a `PruneConfig` (the public path, e.g. the default) or an *ablation*: a pure function from what the
study measured about a video (the verifier's attention per layer and head, its object mask, its temporal layout) to
the kept indices, forced into the same ``generate`` call by :func:`forced_selection`. The ceiling rules read the
testbed's ground-truth object masks, which no real selection can see.

Writes ``<out>/selection_study.json`` (every τ); `report.py` renders it into RESULTS.md (section "Selection study").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

import specvlm_hf
from specvlm_hf.candidate import PrunedVideoCandidateGenerator
from specvlm_hf.capture import query_positions, video_attention_scores
from specvlm_hf.pruning import (
    adaptive_stage1_cap,
    default_stage1_mass,
    keep_budget,
    select_video_tokens,
    stage1_indices,
    stage2_indices,
    top_share,
)

from .inputs import BenchInput, testbed_inputs, to_device

STUDY_FILE = "selection_study.json"
STUDY_KEEPS = (0.05, 0.1, 0.25, 0.5)
# (row set, frames, videos): 144, 288 and 576 video tokens; the first 200 / 60 / 60 are the benchmark's own videos.
STUDY_SETS = (("main", 8, 200), ("mid", 16, 120), ("long", 32, 120))
# The machine is shared and every cell is a real generate call, so the rules that are not `core` run on the first
# EXTRA_VIDEOS videos of the first set only, and the per-layer attention sources (each with the adaptive rule) at
# SOURCES_KEEP on its first SOURCES_VIDEOS; per-head sources are measured for how they rank, not run.
EXTRA_VIDEOS = 50
SOURCES_KEEP = 0.1
SOURCES_VIDEOS = 30


# -- what the study measures about one video --------------------------------------------------------------------------


@dataclass
class VideoAnalysis:
    """The verifier's view of one video, measured once and shared by every rule."""

    scores: torch.Tensor  # what generate's capture hands to the selection (mean over layers, heads, query rows)
    attention: torch.Tensor  # (layers, heads, query rows, N): eager softmax rows of the query tokens, video columns
    object_mask: torch.Tensor  # (N,) bool: the token shows an object (testbed ground truth)
    groups: int  # temporal groups
    per_group: int  # video tokens per temporal group (frame-then-raster order)

    def source(self, layers: list[int] | None = None, heads: list[int] | None = None,
               last_query: bool = False) -> torch.Tensor:
        """Scores from a subset of the attention (mean over the chosen layers, heads and query rows), renormalised."""
        rows = self.attention
        if layers is not None:
            rows = rows[layers]
        if heads is not None:
            rows = rows[:, heads]
        if last_query:
            rows = rows[:, :, -1:]
        scores = rows.mean(dim=(0, 1, 2)).double()
        return scores / scores.sum()


@torch.inference_mode()
def analyse(target: torch.nn.Module, item: BenchInput) -> VideoAnalysis:
    """One capture (the scores generate uses) and one eager forward (per-layer, per-head attention rows)."""
    config = target.config
    ids = item.inputs["input_ids"]
    other = {k: v for k, v in item.inputs.items() if k != "input_ids"}
    placeholders = [config.video_token_id, config.image_token_id]
    scores = video_attention_scores(target, ids, config.video_token_id, placeholders[1:], **other).double().cpu()
    prompt = ids[0]
    video = (prompt == config.video_token_id).nonzero().squeeze(1)
    queries = query_positions(prompt, placeholders)
    previous = target.config._attn_implementation
    target.set_attn_implementation("eager")  # measurement only: output_attentions needs eager
    try:
        out = target(**item.inputs, output_attentions=True, use_cache=False)
    finally:
        target.set_attn_implementation(previous)
    attention = torch.stack([a[0][:, queries][:, :, video] for a in out.attentions]).float().cpu()
    t, h, w = item.inputs["video_grid_thw"][0].tolist()
    merge = config.vision_config.spatial_merge_size
    return VideoAnalysis(scores, attention, item.object_mask.cpu(), int(t), int(h * w // merge**2))


# -- ablation selections: pure functions of (analysis, keep) ----------------------------------------------------------


def spread_over_groups(candidates: torch.Tensor, per_group: int, count: int) -> torch.Tensor:
    """`count` of the sorted `candidates`, dealt round-robin over their temporal groups (a group with fewer candidates
    drops out), evenly strided inside each group; sorted."""
    groups: dict[int, list[int]] = {}
    for index in candidates.tolist():
        groups.setdefault(index // per_group, []).append(index)
    quota = dict.fromkeys(groups, 0)
    left = min(count, candidates.numel())
    while left:
        for g, members in groups.items():
            if left and quota[g] < len(members):
                quota[g] += 1
                left -= 1
    picked = [i for g, members in groups.items()
              for i in stage2_pick(torch.tensor(members), quota[g]).tolist()]
    return torch.tensor(sorted(picked), dtype=torch.long)


def stage2_pick(candidates: torch.Tensor, count: int) -> torch.Tensor:
    """`count` evenly strided entries of `candidates` (the Stage II spread applied to a candidate list)."""
    return candidates[stage2_indices(candidates.numel(), None, count)] if count else candidates[:0]


def with_stage2(first: torch.Tensor, n: int, budget: int) -> torch.Tensor:
    """`first` plus the Stage II spread over the rest, up to `budget`; sorted."""
    rest = stage2_indices(n, first, budget - first.numel())
    return torch.sort(torch.cat([first, rest])).values


def oracle(a: VideoAnalysis, keep: float, object_share: float | None = None, object_factor: float | None = None
           ) -> torch.Tensor:
    """Ground-truth selection: object tokens spread over the frames (`object_share` of the budget, or `object_factor`
    times the objects' share of the video), the rest spatially uniform -- over background tokens only when
    `object_factor` is given, over all remaining tokens otherwise."""
    n = a.object_mask.numel()
    budget = keep_budget(n, keep)
    objects = a.object_mask.nonzero().squeeze(1)
    if object_factor is None:
        count = min(objects.numel(), round(object_share * budget))
        return with_stage2(spread_over_groups(objects, a.per_group, count), n, budget)
    count = min(objects.numel(), budget, max(1, round(object_factor * budget * objects.numel() / n)))
    background = (~a.object_mask).nonzero().squeeze(1)
    first = spread_over_groups(objects, a.per_group, count)
    return torch.sort(torch.cat([first, stage2_pick(background, budget - count)])).values


def top_stage1(scores: torch.Tensor, keep: float, factor: float) -> torch.Tensor:
    """Stage I = the ``ceil(factor * sqrt(k))`` top-scored tokens, Stage II the rest (the default's shape with
    another factor; the default's is 0.75)."""
    n = scores.numel()
    budget = keep_budget(n, keep)
    first = torch.sort(scores, descending=True, stable=True).indices[: min(budget, math.ceil(factor * budget**0.5))]
    return with_stage2(first, n, budget)


def temporal_quota(a: VideoAnalysis, keep: float) -> torch.Tensor:
    """Every temporal group keeps its share of the budget (remainder to the earliest groups); inside a group the
    adaptive rule on that group's scores decides."""
    budget = keep_budget(a.scores.numel(), keep)
    base, extra = divmod(budget, a.groups)
    kept = []
    for g in range(a.groups):
        count = min(a.per_group, base + (g < extra))
        if count:
            local = a.scores[g * a.per_group : (g + 1) * a.per_group]
            first = stage1_indices(local, default_stage1_mass(keep), adaptive_stage1_cap(count))
            kept.append(with_stage2(first, a.per_group, count) + g * a.per_group)
    return torch.sort(torch.cat(kept)).values


def concentration_cap(scores: torch.Tensor, keep: float, low: float = 0.1, high: float = 0.5) -> torch.Tensor:
    """The paper's two stages with Stage I capped at a share of the budget that grows linearly with the top-10% share
    of the mass: 0 at `low` (uniform scores), all of it at `high` (concentrated)."""
    n = scores.numel()
    budget = keep_budget(n, keep)
    share = min(1.0, max(0.0, (top_share(scores) - low) / (high - low)))
    first = stage1_indices(scores, default_stage1_mass(keep), int(share * budget))
    return with_stage2(first, n, budget)


def temporal_debias(a: VideoAnalysis) -> torch.Tensor:
    """The scores with every temporal group's total made equal (removes the first/last-frame bias)."""
    grouped = a.scores.view(a.groups, a.per_group)
    grouped = grouped / grouped.sum(dim=1, keepdim=True).clamp(min=1e-30)
    flat = grouped.reshape(-1)
    return flat / flat.sum()


# -- the rules ----------------------------------------------------------------------------------------------------------

Selector = Callable[[VideoAnalysis, float], torch.Tensor]


@dataclass(frozen=True)
class Rule:
    """One row of the study: a `PruneConfig` (``config``, the public path) or an ablation (``select``)."""

    name: str
    idea: str
    description: str
    config: dict[str, Any] = field(default_factory=dict)
    select: Selector | None = None
    core: bool = True  # run on every video of every row set (else: the first EXTRA_VIDEOS of the first set)


DEFAULT_RULE = "adaptive"
RULES: tuple[Rule, ...] = (
    Rule("uniform", "baseline", "Stage II only: evenly strided over all video tokens", {"scorer": "uniform"}),
    Rule("random", "baseline", "a seeded random subset", {"scorer": "random"}),
    Rule("oracle/objects", "ceiling", "ground-truth object tokens only, spread over the frames (filled uniformly when "
         "the budget exceeds them)", select=lambda a, k: oracle(a, k, object_share=1.0), core=False),
    Rule("oracle/half", "ceiling", "half the budget on object tokens (spread over the frames), half uniform",
         select=lambda a, k: oracle(a, k, object_share=0.5), core=False),
    Rule("oracle/2x-share", "ceiling", "object tokens at twice their share of the video (spread), the rest uniform "
         "over the background", select=lambda a, k: oracle(a, k, object_factor=2.0), core=False),
    Rule("paper", "paper", "SpecVLM: Stage I up to 40% of the attention mass (50% above keep 0.25), capped only by the "
         "budget; `PruneConfig(stage1_rule='paper')`", {"stage1_rule": "paper"}),
    Rule("paper/cap0.5", "paper", "the paper's rule with Stage I capped at half the budget "
         "(`stage1_max_share=0.5`)", {"stage1_rule": "paper", "stage1_max_share": 0.5}, core=False),
    Rule("topk", "paper", "the k most attended tokens", {"scorer": "topk"}, core=False),
    Rule(DEFAULT_RULE, "default", "the adaptive rule (`PruneConfig(stage1_rule='adaptive')`, the candidate default): "
         "Stage I at most ceil(0.75 sqrt(k)) tokens unless the attention is concentrated, Stage II the rest",
         {"stage1_rule": "adaptive"}),
    Rule("stage1/0.5sqrt", "Stage I size", "Stage I = ceil(0.5 sqrt(k)) top tokens",
         select=lambda a, k: top_stage1(a.scores, k, 0.5), core=False),
    Rule("stage1/1sqrt", "Stage I size", "Stage I = ceil(sqrt(k)) top tokens",
         select=lambda a, k: top_stage1(a.scores, k, 1.0), core=False),
    Rule("stage1/2sqrt", "Stage I size", "Stage I = ceil(2 sqrt(k)) top tokens",
         select=lambda a, k: top_stage1(a.scores, k, 2.0), core=False),
    Rule("last-query", "which attention", "the adaptive rule on the attention of the last query token only",
         select=lambda a, k: select_video_tokens(a.source(last_query=True), k, stage1_rule=DEFAULT_RULE), core=False),
    Rule("temporal-quota", "coverage", "every temporal group keeps its share of the budget; the adaptive rule inside "
         "each group", select=temporal_quota, core=False),
    Rule("concentration-cap", "coverage", "Stage I capped at a share of the budget growing linearly with the top-10% "
         "share of the mass (0 at 0.1, all at 0.5)", select=lambda a, k: concentration_cap(a.scores, k), core=False),
    Rule("temporal-debias", "debiasing", "the adaptive rule on scores whose temporal groups all hold the same mass",
         select=lambda a, k: select_video_tokens(temporal_debias(a), k, stage1_rule=DEFAULT_RULE), core=False),
    Rule("similarity", "attention-free", "`scorer='similarity'`: centred cosine of the video tokens' hidden states to "
         "the query tokens', all layers, the adaptive rule", {"scorer": "similarity", "stage1_rule": DEFAULT_RULE}),
    Rule("similarity/paper", "attention-free", "the similarity scores with the paper's rule",
         {"scorer": "similarity", "stage1_rule": "paper"}, core=False),
)


def source_rules(num_layers: int) -> list[Rule]:
    """Every decoder layer's attention as the only score source, with the adaptive rule ('which attention')."""
    return [Rule(f"L{layer}", "layer", f"layer {layer}",
                 select=lambda a, k, layer=layer: select_video_tokens(a.source(layers=[layer]), k, stage1_rule=DEFAULT_RULE))
            for layer in range(num_layers)]


def source_stats(a: VideoAnalysis, **source: Any) -> dict[str, Any]:
    """How an attention source (`VideoAnalysis.source` arguments) ranks: its top-10% share, the share of object tokens
    among its top 5% / 10%, its mass per temporal group."""
    scores = a.source(**source)
    n = scores.numel()
    out: dict[str, Any] = {"top10_share": top_share(scores)}
    for fraction in (0.05, 0.1):
        top = torch.sort(scores, descending=True, stable=True).indices[: max(1, int(n * fraction))]
        out[f"object_precision_top{round(fraction * 100)}"] = float(a.object_mask[top].float().mean())
    out["group_mass"] = scores.view(a.groups, a.per_group).sum(dim=1).tolist()
    return out


def all_source_stats(a: VideoAnalysis) -> dict[str, dict[str, Any]]:
    """`source_stats` of every layer, every head, the last query token and all of them together."""
    layers, heads = a.attention.shape[:2]
    out = {"all": source_stats(a), "last-query": source_stats(a, last_query=True)}
    out.update({f"L{i}": source_stats(a, layers=[i]) for i in range(layers)})
    out.update({f"L{i}h{h}": source_stats(a, layers=[i], heads=[h]) for i in range(layers) for h in range(heads)})
    return out


# -- running ------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def forced_selection(kept: torch.Tensor) -> Iterator[None]:
    """Inside the block, every pruned draft keeps exactly `kept` (sorted video-token indices) instead of what its
    PruneConfig would select. Measurement only: it replaces the candidate generator's selection step."""
    original = PrunedVideoCandidateGenerator._select
    PrunedVideoCandidateGenerator._select = lambda self: kept.to(self.video_positions.device)
    try:
        yield
    finally:
        PrunedVideoCandidateGenerator._select = original


@torch.inference_mode()
def speculative_tau(target, draft, item: BenchInput, keep: float, rule: Rule, analysis: VideoAnalysis,
                    settings: dict[str, int]) -> tuple[float, list[int], int]:
    """(τ, generated tokens, kept video tokens) of one greedy SD call with `rule` at `keep`."""
    config = specvlm_hf.PruneConfig(keep_ratio=keep, num_draft_tokens=settings["gamma"],
                                    **(rule.config if rule.select is None else {"scorer": "uniform"}))
    forced = forced_selection(torch.sort(rule.select(analysis, keep)).values) if rule.select else contextlib.nullcontext()
    with forced:
        out = target.generate(**item.inputs, do_sample=False, max_new_tokens=settings["max_new_tokens"],
                              assistant_model=draft, video_pruning=config)
    stats = specvlm_hf.last_stats(target)
    return stats.mean_accepted_length, out[0, item.inputs["input_ids"].shape[1]:].tolist(), stats.kept_video_tokens


def run_video(target, draft, item: BenchInput, rules: list[Rule], keeps: tuple[float, ...], settings: dict[str, int],
              sources: list[Rule] = ()) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every rule x keep on one video, plus full-video SD and (if given) every attention source at `SOURCES_KEEP`.

    Returns the video's record and its mismatches (outputs that differ from AR; there must be none)."""
    prompt = item.inputs["input_ids"].shape[1]
    ar = target.generate(**item.inputs, do_sample=False, max_new_tokens=settings["max_new_tokens"])[0, prompt:].tolist()
    analysis = analyse(target, item)
    full = Rule("full", "reference", "the whole video", {"scorer": "uniform"})
    record: dict[str, Any] = {"name": item.name, "video_tokens": item.video_tokens, "ar_tokens": len(ar),
                              "object_token_share": float(analysis.object_mask.float().mean()),
                              "attention": source_stats(analysis), "tau": {}, "kept": {}}
    runs = [(full, 1.0, "tau"), *((r, k, "tau") for r in rules for k in keeps),
            *((r, SOURCES_KEEP, "sources") for r in sources)]
    if sources:
        record["sources"] = {}
        record["source_stats"] = all_source_stats(analysis)
    mismatches = []
    for rule, keep, table in runs:
        tau, tokens, kept = speculative_tau(target, draft, item, keep, rule, analysis, settings)
        key = f"{rule.name}@{keep:g}"
        record[table][key] = tau
        if table == "tau":
            record["kept"][key] = kept
        if tokens != ar:
            mismatches.append({"sample": item.name, "rule": key, "ar_tokens": ar, "method_tokens": tokens})
    return record, mismatches


def run_study(target, draft, processor, settings: dict[str, int], sets=STUDY_SETS, keeps=STUDY_KEEPS,
              rules: tuple[Rule, ...] = RULES, extra_videos: int = EXTRA_VIDEOS, sources_videos: int = SOURCES_VIDEOS,
              seed: int = 0) -> dict[str, Any]:
    """The whole study on the testbed; returns the raw results (JSON-able). Every row set runs the `core` rules; the
    first also the others on its first `extra_videos` videos and the per-layer sources on its first
    `sources_videos`."""
    sources = source_rules(target.config.get_text_config().num_hidden_layers)
    core = [r for r in rules if r.core]
    out: dict[str, Any] = {"keeps": list(keeps), "default_rule": DEFAULT_RULE, "mismatches": [],
                           "rules": [{"name": r.name, "idea": r.idea, "description": r.description, "core": r.core}
                                     for r in rules],
                           "sources": {"keep": SOURCES_KEEP, "rules": [r.name for r in sources]}, "sets": {}}
    for position, (set_name, frames, count) in enumerate(sets):
        samples = []
        items = testbed_inputs(processor, count, frames, target.config.video_token_id, seed=seed)
        for index, item in enumerate(tqdm(items, desc=f"selection study: {set_name} ({frames} frames)", unit="video")):
            first = position == 0
            chosen = list(rules) if first and index < extra_videos else core
            extra = sources if first and index < sources_videos else []
            record, mismatches = run_video(target, draft, to_device(item, target.device, target.dtype), chosen, keeps,
                                           settings, extra)
            samples.append(record)
            out["mismatches"] += [{"set": set_name, **m} for m in mismatches]
        out["sets"][set_name] = {"frames": frames, "samples": samples}
    return out


def load_study(out: Path | str) -> dict[str, Any] | None:
    """The study results in a benchmark's output directory, if any."""
    path = Path(out) / STUDY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def main(args: argparse.Namespace, command: str) -> int:
    """The CLI's ``--study selection``: the study with the benchmark's models and row-set flags (``--frames``,
    ``--mid-frames``, ``--long-frames``; ``--samples`` videos in the first set, ``--long-samples`` in the others);
    writes ``<out>/selection_study.json``. Exit code 1 if any output differed from AR."""
    from . import report
    from .__main__ import DTYPES, describe_model, load_model, load_processor, rounded
    from .runner import set_threads
    from .summary import selection_study_summary

    if args.videos != "testbed":
        raise SystemExit("--study selection runs on the testbed only (its ceiling rules need ground-truth object masks)")
    started = time.perf_counter()
    set_threads(args.threads)
    dtype = DTYPES[args.dtype]
    target, draft = load_model(args.target, args.device, dtype), load_model(args.draft, args.device, dtype)
    sets = [("main", args.frames, args.samples)] + [(name, frames, args.long_samples) for name, frames in
                                                    (("mid", args.mid_frames), ("long", args.long_frames)) if frames]
    settings = {"gamma": args.num_draft_tokens, "max_new_tokens": args.max_new_tokens}
    results = run_study(target, draft, load_processor(args), settings, sets=sets, seed=args.seed)
    results.update({
        "command": command,
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "wall_s": time.perf_counter() - started,
        "config": {"frames": [f for _, f, _ in sets], "samples": [c for *_, c in sets], "seed": args.seed, **settings,
                   "dtype": args.dtype, "device": args.device},
        "environment": report.environment(args.threads),
        "models": {"target": describe_model(args.target, target), "draft": describe_model(args.draft, draft)},
    })
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / STUDY_FILE
    path.write_text(json.dumps(rounded(results), separators=(",", ":")) + "\n")
    print(report.selection_study_section(selection_study_summary(results)))
    print(f"wrote {path}; `python -m specvlm_hf.bench --report-only <results.json> --out {args.out}` renders it into "
          "RESULTS.md")
    if results["mismatches"]:
        print(f"FAILED: {len(results['mismatches'])} output(s) differ from AR (see 'mismatches' in {path}).")
        return 1
    return 0
